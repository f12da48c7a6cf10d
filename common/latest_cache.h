// The latest value of every (tenant, device, sensor), kept in Redis
// (common/redis/latest_cache.h). Updates only move a value forward in time, so
// out-of-order data never moves it backwards.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"

namespace telemetry {

class LatestCache {
 public:
  virtual ~LatestCache() = default;
  // Sets each row's (device, sensor) entry unless the cache already holds a
  // reading at the same or a later timestamp.
  virtual absl::Status UpdateIfNewer(int64_t tenant_id, const std::vector<ReadingRow>& rows) = 0;
  // Entries present for the devices (all sensors when `sensors` is empty).
  virtual absl::StatusOr<std::vector<ReadingRow>> Get(int64_t tenant_id,
                                                      const std::vector<std::string>& devices,
                                                      const std::vector<std::string>& sensors) = 0;
};

}  // namespace telemetry
