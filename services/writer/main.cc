// telemetry-writer: applies the readings topic to Postgres and Redis, and
// packs closed hours of rollups (the compactor).
#include "absl/flags/flag.h"
#include "common/config.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/redis/latest_cache.h"
#include "common/service/service.h"
#include "services/writer/writer.h"

ABSL_FLAG(std::string, pg_primary, "postgresql://telemetry@127.0.0.1:5432/telemetry",
          "Postgres primary");
ABSL_FLAG(std::string, redis, "127.0.0.1:6379", "Redis host:port for latest values ('' = off)");
ABSL_FLAG(std::string, kafka_brokers, "127.0.0.1:9092", "Kafka bootstrap servers");
ABSL_FLAG(std::string, topic, "telemetry.readings.v1", "Readings topic");
ABSL_FLAG(std::string, kafka_config, "",
          "Extra librdkafka properties: name=value,... (e.g. security.protocol=SSL)");
ABSL_FLAG(std::string, dead_letter_topic, "telemetry.readings.dlq.v1", "Dead-letter topic");
ABSL_FLAG(std::string, group, "telemetry-writer", "Consumer group");
// Under backlog a batch holds what arrived while the previous one was being
// applied (group commit), up to this cap. The rollup merge costs per (series,
// minute) in the batch, not per reading, so larger batches apply faster per
// reading: 3 M readings at full speed, 1,000 devices × 8 sensors, went from
// 74,000/s end to end with a 50,000 cap to 106,000 (200,000) and 122,000
// (400,000) (docs/write-path.md "Where the time goes", session 4).
ABSL_FLAG(int, batch_readings, 400000,
          "Apply when this many readings are pending (under backlog; otherwise the delay wins)");
ABSL_FLAG(int, batch_delay_ms, 100, "Apply when the oldest pending reading is this old");
ABSL_FLAG(int, session_timeout_ms, 6000, "Kafka group session timeout");
ABSL_FLAG(int, max_poll_interval_ms, 30000,
          "Kafka max.poll.interval.ms (also bounds how long a rebalance waits)");
ABSL_FLAG(int, compact_interval_s, 60,
          "How often closed hours of the 1-minute rollups are packed into segments "
          "(0 = never; telemetry-admin compact-rollups does it on demand)");
ABSL_FLAG(int, compact_grace_s, 3600, "Compact an hour this long after it ended");
ABSL_FLAG(int, compact_quiet_s, 300, "...and once this writer has not written to it for this long");
ABSL_FLAG(bool, pack_raw, true,
          "Also pack closed hours of raw rows into compressed per-series segments (the warm tier, "
          "docs/design-storage-layout.md), each --compact_grace_s after it ended and once this "
          "writer has not written to it for --compact_quiet_s; needs --compact_interval_s > 0");
ABSL_FLAG(int64_t, pack_raw_step_readings, 10000,
          "Readings per packing transaction (a writer of a late reading for that hour waits for "
          "at most one)");

int main(int argc, char** argv) {
  telemetry::Service service(argc, argv,
                             {"telemetry-writer",
                              "Kafka readings -> Postgres + Redis",
                              {},
                              "no partitions assigned yet",
                              9102});
  auto log = service.log();
  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary), 2, "primary");
  auto metadata = telemetry::NewPgMetadataStore(&pool);
  auto store = telemetry::NewPgReadingWriter(&pool);
  auto cache = telemetry::NewLatestCacheAt(absl::GetFlag(FLAGS_redis));
  if (!cache.ok()) return service.Fail("--redis", cache.status(), 2);
  telemetry::KafkaOptions ko;
  ko.brokers = absl::GetFlag(FLAGS_kafka_brokers);
  ko.client_id = "telemetry-writer";
  ko.group_id = absl::GetFlag(FLAGS_group);
  ko.topic = absl::GetFlag(FLAGS_topic);
  ko.session_timeout_ms = absl::GetFlag(FLAGS_session_timeout_ms);
  ko.max_poll_interval_ms = absl::GetFlag(FLAGS_max_poll_interval_ms);
  auto kafka_extra = telemetry::ParseKeyValues(absl::GetFlag(FLAGS_kafka_config));
  if (!kafka_extra.ok()) return service.Fail("--kafka_config", kafka_extra.status(), 2);
  ko.extra = *kafka_extra;
  auto consumer = telemetry::NewKafkaConsumer(ko);
  if (!consumer.ok()) return service.Fail("kafka consumer", consumer.status());
  auto dlq = telemetry::NewKafkaPublisher(ko);
  if (!dlq.ok()) return service.Fail("kafka publisher", dlq.status());

  telemetry::writer::WriterOptions options;
  options.topic = ko.topic;
  options.dead_letter_topic = absl::GetFlag(FLAGS_dead_letter_topic);
  options.max_batch_readings = static_cast<size_t>(absl::GetFlag(FLAGS_batch_readings));
  options.max_batch_delay_ns = absl::GetFlag(FLAGS_batch_delay_ms) * telemetry::kNsPerMs;
  telemetry::writer::WriterMetrics metrics(service.metrics());
  telemetry::writer::Writer writer(options, consumer->get(), dlq->get(), store.get(),
                                   metadata.get(), cache->get(), service.clock(), &metrics);
  telemetry::writer::CompactorOptions co;
  co.grace_ns = absl::GetFlag(FLAGS_compact_grace_s) * telemetry::kNsPerSec;
  co.quiet_ns = absl::GetFlag(FLAGS_compact_quiet_s) * telemetry::kNsPerSec;
  co.pack_raw = absl::GetFlag(FLAGS_pack_raw);
  co.raw_step_readings = absl::GetFlag(FLAGS_pack_raw_step_readings);
  telemetry::writer::CompactorMetrics compactor_metrics(service.metrics());
  telemetry::writer::Compactor compactor(co, store.get(), service.clock(), &compactor_metrics);
  writer.SetCompactor(&compactor);

  service.Every("readiness", absl::Milliseconds(200),
                [&] { service.health()->SetAll(writer.assigned(), "no partitions assigned yet"); });
  if (const int interval_s = absl::GetFlag(FLAGS_compact_interval_s); interval_s > 0) {
    service.Every(
        "rollup-compaction", absl::Seconds(interval_s),
        [&] {
          auto n = compactor.RunOnce();
          if (!n.ok()) {
            log->warn("rollup compaction: {}", n.status().ToString());
          } else if (*n > 0) {
            log->info("rollup compaction: {} hour(s) packed into segments", *n);
          }
        },
        /*run_at_start=*/false);
  }
  log->info("writer consuming {} as group {}", ko.topic, ko.group_id);
  // On a signal the writer applies what is pending, commits its offsets with
  // the data, and leaves the group before Run returns.
  return service.Run([&](const std::atomic<bool>& stop) { writer.Run(stop); });
}
