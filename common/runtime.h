// Process plumbing every service main() shares: signal handling for graceful
// shutdown, the gRPC server with health checking and reflection, and the HTTP
// admin port (/metrics, /healthz, /readyz).
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/metrics.h"

namespace httplib {
class Server;
}

namespace telemetry {

// Blocks SIGTERM, SIGINT and SIGPIPE in the calling thread, so every thread
// started later (gRPC, librdkafka) inherits the mask. Call first in main().
void BlockShutdownSignals();
// Waits for SIGTERM or SIGINT; returns the signal number.
int WaitForShutdownSignal();

// Builds and starts a gRPC server on `address` ("127.0.0.1:0" picks a port)
// with grpc.health.v1 and server reflection. `*bound_port` receives the port.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartGrpcServer(
    const std::string& address, const std::vector<grpc::Service*>& services, int* bound_port,
    int max_message_bytes = 64 << 20);

// /metrics renders the registry, /healthz answers 200 while the process runs,
// /readyz answers 200 while `ready()` is true, else 503 with its reason.
class AdminHttpServer {
 public:
  using Readiness = std::function<bool(std::string* reason)>;
  AdminHttpServer(MetricsRegistry* registry, Readiness ready);
  ~AdminHttpServer();
  // Listens on 127.0.0.1 or 0.0.0.0 (`host`) and `port` (0 picks one).
  absl::Status Start(const std::string& host, int port);
  int port() const { return port_; }
  void Stop();

 private:
  MetricsRegistry* registry_;
  Readiness ready_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace telemetry
