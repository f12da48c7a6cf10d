#include "services/ingest/core_tasks.h"

#include <atomic>
#include <memory>

#include "absl/strings/numbers.h"
#include "common/kafka/admin.h"

namespace telemetry::ingest {

namespace {

// The writer-lag limit follows the topic's size-based retention: a
// retention.bytes must never drop what the writer has not read, so
// back-pressure comes first (at half of it).
void LimitLagToRetention(Service& service, IngestCore& core, const KafkaOptions& ko,
                         const std::string& topic, int64_t configured) {
  auto configs = DescribeTopicConfig(ko, topic, 5000);
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

void RunCoreTasks(Service& service, IngestCore& core, EventPublisher& publisher,
                  WriterProgress& progress, const KafkaOptions& kafka, const IngestOptions& options,
                  std::function<bool(std::string*)> also_ready) {
  struct State {
    std::atomic<bool> started{false}, kafka_ok{false};
  };
  auto state = std::make_shared<State>();
  auto log = service.log();
  // Kafka may come up after us: keep trying to learn the topic's layout.
  // Then, every second, check Kafka still answers: while it does not, the
  // service reports NOT_SERVING (gRPC health) and not ready (/readyz), so a
  // load balancer sends writes elsewhere; writes that arrive anyway get
  // UNAVAILABLE at their deadline.
  service.Every("kafka-health", absl::Seconds(1),
                [&service, &core, &publisher, kafka, options, state, log, also_ready] {
                  if (!state->started) {
                    absl::Status st = core.Start();
                    if (!st.ok()) {
                      log->warn("waiting for Kafka: {}", st.ToString());
                      return;
                    }
                    state->started = true;
                    log->info("topic {} has {} partitions", options.topic, core.partitions());
                    LimitLagToRetention(service, core, kafka, options.topic,
                                        options.max_writer_lag_bytes);
                  }
                  const bool ok = publisher.PartitionCount(options.topic).ok();
                  if (state->kafka_ok.exchange(ok) != ok) {
                    if (ok) {
                      log->info("Kafka answers: serving");
                    } else {
                      log->warn("Kafka does not answer: reporting NOT_SERVING");
                    }
                  }
                  std::string why = "Kafka does not answer";
                  const bool ready = ok && (!also_ready || also_ready(&why));
                  service.health()->SetAll(ready, why);
                });
  // The writer's lag, on a task of its own: librdkafka's watermark query
  // ignores its timeout when the broker goes away during the call (it waits
  // for the reconnection), and that must not freeze the health check above.
  service.Every("writer-lag", absl::Seconds(1), [&core, &progress, state, topic = options.topic] {
    if (!state->started || !state->kafka_ok) return;
    auto applied = progress.AppliedOffsets(topic);
    if (applied.ok()) core.UpdateWriterLag(*applied).IgnoreError();
  });
}

}  // namespace telemetry::ingest
