#include "services/query/query_service.h"

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/strings/ascii.h"

namespace telemetry::query {

using telemetry::v1::LatestRequest;
using telemetry::v1::LatestResponse;
using telemetry::v1::RangeRequest;
using telemetry::v1::RangeResponse;

void AddReadMetadata(grpc::CallbackServerContext* ctx, const telemetry::v1::ReadMetadata& md) {
  ctx->AddTrailingMetadata("x-data-source", md.data_source());
  ctx->AddTrailingMetadata("x-data-lag-seconds", std::to_string(md.lag_seconds()));
  std::string level = telemetry::v1::ConsistencyLevel_Name(md.consistency_level());
  level = absl::AsciiStrToLower(level.substr(std::string("CONSISTENCY_LEVEL_").size()));
  ctx->AddTrailingMetadata("x-consistency-level", level);
  std::string cache = telemetry::v1::CacheStatus_Name(md.cache_status());
  ctx->AddTrailingMetadata(
      "x-cache-status", absl::AsciiStrToLower(cache.substr(std::string("CACHE_STATUS_").size())));
  if (!md.fallback().empty()) ctx->AddTrailingMetadata("x-data-fallback", md.fallback());
}

QueryServiceImpl::QueryServiceImpl(QueryCore* core, const HandlerKit* kit)
    : core_(core), kit_(kit) {}

HandlerOptions QueryServiceImpl::KitOptions(int64_t default_deadline_ns) {
  HandlerOptions options;
  options.service = "query";
  options.max_call_ns = default_deadline_ns;
  return options;
}

template <typename Req, typename Resp>
grpc::ServerUnaryReactor* QueryServiceImpl::Unary(
    grpc::CallbackServerContext* ctx, const Req* request, Resp* response,
    absl::StatusOr<Resp> (QueryCore::*call)(int64_t, const Req&, int64_t)) {
  return kit_->Unary(ctx, [this, ctx, request, response, call](const HandlerKit::Tenant& tenant,
                                                               int64_t deadline, auto finish) {
    auto result = (core_->*call)(tenant->id, *request, deadline);
    if (result.ok()) {
      *response = std::move(*result);
      AddReadMetadata(ctx, response->metadata());
    }
    finish(result.status());
  });
}

grpc::ServerUnaryReactor* QueryServiceImpl::Latest(grpc::CallbackServerContext* ctx,
                                                   const LatestRequest* request,
                                                   LatestResponse* response) {
  return Unary(ctx, request, response, &QueryCore::Latest);
}

grpc::ServerUnaryReactor* QueryServiceImpl::Aggregate(
    grpc::CallbackServerContext* ctx, const telemetry::v1::AggregateRequest* request,
    telemetry::v1::AggregateResponse* response) {
  return Unary(ctx, request, response, &QueryCore::Aggregate);
}

grpc::ServerUnaryReactor* QueryServiceImpl::Playback(grpc::CallbackServerContext* ctx,
                                                     const telemetry::v1::PlaybackRequest* request,
                                                     telemetry::v1::PlaybackResponse* response) {
  return Unary(ctx, request, response, &QueryCore::Playback);
}

namespace {

// Streams pages produced on a pool thread; the producer waits for each write
// to complete (flow control), so a slow client never makes the server buffer
// more than one page.
class RangeReactor final : public grpc::ServerWriteReactor<RangeResponse> {
 public:
  RangeReactor(QueryServiceImpl* service, grpc::CallbackServerContext* ctx,
               const RangeRequest* request)
      : service_(service), ctx_(ctx), request_(request) {
    const CallInfo call = service->kit()->Begin(ctx);
    bool queued = service->kit()->Submit(
        call, [this, deadline = call.deadline_ns](
                  const absl::StatusOr<HandlerKit::Tenant>& tenant) { Produce(tenant, deadline); });
    if (!queued) Finish(service->kit()->Saturated(ctx));
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    write_ok_ = ok;
    cv_.notify_all();
  }
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  void OnDone() override {
    // Produce() may still be running only until Finish, which it calls last.
    delete this;
  }

 private:
  void Produce(const absl::StatusOr<HandlerKit::Tenant>& tenant, int64_t deadline) {
    if (!tenant.ok()) {
      Finish(HandlerKit::Answer(ctx_, tenant.status()));
      return;
    }
    bool metadata_sent = false;
    absl::Status st = service_->core()->Range(
        (*tenant)->id, *request_, deadline, [&](RangeResponse&& page, bool last) {
          if (!metadata_sent && page.has_metadata()) {
            AddReadMetadata(ctx_, page.metadata());
            metadata_sent = true;
          }
          if (last) {  // sent below, with the status
            last_ = std::move(page);
            have_last_ = true;
            return true;
          }
          std::unique_lock<std::mutex> lock(mu_);
          if (cancelled_ || !write_ok_) return false;
          current_ = std::move(page);
          writing_ = true;
          StartWrite(&current_);
          cv_.wait(lock, [this] { return !writing_ || cancelled_; });
          return write_ok_ && !cancelled_;
        });
    bool write_last = false;
    {
      // A write may still be in flight after a cancellation: wait for it.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return !writing_; });
      write_last = st.ok() && have_last_ && !cancelled_ && write_ok_;
    }
    // Either call is the last thing Produce does: OnDone may delete this
    // right after, so no member is touched (nor a lock held) past it.
    if (write_last) {
      // The last page and the status in one go (one write, no OnWriteDone
      // round trip before Finish).
      StartWriteAndFinish(&last_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      Finish(HandlerKit::Answer(ctx_, st));
    }
  }

  QueryServiceImpl* service_;
  grpc::CallbackServerContext* ctx_;
  const RangeRequest* request_;
  std::mutex mu_;
  std::condition_variable cv_;
  RangeResponse current_;
  RangeResponse last_;  // the final page, written with the status
  bool have_last_ = false;
  bool writing_ = false;
  bool write_ok_ = true;
  bool cancelled_ = false;
};

}  // namespace

grpc::ServerWriteReactor<RangeResponse>* QueryServiceImpl::Range(grpc::CallbackServerContext* ctx,
                                                                 const RangeRequest* request) {
  return new RangeReactor(this, ctx, request);
}

}  // namespace telemetry::query
