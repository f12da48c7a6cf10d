// telemetry-devbroker: a tiny Kafka-protocol broker for local development and
// tests, built on librdkafka's mock cluster (rdkafka_mock.h).
//
// It listens on loopback only (ephemeral ports chosen by librdkafka), creates
// the telemetry topics up front (the mock cluster does not implement the
// CreateTopics Admin API, so topics must exist before clients connect),
// prints the bootstrap servers string on stdout and optionally writes it to a
// file (atomically, via rename).
//
// Signals:
//   SIGTERM / SIGINT  destroy the cluster and exit 0
//   SIGUSR1           set all brokers down (simulated Kafka outage)
//   SIGUSR2           set all brokers up again
//
// The mock cluster keeps everything in memory: nothing survives a restart.

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr const char* kDefaultTopics =
    "telemetry.readings.v1:64,telemetry.readings.dlq.v1:4,"
    "telemetry.alerts.v1:8,telemetry.exports.v1:1";

struct Options {
  int brokers = 1;
  std::vector<std::pair<std::string, int>> topics;
  std::string bootstrap_file;
};

void usage(FILE* out, const char* argv0) {
  std::fprintf(out,
               "Usage: %s [--brokers N] [--topics name:partitions[,...]] "
               "[--bootstrap-file PATH]\n"
               "\n"
               "Runs an in-memory Kafka mock cluster (librdkafka) on 127.0.0.1.\n"
               "\n"
               "  --brokers N             number of brokers (default 1)\n"
               "  --topics LIST           topics to create at start, as\n"
               "                          name:partitions[,name:partitions...]\n"
               "                          (default %s)\n"
               "  --bootstrap-file PATH   write the bootstrap servers string to\n"
               "                          PATH once listening (atomic rename);\n"
               "                          removed again on clean shutdown\n"
               "  --help                  this text\n"
               "\n"
               "Signals: SIGTERM/SIGINT stop, SIGUSR1 brokers down (outage),\n"
               "SIGUSR2 brokers up again.\n",
               argv0, kDefaultTopics);
}

bool parse_int(const std::string& s, int min, int max, int* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0' || v < min || v > max) return false;
  *out = static_cast<int>(v);
  return true;
}

bool parse_topics(const std::string& spec, std::vector<std::pair<std::string, int>>* out,
                  std::string* err) {
  out->clear();
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    if (comma == std::string::npos) comma = spec.size();
    std::string item = spec.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) {
      if (comma == spec.size()) break;
      continue;
    }
    size_t colon = item.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      *err = "bad topic spec '" + item + "' (want name:partitions)";
      return false;
    }
    int parts = 0;
    if (!parse_int(item.substr(colon + 1), 1, 100000, &parts)) {
      *err = "bad partition count in '" + item + "'";
      return false;
    }
    out->emplace_back(item.substr(0, colon), parts);
  }
  if (out->empty()) {
    *err = "no topics given";
    return false;
  }
  return true;
}

// Returns 0 = ok, 1 = exit(0) (help), 2 = usage error.
int parse_args(int argc, char** argv, Options* opt) {
  std::string topics = kDefaultTopics;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto need_value = [&](void) -> bool {
      if (has_value) return true;
      if (i + 1 >= argc) {
        std::fprintf(stderr, "telemetry-devbroker: %s needs a value\n", arg.c_str());
        return false;
      }
      value = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      usage(stdout, argv[0]);
      return 1;
    } else if (arg == "--brokers") {
      if (!need_value()) return 2;
      if (!parse_int(value, 1, 64, &opt->brokers)) {
        std::fprintf(stderr, "telemetry-devbroker: bad --brokers '%s' (1..64)\n", value.c_str());
        return 2;
      }
    } else if (arg == "--topics") {
      if (!need_value()) return 2;
      topics = value;
    } else if (arg == "--bootstrap-file") {
      if (!need_value()) return 2;
      if (value.empty()) {
        std::fprintf(stderr, "telemetry-devbroker: empty --bootstrap-file\n");
        return 2;
      }
      opt->bootstrap_file = value;
    } else {
      std::fprintf(stderr, "telemetry-devbroker: unknown argument '%s'\n", argv[i]);
      usage(stderr, argv[0]);
      return 2;
    }
  }
  std::string err;
  if (!parse_topics(topics, &opt->topics, &err)) {
    std::fprintf(stderr, "telemetry-devbroker: --topics: %s\n", err.c_str());
    return 2;
  }
  return 0;
}

bool write_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

