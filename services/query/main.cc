// telemetry-query: the QueryService gRPC server (first slice: primary only).
#include "absl/flags/flag.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/logging.h"
#include "common/pg_pool.h"
#include "common/runtime.h"
#include "services/query/query_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50052", "gRPC listen address");
ABSL_FLAG(int, http_port, 9103, "HTTP port for /metrics, /healthz, /readyz (0: any)");
ABSL_FLAG(std::string, http_host, "127.0.0.1", "HTTP listen host");
ABSL_FLAG(std::string, pg_primary, "postgresql://telemetry@127.0.0.1:5432/telemetry",
          "Postgres primary");
ABSL_FLAG(std::string, topic, "telemetry.readings.v1", "Readings topic (for consistency tokens)");
ABSL_FLAG(int, worker_threads, 8, "Threads running queries");
ABSL_FLAG(int, pg_connections, 8, "Postgres connections to the primary");
ABSL_FLAG(int64_t, default_deadline_ms, 30000, "Deadline of calls that set none");
ABSL_FLAG(std::string, log_level, "info", "Log level");

int main(int argc, char** argv) {
  telemetry::BlockShutdownSignals();
  telemetry::InitFlags(argc, argv, "telemetry-query: the read API");
  telemetry::SetLogLevel(absl::GetFlag(FLAGS_log_level));
  auto log = telemetry::GetLogger("query");
  auto* clock = telemetry::SystemClock::Get();
  auto* registry = telemetry::MetricsRegistry::Default();
  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary), absl::GetFlag(FLAGS_pg_connections),
                         "primary");
  auto metadata = telemetry::NewPgMetadataStore(&pool);
  auto store = telemetry::NewPgReadingStore(&pool);
  telemetry::query::QueryOptions options;
  options.topic = absl::GetFlag(FLAGS_topic);
  telemetry::query::QueryMetrics metrics(registry);
  telemetry::query::QueryCore core(options, store.get(), clock, &metrics);
  telemetry::Authenticator auth(metadata.get(), clock);
  telemetry::ThreadPool workers(absl::GetFlag(FLAGS_worker_threads), 10000);
  telemetry::query::QueryServiceImpl service(
      &core, &auth, &workers, clock,
      absl::GetFlag(FLAGS_default_deadline_ms) * telemetry::kNsPerMs);
  int port = 0;
  auto server = telemetry::StartGrpcServer(absl::GetFlag(FLAGS_listen), {&service}, &port);
  if (!server.ok()) {
    log->critical("{}", server.status().ToString());
    return 1;
  }
  telemetry::AdminHttpServer http(registry, nullptr);
  absl::Status hs = http.Start(absl::GetFlag(FLAGS_http_host), absl::GetFlag(FLAGS_http_port));
  if (!hs.ok()) {
    log->critical("{}", hs.ToString());
    return 1;
  }
  log->info("query listening on gRPC port {} and HTTP port {}", port, http.port());
  int sig = telemetry::WaitForShutdownSignal();
  log->info("signal {}: draining", sig);
  (*server)->GetHealthCheckService()->SetServingStatus(false);
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  http.Stop();
  return 0;
}
