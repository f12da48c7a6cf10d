// telemetry-export: the Parquet archive (docs/archive.md). Exports every packed
// hour of the warm tier per tenant into the archive root on its own, and
// serves ExportService (trigger, list, get) for each tenant's own exports.
// With --enforce_retention, also drops raw day partitions once they are past
// every tenant's retention and archived (telemetry-query --archive_root reads
// them from the archive then). With --pg_warehouse, also loads the analytics
// warehouse from the readings topic in micro-batches (docs/warehouse.md): the
// writer's code with its own consumer group, offsets stored with the data.
// Not built yet: rollup retention (docs/ROADMAP.md, issue 17).
#include <algorithm>
#include <memory>

#include "absl/flags/flag.h"
#include "common/archive/archive_fs.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/grpc/handler.h"
#include "common/kafka/kafka.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/service/service.h"
#include "common/thread_pool.h"
#include "services/export/export_service.h"
#include "services/export/exporter.h"
#include "services/export/retention.h"
#include "services/writer/compactor.h"
#include "services/writer/writer.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50055", "gRPC listen address");
ABSL_FLAG(std::string, pg_primary, "postgresql://telemetry@127.0.0.1:5432/telemetry",
          "Postgres primary");
ABSL_FLAG(std::string, archive_root, "",
          "The archive's root. Required. A local directory (created when missing) or "
          "s3://BUCKET[/PREFIX][?endpoint=http://HOST:PORT&region=R] (credentials from the AWS "
          "default chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY ...; the bucket must exist)");
ABSL_FLAG(double, archive_interval_s, 30,
          "How often packed hours are looked for and exported (each pass exports at most "
          "--archive_hours_per_pass hours)");
ABSL_FLAG(int, archive_hours_per_pass, 4, "Hours exported per pass at most");
ABSL_FLAG(int64_t, archive_from_ns, 0,
          "Only hours starting at or after this time (ns since the epoch) are exported on their "
          "own (older ones only by TriggerExport): to start an archive at a cutoff");
ABSL_FLAG(bool, enforce_retention, false,
          "Drop raw day partitions past every tenant's raw retention once every hour of them is "
          "archived at its current version (docs/archive.md \"Retention\"). Off by default: "
          "turn it on with telemetry-query --archive_root on the same root, which answers reads "
          "of dropped days from the archive; `telemetry-admin retention` shows what it would drop");
ABSL_FLAG(double, retention_interval_s, 3600, "How often retention runs (--enforce_retention)");
ABSL_FLAG(double, retention_purge_grace_s, 5,
          "Seconds between marking a day dropped (reads go to the archive from then on) and "
          "dropping its partitions: longer than the query services' 1 s refresh of the marks");
ABSL_FLAG(int64_t, retention_from_ns, 0,
          "Retention considers only day partitions starting at or after this time (ns)");
ABSL_FLAG(int64_t, max_readings_per_file, 8'000'000,
          "A new Parquet part starts after this many readings (at a series boundary)");
ABSL_FLAG(int64_t, row_group_rows, 1 << 17, "Rows per Parquet row group");
ABSL_FLAG(int64_t, default_deadline_ms, 600000,
          "Deadline of calls that set none (TriggerExport writes a whole tenant-hour)");
ABSL_FLAG(int, worker_threads, 4, "Threads running ExportService calls");
ABSL_FLAG(std::string, pg_warehouse, "",
          "The analytics warehouse, a Postgres-wire database holding the platform's schema "
          "(telemetry-admin --pg_primary=<it> migrate); when set, loaded from --topic in "
          "micro-batches (docs/warehouse.md)");
ABSL_FLAG(std::string, kafka_brokers, "127.0.0.1:9092", "Kafka bootstrap servers (warehouse)");
ABSL_FLAG(std::string, topic, "telemetry.readings.v1", "Readings topic (warehouse)");
ABSL_FLAG(std::string, kafka_config, "",
          "Extra librdkafka properties: name=value,... (e.g. security.protocol=SSL)");
ABSL_FLAG(std::string, warehouse_group, "telemetry-warehouse",
          "The warehouse loader's consumer group");
ABSL_FLAG(int, warehouse_batch_delay_ms, 1000,
          "A micro-batch is applied to the warehouse when its oldest reading is this old");
