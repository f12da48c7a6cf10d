// telemetry-admin: schema migrations and tenant / key / device management.
//
//   telemetry-admin migrate [--dir db/migrations]
//   telemetry-admin create-tenant --name acme [--require_registered] [--sensors a,b]
//                                 [--rate 100000] [--burst 200000] [--retention_days 30]
//   telemetry-admin add-key --tenant_id 1
//   telemetry-admin add-client-cert --tenant_id 1 --cert client.pem
//       registers a client certificate: over mutual TLS (--tls_client_ca on
//       the services), a call with this certificate and no API key is the
//       tenant's.
//   telemetry-admin register-device --tenant_id 1 --device d1 [--project p] [--model m]
//                                   [--location l] [--time_zone Europe/Berlin]
//   telemetry-admin compact-rollups [--older_than_s 3600]
//   telemetry-admin pack-raw [--older_than_s 3600] [--step_readings 10000]
//       packs the 1-minute rollups of every hour that ended at least
//       --older_than_s ago into one segment per series now (the writer does it
//       on its own every minute for hours it no longer writes to).
//   telemetry-admin archive --archive_root DIR|s3://... [--tenant_id N --hour_ns H]
//       exports packed hours into the Parquet archive now (docs/archive.md):
//       every due hour, or one tenant's hour; prints one line per tenant and
//       hour (version, readings, bytes, files) and the rate.
//   telemetry-admin retention --archive_root DIR|s3://... [--apply] [--from_ns N]
//                             [--before_ns N]
//       the raw day partitions starting in [from, before) (default: all) and
//       what retention does with each (docs/archive.md "Retention"): DROP or
//       KEEP with the reasons (the archive's files are checked against the
//       manifest). A dry run unless --apply, which drops those it lists as
//       DROP (each decided again under the drop's locks).
//   telemetry-admin set-retention --tenant_id N --retention_days D
//       changes a tenant's raw retention (1-36500 days); applies to what is
//       stored at the next retention run: run `retention` first to see it.
//   telemetry-admin create-topics [--kafka_brokers host:port] [--readings_partitions 16]
//                                 [--readings_retention_hours 168] [--readings_retention_bytes -1]
//                                 [--replication_factor -1] [--print]
//       creates the platform's Kafka topics that do not exist and applies the
//       configured retention to those that do (docs/kafka.md); --print only
//       lists them as name:partitions[,...].
//   telemetry-admin import --file F --api_key K --ingest host:port [--precision ns]
//                          [--device_tag ""] [--batch 5000] [--concurrency 8]
//                          [--checkpoint F.ckpt] [--max_rate 0] [--tls_ca ca.pem]
//       line protocol (also `influx_inspect export` output) into the platform
//       through IngestService.Write, resumable from --checkpoint.
//   telemetry-admin verify --source file:F|influx:http://host:port/DB --tenant_id N
//                          [--precision ns] [--device_tag ""] [--from_s S --to_s S]
//                          [--report out.md] [--json out.json]
//       the parity report: the source against the platform per series and
//       hour; exit 1 when anything differs (docs/ingress.md "Import and
//       verify (migration)").
//
// The Postgres primary comes from --pg_primary / TELEMETRY_PG_PRIMARY, Kafka
// from --kafka_brokers / TELEMETRY_KAFKA_BROKERS.
#include <algorithm>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/grpc/tls.h"
#include "common/kafka/admin.h"
#include "common/pg/migrate.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "services/export/exporter.h"
#include "services/export/retention.h"
#include "services/writer/compactor.h"
#include "tools/admin/import.h"
#include "tools/admin/verify.h"

ABSL_FLAG(std::string, pg_primary, "postgresql://telemetry@127.0.0.1:5432/telemetry",
          "Postgres primary");
