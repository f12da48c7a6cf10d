// ExportService's requests over the exporter and the manifest, without gRPC
// (export_service.h is the handlers): validation with the field and the
// reason, the caller's tenant applied to every call, the manifest as
// telemetry.v1.ExportStatus.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/archive_store.h"
#include "services/export/exporter.h"
#include "telemetry/v1/export.pb.h"

namespace telemetry::exporting {

// The longest ListExports range: 31 days of hours.
constexpr int64_t kMaxListRangeNs = 31LL * 24 * 3'600'000'000'000LL;

// "<tenant_id>:<hour_start_ns>:<version>".
std::string ExportId(int64_t tenant_id, int64_t hour_ns, int32_t version);

v1::ExportStatus StatusOf(const ArchiveExport& e);

absl::StatusOr<v1::ExportStatus> TriggerExport(Exporter* exporter, ArchiveStore* store,
                                               int64_t tenant_id,
                                               const v1::TriggerExportRequest& request);
absl::StatusOr<v1::ListExportsResponse> ListExports(ArchiveStore* store, int64_t tenant_id,
                                                    const v1::ListExportsRequest& request);
absl::StatusOr<v1::ExportStatus> GetExport(ArchiveStore* store, int64_t tenant_id,
                                           const v1::GetExportRequest& request);

}  // namespace telemetry::exporting
