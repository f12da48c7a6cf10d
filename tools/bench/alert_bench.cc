// telemetry-bench-alert: the alert service under load (scripts/bench-alert.sh
// runs it beside ingest, writer, alert and a load generator; not a test).
//
// 1. Creates `--rules` threshold rules that together cover a loadgen fleet of
//    1,250 devices x 8 sensors once each (rule = 10 devices x 1 sensor, by
//    glob), plus one probe rule with a webhook to this tool.
// 2. For --duration_s: every --probe_every_ms writes a spike for a new probe
//    device and measures from its acknowledgement to the webhook POST that
//    reports it (and from its window's end + lateness to that POST).
// 3. Meanwhile, the way teams do it today: every --sql_every_s, the same
//    rules as SQL queries on the primary (one per rule, over the last closed
//    window), timed, with the CPU of the Postgres backend that ran them.
// 4. Prints one JSON line: probe latencies, the alert service's CPU and the
//    readings it evaluated (from its /metrics), the SQL rounds.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "telemetry/v1/alert.grpc.pb.h"
#include "telemetry/v1/ingest.grpc.pb.h"

ABSL_FLAG(std::string, ingest, "127.0.0.1:50051", "IngestService");
ABSL_FLAG(std::string, alert, "127.0.0.1:50054", "AlertService");
ABSL_FLAG(int, alert_http_port, 9104, "The alert service's metrics port");
ABSL_FLAG(int, alert_pid, 0, "The alert service's pid (CPU)");
ABSL_FLAG(std::string, api_key, "", "API key of the tenant");
ABSL_FLAG(int64_t, tenant_id, 0, "Tenant id (SQL baseline)");
ABSL_FLAG(std::string, pg, "", "Postgres primary (SQL baseline; '' = skip)");
ABSL_FLAG(int, rules, 1000, "Fleet rules (at most 1000: 10 devices x 1 sensor each)");
ABSL_FLAG(int, window_s, 10, "Window of the fleet rules");
ABSL_FLAG(double, lateness_s, 5, "The alert service's --allowed_lateness_s");
ABSL_FLAG(double, duration_s, 60, "How long to measure");
ABSL_FLAG(int, probe_every_ms, 2000, "A probe spike this often");
ABSL_FLAG(int, sql_every_s, 10, "SQL baseline round period");
ABSL_FLAG(int, warmup_s, 40,
          "Wait after creating the rules before measuring (the alert service reloads the rule "
          "set as it grows and catches up with the fleet meanwhile)");

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kS = telemetry::kNsPerSec;

