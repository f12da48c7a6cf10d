#include "services/ingest/ingest_service.h"

#include <chrono>

#include "common/status_payload.h"
#include "common/token.h"

namespace telemetry::ingest {

using telemetry::v1::WriteRequest;
using telemetry::v1::WriteResponse;

IngestServiceImpl::IngestServiceImpl(IngestCore* core, const HandlerKit* kit)
    : core_(core), kit_(kit) {}

HandlerOptions IngestServiceImpl::KitOptions(int64_t max_ack_wait_ns) {
  HandlerOptions options;
  options.service = "ingest";
  options.max_call_ns = max_ack_wait_ns;
  options.answer_early = true;
  return options;
}

grpc::ServerUnaryReactor* IngestServiceImpl::Write(grpc::CallbackServerContext* ctx,
                                                   const WriteRequest* request,
                                                   WriteResponse* response) {
  return kit_->Unary(ctx, [this, request, response](const HandlerKit::Tenant& tenant,
                                                    int64_t deadline, auto finish) {
    core_->Write(*tenant, *request, 0, deadline,
                 [response, finish](absl::StatusOr<WriteResponse> result) {
                   if (result.ok()) *response = std::move(*result);
                   finish(result.status());
                 });
  });
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
    const CallInfo call = service_->kit()->Begin(ctx_);
    bool queued =
        service_->kit()->Submit(call, [this, chunk, base, deadline = call.deadline_ns](
                                          const absl::StatusOr<HandlerKit::Tenant>& tenant) {
          Process(tenant, chunk, base, deadline);
        });
    if (!queued) {
      --in_flight_;
      FailLocked(WithRetryAfter(
          absl::ResourceExhaustedError("ingest is saturated (work queue full); retry shortly"),
          100));
      reading_done_ = true;
      MaybeFinishLocked();
      return;
    }
    MaybeReadLocked();
  }

  void OnDone() override { delete this; }

 private:
  void Process(const absl::StatusOr<HandlerKit::Tenant>& tenant,
               const std::shared_ptr<WriteRequest>& chunk, int64_t base, int64_t deadline) {
    if (!tenant.ok()) {
      Complete(tenant.status(), nullptr);
      return;
    }
    service_->core()->Write(**tenant, *chunk, base, deadline,
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
      Finish(HandlerKit::Answer(ctx_, error_));
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
  WriteRequest request_;
  absl::Mutex mu_;
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
