// telemetry-query: the QueryService gRPC server (the consistency router).
#include <algorithm>
#include <thread>

#include "absl/flags/flag.h"
#include "common/archive/archive_fs.h"
#include "common/archive/cold_readings.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/grpc/handler.h"
#include "common/pg/pool.h"
#include "common/pg/replication.h"
#include "common/pg/stores.h"
#include "common/redis/latest_cache.h"
#include "common/service/service.h"
#include "common/thread_pool.h"
#include "services/query/query_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50052", "gRPC listen address");
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
ABSL_FLAG(std::string, topic, "telemetry.readings.v1",
          "Readings topic (for consistency tokens and the warehouse's freshness)");
ABSL_FLAG(std::string, pg_warehouse, "",
          "The analytics warehouse that telemetry-export --pg_warehouse loads: ANALYTICS reads go "
          "there (never to the primary), with its freshness as their lag ('' = ANALYTICS reads "
          "the primary)");
ABSL_FLAG(int, warehouse_connections, 4, "Connections to the warehouse");
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
ABSL_FLAG(std::string, archive_root, "",
          "The export service's archive root (a directory or s3://bucket/prefix?endpoint=...): "
          "Range and Playback over hours retention dropped from Postgres are answered from "
          "it (docs/archive.md \"Cold reads\"). '' = none: such hours read as empty");
ABSL_FLAG(int64_t, archive_cache_mb, 256,
          "Memory for archived readings the cold reads keep (a device's hour at a time)");
