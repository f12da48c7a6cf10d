// Per-reading validation of the write path: pure logic, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/model.h"
#include "telemetry/v1/common.pb.h"
#include "telemetry/v1/ingest.pb.h"

namespace telemetry::ingest {

struct ValidationLimits {
  int64_t max_future_ns = 10LL * 60 * 1'000'000'000;  // 10 minutes of clock skew
  size_t max_string_bytes = 1024;
  size_t max_unit_bytes = 32;
  size_t max_labels = 16;
  size_t max_label_key_bytes = 64;
  size_t max_label_value_bytes = 256;
  size_t max_readings_per_request = 50'000;
};

// Device, sensor and label-key names: [A-Za-z0-9_.:/-]{1,max_len}.
bool IsValidName(const std::string& name, size_t max_len = 128);

// Returns why `r` cannot be accepted for `tenant` at `now_ns`, or nullopt.
// Registration of unknown devices is checked later (it needs the store).
std::optional<telemetry::v1::RejectedReading> ValidateReading(const telemetry::v1::Reading& r,
                                                              const TenantInfo& tenant,
                                                              int64_t now_ns,
                                                              const ValidationLimits& limits);

}  // namespace telemetry::ingest
