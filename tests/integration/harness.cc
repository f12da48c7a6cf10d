#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/auth.h"
#include "common/kafka/admin.h"

namespace telemetry::testing {

std::string RequireEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    ADD_FAILURE() << name
                  << " is not set: run tests through scripts/test.sh (or source the env file of "
                     "deploy/local/up.sh)";
    return "";
  }
  return v;
}

std::string S3ArchiveRoot(const std::string& prefix) {
  setenv("AWS_ACCESS_KEY_ID", RequireEnv("TELEMETRY_S3_ACCESS_KEY_ID").c_str(), 1);
  setenv("AWS_SECRET_ACCESS_KEY", RequireEnv("TELEMETRY_S3_SECRET_ACCESS_KEY").c_str(), 1);
  return absl::StrCat("s3://", RequireEnv("TELEMETRY_S3_BUCKET"), "/", prefix,
                      "?endpoint=", RequireEnv("TELEMETRY_S3_ENDPOINT"));
}

std::string BuildDir() {
  const char* v = std::getenv("TELEMETRY_BUILD_DIR");
  return v ? v : "build";
}

std::string SourceDir() {
  const char* v = std::getenv("TELEMETRY_SOURCE_DIR");
  return v ? v : ".";
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

Process::Process(std::string binary, std::vector<std::string> args, std::string log_path) {
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // If the test process dies (a crash, an abort), its services die with it
    // instead of lingering on the machine.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    // Children must not inherit the test's blocked signals.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> argv;
    argv.push_back(binary.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0 && running()) {
    Signal(SIGTERM);
    if (Wait(10000) == -1000) {
      Signal(SIGKILL);
      Wait(5000);
    }
  }
}

void Process::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

bool Process::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int Process::Wait(int timeout_ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return -WTERMSIG(status);
      return -999;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1000;
}

Tenant CreateTenant(const std::string& prefix, NewTenant options) {
  PgPool pool(RequireEnv("TELEMETRY_PG_PRIMARY"), 1, "test");
  auto store = NewPgMetadataStore(&pool);
  std::random_device rd;
  options.name = prefix + "-" + std::to_string(rd()) + std::to_string(rd());
  Tenant t;
  auto id = store->CreateTenant(options);
  EXPECT_TRUE(id.ok()) << id.status();
  t.id = id.ok() ? *id : 0;
  t.key = GenerateApiKey();
  EXPECT_TRUE(store->AddApiKey(t.id, Sha256Hex(t.key)).ok());
  return t;
}

bool WaitForServing(int port, int timeout_ms) {
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto until = std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms);
  return channel->WaitForConnected(until);
}

bool WaitForHealth(int port, const std::string& service, int want, int timeout_ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (GrpcHealth(port, service) != want) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

Services::Services() {
  log_dir_ =
      std::filesystem::temp_directory_path() / ("telemetry-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(log_dir_);
}

Services::~Services() {
  if (bridge_runs_ > 0) {
    bridge_.reset();
    // Forget the bridge's persistent session: connecting with its client id
    // and a clean session removes it, or the broker would queue every later
    // message for it forever.
    const std::string cmd = "mosquitto_sub -h " + RequireEnv("TELEMETRY_MQTT_HOST") + " -p " +
                            RequireEnv("TELEMETRY_MQTT_PORT") + " -u " +
                            RequireEnv("TELEMETRY_MQTT_BRIDGE_USER") + " -P " +
                            RequireEnv("TELEMETRY_MQTT_BRIDGE_PASSWORD") + " -i " +
                            bridge_client_id() + " -t telemetry-harness/none -E >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  alert_.reset();
  query_.reset();
  ingest_.reset();
  writer_.reset();
  // The services' logs are kept only when something failed.
  if (::testing::UnitTest::GetInstance()->Passed() && !::testing::Test::HasFailure()) {
    std::error_code ec;
    std::filesystem::remove_all(log_dir_, ec);
  }
}

void Services::StartIngest(const std::vector<std::string>& extra) {
  ingest_port_ = FreePort();
  influx_port_ = FreePort();
  std::vector<std::string> args = {"--listen=127.0.0.1:" + std::to_string(ingest_port_),
                                   "--influx_listen=127.0.0.1:" + std::to_string(influx_port_),
                                   "--http_port=0",
                                   "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"),
                                   "--kafka_brokers=" + RequireEnv("TELEMETRY_KAFKA_BROKERS")};
  args.insert(args.end(), extra.begin(), extra.end());
  ingest_ = std::make_unique<Process>(BuildDir() + "/services/ingest/telemetry-ingest", args,
                                      log_dir_ + "/ingest.log");
  ASSERT_TRUE(WaitForServing(ingest_port_, 20000)) << "ingest did not start; see " << log_dir_;
  // Ready once it learned the topic layout: a write with no readings passes.
  auto stub = IngestStub();
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext ctx;
    telemetry::v1::WriteRequest req;
    telemetry::v1::WriteResponse resp;
    grpc::Status st = stub->Write(&ctx, req, &resp);
    if (st.error_code() != grpc::StatusCode::FAILED_PRECONDITION) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

namespace {

// GET http://127.0.0.1:<port><path>; returns the status code (0: no answer)
// and, when `body` is given, the whole answer.
int HttpGet(int port, const std::string& path, std::string* body = nullptr) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int code = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      std::string answer;
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) answer.append(buf, static_cast<size_t>(n));
      if (answer.size() > 12) code = std::atoi(answer.c_str() + 9);  // "HTTP/1.1 200"
      if (body != nullptr) *body = std::move(answer);
    }
  }
  close(fd);
  return code;
}

}  // namespace

