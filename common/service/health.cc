#include "common/service/health.h"

#include <grpcpp/health_check_service_interface.h>

namespace telemetry {

HealthState::HealthState(std::vector<std::string> names, std::string reason)
    : reason_(std::move(reason)) {
  serving_[""] = false;
  for (auto& name : names) serving_[std::move(name)] = false;
}

void HealthState::SetAll(bool serving, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  for (auto& [name, s] : serving_) s = serving;
  ready_ = serving;
  reason_ = serving ? "" : reason;
  PublishLocked();
}

void HealthState::Set(const std::map<std::string, bool>& serving, bool ready,
                      const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  for (const auto& [name, s] : serving) {
    auto it = serving_.find(name);
    if (it != serving_.end()) it->second = s;
  }
  ready_ = ready;
  reason_ = ready ? "" : reason;
  PublishLocked();
}

bool HealthState::Ready(std::string* reason) const {
  absl::MutexLock lock(&mu_);
  if (!ready_ && reason != nullptr) *reason = reason_;
  return ready_;
}

bool HealthState::Serving(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = serving_.find(name);
  return it != serving_.end() && it->second;
}

void HealthState::Attach(grpc::Server* server) {
  absl::MutexLock lock(&mu_);
  server_ = server;
  PublishLocked();
}

void HealthState::ShutDown() {
  absl::MutexLock lock(&mu_);
  for (auto& [name, s] : serving_) s = false;
  ready_ = false;
  reason_ = "shutting down";
  shut_down_ = true;
  PublishLocked();
  server_ = nullptr;
}

void HealthState::PublishLocked() {
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  for (const auto& [name, s] : serving_) health->SetServingStatus(name, s);
}

}  // namespace telemetry
