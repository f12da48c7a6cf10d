// telemetry-query: the QueryService gRPC server (first slice: primary only).
#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/latest_cache.h"
#include "common/logging.h"
#include "common/pg_pool.h"
#include "common/replication.h"
#include "common/runtime.h"
#include "services/query/query_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50052", "gRPC listen address");
ABSL_FLAG(int, http_port, 9103, "HTTP port for /metrics, /healthz, /readyz (0: any)");
ABSL_FLAG(std::string, http_host, "127.0.0.1", "HTTP listen host");
ABSL_FLAG(std::string, pg_primary, "postgresql://telemetry@127.0.0.1:5432/telemetry",
          "Postgres primary");
ABSL_FLAG(std::string, pg_replicas, "",
          "Comma-separated read replicas, each 'name=postgresql://...' or just the URL "
          "(named replica-1, replica-2, ...)");
ABSL_FLAG(std::string, redis, "", "Redis host:port of the latest-value cache ('' = none)");
ABSL_FLAG(double, max_staleness_s, 3.0, "Default EVENTUAL max staleness");
ABSL_FLAG(int, replica_probe_ms, 500, "How often replica lag is measured");
ABSL_FLAG(int, heartbeat_ms, 1000,
          "How often this service updates the primary's replication heartbeat (0 = never)");
ABSL_FLAG(int, breaker_failures, 5, "Consecutive replica failures that open its breaker");
ABSL_FLAG(int, breaker_open_s, 60, "How long an open breaker skips the replica");
ABSL_FLAG(int, replica_connections, 0,
          "Postgres connections per replica (0: 2 x this machine's cores, at least 4)");
ABSL_FLAG(std::string, topic, "telemetry.readings.v1", "Readings topic (for consistency tokens)");
ABSL_FLAG(int, worker_threads, 8, "Threads running queries");
ABSL_FLAG(int, max_token_waits, -1,
          "Reads waiting for a consistency token at once, over all tenants (each holds a worker"
          " thread; more get RESOURCE_EXHAUSTED). -1: half of --worker_threads, 0: no bound");
ABSL_FLAG(int, max_token_waits_per_tenant, -1,
          "The same per tenant. -1: a quarter of --worker_threads (at least 1), 0: no bound");
// Postgres connections per source. 0: twice this machine's cores, at least 4
// (the usual sizing, cores × 2). Fewer connections than that queue reads
// instead of time-slicing them, which lowers read p99 when reads are alone on
// the machine but costs read throughput when they share it with ingest
// (docs/read-path.md, "Connections", both measured).
ABSL_FLAG(int, pg_connections, 0,
          "Postgres connections to the primary (0: 2 x this machine's cores, at least 4)");
ABSL_FLAG(int64_t, default_deadline_ms, 30000, "Deadline of calls that set none");
// Postgres re-plans a prepared statement over the partitioned raw table at
// every execution under its default (`auto`: the generic plan's cost, which
// counts every partition, looks worse than a pruned custom plan). A generic
// plan prunes partitions when it runs instead, and saves the planning:
// Playback's Postgres CPU ~600 -> ~250-320 µs a call (docs/read-path.md).
ABSL_FLAG(std::string, pg_plan_cache_mode, "force_generic_plan",
          "plan_cache_mode of the query service's Postgres sessions (auto, force_generic_plan,"
          " force_custom_plan)");
ABSL_FLAG(std::string, log_level, "info", "Log level");