void Services::StartWriter(const std::vector<std::string>& extra) {
  const int http_port = FreePort();
  writer_http_port_ = http_port;
  std::vector<std::string> args = {"--http_port=" + std::to_string(http_port),
                                   "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"),
                                   "--redis=" + RequireEnv("TELEMETRY_REDIS"),
                                   "--kafka_brokers=" + RequireEnv("TELEMETRY_KAFKA_BROKERS"),
                                   "--session_timeout_ms=3000",
                                   "--max_poll_interval_ms=10000"};
  args.insert(args.end(), extra.begin(), extra.end());
  writer_ =
      std::make_unique<Process>(BuildDir() + "/services/writer/telemetry-writer", args,
                                log_dir_ + "/writer." + std::to_string(writer_runs_++) + ".log");
  // Ready once the group assigned it partitions (and it checked them).
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    ready = HttpGet(http_port, "/readyz") == 200;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(ready) << "writer not assigned partitions within 30 s; see " << log_dir_;
}

void Services::StopWriter(int sig) {
  writer_->Signal(sig);
  writer_->Wait(20000);
  writer_.reset();
}

std::string Services::bridge_client_id() const {
  return "telemetry-bridge-test-" + std::to_string(::getpid());
}

void Services::StartBridge(const std::vector<std::string>& extra) {
  bridge_http_port_ = FreePort();
  std::vector<std::string> args = {
      "--http_port=" + std::to_string(bridge_http_port_),
      "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"),
      "--kafka_brokers=" + RequireEnv("TELEMETRY_KAFKA_BROKERS"),
      "--mqtt_host=" + RequireEnv("TELEMETRY_MQTT_HOST"),
      "--mqtt_port=" + RequireEnv("TELEMETRY_MQTT_PORT"),
      "--mqtt_user=" + RequireEnv("TELEMETRY_MQTT_BRIDGE_USER"),
      "--mqtt_password=" + RequireEnv("TELEMETRY_MQTT_BRIDGE_PASSWORD"),
      "--mqtt_client_id=" + bridge_client_id()};
  args.insert(args.end(), extra.begin(), extra.end());
  bridge_ =
      std::make_unique<Process>(BuildDir() + "/services/bridge/telemetry-bridge", args,
                                log_dir_ + "/bridge." + std::to_string(bridge_runs_++) + ".log");
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    ready = HttpGet(bridge_http_port_, "/readyz") == 200;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(ready) << "bridge not connected within 30 s; see " << log_dir_;
}

void Services::StopBridge(int sig) {
  if (!bridge_) return;
  bridge_->Signal(sig);
  bridge_->Wait(20000);
  bridge_.reset();
}

void Services::StartQuery(const std::vector<std::string>& extra) {
  query_port_ = FreePort();
  std::vector<std::string> args = {"--listen=127.0.0.1:" + std::to_string(query_port_),
                                   "--http_port=0",
                                   "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY")};
  args.insert(args.end(), extra.begin(), extra.end());
  query_ = std::make_unique<Process>(BuildDir() + "/services/query/telemetry-query", args,
                                     log_dir_ + "/query.log");
  ASSERT_TRUE(WaitForServing(query_port_, 20000)) << "query did not start; see " << log_dir_;
}

std::string CreateTopic(const std::string& prefix, int partitions,
                        const std::map<std::string, std::string>& config) {
  KafkaOptions o;
  o.brokers = RequireEnv("TELEMETRY_KAFKA_BROKERS");
  TopicSpec spec;
  spec.name =
      prefix + "." + std::to_string(getpid()) + "." + std::to_string(std::random_device{}());
  spec.partitions = partitions;
  spec.config = config;
  auto out = EnsureTopics(o, {spec}, 15000);
  EXPECT_TRUE(out.ok()) << out.status();
  return spec.name;
}

void DeleteTopic(const std::string& name) {
  KafkaOptions o;
  o.brokers = RequireEnv("TELEMETRY_KAFKA_BROKERS");
  EXPECT_TRUE(DeleteTopics(o, {name}, 15000).ok());
}

std::pair<std::string, int> Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {"", -1};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  return {out, WIFEXITED(rc) ? WEXITSTATUS(rc) : -1};
}

std::string StoredReadingsSql(const std::string& series_where) {
  return absl::StrCat(
      "SELECT (SELECT count(*) FROM raw_readings r JOIN series s ON s.id = r.series_id WHERE ",
      series_where,
      ") + (SELECT coalesce(sum(g.n), 0) FROM raw_readings_seg g JOIN series s"
      " ON s.id = g.series_id WHERE ",
      series_where, ")");
}

