// Topic administration through the Kafka Admin API (librdkafka): the
// platform's topics are created by its own admin step (telemetry-admin
// create-topics), with their partition counts and retention, never by the
// broker's auto-creation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/kafka/kafka.h"

namespace telemetry {

struct TopicSpec {
  std::string name;
  int32_t partitions = 1;
  // -1: the broker's default.replication.factor (1 on a single broker, the
  // cluster's choice elsewhere).
  int replication_factor = -1;
  // Topic configs (retention.ms, retention.bytes, max.message.bytes, ...).
  std::map<std::string, std::string> config;
};

struct TopicOutcome {
  std::string name;
  bool created = false;
  int32_t partitions = 0;  // what the topic has now
  std::string note;        // e.g. a partition count that differs from the spec
};

// Creates each topic that does not exist. On one that exists, sets the
// spec's configs (AlterConfigs: configs the spec does not name fall back to
// the broker's defaults) and leaves its partition count as it is: changing
// it would move devices to other partitions (the note says so). Uses
// `options.brokers` and `options.extra` (security settings etc.).
absl::StatusOr<std::vector<TopicOutcome>> EnsureTopics(const KafkaOptions& options,
                                                       const std::vector<TopicSpec>& topics,
                                                       int timeout_ms);

// The configs of a topic as the broker reports them (name → value, defaults
// included).
absl::StatusOr<std::map<std::string, std::string>> DescribeTopicConfig(const KafkaOptions& options,
                                                                       const std::string& topic,
                                                                       int timeout_ms);

// Deletes topics (tests); a topic that does not exist is not an error.
absl::Status DeleteTopics(const KafkaOptions& options, const std::vector<std::string>& names,
                          int timeout_ms);

}  // namespace telemetry