namespace {

int PoolSize(int flag) {
  if (flag > 0) return flag;
  return std::max(4, 2 * static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::BlockShutdownSignals();
  telemetry::InitFlags(argc, argv, "telemetry-query: the read API");
  telemetry::SetLogLevel(absl::GetFlag(FLAGS_log_level));
  auto log = telemetry::GetLogger("query");
  auto* clock = telemetry::SystemClock::Get();
  auto* registry = telemetry::MetricsRegistry::Default();
  const std::string plan_cache_mode = absl::GetFlag(FLAGS_pg_plan_cache_mode);
  if (plan_cache_mode != "auto" && plan_cache_mode != "force_generic_plan" &&
      plan_cache_mode != "force_custom_plan") {
    log->critical("--pg_plan_cache_mode: '{}' is not auto, force_generic_plan or force_custom_plan",
                  plan_cache_mode);
    return 2;
  }
  const telemetry::PgPool::Setup session = [plan_cache_mode](pqxx::connection& c) {
    pqxx::nontransaction(c).exec("SET plan_cache_mode = " + plan_cache_mode);
  };
  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary),
                         PoolSize(absl::GetFlag(FLAGS_pg_connections)), "primary", session);
  auto metadata = telemetry::NewPgMetadataStore(&pool);
  auto store = telemetry::NewPgReadingStore(&pool);
  // Read replicas, each with its own bounded pool and lag probe.
  std::vector<std::unique_ptr<telemetry::PgPool>> replica_pools;
  std::vector<std::unique_ptr<telemetry::ReadingStore>> replica_stores;
  std::vector<telemetry::query::Source> replicas;
  int n = 0;
  for (absl::string_view item :
       absl::StrSplit(absl::GetFlag(FLAGS_pg_replicas), ',', absl::SkipEmpty())) {
    std::string name = "replica-" + std::to_string(++n);
    std::string url(item);
    size_t eq = url.find('=');
    if (eq != std::string::npos && url.find("://") > eq) {
      name = "replica-" + url.substr(0, eq);
      url = url.substr(eq + 1);
    }
    replica_pools.push_back(std::make_unique<telemetry::PgPool>(
        url, PoolSize(absl::GetFlag(FLAGS_replica_connections)), name, session));
    replica_stores.push_back(telemetry::NewPgReadingStore(replica_pools.back().get()));
    telemetry::PgPool* rp = replica_pools.back().get();
    replicas.push_back(
        {name, replica_stores.back().get(), [rp] { return telemetry::HeartbeatAgeSeconds(rp); }});
  }
  auto cache_or = telemetry::NewLatestCacheAt(absl::GetFlag(FLAGS_redis));
  if (!cache_or.ok()) {
    log->critical("--redis: {}", cache_or.status().ToString());
    return 2;
  }
  std::unique_ptr<telemetry::LatestCache> cache = std::move(*cache_or);
  telemetry::query::RouterOptions ropts;
  ropts.default_max_staleness_s = absl::GetFlag(FLAGS_max_staleness_s);
  ropts.breaker_threshold = absl::GetFlag(FLAGS_breaker_failures);
  ropts.breaker_open_ns = absl::GetFlag(FLAGS_breaker_open_s) * telemetry::kNsPerSec;
  telemetry::query::RouterMetrics router_metrics(registry);
  telemetry::query::Router router({"primary", store.get(), nullptr}, std::move(replicas), clock,
                                  ropts, &router_metrics);
  std::atomic<bool> stop{false};
  // Health per level, from the prober's view of the sources: STRONG and
  // ANALYTICS need the primary; EVENTUAL (and the service as a whole, since
  // it can still answer those reads) needs the primary or a replica.
  // Guarded so that a probe cannot report SERVING again once shutdown set
  // NOT_SERVING (main clears the pointer under the lock first).
  absl::Mutex health_mu;
  grpc::Server* grpc_server ABSL_GUARDED_BY(health_mu) = nullptr;
  std::atomic<bool> primary_ok{true}, any_source_ok{true};
  auto publish_health = [&](bool primary, bool any) {
    const bool changed = primary_ok.exchange(primary) != primary;
    if (any_source_ok.exchange(any) != any || changed) {
      log->warn("sources: primary {}, any source {}", primary ? "up" : "DOWN", any ? "up" : "DOWN");
    }
    absl::MutexLock lock(&health_mu);
    grpc::Server* server = grpc_server;
    if (server == nullptr) return;
    auto* health = server->GetHealthCheckService();
    health->SetServingStatus("", any);
    health->SetServingStatus("telemetry.v1.QueryService", any);
    health->SetServingStatus("telemetry.v1.QueryService/EVENTUAL", any);
    health->SetServingStatus("telemetry.v1.QueryService/STRONG", primary);
    health->SetServingStatus("telemetry.v1.QueryService/ANALYTICS", primary);
  };
  std::thread prober([&] {
    int64_t next_beat = 0;
    bool primary_up = true;
    while (!stop) {
      const int64_t now = clock->MonotonicNs();
      if (now >= next_beat) {
        // The heartbeat doubles as the primary's health probe.
        absl::Status st = absl::GetFlag(FLAGS_heartbeat_ms) > 0
                              ? telemetry::BeatHeartbeat(&pool)
                              : pool.Run([](pqxx::connection& c) {
                                  pqxx::nontransaction(c).exec("SELECT 1");
                                  return absl::OkStatus();
                                });
        if (!st.ok()) log->warn("heartbeat on the primary failed: {}", st.ToString());
        primary_up = st.ok();
        const int64_t every_ms = absl::GetFlag(FLAGS_heartbeat_ms);
        next_beat = now + (every_ms > 0 ? every_ms : 1000) * telemetry::kNsPerMs;
      }
      router.ProbeReplicas();
      publish_health(primary_up, primary_up || router.AnyReplicaReachable());
      std::this_thread::sleep_for(std::chrono::milliseconds(absl::GetFlag(FLAGS_replica_probe_ms)));
    }
  });

