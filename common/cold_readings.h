// The read side of the archive (issue 17, docs/archive.md "Cold reads"): which
// hours retention dropped from Postgres, and a device's readings of such an
// hour from the archive's Parquet files. The query service's TieredReader
// (services/query/tiered_reader.h) answers reads over those hours from here.
// Implementation: common/archive/cold_readings.h (the manifest in Postgres,
// the files under an archive root); fake in tests/unit/tiered_reader_test.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"

namespace telemetry {

inline constexpr int64_t kColdHourNs = 3600LL * 1'000'000'000LL;

class ColdReadings {
 public:
  virtual ~ColdReadings() = default;
  // Starts of the dropped hours the tenant has readings in that overlap
  // [from_ns, to_ns), ascending (a dropped hour without any of its readings
  // reads as empty from the database as well).
  virtual absl::StatusOr<std::vector<int64_t>> DroppedHours(int64_t tenant_id, int64_t from_ns,
                                                            int64_t to_ns) = 0;
  // Every reading of the tenant's device in the dropped hour starting at
  // `hour_ns`, in (sensor, unit, ts) order; empty when the tenant had none.
  // DATA_LOSS when the manifest names a file the archive root does not have.
  virtual absl::StatusOr<std::shared_ptr<const std::vector<ReadingRow>>> DeviceHour(
      int64_t tenant_id, int64_t hour_ns, const std::string& device) = 0;
};

}  // namespace telemetry
