#include "common/grpc/handler.h"

#include <algorithm>

#include "common/deadline.h"
#include "common/grpc/status.h"
#include "common/grpc/tls.h"
#include "common/status_payload.h"

namespace telemetry {

HandlerKit::HandlerKit(HandlerOptions options, Authenticator* auth, ThreadPool* pool,
                       const Clock* clock)
    : options_(std::move(options)), auth_(auth), pool_(pool), clock_(clock) {}

int64_t HandlerKit::DeadlineOf(const grpc::ServerContextBase* ctx) const {
  int64_t wait = options_.max_call_ns;
  const auto deadline = ctx->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    const int64_t left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             deadline - std::chrono::system_clock::now())
                             .count();
    const int64_t margin = options_.answer_early ? std::min<int64_t>(left / 10, 50 * kNsPerMs) : 0;
    wait = std::min(wait, left - margin);
  }
  return clock_->MonotonicNs() + std::max<int64_t>(wait, 0);
}

CallInfo HandlerKit::Begin(const grpc::ServerContextBase* ctx) const {
  CallInfo call;
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it != md.end()) call.authorization.assign(it->second.data(), it->second.size());
  if (call.authorization.empty()) call.peer_certificate = PeerCertificateFingerprint(ctx);
  call.deadline_ns = DeadlineOf(ctx);
  return call;
}

std::chrono::steady_clock::time_point HandlerKit::SteadyDeadline(int64_t deadline_ns) const {
  return std::chrono::steady_clock::now() +
         std::chrono::nanoseconds(deadline_ns - clock_->MonotonicNs());
}

bool HandlerKit::Submit(const CallInfo& call,
                        std::function<void(const absl::StatusOr<Tenant>& tenant)> work) const {
  return pool_->Submit([this, call, work = std::move(work)] {
    ScopedCallDeadline scope(SteadyDeadline(call.deadline_ns));
    work(auth_->Authenticate(call.authorization, call.peer_certificate));
  });
}

grpc::ServerUnaryReactor* HandlerKit::Unary(grpc::CallbackServerContext* ctx,
                                            UnaryWork work) const {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const CallInfo call = Begin(ctx);
  const bool queued = Submit(call, [ctx, reactor, deadline = call.deadline_ns,
                                    work = std::move(work)](const absl::StatusOr<Tenant>& tenant) {
    if (!tenant.ok()) {
      reactor->Finish(Answer(ctx, tenant.status()));
      return;
    }
    work(*tenant, deadline,
         [ctx, reactor](const absl::Status& st) { reactor->Finish(Answer(ctx, st)); });
  });
  if (!queued) reactor->Finish(Saturated(ctx));
  return reactor;
}

grpc::Status HandlerKit::Saturated(grpc::CallbackServerContext* ctx) const {
  return Answer(
      ctx, WithRetryAfter(absl::ResourceExhaustedError(
                              options_.service + " is saturated (work queue full); retry shortly"),
                          100));
}

grpc::Status HandlerKit::Answer(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  if (auto retry = status.GetPayload(kRetryAfterPayload)) {
    ctx->AddTrailingMetadata("retry-after-ms", std::string(*retry));
  }
  return ToGrpcStatus(status);
}

}  // namespace telemetry
