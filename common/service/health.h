// One health state per service, behind one lock, for both gRPC health
// (grpc.health.v1, per service name) and the HTTP /readyz. A change and the
// server it is published to are read and written under the same lock, so a
// flip racing with startup or shutdown is never lost or reversed: once
// ShutDown() ran, every name stays NOT_SERVING and /readyz stays 503.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace telemetry {

class HealthState {
 public:
  // `names`: the gRPC health names besides "" (the server as a whole), e.g.
  // "telemetry.v1.IngestService". Every name starts NOT_SERVING and /readyz
  // not ready, with `reason`.
  HealthState(std::vector<std::string> names, std::string reason);

  // Every name serving or not, and /readyz with it (`reason` when not).
  void SetAll(bool serving, const std::string& reason);
  // Names set one by one (names absent keep their status) and /readyz.
  // Setting a name not given at construction is a programming error: ignored.
  void Set(const std::map<std::string, bool>& serving, bool ready, const std::string& reason);

  // Whether /readyz answers 200; `reason` receives why not.
  bool Ready(std::string* reason) const;
  bool Serving(const std::string& name) const;

  // Publishes to `server`'s health service from now on (and now).
  void Attach(grpc::Server* server);
  // Every name NOT_SERVING, /readyz "shutting down", for good.
  void ShutDown();

 private:
  void PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, bool> serving_ ABSL_GUARDED_BY(mu_);
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  std::string reason_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Server* server_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace telemetry
