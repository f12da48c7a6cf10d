// gRPC front of the write path (callback API). Handlers only decode and hand
// the work to IngestCore through the handler kit (authentication, deadline,
// bounded pool, status mapping: common/grpc/handler.h).
#pragma once

#include <memory>

#include "common/grpc/handler.h"
#include "services/ingest/ingest_core.h"
#include "telemetry/v1/ingest.grpc.pb.h"

namespace telemetry::ingest {

class IngestServiceImpl final : public telemetry::v1::IngestService::CallbackService {
 public:
  IngestServiceImpl(IngestCore* core, const HandlerKit* kit);

  // The handler kit's options for ingest: a call waits at most
  // `max_ack_wait_ns` for Kafka and answers a little before the client's
  // deadline, so UNAVAILABLE arrives before the client gives up.
  static HandlerOptions KitOptions(int64_t max_ack_wait_ns);

  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* ctx,
                                  const telemetry::v1::WriteRequest* request,
                                  telemetry::v1::WriteResponse* response) override;
  grpc::ServerReadReactor<telemetry::v1::WriteRequest>* WriteStream(
      grpc::CallbackServerContext* ctx, telemetry::v1::WriteResponse* response) override;

  IngestCore* core() const { return core_; }
  const HandlerKit* kit() const { return kit_; }

 private:
  IngestCore* core_;
  const HandlerKit* kit_;
};

}  // namespace telemetry::ingest
