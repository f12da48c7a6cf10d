// Silences: validation, and whether one mutes an alert event now.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "telemetry/v1/alert.pb.h"

namespace telemetry::alert {

// The longest a silence may last.
inline constexpr int64_t kMaxSilenceNs = 30LL * 86'400 * 1'000'000'000;

// Checks a silence to create (INVALID_ARGUMENT naming the field) and fills
// starts_at_ns (0: `now_ns`). Server-assigned fields are cleared.
absl::StatusOr<telemetry::v1::Silence> NormalizeSilence(telemetry::v1::Silence s, int64_t now_ns);

// Whether `s` is in force at `now_ns` and matches the alert `e` (its rule
// id, device glob and label matchers on the alert's labels).
bool SilenceMatches(const telemetry::v1::Silence& s, const telemetry::v1::AlertEvent& e,
                    int64_t now_ns);

}  // namespace telemetry::alert
