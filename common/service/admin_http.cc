#include "common/service/admin_http.h"

#include <httplib.h>

namespace telemetry {

AdminHttpServer::AdminHttpServer(MetricsRegistry* registry, const HealthState* health,
                                 TlsServerFiles tls)
    : registry_(registry), health_(health), tls_(std::move(tls)) {
  if (tls_.enabled()) {
    server_ = std::make_unique<httplib::SSLServer>(
        tls_.cert.c_str(), tls_.key.c_str(),
        tls_.client_ca.empty() ? nullptr : tls_.client_ca.c_str());
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
}

AdminHttpServer::~AdminHttpServer() { Stop(); }

absl::Status AdminHttpServer::Start(const std::string& host, int port) {
  if (!server_->is_valid()) {
    return absl::InvalidArgumentError(
        "HTTP admin port: cannot load --tls_cert " + tls_.cert + " / --tls_key " + tls_.key +
        (tls_.client_ca.empty() ? "" : " / --tls_client_ca " + tls_.client_ca));
  }
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry_->Render(), "text/plain; version=0.0.4");
  });
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    std::string reason;
    if (!health_->Ready(&reason)) {
      res.status = 503;
      res.set_content("not ready: " + reason + "\n", "text/plain");
      return;
    }
    res.set_content("ready\n", "text/plain");
  });
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
  } else {
    port_ = server_->bind_to_port(host, port) ? port : -1;
  }
  if (port_ < 0)
    return absl::UnavailableError("cannot listen for HTTP on port " + std::to_string(port));
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

void AdminHttpServer::Stop() {
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

}  // namespace telemetry