int64_t NowNs() { return telemetry::SystemClock::Get()->NowNs(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

int64_t CpuTicks(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  int64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return utime + stime;
}

double Metric(int port, const std::string& name) {
  httplib::Client c("127.0.0.1", port);
  auto res = c.Get("/metrics");
  if (!res) return -1;
  std::istringstream in(res->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// The fleet's device globs: "dev-?" and "dev-<k>?" for k = 1..124: 125
// patterns of 10 devices each over dev-0 .. dev-1249.
std::vector<std::string> DevicePatterns() {
  std::vector<std::string> p = {"dev-?"};
  for (int k = 1; k <= 124; ++k) p.push_back(absl::StrCat("dev-", k, "?"));
  return p;
}

std::string SqlLike(std::string glob) {
  std::replace(glob.begin(), glob.end(), '?', '_');
  std::replace(glob.begin(), glob.end(), '*', '%');
  return glob;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string key = absl::GetFlag(FLAGS_api_key);
  auto alert = telemetry::v1::AlertService::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_alert), grpc::InsecureChannelCredentials()));
  auto ingest = telemetry::v1::IngestService::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_ingest), grpc::InsecureChannelCredentials()));

  // Webhook receiver: probe device -> when its FIRING arrived.
  std::mutex mu;
  std::map<std::string, int64_t> received;
  httplib::Server server;
  server.Post("/hook", [&](const httplib::Request& req, httplib::Response& res) {
    const int64_t now = NowNs();
    const std::string tag = "\"device_id\":\"";
    const size_t at = req.body.find(tag);
    if (at != std::string::npos && req.body.find("ALERT_STATE_FIRING") != std::string::npos) {
      const size_t end = req.body.find('"', at + tag.size());
      std::lock_guard<std::mutex> lock(mu);
      received.emplace(req.body.substr(at + tag.size(), end - at - tag.size()), now);
    }
    res.status = 200;
  });
  const int hook_port = server.bind_to_any_port("127.0.0.1");
  std::thread server_thread([&] { server.listen_after_bind(); });

  // Rules.
  struct FleetRule {
    std::string devices, sensor;
  };
  std::vector<FleetRule> fleet_rules;
  const auto patterns = DevicePatterns();
  for (int i = 0; i < absl::GetFlag(FLAGS_rules) && i < 1000; ++i) {
    fleet_rules.push_back({patterns[static_cast<size_t>(i / 8)], absl::StrCat("s", i % 8)});
  }
  auto create = [&](const telemetry::v1::Rule& rule) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer " + key);
      telemetry::v1::CreateRuleRequest req;
      *req.mutable_rule() = rule;
      telemetry::v1::Rule out;
      grpc::Status st = alert->CreateRule(&ctx, req, &out);
      if (st.ok()) return;
      std::fprintf(stderr, "CreateRule: %s\n", st.error_message().c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    std::exit(1);
  };
  for (size_t i = 0; i < fleet_rules.size(); ++i) {
    telemetry::v1::Rule r;
    r.set_name(absl::StrCat("fleet-", i));
    r.set_device_id(fleet_rules[i].devices);
    r.set_sensor(fleet_rules[i].sensor);
    r.set_window_seconds(absl::GetFlag(FLAGS_window_s));
    r.set_function(telemetry::v1::WINDOW_FUNCTION_AVG);
    r.set_comparison(telemetry::v1::COMPARISON_GT);
    r.set_threshold(100);  // the fleet's values stay under 35: evaluated, never fired
    create(r);
  }
  {
    telemetry::v1::Rule probe;
    probe.set_name("probe");
    probe.set_device_id("probe-*");
    probe.set_sensor("spike");
    probe.set_window_seconds(1);
    probe.set_function(telemetry::v1::WINDOW_FUNCTION_MAX);
    probe.set_comparison(telemetry::v1::COMPARISON_GT);
    probe.set_threshold(100);
    probe.add_webhook_urls(absl::StrCat("http://127.0.0.1:", hook_port, "/hook"));
    create(probe);
  }
  std::this_thread::sleep_for(std::chrono::seconds(absl::GetFlag(FLAGS_warmup_s)));

  // SQL baseline on its own thread.
  struct SqlRound {
    double seconds;
    double cpu_s;
    int64_t firing;
  };
  std::vector<SqlRound> rounds;
  std::atomic<bool> stop{false};
  std::thread sql_thread;
  if (!absl::GetFlag(FLAGS_pg).empty()) {
    sql_thread = std::thread([&] {
      pqxx::connection c(absl::GetFlag(FLAGS_pg));
      const int backend = pqxx::nontransaction(c).exec("SELECT pg_backend_pid()")[0][0].as<int>();
      c.prepare("rule",
                "SELECT d.name, avg(r.value_double) FROM raw_readings r"
                " JOIN series s ON s.id = r.series_id JOIN devices d ON d.id = s.device_id"
                " WHERE s.tenant_id = $1 AND d.name LIKE $2 AND s.sensor = $3"
                " AND r.ts >= $4 AND r.ts < $5 GROUP BY d.name HAVING avg(r.value_double) > $6");
      const int64_t w = absl::GetFlag(FLAGS_window_s) * kS;
      auto next = Clock::now();
      while (!stop.load()) {
        next += std::chrono::seconds(absl::GetFlag(FLAGS_sql_every_s));
        const int64_t end = NowNs() / w * w;  // the last closed window
        const int64_t t0 = CpuTicks(backend);
        const auto started = Clock::now();
        int64_t firing = 0;
        pqxx::nontransaction tx(c);
        for (const FleetRule& r : fleet_rules) {
          firing += static_cast<int64_t>(tx.exec_prepared("rule", absl::GetFlag(FLAGS_tenant_id),
                                                          SqlLike(r.devices), r.sensor, end - w,
                                                          end, 100.0)
                                             .size());
        }
        const double secs = std::chrono::duration<double>(Clock::now() - started).count();
        rounds.push_back({secs, static_cast<double>(CpuTicks(backend) - t0) / 100.0, firing});
        while (!stop.load() && Clock::now() < next) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
    });
  }

  // Probes.
  const int pid = absl::GetFlag(FLAGS_alert_pid);
  const int64_t cpu0 = pid > 0 ? CpuTicks(pid) : 0;
  const double readings0 = Metric(absl::GetFlag(FLAGS_alert_http_port), "alert_readings_total");
  const auto measure_start = Clock::now();
  struct Probe {
    std::string device;
    int64_t ack_ns, window_end_ns;
  };
  std::vector<Probe> probes;
  const auto until =
      Clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_duration_s) * 1000));
  for (int n = 0; Clock::now() < until; ++n) {
    const auto tick = Clock::now();
    telemetry::v1::WriteRequest req;
    auto* r = req.add_readings();
    r->set_device_id(absl::StrCat("probe-", getpid(), "-", n));
    r->set_sensor("spike");
    const int64_t ts = NowNs();
    r->set_timestamp_ns(ts);
    r->set_double_value(1000);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + key);
    telemetry::v1::WriteResponse resp;
    if (ingest->Write(&ctx, req, &resp).ok()) {
      probes.push_back({r->device_id(), NowNs(), (ts / kS + 1) * kS});
    }
    std::this_thread::sleep_until(tick +
                                  std::chrono::milliseconds(absl::GetFlag(FLAGS_probe_every_ms)));
  }
  const double measured_s = std::chrono::duration<double>(Clock::now() - measure_start).count();
  const int64_t cpu1 = pid > 0 ? CpuTicks(pid) : 0;
  const double readings1 = Metric(absl::GetFlag(FLAGS_alert_http_port), "alert_readings_total");
  stop = true;
  if (sql_thread.joinable()) sql_thread.join();
  // The last probes' windows close up to lateness + 1 s later.
  std::this_thread::sleep_for(std::chrono::milliseconds(
      static_cast<int64_t>(absl::GetFlag(FLAGS_lateness_s) * 1000) + 5000));
  server.stop();
  server_thread.join();

  std::vector<double> from_ack, after_close;
  int missing = 0;
  const int64_t lateness = static_cast<int64_t>(absl::GetFlag(FLAGS_lateness_s) * 1e9);
  for (const Probe& p : probes) {
    auto it = received.find(p.device);
    if (it == received.end()) {
      ++missing;
      continue;
    }
    from_ack.push_back(static_cast<double>(it->second - p.ack_ns) / 1e9);
    std::fprintf(stderr, "probe %s: ack->webhook %.3f s, after window end + lateness %.3f s\n",
                 p.device.c_str(), from_ack.back(),
                 static_cast<double>(it->second - (p.window_end_ns + lateness)) / 1e9);
    after_close.push_back(static_cast<double>(it->second - (p.window_end_ns + lateness)) / 1e9);
  }
  std::vector<double> sql_secs, sql_cpu;
  for (const auto& r : rounds) {
    sql_secs.push_back(r.seconds);
    sql_cpu.push_back(r.cpu_s);
  }
  const double alert_cpu_s = static_cast<double>(cpu1 - cpu0) / 100.0;
  const double evaluated = readings1 - readings0;
  std::printf(
      "{\"rules\":%zu,\"measured_s\":%.1f,\"probes\":%zu,\"probes_missing\":%d,"
      "\"ack_to_webhook_p50_s\":%.3f,\"ack_to_webhook_p99_s\":%.3f,"
      "\"after_window_end_plus_lateness_p50_s\":%.3f,\"after_window_end_plus_lateness_p99_s\":%.3f,"
      "\"alert_cpu_s\":%.2f,\"alert_readings\":%.0f,\"alert_readings_per_s\":%.0f,"
      "\"alert_cpu_us_per_reading\":%.2f,\"alert_readings_per_cpu_s\":%.0f,"
      "\"sql_rounds\":%zu,\"sql_round_p50_s\":%.3f,\"sql_round_max_s\":%.3f,"
      "\"sql_cpu_s_per_round\":%.3f,\"sql_cpu_us_per_reading\":%.2f}\n",
      fleet_rules.size(), measured_s, probes.size(), missing, Percentile(from_ack, 0.5),
      Percentile(from_ack, 0.99), Percentile(after_close, 0.5), Percentile(after_close, 0.99),
      alert_cpu_s, evaluated, evaluated / measured_s,
      evaluated > 0 ? alert_cpu_s * 1e6 / evaluated : -1,
      alert_cpu_s > 0 ? evaluated / alert_cpu_s : -1, rounds.size(), Percentile(sql_secs, 0.5),
      sql_secs.empty() ? -1 : *std::max_element(sql_secs.begin(), sql_secs.end()),
      Percentile(sql_cpu, 0.5),
      // Postgres CPU per reading the rules cover: a round covers one window
      // of the readings that arrived in the period.
      (!sql_cpu.empty() && evaluated > 0)
          ? Percentile(sql_cpu, 0.5) * 1e6 /
                (evaluated / measured_s * absl::GetFlag(FLAGS_sql_every_s))
          : -1);
  return missing > 0 ? 1 : 0;
}
