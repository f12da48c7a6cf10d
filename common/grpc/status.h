// The single mapping from absl::Status to grpc::Status (and back, for
// clients of our own services).
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace telemetry {

// The one mapping from absl::Status to a gRPC status, used by every handler.
grpc::Status ToGrpcStatus(const absl::Status& status);
// The inverse, for clients of our own services.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace telemetry