ABSL_FLAG(std::string, dir, "db/migrations", "Directory of NNNN_name.sql migrations");
ABSL_FLAG(std::string, name, "", "Tenant name");
ABSL_FLAG(std::string, cert, "", "add-client-cert: the client's PEM certificate");
ABSL_FLAG(bool, require_registered, false, "Reject readings from unregistered devices");
ABSL_FLAG(std::string, sensors, "", "Comma-separated sensor whitelist (empty: any)");
ABSL_FLAG(double, rate, 1000000, "Readings per second quota");
ABSL_FLAG(double, burst, 2000000, "Quota burst");
ABSL_FLAG(int, retention_days, 30, "Raw retention in days");
ABSL_FLAG(int64_t, tenant_id, 0, "Tenant id");
ABSL_FLAG(std::string, device, "", "Device name");
ABSL_FLAG(std::string, project, "", "Project name (empty: default)");
ABSL_FLAG(std::string, model, "", "Device model");
ABSL_FLAG(std::string, location, "", "Device location");
ABSL_FLAG(std::string, time_zone, "UTC", "Device time zone");
ABSL_FLAG(int64_t, older_than_s, 3600,
          "compact-rollups, pack-raw: hours that ended at least this long ago");
ABSL_FLAG(int64_t, step_readings, 10000, "pack-raw: readings per packing transaction");
ABSL_FLAG(std::string, archive_root, "",
          "archive: the archive's root, a local directory or s3://BUCKET[/PREFIX]?endpoint=... "
          "(docs/archive.md)");
ABSL_FLAG(int64_t, hour_ns, 0, "archive: with --tenant_id, only this hour (its start, ns)");
ABSL_FLAG(bool, apply, false, "retention: drop what the dry run lists as DROP");
ABSL_FLAG(double, purge_grace_s, 5,
          "retention --apply: seconds between marking a day dropped (reads go to the archive) "
          "and dropping its partitions; longer than the query services' 1 s refresh of the marks");
ABSL_FLAG(int64_t, from_ns, 0, "retention: first day partition considered (its start, ns)");
ABSL_FLAG(int64_t, before_ns, 0,
          "retention: days starting before this (ns; 0 = now) are considered");
ABSL_FLAG(std::string, kafka_brokers, "127.0.0.1:9092", "create-topics: Kafka bootstrap servers");
ABSL_FLAG(std::string, kafka_config, "",
          "create-topics: extra librdkafka properties, name=value[,name=value...]");
ABSL_FLAG(int, readings_partitions, 16,
          "create-topics: partitions of telemetry.readings.v1 (the most consumers of one group"
          " that share the readings; fixed once created)");
ABSL_FLAG(int64_t, readings_retention_hours, 168,
          "create-topics: how long Kafka keeps readings (a writer, alert or export consumer down"
          " for longer loses what was dropped, counted as a log gap)");
ABSL_FLAG(int64_t, readings_retention_bytes, -1,
          "create-topics: bytes kept per readings partition (-1: no size limit)");
ABSL_FLAG(int, replication_factor, -1,
          "create-topics: replicas per partition (-1: the broker's default.replication.factor)");
ABSL_FLAG(bool, print, false, "create-topics: print the topics as name:partitions,... and exit");
ABSL_FLAG(std::string, file, "", "import: the line-protocol file");
ABSL_FLAG(std::string, api_key, "", "import: the tenant's API key");
ABSL_FLAG(std::string, ingest, "127.0.0.1:50051", "import: IngestService host:port");
ABSL_FLAG(std::string, precision, "ns",
          "import, verify: the timestamps' unit: ns, us, ms, s, m, h (as InfluxDB's precision)");
ABSL_FLAG(std::string, device_tag, "",
          "import, verify: the tag whose value names the device (as ingest's"
          " --influx_device_tag; empty: measurement and sorted tags)");
ABSL_FLAG(int, batch, 5000, "import: readings per Write");
ABSL_FLAG(int, concurrency, 8,
          "import: Write calls in flight (8 reached 97 % of the gRPC write rate here, 4 75 %)");
ABSL_FLAG(std::string, checkpoint, "",
          "import: progress file to resume from (written atomically every second)");
