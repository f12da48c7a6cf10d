// Starting a gRPC server the one way every service (and every handler test)
// does: the given services plus grpc.health.v1 and server reflection (for
// generic clients such as grpcurl), with message size limits.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace telemetry {

// Listens on `address` ("127.0.0.1:0" picks a port; `*bound_port` gets it)
// with `credentials` (null: plaintext; see common/grpc/tls.h).
absl::StatusOr<std::unique_ptr<grpc::Server>> StartGrpcServer(
    const std::string& address, const std::vector<grpc::Service*>& services, int* bound_port,
    int max_message_bytes = 64 << 20,
    std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);

}  // namespace telemetry
