// gRPC front of the read path (callback API): authenticate, hand the work to
// QueryCore on a bounded pool, report where the data came from as trailing
// metadata too.
#pragma once

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

  int64_t DeadlineOf(grpc::CallbackServerContext* ctx) const;
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
