// gRPC front of the read path (callback API): authenticate, hand the work to
// QueryCore on a bounded pool, report where the data came from as trailing
// metadata too.
#pragma once

#include <chrono>

#include "common/auth.h"
#include "common/thread_pool.h"
#include "services/query/query_core.h"
#include "telemetry/v1/query.grpc.pb.h"

namespace telemetry::query {

class QueryServiceImpl final : public telemetry::v1::QueryService::CallbackService {
 public:
  QueryServiceImpl(QueryCore* core, Authenticator* auth, ThreadPool* pool, const Clock* clock,
                   int64_t default_deadline_ns);

  grpc::ServerUnaryReactor* Latest(grpc::CallbackServerContext* ctx,
                                   const telemetry::v1::LatestRequest* request,
                                   telemetry::v1::LatestResponse* response) override;
  grpc::ServerWriteReactor<telemetry::v1::RangeResponse>* Range(
      grpc::CallbackServerContext* ctx, const telemetry::v1::RangeRequest* request) override;
  grpc::ServerUnaryReactor* Aggregate(grpc::CallbackServerContext* ctx,
                                      const telemetry::v1::AggregateRequest* request,
                                      telemetry::v1::AggregateResponse* response) override;
  grpc::ServerUnaryReactor* Playback(grpc::CallbackServerContext* ctx,
                                     const telemetry::v1::PlaybackRequest* request,
                                     telemetry::v1::PlaybackResponse* response) override;

  int64_t DeadlineOf(grpc::CallbackServerContext* ctx) const;
  // `deadline` (Clock::MonotonicNs) as a steady-clock time point, for
  // ScopedCallDeadline.
  std::chrono::steady_clock::time_point SteadyDeadline(int64_t deadline) const;
  // A unary read: authenticate and run `call` on the pool, then answer with
  // its response and the read metadata as trailers.
  template <typename Req, typename Resp>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, const Req* request,
                                  Resp* response,
                                  absl::StatusOr<Resp> (QueryCore::*call)(int64_t, const Req&,
                                                                          int64_t));
  QueryCore* core() { return core_; }
  Authenticator* auth() { return auth_; }
  ThreadPool* pool() { return pool_; }

 private:
  QueryCore* core_;
  Authenticator* auth_;
  ThreadPool* pool_;
  const Clock* clock_;
  int64_t default_deadline_ns_;
};

// Adds x-data-source, x-data-lag-seconds, x-consistency-level, x-cache-status.
void AddReadMetadata(grpc::CallbackServerContext* ctx, const telemetry::v1::ReadMetadata& md);

}  // namespace telemetry::query
