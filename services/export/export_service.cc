#include "services/export/export_service.h"

#include "services/export/export_api.h"

namespace telemetry::exporting {

ExportServiceImpl::ExportServiceImpl(Exporter* exporter, ArchiveStore* store, const HandlerKit* kit)
    : exporter_(exporter), store_(store), kit_(kit) {}

HandlerOptions ExportServiceImpl::KitOptions(int64_t default_deadline_ns) {
  HandlerOptions options;
  options.service = "export";
  options.max_call_ns = default_deadline_ns;
  return options;
}

grpc::ServerUnaryReactor* ExportServiceImpl::TriggerExport(grpc::CallbackServerContext* ctx,
                                                           const v1::TriggerExportRequest* request,
                                                           v1::ExportStatus* response) {
  return kit_->Unary(
      ctx, [this, request, response](const HandlerKit::Tenant& tenant, int64_t, auto finish) {
        auto result = exporting::TriggerExport(exporter_, store_, tenant->id, *request);
        if (result.ok()) *response = std::move(*result);
        finish(result.status());
      });
}

grpc::ServerUnaryReactor* ExportServiceImpl::ListExports(grpc::CallbackServerContext* ctx,
                                                         const v1::ListExportsRequest* request,
                                                         v1::ListExportsResponse* response) {
  return kit_->Unary(
      ctx, [this, request, response](const HandlerKit::Tenant& tenant, int64_t, auto finish) {
        auto result = exporting::ListExports(store_, tenant->id, *request);
        if (result.ok()) *response = std::move(*result);
        finish(result.status());
      });
}

grpc::ServerUnaryReactor* ExportServiceImpl::GetExport(grpc::CallbackServerContext* ctx,
                                                       const v1::GetExportRequest* request,
                                                       v1::ExportStatus* response) {
  return kit_->Unary(
      ctx, [this, request, response](const HandlerKit::Tenant& tenant, int64_t, auto finish) {
        auto result = exporting::GetExport(store_, tenant->id, *request);
        if (result.ok()) *response = std::move(*result);
        finish(result.status());
      });
}

}  // namespace telemetry::exporting