ABSL_FLAG(int, warehouse_batch_readings, 400000, "...or when this many readings are pending");
ABSL_FLAG(int, warehouse_freshness_ms, 1000,
          "How often the loader notes the topic's log ends and records how fresh the warehouse "
          "is (an ANALYTICS read's lag)");
ABSL_FLAG(int, warehouse_compact_interval_s, 60,
          "How often closed hours in the warehouse are packed into segments, as the writer does "
          "on the primary (0 = never)");

namespace {

int RunExport(int argc, char** argv) {
  const std::string kService = telemetry::v1::ExportService::service_full_name();
  telemetry::Service service(argc, argv,
                             {"telemetry-export",
                              "the Parquet archive of the packed hours",
                              {kService},
                              "the primary not reached yet",
                              9106});
  auto log = service.log();
  telemetry::ExporterOptions options;
  const std::string root = absl::GetFlag(FLAGS_archive_root);
  options.max_readings_per_file = absl::GetFlag(FLAGS_max_readings_per_file);
  options.parquet.row_group_rows = absl::GetFlag(FLAGS_row_group_rows);
  if (root.empty()) {
    return service.Fail("--archive_root", absl::InvalidArgumentError("required"), 2);
  }
  if (options.max_readings_per_file <= 0 || options.parquet.row_group_rows <= 0 ||
      absl::GetFlag(FLAGS_archive_interval_s) <= 0 ||
      absl::GetFlag(FLAGS_archive_hours_per_pass) <= 0 ||
      absl::GetFlag(FLAGS_retention_interval_s) <= 0 ||
      absl::GetFlag(FLAGS_retention_purge_grace_s) < 0) {
    return service.Fail("flags",
                        absl::InvalidArgumentError(
                            "--max_readings_per_file, --row_group_rows, --archive_interval_s, "
                            "--archive_hours_per_pass and --retention_interval_s must be > 0, "
                            "--retention_purge_grace_s >= 0"),
                        2);
  }
  // A root that cannot be opened (a missing bucket, refused credentials, an
  // unwritable directory) is a configuration error: exit at once. Outages
  // after the start fail the hours they hit, which are retried.
  auto archive_fs = telemetry::archive::ArchiveFs::Open(root);
  if (!archive_fs.ok()) return service.Fail("--archive_root", archive_fs.status(), 2);
  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary), 4, "primary");
  auto metadata = telemetry::NewPgMetadataStore(&pool);
  auto store = telemetry::NewPgArchiveStore(&pool);
  telemetry::Exporter exporter(store.get(), archive_fs->get(), options);

  auto* m = service.metrics();
  auto* exported =
      m->AddCounter("export_tenant_hours_total", "Tenant-hours exported (new versions)");
  auto* readings = m->AddCounter("export_readings_total", "Readings written to the archive");
  auto* bytes = m->AddCounter("export_bytes_total", "Bytes of archive files written");
  auto* failures = m->AddCounter(
      "export_failures_total", "Hours whose export failed (retried later) and passes that failed");
  const int per_pass = absl::GetFlag(FLAGS_archive_hours_per_pass);
  const int64_t from_ns = absl::GetFlag(FLAGS_archive_from_ns);
  service.Every("archive", absl::Milliseconds(absl::GetFlag(FLAGS_archive_interval_s) * 1000), [&] {
    auto done = exporter.RunOnce(from_ns, service.clock()->NowNs(), per_pass);
    if (!done.ok()) {
      failures->Inc();
      log->warn("archive pass: {}", done.status().ToString());
      return;
    }
    for (const auto& [hour, why] : done->failed) {
      failures->Inc();
      log->warn("archive: hour {} failed (tried again later): {}", hour, why.ToString());
    }
    for (const auto& e : done->exports) {
      if (e.up_to_date) continue;
      exported->Inc();
      readings->Inc(e.readings);
      bytes->Inc(e.bytes);
      log->info("archived tenant {} hour {} version {}: {} readings, {} bytes, {} files",
                e.tenant_id, e.hour_ns, e.version, e.readings, e.bytes, e.files.size());
    }
  });
  telemetry::Retention retention(store.get(), archive_fs->get(), service.clock());
  if (absl::GetFlag(FLAGS_enforce_retention)) {
    auto* days_dropped = m->AddCounter("export_retention_days_dropped_total",
                                       "Raw day partitions dropped by retention");
    auto* readings_dropped = m->AddCounter("export_retention_readings_dropped_total",
                                           "Readings of the raw day partitions dropped (each is "
                                           "in the archive at its hour's current version)");
    auto* retention_failures = m->AddCounter(
        "export_retention_failures_total",
        "Retention runs that failed and days whose drop failed (tried again at the next run)");
    const int64_t retention_from = absl::GetFlag(FLAGS_retention_from_ns);
    // (The counters and the window by value: they are locals of this block.)
    service.Every(
        "retention", absl::Milliseconds(absl::GetFlag(FLAGS_retention_interval_s) * 1000),
        [&, retention_from, days_dropped, readings_dropped, retention_failures] {
          auto decisions = retention.Run(retention_from, service.clock()->NowNs(), false);
          if (!decisions.ok()) {
            retention_failures->Inc();
            log->warn("retention: {}", decisions.status().ToString());
            return;
          }
          for (const auto& d : *decisions) {
            if (d.dropped) {
              days_dropped->Inc();
              readings_dropped->Inc(d.readings);
              log->info("retention dropped the raw day {} ({} readings of {} tenants): {}",
                        telemetry::RetentionDate(d.day_ns), d.readings, d.tenants.size(),
                        d.reasons.empty() ? "" : d.reasons[0]);
            } else if (!d.error.empty()) {
              retention_failures->Inc();
              log->warn("retention: the raw day {} was not dropped (tried again later): {}",
                        telemetry::RetentionDate(d.day_ns), d.error);
            }
          }
        });
    // The drop's second step, on its own schedule: the partitions of the days
    // marked at least the grace ago.
    const double grace_s = absl::GetFlag(FLAGS_retention_purge_grace_s);
    service.Every("retention-purge", absl::Milliseconds(std::max(1.0, grace_s) * 1000),
                  [&, grace_s, retention_failures] {
                    auto purged = retention.Purge(static_cast<int64_t>(grace_s * 1e9));
                    if (!purged.ok()) {
                      retention_failures->Inc();
                      log->warn("retention: purging dropped days' partitions (again later): {}",
                                purged.status().ToString());
                      return;
                    }
                    for (int64_t day : *purged) {
                      log->info("retention: the partitions of the raw day {} are dropped",
                                telemetry::RetentionDate(day));
                    }
                  });
  }
  service.Every("primary-probe", absl::Seconds(1), [&] {
    absl::Status st = pool.Ping();
    service.health()->SetAll(st.ok(), "the Postgres primary does not answer");
  });

  // The warehouse loader: the writer's code against the warehouse, with the
  // primary's series ids (and dimension rows copied over as they appear).
  std::unique_ptr<telemetry::PgPool> warehouse_pool;
  std::unique_ptr<telemetry::ReadingWriter> warehouse_store;
  std::unique_ptr<telemetry::MetadataStore> warehouse_metadata;
  std::unique_ptr<telemetry::EventConsumer> consumer;
  std::unique_ptr<telemetry::writer::WriterMetrics> loader_metrics;
  std::unique_ptr<telemetry::writer::Writer> loader;
  std::unique_ptr<telemetry::writer::CompactorMetrics> compactor_metrics;
  std::unique_ptr<telemetry::writer::Compactor> compactor;
  if (const std::string wh = absl::GetFlag(FLAGS_pg_warehouse); !wh.empty()) {
    if (absl::GetFlag(FLAGS_warehouse_batch_delay_ms) <= 0 ||
        absl::GetFlag(FLAGS_warehouse_batch_readings) <= 0 ||
        absl::GetFlag(FLAGS_warehouse_freshness_ms) <= 0) {
      return service.Fail(
          "flags",
          absl::InvalidArgumentError("--warehouse_batch_delay_ms, --warehouse_batch_readings and "
                                     "--warehouse_freshness_ms must be > 0"),
          2);
    }
    warehouse_pool = std::make_unique<telemetry::PgPool>(wh, 2, "warehouse");
    // A warehouse without the schema is a configuration error; one that does
    // not answer yet is an outage: the loader waits for it.
    absl::Status schema = warehouse_pool->Run([](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      if (tx.exec("SELECT to_regclass('writer_freshness') IS NULL")[0][0].as<bool>()) {
        return absl::FailedPreconditionError(
            "the warehouse has no schema (or an old one): run telemetry-admin "
            "--pg_primary=<the warehouse> migrate --dir db/migrations");
      }
      return absl::OkStatus();
    });
    if (absl::IsFailedPrecondition(schema)) return service.Fail("--pg_warehouse", schema, 2);
    if (!schema.ok()) log->warn("the warehouse does not answer yet: {}", schema.ToString());
    warehouse_store = telemetry::NewPgReadingWriter(warehouse_pool.get());
    warehouse_metadata =
        telemetry::NewWarehouseMetadataStore(metadata.get(), &pool, warehouse_pool.get());
    telemetry::KafkaOptions ko;
    ko.brokers = absl::GetFlag(FLAGS_kafka_brokers);
    ko.client_id = "telemetry-export-warehouse";
    ko.group_id = absl::GetFlag(FLAGS_warehouse_group);
    ko.topic = absl::GetFlag(FLAGS_topic);
    auto kafka_extra = telemetry::ParseKeyValues(absl::GetFlag(FLAGS_kafka_config));
    if (!kafka_extra.ok()) return service.Fail("--kafka_config", kafka_extra.status(), 2);
    ko.extra = *kafka_extra;
    auto c = telemetry::NewKafkaConsumer(ko);
    if (!c.ok()) return service.Fail("kafka consumer", c.status());
    consumer = std::move(*c);
    telemetry::writer::WriterOptions wo;
    wo.topic = ko.topic;
    wo.dead_letter_topic = "";  // the writer parks unreadable messages; the loader skips them
    wo.max_batch_readings = static_cast<size_t>(absl::GetFlag(FLAGS_warehouse_batch_readings));
    wo.max_batch_delay_ns = absl::GetFlag(FLAGS_warehouse_batch_delay_ms) * telemetry::kNsPerMs;
    wo.freshness_interval_ns = absl::GetFlag(FLAGS_warehouse_freshness_ms) * telemetry::kNsPerMs;
    loader_metrics = std::make_unique<telemetry::writer::WriterMetrics>(m);
    loader = std::make_unique<telemetry::writer::Writer>(
        wo, consumer.get(), /*dead_letters=*/nullptr, warehouse_store.get(),
        warehouse_metadata.get(), /*cache=*/nullptr, service.clock(), loader_metrics.get());
    if (const int every_s = absl::GetFlag(FLAGS_warehouse_compact_interval_s); every_s > 0) {
      compactor_metrics = std::make_unique<telemetry::writer::CompactorMetrics>(m);
      compactor = std::make_unique<telemetry::writer::Compactor>(
          telemetry::writer::CompactorOptions(), warehouse_store.get(), service.clock(),
          compactor_metrics.get());
      loader->SetCompactor(compactor.get());
      service.Every(
          "warehouse-compaction", absl::Seconds(every_s),
          [&] {
            auto n = compactor->RunOnce();
            if (!n.ok()) log->warn("warehouse compaction: {}", n.status().ToString());
          },
          /*run_at_start=*/false);
    }
  }

  telemetry::Authenticator auth(metadata.get(), service.clock());
  telemetry::ThreadPool workers(absl::GetFlag(FLAGS_worker_threads), 1000);
  telemetry::HandlerKit kit(telemetry::exporting::ExportServiceImpl::KitOptions(
                                absl::GetFlag(FLAGS_default_deadline_ms) * telemetry::kNsPerMs),
                            &auth, &workers, service.clock());
  telemetry::exporting::ExportServiceImpl impl(&exporter, store.get(), &kit);
  absl::Status served = service.ServeGrpc(absl::GetFlag(FLAGS_listen), {&impl});
  if (!served.ok()) return service.Fail("gRPC", served);
  log->info("export archiving packed hours into {}", root);
  if (loader == nullptr) return service.Run();
  log->info("export loading the warehouse from {} as group {}", absl::GetFlag(FLAGS_topic),
            absl::GetFlag(FLAGS_warehouse_group));
  // On a signal the loader applies what is pending, stores its offsets with
  // the data and leaves the group before Run returns.
  return service.Run([&](const std::atomic<bool>& stop) { loader->Run(stop); });
}

}  // namespace

int main(int argc, char** argv) {
  const int rc = RunExport(argc, argv);
  telemetry::archive::ShutdownArchiveFs();  // after every user of S3 is gone
  return rc;
}