namespace {

int PoolSize(int flag) {
  if (flag > 0) return flag;
  return std::max(4, 2 * static_cast<int>(std::thread::hardware_concurrency()));
}

// A read replica: its pool, the store on it, and its lag probe.
struct Replica {
  std::unique_ptr<telemetry::PgPool> pool;
  std::unique_ptr<telemetry::ReadingReader> store;
};

int RunQuery(int argc, char** argv) {
  const std::string kService = telemetry::v1::QueryService::service_full_name();
  telemetry::Service service(
      argc, argv,
      {"telemetry-query",
       "the read API",
       {kService, kService + "/EVENTUAL", kService + "/STRONG", kService + "/ANALYTICS"},
       "no source probed yet",
       9103});
  auto log = service.log();
  const std::string plan_cache_mode = absl::GetFlag(FLAGS_pg_plan_cache_mode);
  if (plan_cache_mode != "auto" && plan_cache_mode != "force_generic_plan" &&
      plan_cache_mode != "force_custom_plan") {
    return service.Fail("--pg_plan_cache_mode",
                        absl::InvalidArgumentError("'" + plan_cache_mode +
                                                   "' is not auto, force_generic_plan or "
                                                   "force_custom_plan"),
                        2);
  }
  const telemetry::PgPool::Settings session = {{"plan_cache_mode", plan_cache_mode}};
  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary),
                         PoolSize(absl::GetFlag(FLAGS_pg_connections)), "primary", session);
  auto metadata = telemetry::NewPgMetadataStore(&pool);
  auto store = telemetry::NewPgReadingReader(&pool);
  auto progress = telemetry::NewPgReadingWriter(&pool);  // its WriterProgress side only
  // Read replicas, each with its own bounded pool and lag probe.
  std::vector<Replica> replica_parts;
  std::vector<telemetry::query::Source> replicas;
  for (const auto& [name, url] : telemetry::ParseReplicaList(absl::GetFlag(FLAGS_pg_replicas))) {
    Replica r;
    r.pool = std::make_unique<telemetry::PgPool>(
        url, PoolSize(absl::GetFlag(FLAGS_replica_connections)), name, session);
    r.store = telemetry::NewPgReadingReader(r.pool.get());
    telemetry::PgPool* rp = r.pool.get();
    replicas.push_back({name, r.store.get(), [rp] { return telemetry::HeartbeatAgeSeconds(rp); }});
    replica_parts.push_back(std::move(r));
  }
  auto cache = telemetry::NewLatestCacheAt(absl::GetFlag(FLAGS_redis));
  if (!cache.ok()) return service.Fail("--redis", cache.status(), 2);
  telemetry::query::RouterOptions ropts;
  ropts.default_max_staleness_s = absl::GetFlag(FLAGS_max_staleness_s);
  ropts.breaker_threshold = absl::GetFlag(FLAGS_breaker_failures);
  ropts.breaker_open_ns = absl::GetFlag(FLAGS_breaker_open_s) * telemetry::kNsPerSec;
  telemetry::query::RouterMetrics router_metrics(service.metrics());
  telemetry::query::Router router({"primary", store.get(), nullptr}, std::move(replicas),
                                  service.clock(), ropts, &router_metrics);
  // The warehouse: its reader, and its freshness (recorded by the loader).
  std::unique_ptr<telemetry::PgPool> warehouse_pool;
  std::unique_ptr<telemetry::ReadingReader> warehouse_store;
  std::unique_ptr<telemetry::ReadingWriter> warehouse_progress;
  if (const std::string wh = absl::GetFlag(FLAGS_pg_warehouse); !wh.empty()) {
    if (absl::GetFlag(FLAGS_warehouse_connections) <= 0) {
      return service.Fail("--warehouse_connections", absl::InvalidArgumentError("must be > 0"), 2);
    }
    warehouse_pool = std::make_unique<telemetry::PgPool>(
        wh, absl::GetFlag(FLAGS_warehouse_connections), "warehouse", session);
    warehouse_store = telemetry::NewPgReadingReader(warehouse_pool.get());
    warehouse_progress = telemetry::NewPgReadingWriter(warehouse_pool.get());
    const std::string topic = absl::GetFlag(FLAGS_topic);
    router.SetWarehouse(
        {"warehouse", warehouse_store.get(), [&, topic]() -> absl::StatusOr<double> {
           auto fresh = warehouse_progress->FreshThrough(topic);
           if (!fresh.ok()) return fresh.status();
           if (!fresh->has_value()) {
             return absl::FailedPreconditionError(
                 "it has not been loaded yet (no freshness recorded for " + topic +
                 "; is telemetry-export --pg_warehouse running?)");
           }
           return static_cast<double>(service.clock()->NowNs() - **fresh) / 1e9;
         }});
    log->info("ANALYTICS reads from the warehouse");
  }

  // Health per level, from the prober's view of the sources: STRONG needs
  // the primary, ANALYTICS the warehouse (the primary without one); EVENTUAL
  // (and the service as a whole, since it can still answer those reads)
  // needs the primary or a replica. The heartbeat doubles as the primary's
  // health probe.
  const int64_t heartbeat_ms = absl::GetFlag(FLAGS_heartbeat_ms);
  int64_t next_beat = 0;
  bool primary_up = true, was_primary = true, was_any = true;
  service.Every("source-probe", absl::Milliseconds(absl::GetFlag(FLAGS_replica_probe_ms)), [&] {
    const int64_t now = service.clock()->MonotonicNs();
    if (now >= next_beat) {
      absl::Status st = heartbeat_ms > 0 ? telemetry::BeatHeartbeat(&pool) : pool.Ping();
      if (!st.ok()) log->warn("heartbeat on the primary failed: {}", st.ToString());
      primary_up = st.ok();
      next_beat = now + (heartbeat_ms > 0 ? heartbeat_ms : 1000) * telemetry::kNsPerMs;
    }
    router.ProbeReplicas();
    const bool any = primary_up || router.AnyReplicaReachable();
    if (primary_up != was_primary || any != was_any) {
      log->warn("sources: primary {}, any source {}", primary_up ? "up" : "DOWN",
                any ? "up" : "DOWN");
    }
    was_primary = primary_up;
    was_any = any;
    service.health()->Set({{"", any},
                           {kService, any},
                           {kService + "/EVENTUAL", any},
                           {kService + "/STRONG", primary_up},
                           {kService + "/ANALYTICS",
                            router.has_warehouse() ? router.WarehouseReachable() : primary_up}},
                          any, "neither the primary nor a replica answers");
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
  // Cold reads: the archive root and the manifest on the primary.
  std::unique_ptr<telemetry::archive::ArchiveFs> archive_fs;
  std::unique_ptr<telemetry::ArchiveStore> archive_store;
  std::unique_ptr<telemetry::archive::ColdReadingsMetrics> cold_metrics;
  std::unique_ptr<telemetry::archive::ArchiveColdReadings> cold;
  if (absl::GetFlag(FLAGS_archive_cache_mb) < 0) {
    return service.Fail("--archive_cache_mb", absl::InvalidArgumentError("must be >= 0"), 2);
  }
  if (const std::string root = absl::GetFlag(FLAGS_archive_root); !root.empty()) {
    auto fs = telemetry::archive::ArchiveFs::Open(root);
    if (!fs.ok()) return service.Fail("--archive_root", fs.status(), 2);
    archive_fs = std::move(*fs);
    archive_store = telemetry::NewPgArchiveStore(&pool);
    cold_metrics = std::make_unique<telemetry::archive::ColdReadingsMetrics>(service.metrics());
    telemetry::archive::ColdReadingsOptions copts;
    copts.cache_bytes = absl::GetFlag(FLAGS_archive_cache_mb) << 20;
    cold = std::make_unique<telemetry::archive::ArchiveColdReadings>(
        archive_store.get(), archive_fs.get(), service.clock(), copts, cold_metrics.get());
    log->info("cold reads from the archive at {}", archive_fs->root());
  }
  telemetry::query::QueryMetrics metrics(service.metrics());
  telemetry::query::QueryCore core(options, progress.get(), &router, cache->get(), service.clock(),
                                   &metrics, cold.get());
  // API keys stay checkable while the primary is down, from a replica.
  std::unique_ptr<telemetry::MetadataStore> replica_metadata, auth_metadata;
  if (!replica_parts.empty()) {
    replica_metadata = telemetry::NewPgMetadataStore(replica_parts.front().pool.get());
    auth_metadata = telemetry::NewFallbackMetadataStore(metadata.get(), replica_metadata.get());
  }
  telemetry::Authenticator auth(auth_metadata ? auth_metadata.get() : metadata.get(),
                                service.clock());
  telemetry::ThreadPool workers(absl::GetFlag(FLAGS_worker_threads), 10000);
  telemetry::HandlerKit kit(telemetry::query::QueryServiceImpl::KitOptions(
                                absl::GetFlag(FLAGS_default_deadline_ms) * telemetry::kNsPerMs),
                            &auth, &workers, service.clock());
  telemetry::query::QueryServiceImpl impl(&core, &kit);
  absl::Status served = service.ServeGrpc(absl::GetFlag(FLAGS_listen), {&impl});
  if (!served.ok()) return service.Fail("gRPC", served);
  return service.Run();
}

}  // namespace

int main(int argc, char** argv) {
  const int rc = RunQuery(argc, argv);
  telemetry::archive::ShutdownArchiveFs();  // after every user of S3 is gone
  return rc;
}
