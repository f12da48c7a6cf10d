// What the export service needs from the database to build the Parquet
// archive (docs/archive.md): which packed hours are due, a tenant's readings
// of one hour, and the manifest. Postgres implementation in
// common/pg/archive_store.cc (migration 0011).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model.h"

namespace telemetry {

// A packed hour whose archive is missing or older than its content.
struct DueHour {
  int64_t hour_ns = 0;
  int32_t packs = 0;  // the content's version (raw_compactions.packs)
};

// One file of an export, relative to the archive root.
struct ArchiveFile {
  std::string path;
  std::string kind;  // "readings" or "last"
  int64_t readings = 0;
  int64_t bytes = 0;
  std::string sha256_hex;
};

// One export of a tenant's hour (a row of the manifest).
struct ArchiveExport {
  int64_t tenant_id = 0;
  int64_t hour_ns = 0;
  int32_t version = 0;
  int32_t source_packs = 0;
  std::string state;  // "writing", "current", "superseded"
  int64_t readings = 0;
  int64_t bytes = 0;
  int64_t started_at_ns = 0;
  int64_t finished_at_ns = 0;  // 0 while writing
  std::vector<ArchiveFile> files;
};

// What retention needs to know of one day partition of the raw readings
// (docs/archive.md "Retention").
struct RetentionHour {
  int64_t hour_ns = 0;
  std::string state;  // the claim: "" (none), "packing", "packed", "dropped"
  int32_t packs = 0;
  bool late_pending = false;  // listed in raw_late_hours
  bool raw_rows = false;      // rows not packed into segments
};
struct RetentionTenantHour {
  int64_t tenant_id = 0;
  int64_t hour_ns = 0;
  int32_t archived_packs = -1;  // its current export's source_packs; -1: none
};
struct RetentionDay {
  int64_t day_ns = 0;  // start of the UTC day
  // Hours with a claim or raw rows, in order.
  std::vector<RetentionHour> hours;
  // Every (tenant, hour) with readings in the day's segments.
  std::vector<RetentionTenantHour> tenant_hours;
  int64_t segments = 0;
  int64_t readings = 0;  // in segments
};
struct TenantRetention {
  int64_t tenant_id = 0;
  std::string name;
  int32_t raw_retention_days = 0;
};

class ArchiveStore {
 public:
  virtual ~ArchiveStore() = default;

  // Packed hours starting in [from_ns, before_ns) (no late readings
  // pending) that are not archived at their current packs yet, oldest first.
  virtual absl::StatusOr<std::vector<DueHour>> DueHours(int64_t from_ns, int64_t before_ns,
                                                        int limit) = 0;
  // The content version of one hour: its packs, or NOT_FOUND when the hour
  // is not packed (or has late readings pending).
  virtual absl::StatusOr<int32_t> PackedVersion(int64_t hour_ns) = 0;
  // Tenants with readings in the (packed) hour.
  virtual absl::StatusOr<std::vector<int64_t>> TenantsInHour(int64_t hour_ns) = 0;
  // The tenant's readings of a packed hour, series by series in (device,
  // sensor, unit) byte order, each series' readings in time order. `fn`
  // returning an error stops the read with that error.
  virtual absl::Status ReadTenantHour(
      int64_t tenant_id, int64_t hour_ns,
      const std::function<absl::Status(const SeriesNames&, std::vector<RawRow>&&)>& fn) = 0;

  // The tenant's current export of the hour (NOT_FOUND when none).
  virtual absl::StatusOr<ArchiveExport> CurrentExport(int64_t tenant_id, int64_t hour_ns) = 0;
  // Starts (or resumes, after a crash) an export of the hour at content
  // version `packs`: returns its version, a 'writing' row of the manifest.
  virtual absl::StatusOr<int32_t> BeginExport(int64_t tenant_id, int64_t hour_ns,
                                              int32_t packs) = 0;
  // In one transaction: records `files`, makes `version` current and the
  // previous current one superseded.
  virtual absl::Status CommitExport(int64_t tenant_id, int64_t hour_ns, int32_t version,
                                    const std::vector<ArchiveFile>& files) = 0;
  // Marks the hour archived for every tenant at `packs`.
  virtual absl::Status MarkHourArchived(int64_t hour_ns, int32_t packs) = 0;
  // The tenant's exports of hours in [from_ns, to_ns), every version, with
  // their files, by hour then version.
  virtual absl::StatusOr<std::vector<ArchiveExport>> ListExports(int64_t tenant_id, int64_t from_ns,
                                                                 int64_t to_ns) = 0;

  // Retention. The day partitions of raw readings that start in
  // [from_ns, before_ns), oldest first, with what retention decides on.
  virtual absl::StatusOr<std::vector<RetentionDay>> RetentionDays(int64_t from_ns,
                                                                  int64_t before_ns) = 0;
  virtual absl::StatusOr<std::vector<TenantRetention>> TenantRetentions() = 0;
  // Starts of the hours in [from_ns, to_ns) whose raw readings retention
  // dropped from Postgres and in which the tenant has readings (archived:
  // a current export), ascending.
  virtual absl::StatusOr<std::vector<int64_t>> DroppedHours(int64_t tenant_id, int64_t from_ns,
                                                            int64_t to_ns) = 0;
  // Drops the partitions of the days dropped at least `min_age_ns` ago
  // (every reader has seen their hours marked by then); returns them.
  // UNAVAILABLE when a day's locks are not granted in time (the days before
  // it are purged; the rest wait for the next call).
  virtual absl::StatusOr<std::vector<int64_t>> PurgeDroppedDays(int64_t min_age_ns) = 0;
  // Drops the day from Postgres' reads if `still_drops`, given the day as it
  // is under locks that keep writers, the packer and the exporter out of it,
  // says so: marks its hours 'dropped' (reads go to the archive, writes are
  // discarded) and records the drop; its partitions are dropped later by
  // PurgeDroppedDays. Returns whether it dropped. UNAVAILABLE when the locks
  // are not granted in time (readers of the day): try again later.
  virtual absl::StatusOr<bool> DropRawDay(
      int64_t day_ns, const std::function<bool(const RetentionDay&)>& still_drops) = 0;
};

}  // namespace telemetry
