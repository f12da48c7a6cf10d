// telemetry-writer: applies the readings topic to Postgres and Redis.
#include <atomic>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/logging.h"
#include "common/pg_pool.h"
#include "common/runtime.h"
#include "services/ingest/writer.h"

ABSL_FLAG(int, http_port, 9102, "HTTP port for /metrics, /healthz, /readyz (0: any)");
ABSL_FLAG(std::string, http_host, "127.0.0.1", "HTTP listen host");
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
ABSL_FLAG(std::string, log_level, "info", "Log level");

int main(int argc, char** argv) {
  telemetry::BlockShutdownSignals();
  telemetry::InitFlags(argc, argv, "telemetry-writer: Kafka readings → Postgres + Redis");
  telemetry::SetLogLevel(absl::GetFlag(FLAGS_log_level));
  auto log = telemetry::GetLogger("writer");
  auto* clock = telemetry::SystemClock::Get();
  auto* registry = telemetry::MetricsRegistry::Default();

  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary), 2, "primary");
  auto metadata = telemetry::NewPgMetadataStore(&pool);
  auto store = telemetry::NewPgReadingStore(&pool);
  auto cache_or = telemetry::NewLatestCacheAt(absl::GetFlag(FLAGS_redis));
  if (!cache_or.ok()) {
    log->critical("--redis: {}", cache_or.status().ToString());
    return 2;
  }
  std::unique_ptr<telemetry::LatestCache> cache = std::move(*cache_or);
  telemetry::KafkaOptions ko;
  ko.brokers = absl::GetFlag(FLAGS_kafka_brokers);
  ko.client_id = "telemetry-writer";
  ko.group_id = absl::GetFlag(FLAGS_group);
  ko.topic = absl::GetFlag(FLAGS_topic);
  ko.session_timeout_ms = absl::GetFlag(FLAGS_session_timeout_ms);
  ko.max_poll_interval_ms = absl::GetFlag(FLAGS_max_poll_interval_ms);
  auto kafka_extra = telemetry::ParseKeyValues(absl::GetFlag(FLAGS_kafka_config));
  if (!kafka_extra.ok()) {
    log->critical("--kafka_config: {}", std::string(kafka_extra.status().message()));
    return 2;
  }
  ko.extra = *kafka_extra;
  auto consumer = telemetry::NewKafkaConsumer(ko);
  auto dlq = telemetry::NewKafkaPublisher(ko);
  if (!consumer.ok() || !dlq.ok()) {
    log->critical("kafka: {} {}", consumer.status().ToString(), dlq.status().ToString());
    return 1;
  }
  telemetry::ingest::WriterOptions options;
  options.topic = ko.topic;
  options.dead_letter_topic = absl::GetFlag(FLAGS_dead_letter_topic);
  options.max_batch_readings = static_cast<size_t>(absl::GetFlag(FLAGS_batch_readings));
  options.max_batch_delay_ns = absl::GetFlag(FLAGS_batch_delay_ms) * telemetry::kNsPerMs;
  telemetry::ingest::WriterMetrics metrics(registry);
  telemetry::ingest::Writer writer(options, consumer->get(), dlq->get(), store.get(),
                                   metadata.get(), cache.get(), clock, &metrics);
  telemetry::AdminHttpServer http(registry, [&writer](std::string* reason) {
    if (!writer.assigned()) *reason = "no partitions assigned yet";
    return writer.assigned();
  });
  absl::Status hs = http.Start(absl::GetFlag(FLAGS_http_host), absl::GetFlag(FLAGS_http_port));
  if (!hs.ok()) {
    log->critical("{}", hs.ToString());
    return 1;
  }
  std::atomic<bool> stop{false};
  telemetry::ingest::CompactorOptions co;
  co.grace_ns = absl::GetFlag(FLAGS_compact_grace_s) * telemetry::kNsPerSec;
  co.quiet_ns = absl::GetFlag(FLAGS_compact_quiet_s) * telemetry::kNsPerSec;
  telemetry::ingest::CompactorMetrics compactor_metrics(registry);
  telemetry::ingest::Compactor compactor(co, store.get(), clock, &compactor_metrics);
  writer.SetCompactor(&compactor);
  absl::Mutex stop_mu;
  std::thread compaction([&] {
    const int interval_s = absl::GetFlag(FLAGS_compact_interval_s);
    if (interval_s <= 0) return;
    while (true) {
      {
        absl::MutexLock lock(&stop_mu);
        const absl::Condition stopped(
            +[](std::atomic<bool>* flag) { return flag->load(); }, &stop);
        if (stop_mu.AwaitWithTimeout(stopped, absl::Seconds(interval_s))) {
          return;
        }
      }
      auto n = compactor.RunOnce();
      if (!n.ok()) {
        log->warn("rollup compaction: {}", n.status().ToString());
      } else if (*n > 0) {
        log->info("rollup compaction: {} hour(s) packed into segments", *n);
      }
    }
  });
  std::thread signals([&] {
    int sig = telemetry::WaitForShutdownSignal();
    log->info("signal {}: applying what is pending, then leaving the group", sig);
    absl::MutexLock lock(&stop_mu);
    stop = true;
  });
  log->info("writer consuming {} as group {}; HTTP port {}", ko.topic, ko.group_id, http.port());
  writer.Run(stop);
  signals.join();
  compaction.join();
  http.Stop();
  log->info("stopped");
  return 0;
}
