// Consistency tokens: the Kafka positions of a write, as an opaque string.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace telemetry {

struct ConsistencyPositions {
  std::string topic;
  std::map<int32_t, int64_t> offsets;  // partition → offset of the last message written
};

std::string EncodeConsistencyToken(const ConsistencyPositions& positions);
// INVALID_ARGUMENT (field consistency_token) when the token is malformed.
absl::StatusOr<ConsistencyPositions> DecodeConsistencyToken(const std::string& token);
// True when every position is applied: applied[p] (next offset) > offset.
bool TokenSatisfied(const ConsistencyPositions& positions,
                    const std::map<int32_t, int64_t>& applied_next_offsets);

}  // namespace telemetry
