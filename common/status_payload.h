// Advice a gRPC-free core attaches to a status for the handler kit
// (common/grpc/handler.h), which turns it into trailing metadata.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"

namespace telemetry {

// The payload key of the retry advice in milliseconds, sent to the client as
// the `retry-after-ms` trailer.
inline constexpr char kRetryAfterPayload[] = "telemetry/retry-after-ms";

// `status` advising the client to retry after `ms` milliseconds.
inline absl::Status WithRetryAfter(absl::Status status, int64_t ms) {
  status.SetPayload(kRetryAfterPayload, absl::Cord(std::to_string(ms)));
  return status;
}

}  // namespace telemetry
