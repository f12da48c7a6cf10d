// The HTTP admin port of a service: /metrics renders the registry, /healthz
// answers 200 while the process runs, /readyz answers 200 while the service's
// HealthState is ready, else 503 with its reason.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "common/grpc/tls.h"
#include "common/metrics.h"
#include "common/service/health.h"

namespace httplib {
class Server;
}

namespace telemetry {

class AdminHttpServer {
 public:
  // With `tls` files, HTTPS only (and a verified client certificate when
  // `tls.client_ca` is set).
  AdminHttpServer(MetricsRegistry* registry, const HealthState* health, TlsServerFiles tls = {});
  ~AdminHttpServer();
  // Listens on `host` ("127.0.0.1", "0.0.0.0") and `port` (0 picks one).
  absl::Status Start(const std::string& host, int port);
  int port() const { return port_; }
  void Stop();

 private:
  MetricsRegistry* registry_;
  const HealthState* health_;
  TlsServerFiles tls_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace telemetry