ABSL_FLAG(double, max_rate, 0, "import: at most this many readings per second (0: no limit)");
ABSL_FLAG(int64_t, deadline_ms, 60000, "import: deadline of one Write call");
ABSL_FLAG(std::string, tls_ca, "", "import: PEM CA of the ingest service's certificate (TLS)");
ABSL_FLAG(std::string, tls_cert, "", "import: PEM client certificate (mutual TLS)");
ABSL_FLAG(std::string, tls_key, "", "import: PEM private key of --tls_cert");
ABSL_FLAG(std::string, source, "",
          "verify: file:PATH (line protocol) or influx:http://[user:pass@]host:port/DB[/RP]");
ABSL_FLAG(int64_t, from_s, 0,
          "verify: window start, Unix seconds (0 with --to_s 0: the source's hours)");
ABSL_FLAG(int64_t, to_s, 0, "verify: window end (excluded), Unix seconds");
ABSL_FLAG(std::string, report, "", "verify: write the Markdown report here (default: stdout)");
ABSL_FLAG(std::string, json, "", "verify: also write the report as JSON here");
ABSL_FLAG(int, max_listed, 50, "verify: mismatches and one-sided series listed in the report");

namespace {

int Migrate(telemetry::PgPool& pool) {
  size_t total = 0;
  auto applied = telemetry::ApplyMigrations(&pool, absl::GetFlag(FLAGS_dir), &total);
  if (!applied.ok()) {
    std::fprintf(stderr, "migrate: %s\n", applied.status().ToString().c_str());
    return 1;
  }
  for (const std::string& version : *applied) std::printf("applied %s\n", version.c_str());
  std::printf("schema up to date (%zu applied now, %zu in all)\n", applied->size(), total);
  return 0;
}

int CreateTenant(telemetry::MetadataStore& store) {
  telemetry::NewTenant t;
  t.name = absl::GetFlag(FLAGS_name);
  if (t.name.empty()) {
    std::fprintf(stderr, "create-tenant needs --name\n");
    return 2;
  }
  t.require_registered_devices = absl::GetFlag(FLAGS_require_registered);
  if (!absl::GetFlag(FLAGS_sensors).empty()) {
    t.sensor_whitelist = absl::StrSplit(absl::GetFlag(FLAGS_sensors), ',', absl::SkipEmpty());
  }
  t.rate_per_sec = absl::GetFlag(FLAGS_rate);
  t.burst = absl::GetFlag(FLAGS_burst);
  t.raw_retention_days = absl::GetFlag(FLAGS_retention_days);
  auto id = store.CreateTenant(t);
  if (!id.ok()) {
    std::fprintf(stderr, "create-tenant: %s\n", id.status().ToString().c_str());
    return 1;
  }
  std::string key = telemetry::GenerateApiKey();
  absl::Status st = store.AddApiKey(*id, telemetry::Sha256Hex(key));
  if (!st.ok()) {
    std::fprintf(stderr, "add key: %s\n", st.ToString().c_str());
    return 1;
  }
  // Machine-readable: the last two lines are `tenant_id=` and `api_key=`.
  std::printf("tenant_id=%lld\napi_key=%s\n", static_cast<long long>(*id), key.c_str());
  return 0;
}

int AddClientCert(telemetry::MetadataStore& store) {
  auto pem = telemetry::ReadPemFile(absl::GetFlag(FLAGS_cert));
  if (!pem.ok()) {
    std::fprintf(stderr, "add-client-cert: --cert: %s\n", pem.status().ToString().c_str());
    return 2;
  }
  auto fingerprint = telemetry::CertificateFingerprint(*pem);
  if (!fingerprint.ok()) {
    std::fprintf(stderr, "add-client-cert: --cert: %s\n",
                 std::string(fingerprint.status().message()).c_str());
    return 2;
  }
  absl::Status st = store.AddApiKey(absl::GetFlag(FLAGS_tenant_id),
                                    telemetry::Sha256Hex(telemetry::CertificateKey(*fingerprint)));
  if (!st.ok()) {
    std::fprintf(stderr, "add-client-cert: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("certificate_sha256=%s\n", fingerprint->c_str());
  return 0;
}

int AddKey(telemetry::MetadataStore& store) {
  std::string key = telemetry::GenerateApiKey();
  absl::Status st = store.AddApiKey(absl::GetFlag(FLAGS_tenant_id), telemetry::Sha256Hex(key));
  if (!st.ok()) {
    std::fprintf(stderr, "add-key: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("api_key=%s\n", key.c_str());
  return 0;
}

int RegisterDevice(telemetry::MetadataStore& store) {
  telemetry::DeviceInfo d;
  d.name = absl::GetFlag(FLAGS_device);
  d.project = absl::GetFlag(FLAGS_project);
  d.model = absl::GetFlag(FLAGS_model);
  d.location = absl::GetFlag(FLAGS_location);
  d.time_zone = absl::GetFlag(FLAGS_time_zone);
  auto id = store.UpsertDevice(absl::GetFlag(FLAGS_tenant_id), d);
  if (!id.ok()) {
    std::fprintf(stderr, "register-device: %s\n", id.status().ToString().c_str());
    return 1;
  }
  std::printf("device_id=%lld\n", static_cast<long long>(*id));
  return 0;
}

}  // namespace

int CompactRollups(telemetry::PgPool& pool) {
  auto store = telemetry::NewPgReadingWriter(&pool);
  telemetry::MetricsRegistry registry;
  telemetry::writer::CompactorMetrics metrics(&registry);
  telemetry::writer::CompactorOptions options;
  options.grace_ns = absl::GetFlag(FLAGS_older_than_s) * telemetry::kNsPerSec;
  // Rollups only: raw hours are `pack-raw`'s (the compactor packs them too by default).
  options.pack_raw = false;
  const telemetry::Clock* clock = telemetry::SystemClock::Get();
  telemetry::writer::Compactor compactor(options, store.get(), clock, &metrics);
  const int64_t start = clock->MonotonicNs();
  while (true) {
    auto n = compactor.RunOnce();
    if (!n.ok()) {
      std::fprintf(stderr, "compact-rollups: %s\n", n.status().ToString().c_str());
      return 1;
    }
    if (*n == 0) break;
  }
  // The old row versions must go before reads profit (see Compactor); wait
  // for snapshots that still hold them (the standby's, up to ~10 s).
  if (metrics.hours->Value() > 0) {
    absl::Status vac = compactor.VacuumNow(60 * telemetry::kNsPerSec, 2 * telemetry::kNsPerSec);
    if (!vac.ok()) {
      std::fprintf(stderr, "compact-rollups: vacuum: %s\n", vac.ToString().c_str());
      return 1;
    }
  }
  std::printf("hours=%lld rows=%lld seconds=%.3f\n", static_cast<long long>(metrics.hours->Value()),
              static_cast<long long>(metrics.rows->Value()),
              static_cast<double>(clock->MonotonicNs() - start) / 1e9);
  return 0;
}

// Packs every closed raw hour into segments now (what the writer's compactor
// does with --pack_raw), and reports the readings moved and the rate.
int PackRaw(telemetry::PgPool& pool) {
  auto store = telemetry::NewPgReadingWriter(&pool);
  telemetry::MetricsRegistry registry;
  telemetry::writer::CompactorMetrics metrics(&registry);
  telemetry::writer::CompactorOptions options;
  options.grace_ns = absl::GetFlag(FLAGS_older_than_s) * telemetry::kNsPerSec;
  options.pack_raw = true;
  options.raw_step_readings = absl::GetFlag(FLAGS_step_readings);
  const telemetry::Clock* clock = telemetry::SystemClock::Get();
  telemetry::writer::Compactor compactor(options, store.get(), clock, &metrics);
  const int64_t start = clock->MonotonicNs();
  while (true) {
    auto n = compactor.PackRawOnce();
    if (!n.ok()) {
      std::fprintf(stderr, "pack-raw: %s\n", n.status().ToString().c_str());
      return 1;
    }
    if (*n == 0) break;
  }
  const double seconds = static_cast<double>(clock->MonotonicNs() - start) / 1e9;
  std::printf(
      "hours=%lld readings=%lld segments=%lld bytes_freed=%lld seconds=%.3f readings_per_s=%.0f\n",
      static_cast<long long>(metrics.raw_hours->Value()),
      static_cast<long long>(metrics.raw_readings->Value()),
      static_cast<long long>(metrics.raw_segments->Value()),
      static_cast<long long>(metrics.raw_bytes_freed->Value()), seconds,
      static_cast<double>(metrics.raw_readings->Value()) / std::max(seconds, 1e-9));
  return 0;
}

// The platform's topics. Messages: ingest produces at most 16 MiB
// (kafka_impl.cc); a dead letter wraps one with its origin, so its topic
// takes more.
std::vector<telemetry::TopicSpec> PlatformTopics() {
  constexpr int64_t kHourMs = 3'600'000;
  const int rf = absl::GetFlag(FLAGS_replication_factor);
  auto spec = [rf](std::string name, int partitions, int64_t retention_ms, int64_t retention_bytes,
                   int64_t max_message_bytes) {
    telemetry::TopicSpec t;
    t.name = std::move(name);
    t.partitions = partitions;
    t.replication_factor = rf;
    t.config = {{"retention.ms", std::to_string(retention_ms)},
                {"retention.bytes", std::to_string(retention_bytes)},
                {"max.message.bytes", std::to_string(max_message_bytes)},
                {"cleanup.policy", "delete"}};
    return t;
  };
  return {
      spec("telemetry.readings.v1", absl::GetFlag(FLAGS_readings_partitions),
           absl::GetFlag(FLAGS_readings_retention_hours) * kHourMs,
           absl::GetFlag(FLAGS_readings_retention_bytes), 16 << 20),
      spec("telemetry.readings.dlq.v1", 4, 30 * 24 * kHourMs, -1, 20 << 20),
      spec("telemetry.alerts.v1", 8, 7 * 24 * kHourMs, -1, 1 << 20),
      spec("telemetry.exports.v1", 1, 7 * 24 * kHourMs, -1, 1 << 20),
  };
}

int CreateTopics() {
  auto topics = PlatformTopics();
  if (absl::GetFlag(FLAGS_print)) {
    std::string line;
    for (const auto& t : topics) {
      line += (line.empty() ? "" : ",") + t.name + ":" + std::to_string(t.partitions);
    }
    std::printf("%s\n", line.c_str());
    return 0;
  }
  if (absl::GetFlag(FLAGS_readings_partitions) < 1 ||
      absl::GetFlag(FLAGS_readings_retention_hours) < 1) {
    std::fprintf(stderr,
                 "create-topics: --readings_partitions and --readings_retention_hours"
                 " must be at least 1\n");
    return 2;
  }
  telemetry::KafkaOptions options;
  options.brokers = absl::GetFlag(FLAGS_kafka_brokers);
  options.client_id = "telemetry-admin";
  auto extra = telemetry::ParseKeyValues(absl::GetFlag(FLAGS_kafka_config));
  if (!extra.ok()) {
    std::fprintf(stderr, "--kafka_config: %s\n", std::string(extra.status().message()).c_str());
    return 2;
  }
  options.extra = *extra;
  auto out = telemetry::EnsureTopics(options, topics, 30000);
  if (!out.ok()) {
    std::fprintf(stderr, "create-topics: %s\n", out.status().ToString().c_str());
    return 1;
  }
  for (const auto& o : *out) {
    std::printf("%s: %s, %d partitions%s%s\n", o.name.c_str(),
                o.created ? "created" : "exists, configs applied", o.partitions,
                o.note.empty() ? "" : "; ", o.note.c_str());
  }
  return 0;
}

// The line-protocol mapping of import and verify, from the flags; exits 2
// on a bad --precision.
telemetry::lineproto::MappingOptions MappingFromFlags() {
  telemetry::lineproto::MappingOptions mapping;
  auto precision = telemetry::lineproto::PrecisionMultiplier(absl::GetFlag(FLAGS_precision));
  if (!precision.ok()) {
    std::fprintf(stderr, "--precision: %s\n", std::string(precision.status().message()).c_str());
    std::exit(2);
  }
  mapping.precision_ns = *precision;
  mapping.device_tag = absl::GetFlag(FLAGS_device_tag);
  mapping.now_ns = telemetry::SystemClock::Get()->NowNs();
  return mapping;
}

int Import() {
  telemetry::admin::ImportOptions options;
  options.file = absl::GetFlag(FLAGS_file);
  options.checkpoint = absl::GetFlag(FLAGS_checkpoint);
  options.mapping = MappingFromFlags();
  options.batch = absl::GetFlag(FLAGS_batch);
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.max_rate = absl::GetFlag(FLAGS_max_rate);
  telemetry::admin::GrpcSenderOptions sender;
  sender.target = absl::GetFlag(FLAGS_ingest);
  sender.api_key = absl::GetFlag(FLAGS_api_key);
  sender.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  sender.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  sender.tls_key = absl::GetFlag(FLAGS_tls_key);
  sender.channels = std::min(4, std::max(1, options.concurrency));
  sender.deadline_ms = absl::GetFlag(FLAGS_deadline_ms);
  return telemetry::admin::ImportCommand(options, sender);
}

int Verify(telemetry::PgPool& pool) {
  telemetry::admin::VerifyConfig config;
  config.source = absl::GetFlag(FLAGS_source);
  config.mapping = MappingFromFlags();
  config.tenant_id = absl::GetFlag(FLAGS_tenant_id);
  config.window.from_ns = absl::GetFlag(FLAGS_from_s) * telemetry::kNsPerSec;
  config.window.to_ns = absl::GetFlag(FLAGS_to_s) * telemetry::kNsPerSec;
  if (!config.window.all() && config.window.to_ns <= config.window.from_ns) {
    std::fprintf(stderr, "verify: --to_s must be after --from_s\n");
    return 2;
  }
  config.report_path = absl::GetFlag(FLAGS_report);
  config.json_path = absl::GetFlag(FLAGS_json);
  config.parity.max_listed = static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_max_listed)));
  auto reader = telemetry::NewPgReadingReader(&pool);
  return telemetry::admin::VerifyCommand(config, reader.get());
}

// The --archive_root of command `cmd`, opened; nullptr (the reason printed)
// when it is missing or cannot be opened.
std::unique_ptr<telemetry::archive::ArchiveFs> OpenArchiveRoot(const char* cmd) {
  const std::string root = absl::GetFlag(FLAGS_archive_root);
  if (root.empty()) {
    std::fprintf(stderr, "%s: --archive_root is required\n", cmd);
    return nullptr;
  }
  auto archive_fs = telemetry::archive::ArchiveFs::Open(root);
  if (!archive_fs.ok()) {
    std::fprintf(stderr, "%s: --archive_root: %s\n", cmd, archive_fs.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*archive_fs);
}

// Exports due packed hours (or one tenant's hour) into the Parquet archive.
int Archive(telemetry::PgPool& pool) {
  telemetry::ExporterOptions options;
  auto archive_fs = OpenArchiveRoot("archive");
  if (archive_fs == nullptr) return 2;
  auto store = telemetry::NewPgArchiveStore(&pool);
  telemetry::Exporter exporter(store.get(), archive_fs.get(), options);
  const telemetry::Clock* clock = telemetry::SystemClock::Get();
  const int64_t start = clock->MonotonicNs();
  std::vector<telemetry::TenantHourExport> done;
  int failed = 0;
  if (absl::GetFlag(FLAGS_tenant_id) != 0 || absl::GetFlag(FLAGS_hour_ns) != 0) {
    auto one =
        exporter.ExportTenantHour(absl::GetFlag(FLAGS_tenant_id), absl::GetFlag(FLAGS_hour_ns));
    if (!one.ok()) {
      std::fprintf(stderr, "archive: %s\n", one.status().ToString().c_str());
      return 1;
    }
    done.push_back(std::move(*one));
  } else {
    while (true) {
      auto batch = exporter.RunOnce(0, clock->NowNs(), 16);
      if (!batch.ok()) {
        std::fprintf(stderr, "archive: %s\n", batch.status().ToString().c_str());
        return 1;
      }
      for (const auto& [hour, why] : batch->failed) {
        std::fprintf(stderr, "archive: hour %lld failed: %s\n", static_cast<long long>(hour),
                     why.ToString().c_str());
        ++failed;
      }
      // (Not "nothing exported": a packed hour without readings exports no file.)
      if (batch->hours == 0) break;
      for (auto& e : batch->exports) done.push_back(std::move(e));
    }
  }
  int64_t readings = 0, bytes = 0;
  for (const auto& e : done) {
    std::printf("tenant %lld hour %lld version %d%s: %lld readings, %lld bytes, %zu files\n",
                static_cast<long long>(e.tenant_id), static_cast<long long>(e.hour_ns), e.version,
                e.up_to_date ? " (up to date)" : "", static_cast<long long>(e.readings),
                static_cast<long long>(e.bytes), e.files.size());
    if (!e.up_to_date) {
      readings += e.readings;
      bytes += e.bytes;
    }
  }
  const double seconds = static_cast<double>(clock->MonotonicNs() - start) / 1e9;
  std::printf(
      "archived %lld readings (%lld bytes, %.2f bytes/reading) in %.2f s: %.0f readings/s\n",
      static_cast<long long>(readings), static_cast<long long>(bytes),
      readings > 0 ? static_cast<double>(bytes) / static_cast<double>(readings) : 0.0, seconds,
      seconds > 0 ? static_cast<double>(readings) / seconds : 0.0);
  return 0;
}

// Retention of the raw day partitions: the dry run, or --apply.
int RetentionCommand(telemetry::PgPool& pool) {
  // The archive the exports were written to: its files are checked before
  // a day counts as archived.
  auto archive_fs = OpenArchiveRoot("retention");
  if (archive_fs == nullptr) return 2;
  auto store = telemetry::NewPgArchiveStore(&pool);
  const telemetry::Clock* clock = telemetry::SystemClock::Get();
  telemetry::Retention retention(store.get(), archive_fs.get(), clock);
  const int64_t before =
      absl::GetFlag(FLAGS_before_ns) > 0 ? absl::GetFlag(FLAGS_before_ns) : clock->NowNs();
  const bool apply = absl::GetFlag(FLAGS_apply);
  auto decisions = retention.Run(absl::GetFlag(FLAGS_from_ns), before, /*dry_run=*/!apply);
  if (!decisions.ok()) {
    std::fprintf(stderr, "retention: %s\n", decisions.status().ToString().c_str());
    return 1;
  }
  int drop = 0, dropped = 0, failed = 0;
  for (const auto& d : *decisions) {
    const char* action = d.dropped ? "DROPPED" : d.drop ? (apply ? "FAILED" : "DROP") : "KEEP";
    std::printf("%s  %-7s  %zu tenants, %lld segments, %lld readings\n",
                telemetry::RetentionDate(d.day_ns).c_str(), action, d.tenants.size(),
                static_cast<long long>(d.segments), static_cast<long long>(d.readings));
    for (const auto& r : d.reasons) std::printf("    %s\n", r.c_str());
    if (!d.error.empty())
      std::printf("    error: %s (tried again at the next run)\n", d.error.c_str());
    drop += d.drop ? 1 : 0;
    dropped += d.dropped ? 1 : 0;
    failed += d.drop && apply && !d.dropped ? 1 : 0;
  }
  std::printf("%zu days: %d %s, %zu kept%s\n", decisions->size(), apply ? dropped : drop,
              apply ? "dropped" : "to drop (dry run: nothing dropped; --apply drops them)",
              decisions->size() - static_cast<size_t>(drop),
              failed ? absl::StrCat(", ", failed, " failed").c_str() : "");
  if (!apply) return failed ? 1 : 0;
  // The second step: the partitions of the days marked (now or by an earlier
  // run), once every reader has seen the marks.
  const double grace_s = absl::GetFlag(FLAGS_purge_grace_s);
  if (grace_s < 0) {
    std::fprintf(stderr, "retention: --purge_grace_s must be >= 0\n");
    return 2;
  }
  if (dropped > 0) absl::SleepFor(absl::Seconds(grace_s));
  auto purged = retention.Purge(static_cast<int64_t>(grace_s * 1e9));
  if (!purged.ok()) {
    std::fprintf(stderr,
                 "retention: purging dropped days' partitions: %s (again at the next run)\n",
                 purged.status().ToString().c_str());
    return 1;
  }
  for (int64_t day : *purged) {
    std::printf("%s  partitions dropped\n", telemetry::RetentionDate(day).c_str());
  }
  return failed ? 1 : 0;
}

int SetRetention(telemetry::PgPool& pool) {
  const int64_t tenant = absl::GetFlag(FLAGS_tenant_id);
  const int days = absl::GetFlag(FLAGS_retention_days);
  if (tenant <= 0 || days < 1 || days > 36500) {
    std::fprintf(stderr, "set-retention: --tenant_id (> 0) and --retention_days (1-36500)\n");
    return 2;
  }
  int updated = 0;
  absl::Status st = pool.Run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    updated = static_cast<int>(
        tx.exec_params("UPDATE tenants SET raw_retention_days = $2 WHERE id = $1", tenant, days)
            .affected_rows());
    tx.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) {
    std::fprintf(stderr, "set-retention: %s\n", st.ToString().c_str());
    return 1;
  }
  if (updated == 0) {
    std::fprintf(stderr, "set-retention: no tenant %lld\n", static_cast<long long>(tenant));
    return 1;
  }
  std::printf(
      "tenant %lld: raw retention %d days (applies at the next retention run; "
      "`telemetry-admin retention` shows what it will drop)\n",
      static_cast<long long>(tenant), days);
  return 0;
}

int main(int argc, char** argv) {
  std::vector<char*> args =
      telemetry::InitFlags(argc, argv,
                           "telemetry-admin "
                           "migrate|create-tenant|add-key|add-client-cert|register-device|compact-"
                           "rollups|pack-raw|archive|retention|set-retention|create-topics|import|"
                           "verify [flags]");
  if (args.size() < 2) {
    std::fprintf(
        stderr,
        "usage: telemetry-admin "
        "migrate|create-tenant|add-key|add-client-cert|register-device|compact-rollups|pack-raw|"
        "archive|retention|set-retention|create-topics|import|verify\n");
    return 2;
  }
  if (std::string(args[1]) == "create-topics") return CreateTopics();
  if (std::string(args[1]) == "import") return Import();
  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary), 1, "primary");
  auto store = telemetry::NewPgMetadataStore(&pool);
  std::string cmd = args[1];
  if (cmd == "migrate") return Migrate(pool);
  if (cmd == "create-tenant") return CreateTenant(*store);
  if (cmd == "add-key") return AddKey(*store);
  if (cmd == "add-client-cert") return AddClientCert(*store);
  if (cmd == "register-device") return RegisterDevice(*store);
  if (cmd == "compact-rollups") return CompactRollups(pool);
  if (cmd == "pack-raw") return PackRaw(pool);
  if (cmd == "archive") {
    const int rc = Archive(pool);
    telemetry::archive::ShutdownArchiveFs();  // Archive's users of S3 are gone
    return rc;
  }
  if (cmd == "retention") {
    const int rc = RetentionCommand(pool);
    telemetry::archive::ShutdownArchiveFs();
    return rc;
  }
  if (cmd == "set-retention") return SetRetention(pool);
  if (cmd == "verify") return Verify(pool);
  std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 2;
}
