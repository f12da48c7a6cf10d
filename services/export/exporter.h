// The archive exporter (docs/archive.md): packed hours of the warm tier into
// Parquet files under an archive root, one export per (tenant, hour) and
// content version, recorded in the manifest. No gRPC, no Postgres types:
// over ArchiveStore, so the service, telemetry-admin and tests share it.
//
// Exactly once in effect: an export reads the hour's content version
// (raw_compactions.packs) before its data; an export at that version or newer
// is never repeated; late readings make the compactor pack the hour again
// (packs + 1), which makes it due again and the new export supersedes the old.
// A crash leaves a 'writing' export that the next run resumes under the same
// version (its files are rewritten; nothing is published by name until the
// manifest says so).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/archive/archive_fs.h"
#include "common/archive/parquet_readings.h"
#include "common/archive_store.h"

namespace telemetry {

struct ExporterOptions {
  // A new file part starts after this many readings (at a series boundary).
  int64_t max_readings_per_file = 8'000'000;
  archive::ParquetOptions parquet;
  // An hour whose export failed (a damaged segment, the disk full ...) is
  // tried again after this long; the hours after it go on meanwhile.
  int64_t retry_after_ns = 300'000'000'000LL;
};

// What exporting one tenant's hour did.
struct TenantHourExport {
  int64_t tenant_id = 0;
  int64_t hour_ns = 0;
  int32_t version = 0;
  // Already archived at the hour's current content version: nothing written.
  bool up_to_date = false;
  int64_t readings = 0;
  int64_t bytes = 0;
  std::vector<ArchiveFile> files;
};

// What one pass of RunOnce did.
struct ExportPass {
  // Hours handled: exported (an hour without readings exports no file), or failed.
  int hours = 0;
  std::vector<TenantHourExport> exports;
  // Hours that failed, with why; each is tried again after retry_after_ns.
  std::vector<std::pair<int64_t, absl::Status>> failed;
};

// tenant=<id>/date=<YYYY-MM-DD>/hour=<HH> (UTC) of an hour start.
std::string ArchiveHourDir(int64_t tenant_id, int64_t hour_ns);

class Exporter {
 public:
  // `fs` is the archive root (a local directory or S3: archive_fs.h).
  Exporter(ArchiveStore* store, archive::ArchiveFs* fs, ExporterOptions options);

  // Exports every tenant of up to `max_hours` due hours that start in
  // [from_ns, before_ns), oldest first; an hour is marked archived once each
  // of its tenants is. An hour that fails is reported and skipped (tried
  // again after retry_after_ns): one damaged hour never holds up the rest.
  // An error only when the due hours cannot be listed.
  absl::StatusOr<ExportPass> RunOnce(int64_t from_ns, int64_t before_ns, int max_hours);

  // Exports one tenant's hour at its current content version (up to date:
  // reported, not repeated). NOT_FOUND when the hour is not packed yet.
  absl::StatusOr<TenantHourExport> ExportTenantHour(int64_t tenant_id, int64_t hour_ns);

 private:
  // The version's files under their staged names; `result` gets their final
  // names, readings and bytes.
  absl::Status WriteFiles(int64_t tenant_id, int64_t hour_ns, int32_t version,
                          const std::string& rel_dir, TenantHourExport* result);
  // Every tenant of the hour, then the hour marked archived.
  absl::Status ExportHour(const DueHour& h, std::vector<TenantHourExport>* out);
  absl::StatusOr<TenantHourExport> Export(int64_t tenant_id, int64_t hour_ns, int32_t packs)
      ABSL_LOCKS_EXCLUDED(mu_);

  ArchiveStore* store_;
  archive::ArchiveFs* fs_;
  const ExporterOptions options_;
  // One export at a time in a process (the periodic run and TriggerExport
  // write the same file names). One export process per archive root: see
  // docs/archive.md.
  absl::Mutex mu_;
  // Failed hours -> when to try them again (steady clock, ns).
  absl::Mutex retry_mu_;
  std::map<int64_t, int64_t> retry_at_ ABSL_GUARDED_BY(retry_mu_);
};

}  // namespace telemetry
