#include "services/ingest/ingest_service.h"

#include <chrono>

#include "common/status.h"
#include "common/token.h"

namespace telemetry::ingest {

using telemetry::v1::WriteRequest;
using telemetry::v1::WriteResponse;

std::string AuthorizationOf(const grpc::ServerContextBase* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

IngestServiceImpl::IngestServiceImpl(IngestCore* core, Authenticator* auth, ThreadPool* pool,
                                     const Clock* clock, int64_t max_ack_wait_ns)
    : core_(core), auth_(auth), pool_(pool), clock_(clock), max_ack_wait_ns_(max_ack_wait_ns) {}

int64_t IngestServiceImpl::DeadlineOf(grpc::CallbackServerContext* ctx) const {
  const int64_t now = clock_->MonotonicNs();
  int64_t wait = max_ack_wait_ns_;
  auto deadline = ctx->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    int64_t left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       deadline - std::chrono::system_clock::now())
                       .count();
    // Answer a little early so UNAVAILABLE arrives before the client gives up.
    int64_t margin = std::min<int64_t>(left / 10, 50 * kNsPerMs);
    wait = std::min(wait, left - margin);
  }
  return now + std::max<int64_t>(wait, 0);
}

grpc::Status IngestServiceImpl::Answer(grpc::CallbackServerContext* ctx, const absl::Status& st) {
  if (auto retry = st.GetPayload(kRetryAfterPayload)) {
    ctx->AddTrailingMetadata("retry-after-ms", std::string(*retry));
  }
  return ToGrpcStatus(st);
}

grpc::ServerUnaryReactor* IngestServiceImpl::Write(grpc::CallbackServerContext* ctx,
                                                   const WriteRequest* request,
                                                   WriteResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  std::string authorization = AuthorizationOf(ctx);
  int64_t deadline = DeadlineOf(ctx);
  bool queued = pool_->Submit(
      [this, ctx, request, response, reactor, authorization = std::move(authorization), deadline] {
        auto tenant = auth_->Authenticate(authorization);
        if (!tenant.ok()) {
          reactor->Finish(ToGrpcStatus(tenant.status()));
          return;
        }
        core_->Write(**tenant, *request, 0, deadline,
                     [ctx, response, reactor](absl::StatusOr<WriteResponse> result) {
                       if (!result.ok()) {
                         reactor->Finish(Answer(ctx, result.status()));
                         return;
                       }
                       *response = std::move(*result);
                       reactor->Finish(grpc::Status::OK);
                     });
      });
  if (!queued) {
    ctx->AddTrailingMetadata("retry-after-ms", "100");
    reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 "ingest is saturated (work queue full); retry shortly"));
  }
  return reactor;
}

namespace {

// Client-streaming write: each message is processed as it arrives (at most
// kMaxInFlight at a time, then reading pauses: flow control), and the single
// response summarises the stream once every accepted reading is durable.
class WriteStreamReactor final : public grpc::ServerReadReactor<WriteRequest> {
 public:
  static constexpr int kMaxInFlight = 8;

  WriteStreamReactor(IngestServiceImpl* service, grpc::CallbackServerContext* ctx,
                     WriteResponse* response)
      : service_(service), ctx_(ctx), response_(response) {
    authorization_ = AuthorizationOf(ctx);
    read_outstanding_ = true;
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    read_outstanding_ = false;
    if (!ok || failed_) {
      reading_done_ = true;
      MaybeFinishLocked();
      return;
    }
    auto chunk = std::make_shared<WriteRequest>(std::move(request_));
    request_.Clear();
    int64_t base = next_index_;
    next_index_ += chunk->readings_size();
    ++in_flight_;
    int64_t deadline = service_->DeadlineOf(ctx_);
    bool queued =
        service_->pool()->Submit([this, chunk, base, deadline] { Process(chunk, base, deadline); });
    if (!queued) {
      --in_flight_;
      FailLocked(absl::ResourceExhaustedError("ingest is saturated (work queue full); retry"));
      reading_done_ = true;
      MaybeFinishLocked();
      return;
    }
    MaybeReadLocked();
  }

  void OnDone() override { delete this; }

 private:
  void Process(const std::shared_ptr<WriteRequest>& chunk, int64_t base, int64_t deadline) {
    std::shared_ptr<const TenantInfo> tenant;
    {
      absl::MutexLock lock(&mu_);
      tenant = tenant_;
    }
    if (!tenant) {
      auto found = service_->auth()->Authenticate(authorization_);
      if (!found.ok()) {
        Complete(found.status(), nullptr);
        return;
      }
      absl::MutexLock lock(&mu_);
      if (!tenant_) tenant_ = *found;
      tenant = tenant_;
    }
    service_->core()->Write(*tenant, *chunk, base, deadline,
                            [this, chunk](absl::StatusOr<WriteResponse> r) {
                              if (!r.ok()) {
                                Complete(r.status(), nullptr);
                              } else {
                                Complete(absl::OkStatus(), &*r);
                              }
                            });
  }

  void Complete(const absl::Status& st, WriteResponse* part) {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    if (!st.ok()) {
      FailLocked(st);
    } else if (part != nullptr) {
      response_->set_accepted(response_->accepted() + part->accepted());
      for (auto& rej : *part->mutable_rejected()) *response_->add_rejected() = std::move(rej);
      if (!part->consistency_token().empty()) {
        auto pos = DecodeConsistencyToken(part->consistency_token());
        if (pos.ok()) {
          positions_.topic = pos->topic;
          for (const auto& [p, o] : pos->offsets) {
            auto& cur = positions_.offsets[p];
            cur = std::max(cur, o);
          }
        }
      }
    }
    if (failed_) reading_done_ = reading_done_ || !read_outstanding_;
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void FailLocked(const absl::Status& st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!failed_) {
      failed_ = true;
      error_ = st;
    }
  }

  void MaybeReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!reading_done_ && !read_outstanding_ && !failed_ && in_flight_ < kMaxInFlight) {
      read_outstanding_ = true;
      StartRead(&request_);
    }
  }

  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || in_flight_ > 0 || read_outstanding_) return;
    if (!reading_done_ && !failed_) return;
    finished_ = true;
    if (failed_) {
      Finish(IngestServiceImpl::Answer(ctx_, error_));
      return;
    }
    if (!positions_.offsets.empty()) {
      response_->set_consistency_token(EncodeConsistencyToken(positions_));
    }
    Finish(grpc::Status::OK);
  }

  IngestServiceImpl* service_;
  grpc::CallbackServerContext* ctx_;
  WriteResponse* response_;
  std::string authorization_;
  WriteRequest request_;
  absl::Mutex mu_;
  std::shared_ptr<const TenantInfo> tenant_ ABSL_GUARDED_BY(mu_);
  int64_t next_index_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool read_outstanding_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_done_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  ConsistencyPositions positions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerReadReactor<WriteRequest>* IngestServiceImpl::WriteStream(
    grpc::CallbackServerContext* ctx, WriteResponse* response) {
  return new WriteStreamReactor(this, ctx, response);
}

}  // namespace telemetry::ingest
