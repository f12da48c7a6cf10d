// The handler kit: what every gRPC handler of every service does before and
// after its logic, written once. A handler reads the call (Begin, on the gRPC
// thread), runs its work on the bounded pool with the caller authenticated
// and the call's deadline in force (Submit / Unary), and answers with one
// status mapping (Answer). The logic it calls knows nothing of gRPC.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/auth.h"
#include "common/clock.h"
#include "common/thread_pool.h"

namespace telemetry {

struct HandlerOptions {
  // Used in messages ("ingest is saturated ...").
  std::string service = "service";
  // The longest a call may run: its deadline when the client sets none, and
  // a cap on a longer one.
  int64_t max_call_ns = 30 * kNsPerSec;
  // Answer a little before the client's deadline (a tenth of the time left,
  // at most 50 ms), so a status of ours (e.g. UNAVAILABLE with its reason)
  // reaches the client before it gives up on its own.
  bool answer_early = false;
};

// What a handler takes from a call on the gRPC thread, before any work.
struct CallInfo {
  std::string authorization;  // the `authorization` metadata ("" when absent)
  // The verified client certificate's fingerprint (mutual TLS), read only
  // when the call carries no authorization: it then stands for the tenant.
  std::string peer_certificate;
  int64_t deadline_ns = 0;  // Clock::MonotonicNs
};

class HandlerKit {
 public:
  using Tenant = std::shared_ptr<const TenantInfo>;
  // A unary handler's work: runs on the pool for an authenticated tenant and
  // calls `finish` exactly once (from any thread) with its outcome.
  using UnaryWork = std::function<void(const Tenant& tenant, int64_t deadline_ns,
                                       std::function<void(const absl::Status&)> finish)>;

  HandlerKit(HandlerOptions options, Authenticator* auth, ThreadPool* pool, const Clock* clock);

  CallInfo Begin(const grpc::ServerContextBase* ctx) const;

  // Queues `work` on the pool; it runs with the call's deadline set for the
  // blocking adapters (ScopedCallDeadline) and gets the authentication
  // result. Returns false (and runs nothing) when the queue is full: answer
  // with Saturated().
  bool Submit(const CallInfo& call,
              std::function<void(const absl::StatusOr<Tenant>& tenant)> work) const;

  // A whole unary call: Begin, Submit, authenticate, `work`, Answer.
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, UnaryWork work) const;

  // RESOURCE_EXHAUSTED for a full work queue, advising a retry in 100 ms.
  grpc::Status Saturated(grpc::CallbackServerContext* ctx) const;

  // The call's deadline as a steady-clock time point.
  std::chrono::steady_clock::time_point SteadyDeadline(int64_t deadline_ns) const;

  // The status for the client (ToGrpcStatus), with the `retry-after-ms`
  // trailer when the status carries retry advice (common/status_payload.h).
  static grpc::Status Answer(grpc::CallbackServerContext* ctx, const absl::Status& status);

  Authenticator* auth() const { return auth_; }
  ThreadPool* pool() const { return pool_; }
  const Clock* clock() const { return clock_; }

 private:
  int64_t DeadlineOf(const grpc::ServerContextBase* ctx) const;

  HandlerOptions options_;
  Authenticator* auth_;
  ThreadPool* pool_;
  const Clock* clock_;
};

}  // namespace telemetry
