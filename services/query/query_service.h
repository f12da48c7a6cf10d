// gRPC front of the read path (callback API): hand the work to QueryCore
// through the handler kit (authentication, deadline, bounded pool, status
// mapping: common/grpc/handler.h), report where the data came from as
// trailing metadata too.
#pragma once

#include "common/grpc/handler.h"
#include "services/query/query_core.h"
#include "telemetry/v1/query.grpc.pb.h"

namespace telemetry::query {

class QueryServiceImpl final : public telemetry::v1::QueryService::CallbackService {
 public:
  QueryServiceImpl(QueryCore* core, const HandlerKit* kit);

  // The handler kit's options for queries: a call without a deadline of its
  // own runs at most `default_deadline_ns`.
  static HandlerOptions KitOptions(int64_t default_deadline_ns);

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

  QueryCore* core() const { return core_; }
  const HandlerKit* kit() const { return kit_; }

 private:
  // A unary read: QueryCore's `call` for the tenant, its response with the
  // read metadata as trailers.
  template <typename Req, typename Resp>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, const Req* request,
                                  Resp* response,
                                  absl::StatusOr<Resp> (QueryCore::*call)(int64_t, const Req&,
                                                                          int64_t));

  QueryCore* core_;
  const HandlerKit* kit_;
};

// Adds x-data-source, x-data-lag-seconds, x-consistency-level, x-cache-status.
void AddReadMetadata(grpc::CallbackServerContext* ctx, const telemetry::v1::ReadMetadata& md);

}  // namespace telemetry::query
