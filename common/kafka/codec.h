// The Kafka payload of the write path: readings grouped into ReadingBatch
// messages, one per partition, column-wise per series block.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"
#include "telemetry/v1/common.pb.h"
#include "telemetry/v1/events.pb.h"

namespace telemetry {

// Stable partition of a (tenant, device): FNV-1a, so every producer agrees
// and a device's readings stay in order on one partition.
int32_t PartitionFor(int64_t tenant_id, const std::string& device, int32_t partitions);

// Kafka message key of a batch.
std::string BatchKey(int64_t tenant_id, int32_t partition);

// The size a Kafka message of readings aims at: a partition's readings of one
// request go out as several messages when they would be larger (a message is
// at most this plus one reading with its series; well under the topic's
// max.message.bytes of 16 MiB, docs/kafka.md).
inline constexpr size_t kTargetMessageBytes = 1 << 20;

// Groups readings by partition, then by (device, sensor, unit, kind, labels),
// into messages of about `target_bytes` at most: (partition, batch) pairs, a
// partition's batches in the order of its readings.
std::vector<std::pair<int32_t, telemetry::v1::ReadingBatch>> EncodeReadings(
    int64_t tenant_id, const std::vector<const telemetry::v1::Reading*>& readings,
    int32_t partitions, int64_t now_ns, size_t target_bytes = kTargetMessageBytes);

struct DecodedReading {
  const telemetry::v1::SeriesBlock* block;  // device, sensor, unit, labels
  RawRow row;                               // series_id left 0
};

// Checks the column lengths line up; INVALID_ARGUMENT (with why) otherwise.
absl::StatusOr<std::vector<DecodedReading>> DecodeBatch(const telemetry::v1::ReadingBatch& batch);

// Labels as a JSON object text ("" when none), keys sorted.
std::string LabelsJson(const google::protobuf::Map<std::string, std::string>& labels);

}  // namespace telemetry
