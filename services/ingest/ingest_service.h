// gRPC front of the write path (callback API). Handlers only decode,
// authenticate and hand the work to IngestCore on a bounded pool.
#pragma once

#include <memory>

#include "common/auth.h"
#include "common/thread_pool.h"
#include "services/ingest/ingest_core.h"
#include "telemetry/v1/ingest.grpc.pb.h"

namespace telemetry::ingest {

class IngestServiceImpl final : public telemetry::v1::IngestService::CallbackService {
 public:
  IngestServiceImpl(IngestCore* core, Authenticator* auth, ThreadPool* pool, const Clock* clock,
                    int64_t max_ack_wait_ns);

  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* ctx,
                                  const telemetry::v1::WriteRequest* request,
                                  telemetry::v1::WriteResponse* response) override;
  grpc::ServerReadReactor<telemetry::v1::WriteRequest>* WriteStream(
      grpc::CallbackServerContext* ctx, telemetry::v1::WriteResponse* response) override;

  // Deadline of a call as monotonic ns, capped at max_ack_wait, minus a small
  // margin so the UNAVAILABLE answer reaches the client before its deadline.
  int64_t DeadlineOf(grpc::CallbackServerContext* ctx) const;
  // Status for the client, with `retry-after-ms` trailing metadata if any.
  static grpc::Status Answer(grpc::CallbackServerContext* ctx, const absl::Status& status);

  IngestCore* core() { return core_; }
  Authenticator* auth() { return auth_; }
  ThreadPool* pool() { return pool_; }

 private:
  IngestCore* core_;
  Authenticator* auth_;
  ThreadPool* pool_;
  const Clock* clock_;
  int64_t max_ack_wait_ns_;
};

// The authorization metadata value of a call ("" when absent).
std::string AuthorizationOf(const grpc::ServerContextBase* ctx);

}  // namespace telemetry::ingest
