#include "services/export/export_api.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace telemetry::exporting {
namespace {

constexpr int64_t kHourNs = 3'600'000'000'000LL;

v1::ExportState StateOf(const std::string& state) {
  if (state == "current") return v1::EXPORT_STATE_DONE;
  if (state == "superseded") return v1::EXPORT_STATE_SUPERSEDED;
  if (state == "writing") return v1::EXPORT_STATE_RUNNING;
  return v1::EXPORT_STATE_UNSPECIFIED;
}

}  // namespace

std::string ExportId(int64_t tenant_id, int64_t hour_ns, int32_t version) {
  return absl::StrCat(tenant_id, ":", hour_ns, ":", version);
}

v1::ExportStatus StatusOf(const ArchiveExport& e) {
  v1::ExportStatus s;
  s.set_export_id(ExportId(e.tenant_id, e.hour_ns, e.version));
  s.set_tenant_id(e.tenant_id);
  s.set_hour_start_ns(e.hour_ns);
  s.set_state(StateOf(e.state));
  s.set_rows(e.readings);
  s.set_version(e.version);
  s.set_bytes(e.bytes);
  for (const ArchiveFile& f : e.files) s.add_files(f.path);
  return s;
}

absl::StatusOr<v1::ExportStatus> TriggerExport(Exporter* exporter, ArchiveStore* store,
                                               int64_t tenant_id,
                                               const v1::TriggerExportRequest& request) {
  const int64_t hour = request.hour_start_ns();
  if (hour <= 0) {
    return absl::InvalidArgumentError(
        "hour_start_ns: required, the start of an hour in nanoseconds since the epoch");
  }
  if (hour % kHourNs != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hour_start_ns: ", hour, " is not the start of an hour (a multiple of ", kHourNs, ")"));
  }
  auto done = exporter->ExportTenantHour(tenant_id, hour);
  if (!done.ok()) {
    if (done.status().code() == absl::StatusCode::kNotFound) {
      return absl::FailedPreconditionError(
          absl::StrCat("hour_start_ns: ", done.status().message()));
    }
    return done.status();
  }
  auto current = store->CurrentExport(tenant_id, hour);
  if (current.ok()) return StatusOf(*current);
  if (current.status().code() != absl::StatusCode::kNotFound) return current.status();
  // The tenant had no reading in the hour: an export of nothing.
  v1::ExportStatus empty;
  empty.set_tenant_id(tenant_id);
  empty.set_hour_start_ns(hour);
  empty.set_state(v1::EXPORT_STATE_DONE);
  return empty;
}

absl::StatusOr<v1::ListExportsResponse> ListExports(ArchiveStore* store, int64_t tenant_id,
                                                    const v1::ListExportsRequest& request) {
  if (request.to_ns() <= request.from_ns()) {
    return absl::InvalidArgumentError(absl::StrCat("to_ns: must be after from_ns (",
                                                   request.from_ns(), "), got ", request.to_ns()));
  }
  if (request.to_ns() - request.from_ns() > kMaxListRangeNs) {
    return absl::InvalidArgumentError(
        absl::StrCat("to_ns - from_ns: at most 31 days (", kMaxListRangeNs, " ns) per call"));
  }
  auto found = store->ListExports(tenant_id, request.from_ns(), request.to_ns());
  if (!found.ok()) return found.status();
  v1::ListExportsResponse out;
  for (const ArchiveExport& e : *found) *out.add_exports() = StatusOf(e);
  return out;
}

absl::StatusOr<v1::ExportStatus> GetExport(ArchiveStore* store, int64_t tenant_id,
                                           const v1::GetExportRequest& request) {
  std::vector<std::string> parts = absl::StrSplit(request.export_id(), ':');
  int64_t tenant = 0, hour = 0;
  int32_t version = 0;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &tenant) ||
      !absl::SimpleAtoi(parts[1], &hour) || !absl::SimpleAtoi(parts[2], &version)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "export_id: '", request.export_id(), "' is not <tenant_id>:<hour_start_ns>:<version>"));
  }
  const auto not_found =
      absl::NotFoundError(absl::StrCat("export_id: no export ", request.export_id()));
  if (tenant != tenant_id) return not_found;  // another tenant's: never said to exist
  auto found = store->ListExports(tenant_id, hour, hour + 1);
  if (!found.ok()) return found.status();
  for (const ArchiveExport& e : *found) {
    if (e.version == version) return StatusOf(e);
  }
  return not_found;
}

}  // namespace telemetry::exporting