  telemetry::query::QueryOptions options;
  options.topic = absl::GetFlag(FLAGS_topic);
  {
    const int workers = absl::GetFlag(FLAGS_worker_threads);
    const int waits = absl::GetFlag(FLAGS_max_token_waits);
    const int per_tenant = absl::GetFlag(FLAGS_max_token_waits_per_tenant);
    options.max_token_waits = waits >= 0 ? waits : std::max(1, workers / 2);
    options.max_token_waits_per_tenant = per_tenant >= 0 ? per_tenant : std::max(1, workers / 4);
  }
  telemetry::query::QueryMetrics metrics(registry);
  telemetry::query::QueryCore core(options, store.get(), &router, cache.get(), clock, &metrics);
  // API keys stay checkable while the primary is down, from a replica.
  std::unique_ptr<telemetry::MetadataStore> replica_metadata, auth_metadata;
  if (!replica_pools.empty()) {
    replica_metadata = telemetry::NewPgMetadataStore(replica_pools.front().get());
    auth_metadata = telemetry::NewFallbackMetadataStore(metadata.get(), replica_metadata.get());
  }
  telemetry::Authenticator auth(auth_metadata ? auth_metadata.get() : metadata.get(), clock);
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
  {
    absl::MutexLock lock(&health_mu);
    grpc_server = server->get();
  }
  publish_health(primary_ok.load(), any_source_ok.load());
  telemetry::AdminHttpServer http(registry, [&any_source_ok](std::string* reason) {
    if (!any_source_ok.load()) *reason = "neither the primary nor a replica answers";
    return any_source_ok.load();
  });
  absl::Status hs = http.Start(absl::GetFlag(FLAGS_http_host), absl::GetFlag(FLAGS_http_port));
  if (!hs.ok()) {
    log->critical("{}", hs.ToString());
    return 1;
  }
  log->info("query listening on gRPC port {} and HTTP port {}", port, http.port());
  int sig = telemetry::WaitForShutdownSignal();
  log->info("signal {}: draining", sig);
  {
    absl::MutexLock lock(&health_mu);
    grpc_server = nullptr;
    (*server)->GetHealthCheckService()->SetServingStatus(false);
  }
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  http.Stop();
  stop = true;
  prober.join();
  return 0;
}