// Writes `content` to `path` atomically: temp file in the same directory,
// fsync, rename.
bool write_file_atomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::fprintf(stderr, "telemetry-devbroker: open %s: %s\n", tmp.c_str(), std::strerror(errno));
    return false;
  }
  bool ok = write_all(fd, content) && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok) {
    std::fprintf(stderr, "telemetry-devbroker: write %s: %s\n", tmp.c_str(), std::strerror(saved));
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::fprintf(stderr, "telemetry-devbroker: rename %s -> %s: %s\n", tmp.c_str(), path.c_str(),
                 std::strerror(errno));
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

void log_cb(const rd_kafka_t* /*rk*/, int level, const char* fac, const char* buf) {
  std::fprintf(stderr, "telemetry-devbroker: rdkafka[%d] %s: %s\n", level, fac, buf);
}

}  // namespace

int main(int argc, char** argv) {
  // Block the signals we handle before librdkafka starts any thread, so that
  // every thread inherits the mask and sigwait() below receives them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGUSR1);
  sigaddset(&sigs, SIGUSR2);
  if (pthread_sigmask(SIG_BLOCK, &sigs, nullptr) != 0) {
    std::fprintf(stderr, "telemetry-devbroker: pthread_sigmask failed\n");
    return 1;
  }
  // Writing to a closed stdout/stderr pipe must not kill us.
  std::signal(SIGPIPE, SIG_IGN);

  Options opt;
  int rc = parse_args(argc, argv, &opt);
  if (rc == 1) return 0;
  if (rc != 0) return 2;

  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the mock cluster; it never connects anywhere, so
  // keep its own logging to errors (it would otherwise warn about the missing
  // bootstrap.servers).
  if (rd_kafka_conf_set(conf, "client.id", "telemetry-devbroker", errstr, sizeof(errstr)) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
    std::fprintf(stderr, "telemetry-devbroker: conf: %s\n", errstr);
    rd_kafka_conf_destroy(conf);
    return 1;
  }
  rd_kafka_conf_set_log_cb(conf, log_cb);

  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) {
    std::fprintf(stderr, "telemetry-devbroker: rd_kafka_new: %s\n", errstr);
    return 1;
  }

  rd_kafka_mock_cluster_t* mcluster = rd_kafka_mock_cluster_new(rk, opt.brokers);
  if (mcluster == nullptr) {
    std::fprintf(stderr, "telemetry-devbroker: rd_kafka_mock_cluster_new failed\n");
    rd_kafka_destroy(rk);
    return 1;
  }

  const int replication = opt.brokers < 3 ? opt.brokers : 3;
  for (const auto& t : opt.topics) {
    rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(mcluster, t.first.c_str(), t.second, replication);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "telemetry-devbroker: create topic %s: %s\n", t.first.c_str(),
                   rd_kafka_err2str(err));
      rd_kafka_mock_cluster_destroy(mcluster);
      rd_kafka_destroy(rk);
      return 1;
    }
    std::fprintf(stderr, "telemetry-devbroker: topic %s partitions=%d replication=%d\n",
                 t.first.c_str(), t.second, replication);
  }

  const std::string bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);
  std::fprintf(stdout, "%s\n", bootstraps.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "telemetry-devbroker: %d broker(s) listening on %s (pid %d)\n", opt.brokers,
               bootstraps.c_str(), static_cast<int>(::getpid()));

  if (!opt.bootstrap_file.empty() && !write_file_atomic(opt.bootstrap_file, bootstraps + "\n")) {
    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);
    return 1;
  }

  int exit_code = 0;
  for (;;) {
    int sig = 0;
    int werr = sigwait(&sigs, &sig);
    if (werr != 0) {
      if (werr == EINTR) continue;
      std::fprintf(stderr, "telemetry-devbroker: sigwait: %s\n", std::strerror(werr));
      exit_code = 1;
      break;
    }
    if (sig == SIGTERM || sig == SIGINT) {
      std::fprintf(stderr, "telemetry-devbroker: %s: shutting down\n",
                   sig == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    if (sig == SIGUSR1) {
      rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_down(mcluster, -1);
      std::fprintf(stderr, "telemetry-devbroker: SIGUSR1: all brokers DOWN (%s)\n",
                   rd_kafka_err2str(err));
    } else if (sig == SIGUSR2) {
      rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_up(mcluster, -1);
      std::fprintf(stderr, "telemetry-devbroker: SIGUSR2: all brokers UP (%s)\n",
                   rd_kafka_err2str(err));
    }
  }

  if (!opt.bootstrap_file.empty()) ::unlink(opt.bootstrap_file.c_str());
  rd_kafka_mock_cluster_destroy(mcluster);
  rd_kafka_destroy(rk);
  std::fprintf(stderr, "telemetry-devbroker: stopped\n");
  return exit_code;
}
