// The two Kafka roles the platform needs, as small interfaces: a publisher
// whose delivery reports complete callbacks, and a group consumer whose
// partition assignment starts from offsets the application supplies (stored
// in Postgres next to the data, for an exactly-once effect). The librdkafka
// client sits behind them in kafka_impl.cc; kafka_fake.h has in-memory fakes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model.h"

namespace telemetry {

struct DeliveryReport {
  absl::Status status;
  int32_t partition = -1;
  int64_t offset = -1;
};

class EventPublisher {
 public:
  using DeliveryCallback = std::function<void(const DeliveryReport&)>;
  virtual ~EventPublisher() = default;
  // Enqueues one message to an explicit partition. `done` runs exactly once,
  // on the publisher's delivery thread, when the broker acknowledged
  // (acks=all) or the message failed. A full local queue fails at once.
  virtual void Publish(const std::string& topic, int32_t partition, const std::string& key,
                       std::string payload, DeliveryCallback done) = 0;
  virtual absl::StatusOr<int32_t> PartitionCount(const std::string& topic) = 0;
  // Low and high watermark of a partition (broker query).
  virtual absl::Status Watermarks(const std::string& topic, int32_t partition, int64_t* low,
                                  int64_t* high, int timeout_ms) = 0;
  // Waits until every queued message is delivered or failed.
  virtual absl::Status Flush(int timeout_ms) = 0;
};

struct ConsumedMessage {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string payload;
};

class EventConsumer {
 public:
  // Called on assignment with the partitions gained; returns, for each, the
  // offset to start from (absent: the group's committed offset, else the
  // earliest). Called on the polling thread.
  using AssignCallback =
      std::function<std::map<int32_t, int64_t>(const std::vector<int32_t>& partitions)>;
  // Called before partitions are taken away (on the polling thread).
  using RevokeCallback = std::function<void(const std::vector<int32_t>& partitions)>;

  virtual ~EventConsumer() = default;
  virtual void SetRebalanceCallbacks(AssignCallback on_assign, RevokeCallback on_revoke) = 0;
  // Returns up to `max_messages`, waiting at most `timeout_ms` for the first
  // and returning as soon as no more are immediately available.
  virtual absl::StatusOr<std::vector<ConsumedMessage>> Poll(size_t max_messages,
                                                            int timeout_ms) = 0;
  // Commits the group's offsets (informational: the store holds the truth).
  virtual absl::Status Commit(const std::vector<PartitionOffset>& offsets) = 0;
  virtual absl::Status Watermarks(int32_t partition, int64_t* low, int64_t* high,
                                  int timeout_ms) = 0;
  // Leaves the group.
  virtual void Close() = 0;
};

struct KafkaOptions {
  std::string brokers;
  std::string client_id = "telemetry";
  // Producer: how long librdkafka keeps retrying a message.
  int message_timeout_ms = 30000;
  int linger_ms = 2;
  // Consumer.
  std::string group_id;
  std::string topic;
  int session_timeout_ms = 6000;
  // Longest time between polls before the member is considered gone; also
  // how long a rebalance waits for members to rejoin.
  int max_poll_interval_ms = 30000;
  // Extra librdkafka properties (name → value).
  std::map<std::string, std::string> extra;
};

// The producer options of a front door (ingest, the MQTT bridge): librdkafka
// keeps retrying a message for the caller's longest wait plus 5 s, and
// `extra_text` is a --kafka_config flag's "name=value,..." (INVALID_ARGUMENT
// naming the bad item).
absl::StatusOr<KafkaOptions> ProducerOptions(const std::string& brokers,
                                             const std::string& client_id, int64_t max_ack_wait_ms,
                                             const std::string& extra_text);

absl::StatusOr<std::unique_ptr<EventPublisher>> NewKafkaPublisher(const KafkaOptions& options);
absl::StatusOr<std::unique_ptr<EventConsumer>> NewKafkaConsumer(const KafkaOptions& options);

}  // namespace telemetry
