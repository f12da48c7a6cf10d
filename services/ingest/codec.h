// The Kafka payload of the write path: readings grouped into ReadingBatch
// messages, one per partition, column-wise per series block.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"
#include "telemetry/v1/common.pb.h"
#include "telemetry/v1/events.pb.h"

namespace telemetry::ingest {

// Stable partition of a (tenant, device): FNV-1a, so every producer agrees
// and a device's readings stay in order on one partition.
int32_t PartitionFor(int64_t tenant_id, const std::string& device, int32_t partitions);

// Kafka message key of a batch.
std::string BatchKey(int64_t tenant_id, int32_t partition);

// Groups readings by partition, then by (device, sensor, unit, kind, labels).
std::map<int32_t, telemetry::v1::ReadingBatch> EncodeReadings(
    int64_t tenant_id, const std::vector<const telemetry::v1::Reading*>& readings,
    int32_t partitions, int64_t now_ns);

struct DecodedReading {
  const telemetry::v1::SeriesBlock* block;  // device, sensor, unit, labels
  RawRow row;                               // series_id left 0
};

// Checks the column lengths line up; INVALID_ARGUMENT (with why) otherwise.
absl::StatusOr<std::vector<DecodedReading>> DecodeBatch(const telemetry::v1::ReadingBatch& batch);

// Labels as a JSON object text ("" when none), keys sorted.
std::string LabelsJson(const google::protobuf::Map<std::string, std::string>& labels);

}  // namespace telemetry::ingest