std::string TenantReadingsSql(int64_t tenant_id) {
  return absl::StrCat(
      "(SELECT r.series_id, r.ts, r.value_double, r.value_text, r.value_bool, r.status_code"
      " FROM raw_readings r WHERE r.series_id IN (SELECT id FROM series WHERE tenant_id = ",
      tenant_id,
      ") UNION ALL SELECT g.series_id, u.ts, u.value_double, u.value_text, u.value_bool,"
      " u.status_code FROM (SELECT g.series_id, g.hour, g.data FROM raw_readings_seg g"
      " WHERE g.series_id IN (SELECT id FROM series WHERE tenant_id = ",
      tenant_id, ") OFFSET 0) g CROSS JOIN LATERAL raw_seg_unpack(g.hour, g.data) u)");
}

int64_t StoredReadings(int64_t tenant_id) {
  return SqlInt(StoredReadingsSql(absl::StrCat("s.tenant_id = ", tenant_id)));
}

int64_t WaitForReadings(int64_t tenant_id, int64_t expected, int timeout_s) {
  for (int i = 0; i < timeout_s * 10 && StoredReadings(tenant_id) < expected; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  return StoredReadings(tenant_id);
}

int KafkaCtl(const std::string& what) {
  const std::string cmd = SourceDir() + "/deploy/local/kafka.sh " + what + " >/dev/null 2>&1";
  return std::system(cmd.c_str());
}

double MetricValue(int http_port, const std::string& name) {
  std::string body;
  HttpGet(http_port, "/metrics", &body);
  const std::string key = "\n" + name + " ";
  size_t at = body.find(key);
  if (at == std::string::npos) return -1;
  return std::atof(body.c_str() + at + key.size());
}

std::unique_ptr<telemetry::v1::IngestService::Stub> Services::IngestStub() {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  return telemetry::v1::IngestService::NewStub(grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(ingest_port_), grpc::InsecureChannelCredentials(), args));
}

void Services::StartAlert(const std::vector<std::string>& extra) {
  if (alert_port_ == 0) alert_port_ = FreePort();  // the same port across restarts
  const int http_port = FreePort();
  alert_http_port_ = http_port;
  std::vector<std::string> args = {"--listen=127.0.0.1:" + std::to_string(alert_port_),
                                   "--http_port=" + std::to_string(http_port),
                                   "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"),
                                   "--kafka_brokers=" + RequireEnv("TELEMETRY_KAFKA_BROKERS"),
                                   "--session_timeout_ms=3000",
                                   "--max_poll_interval_ms=10000"};
  args.insert(args.end(), extra.begin(), extra.end());
  alert_ = std::make_unique<Process>(BuildDir() + "/services/alert/telemetry-alert", args,
                                     log_dir_ + "/alert." + std::to_string(alert_runs_++) + ".log");
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    ready = HttpGet(http_port, "/readyz") == 200;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(ready) << "alert not ready within 30 s; see " << log_dir_;
}

void Services::StopAlert(int sig) {
  alert_->Signal(sig);
  alert_->Wait(20000);
  alert_.reset();
}

std::unique_ptr<telemetry::v1::AlertService::Stub> Services::AlertStub() {
  return telemetry::v1::AlertService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(alert_port_), grpc::InsecureChannelCredentials()));
}

std::unique_ptr<telemetry::v1::QueryService::Stub> Services::QueryStub() {
  return telemetry::v1::QueryService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(query_port_), grpc::InsecureChannelCredentials()));
}

std::vector<std::vector<std::string>> Sql(const std::string& query) {
  std::vector<std::vector<std::string>> out;
  pqxx::connection c(RequireEnv("TELEMETRY_PG_PRIMARY"));
  pqxx::read_transaction tx(c);
  for (const auto& row : tx.exec(query)) {
    std::vector<std::string> r;
    for (const auto& f : row) r.push_back(f.is_null() ? "NULL" : f.as<std::string>());
    out.push_back(std::move(r));
  }
  return out;
}

int64_t SqlExec(const std::string& statement) {
  pqxx::connection c(RequireEnv("TELEMETRY_PG_PRIMARY"));
  pqxx::work tx(c);
  const auto n = tx.exec(statement).affected_rows();
  tx.commit();
  return static_cast<int64_t>(n);
}

int64_t SqlInt(const std::string& query) {
  auto rows = Sql(query);
  if (rows.empty() || rows[0].empty() || rows[0][0] == "NULL") return 0;
  return std::stoll(rows[0][0]);
}

grpc::Status WaitForToken(telemetry::v1::QueryService::Stub* query, const std::string& key,
                          const std::string& token, const std::string& any_device, int timeout_ms) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + key);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  telemetry::v1::LatestRequest req;
  req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_STRONG);
  req.mutable_options()->set_consistency_token(token);
  req.add_device_ids(any_device);
  telemetry::v1::LatestResponse resp;
  return query->Latest(&ctx, req, &resp);
}

}  // namespace telemetry::testing
