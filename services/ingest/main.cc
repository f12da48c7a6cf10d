// telemetry-ingest: the IngestService gRPC server (readings into Kafka).
#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/grpc/handler.h"
#include "common/kafka/admin.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/service/service.h"
#include "common/thread_pool.h"
#include "services/ingest/ingest_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "gRPC listen address");
ABSL_FLAG(std::string, pg_primary, "postgresql://telemetry@127.0.0.1:5432/telemetry",
          "Postgres primary (metadata: tenants, keys, devices; writer offsets)");
ABSL_FLAG(std::string, kafka_brokers, "127.0.0.1:9092", "Kafka bootstrap servers");
ABSL_FLAG(std::string, topic, "telemetry.readings.v1", "Readings topic");
ABSL_FLAG(std::string, kafka_config, "",
          "Extra librdkafka properties: name=value,... (e.g. security.protocol=SSL)");
ABSL_FLAG(int, worker_threads, 4, "Threads for authentication, validation and registration");
ABSL_FLAG(int, max_queue, 10000, "Queued requests before RESOURCE_EXHAUSTED");
ABSL_FLAG(int, pg_connections, 4, "Postgres connections");
ABSL_FLAG(int64_t, max_ack_wait_ms, 10000, "Longest wait for Kafka's acknowledgement");
ABSL_FLAG(int64_t, max_writer_lag_messages, 20000,
          "Refuse writes while the writer is this many messages behind (0: off)");
ABSL_FLAG(int64_t, max_writer_lag_bytes, 2 << 20,
          "Refuse writes (RESOURCE_EXHAUSTED) while the writer is this many bytes behind on a "
          "partition (estimated from the average message; 0 = off)");

namespace {

// The writer-lag limit follows the topic's size-based retention: a
// retention.bytes must never drop what the writer has not read, so
// back-pressure comes first (at half of it).
void LimitLagToRetention(telemetry::Service& service, telemetry::ingest::IngestCore& core,
                         const telemetry::KafkaOptions& ko, const std::string& topic,
                         int64_t configured) {
  auto configs = telemetry::DescribeTopicConfig(ko, topic, 5000);
  if (!configs.ok()) {
    service.log()->warn("cannot read the configs of {} ({}): writer-lag limit stays {} bytes",
                        topic, configs.status().ToString(), configured);
    return;
  }
  int64_t retention = -1;
  auto it = configs->find("retention.bytes");
  if (it != configs->end() && !absl::SimpleAtoi(it->second, &retention)) retention = -1;
  const int64_t limit = core.LimitLagToRetention(retention);
  if (retention > 0 && limit != configured) {
    service.log()->warn(
        "{} keeps {} bytes a partition: writer-lag back-pressure at {} bytes, not {}", topic,
        retention, limit, configured);
  }
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::Service service(argc, argv,
                             {"telemetry-ingest",
                              "accepts readings over gRPC into Kafka",
                              {telemetry::v1::IngestService::service_full_name()},
                              "Kafka topic not reachable yet",
                              9101});
  auto log = service.log();
  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary), absl::GetFlag(FLAGS_pg_connections),
                         "primary");
  auto metadata = telemetry::NewPgMetadataStore(&pool);
  auto progress = telemetry::NewPgReadingWriter(&pool);
  telemetry::KafkaOptions ko;
  ko.brokers = absl::GetFlag(FLAGS_kafka_brokers);
  ko.client_id = "telemetry-ingest";
  ko.message_timeout_ms = static_cast<int>(absl::GetFlag(FLAGS_max_ack_wait_ms)) + 5000;
  auto kafka_extra = telemetry::ParseKeyValues(absl::GetFlag(FLAGS_kafka_config));
  if (!kafka_extra.ok()) return service.Fail("--kafka_config", kafka_extra.status(), 2);
  ko.extra = *kafka_extra;
  auto publisher = telemetry::NewKafkaPublisher(ko);
  if (!publisher.ok()) return service.Fail("kafka", publisher.status());

  telemetry::ingest::IngestOptions options;
  options.topic = absl::GetFlag(FLAGS_topic);
  options.max_ack_wait_ns = absl::GetFlag(FLAGS_max_ack_wait_ms) * telemetry::kNsPerMs;
  options.max_writer_lag_messages = absl::GetFlag(FLAGS_max_writer_lag_messages);
  options.max_writer_lag_bytes = absl::GetFlag(FLAGS_max_writer_lag_bytes);
  telemetry::ingest::IngestMetrics metrics(service.metrics());
  telemetry::ingest::IngestCore core(options, publisher->get(), metadata.get(), service.clock(),
                                     &metrics);

  // Kafka may come up after us: keep trying to learn the topic's layout.
  // Then, every second, check Kafka still answers: while it does not, this
  // instance reports NOT_SERVING (gRPC health) and not ready (/readyz), so a
  // load balancer sends writes to another one; writes that arrive anyway get
  // UNAVAILABLE at their deadline.
  std::atomic<bool> started{false}, kafka_ok{false};
  service.Every("kafka-health", absl::Seconds(1), [&] {
    if (!started) {
      absl::Status st = core.Start();
      if (!st.ok()) {
        log->warn("waiting for Kafka: {}", st.ToString());
        return;
      }
      started = true;
      log->info("topic {} has {} partitions", options.topic, core.partitions());
      LimitLagToRetention(service, core, ko, options.topic, options.max_writer_lag_bytes);
    }
    const bool ok = (*publisher)->PartitionCount(options.topic).ok();
    if (kafka_ok.exchange(ok) != ok) {
      if (ok) {
        log->info("Kafka answers: serving");
      } else {
        log->warn("Kafka does not answer: reporting NOT_SERVING");
      }
    }
    service.health()->SetAll(ok, "Kafka does not answer");
  });
  // The writer's lag, on a task of its own: librdkafka's watermark query
  // ignores its timeout when the broker goes away during the call (it waits
  // for the reconnection), and that must not freeze the health check above.
  service.Every("writer-lag", absl::Seconds(1), [&] {
    if (!started || !kafka_ok) return;
    auto applied = progress->AppliedOffsets(options.topic);
    if (applied.ok()) core.UpdateWriterLag(*applied).IgnoreError();
  });

  telemetry::Authenticator auth(metadata.get(), service.clock());
  telemetry::ThreadPool workers(absl::GetFlag(FLAGS_worker_threads),
                                static_cast<size_t>(absl::GetFlag(FLAGS_max_queue)));
  telemetry::HandlerKit kit(
      telemetry::ingest::IngestServiceImpl::KitOptions(options.max_ack_wait_ns), &auth, &workers,
      service.clock());
  telemetry::ingest::IngestServiceImpl impl(&core, &kit);
  // The documented request limit (ingest.proto): gRPC refuses a larger
  // request with RESOURCE_EXHAUSTED naming both sizes, before any work.
  absl::Status served =
      service.ServeGrpc(absl::GetFlag(FLAGS_listen), {&impl}, telemetry::ingest::kMaxRequestBytes);
  if (!served.ok()) return service.Fail("gRPC", served);
  service.OnShutdown("flush acknowledged writes to Kafka", [&] {
    absl::Status fl = (*publisher)->Flush(10000);
    if (!fl.ok()) log->warn("flush: {}", fl.ToString());
  });
  return service.Run();
}
