// gRPC front of the archive (callback API): ExportService over export_api
// through the handler kit (authentication, deadline, bounded pool, status
// mapping: common/grpc/handler.h).
#pragma once

#include "common/archive_store.h"
#include "common/grpc/handler.h"
#include "services/export/exporter.h"
#include "telemetry/v1/export.grpc.pb.h"

namespace telemetry::exporting {

class ExportServiceImpl final : public telemetry::v1::ExportService::CallbackService {
 public:
  ExportServiceImpl(Exporter* exporter, ArchiveStore* store, const HandlerKit* kit);

  // A call without a deadline of its own runs at most `default_deadline_ns`
  // (TriggerExport writes a whole tenant-hour: give it minutes).
  static HandlerOptions KitOptions(int64_t default_deadline_ns);

  grpc::ServerUnaryReactor* TriggerExport(grpc::CallbackServerContext* ctx,
                                          const v1::TriggerExportRequest* request,
                                          v1::ExportStatus* response) override;
  grpc::ServerUnaryReactor* ListExports(grpc::CallbackServerContext* ctx,
                                        const v1::ListExportsRequest* request,
                                        v1::ListExportsResponse* response) override;
  grpc::ServerUnaryReactor* GetExport(grpc::CallbackServerContext* ctx,
                                      const v1::GetExportRequest* request,
                                      v1::ExportStatus* response) override;

 private:
  Exporter* exporter_;
  ArchiveStore* store_;
  const HandlerKit* kit_;
};

}  // namespace telemetry::exporting
