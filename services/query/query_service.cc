#include "services/query/query_service.h"

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/strings/ascii.h"
#include "common/deadline.h"
#include "common/status.h"

namespace telemetry::query {

using telemetry::v1::LatestRequest;
using telemetry::v1::LatestResponse;
using telemetry::v1::RangeRequest;
using telemetry::v1::RangeResponse;

namespace {

std::string AuthorizationOf(const grpc::ServerContextBase* ctx) {
  auto it = ctx->client_metadata().find("authorization");
  if (it == ctx->client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

void AddReadMetadata(grpc::CallbackServerContext* ctx, const telemetry::v1::ReadMetadata& md) {
  ctx->AddTrailingMetadata("x-data-source", md.data_source());
  ctx->AddTrailingMetadata("x-data-lag-seconds", std::to_string(md.lag_seconds()));
  std::string level = telemetry::v1::ConsistencyLevel_Name(md.consistency_level());
  level = absl::AsciiStrToLower(level.substr(std::string("CONSISTENCY_LEVEL_").size()));
  ctx->AddTrailingMetadata("x-consistency-level", level);
  std::string cache = telemetry::v1::CacheStatus_Name(md.cache_status());
  ctx->AddTrailingMetadata(
      "x-cache-status", absl::AsciiStrToLower(cache.substr(std::string("CACHE_STATUS_").size())));
}

QueryServiceImpl::QueryServiceImpl(QueryCore* core, Authenticator* auth, ThreadPool* pool,
                                   const Clock* clock, int64_t default_deadline_ns)
    : core_(core),
      auth_(auth),
      pool_(pool),
      clock_(clock),
      default_deadline_ns_(default_deadline_ns) {}

int64_t QueryServiceImpl::DeadlineOf(grpc::CallbackServerContext* ctx) const {
  int64_t wait = default_deadline_ns_;
  auto deadline = ctx->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    wait = std::min<int64_t>(wait, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       deadline - std::chrono::system_clock::now())
                                       .count());
  }
  return clock_->MonotonicNs() + std::max<int64_t>(wait, 0);
}

std::chrono::steady_clock::time_point QueryServiceImpl::SteadyDeadline(int64_t deadline) const {
  return std::chrono::steady_clock::now() +
         std::chrono::nanoseconds(deadline - clock_->MonotonicNs());
}

template <typename Req, typename Resp>
grpc::ServerUnaryReactor* QueryServiceImpl::Unary(
    grpc::CallbackServerContext* ctx, const Req* request, Resp* response,
    absl::StatusOr<Resp> (QueryCore::*call)(int64_t, const Req&, int64_t)) {
  auto* reactor = ctx->DefaultReactor();
  int64_t deadline = DeadlineOf(ctx);
  std::string authorization = AuthorizationOf(ctx);
  bool queued = pool_->Submit([=] {
    ScopedCallDeadline scope(SteadyDeadline(deadline));
    auto tenant = auth_->Authenticate(authorization);
    if (!tenant.ok()) {
      reactor->Finish(ToGrpcStatus(tenant.status()));
      return;
    }
    auto result = (core_->*call)((*tenant)->id, *request, deadline);
    if (!result.ok()) {
      reactor->Finish(ToGrpcStatus(result.status()));
      return;
    }
    *response = std::move(*result);
    AddReadMetadata(ctx, response->metadata());
    reactor->Finish(grpc::Status::OK);
  });
  if (!queued) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "query is saturated; retry"));
  }
  return reactor;
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
    int64_t deadline = service->DeadlineOf(ctx);
    std::string authorization = AuthorizationOf(ctx);
    bool queued = service->pool()->Submit(
        [this, deadline, authorization] { Produce(authorization, deadline); });
    if (!queued) {
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "query is saturated; retry"));
    }
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
  void Produce(const std::string& authorization, int64_t deadline) {
    ScopedCallDeadline scope(service_->SteadyDeadline(deadline));
    auto tenant = service_->auth()->Authenticate(authorization);
    if (!tenant.ok()) {
      Finish(ToGrpcStatus(tenant.status()));
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
      Finish(ToGrpcStatus(st));
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
