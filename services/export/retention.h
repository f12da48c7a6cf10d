// Retention of raw readings (issue 17; docs/archive.md "Retention"): a day
// partition (raw rows and segments, shared by every tenant) is dropped only
// when
//   - the day is past the raw retention of every tenant with readings in it
//     (tenants.raw_retention_days; 0 or less keeps forever; a day without
//     readings waits for the longest retention of any tenant), and
//   - every hour of it is packed with no late readings pending, and every
//     (tenant, hour) with readings is archived at the hour's current content
//     version (its current export's source_packs = raw_compactions.packs),
//     and each file of those exports is in the archive root with the size
//     the manifest records (a root emptied or damaged behind the manifest's
//     back keeps the day).
// A retention change applies to what is stored at the next run; the dry run
// shows it first: every day with the reasons it goes or stays.
//
// Not built yet (docs/ROADMAP.md): per-tenant deletion inside a day that
// another tenant still keeps (such a day stays, the dry run says who keeps
// it), rollup retention (agg_1m months, agg_1h years). Reads of dropped days
// go to the archive: services/query/tiered_reader.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/archive/archive_fs.h"
#include "common/archive_store.h"
#include "common/clock.h"

namespace telemetry {

struct RetentionDecision {
  int64_t day_ns = 0;
  bool drop = false;
  // Why it goes (one line), or every reason it stays (capped, with a count).
  std::vector<std::string> reasons;
  std::vector<int64_t> tenants;  // with readings in the day
  int64_t segments = 0;
  int64_t readings = 0;
  // Applied: the drop happened (false in a dry run, or when the day changed
  // under the drop's locks, or its locks were not granted: see `error`).
  bool dropped = false;
  std::string error;
};

// The decision on one day (pure). `tenants` by id.
RetentionDecision DecideRetention(const RetentionDay& day,
                                  const std::map<int64_t, TenantRetention>& tenants,
                                  int64_t now_ns);

class Retention {
 public:
  // `archive` is the root the exports were written to (its files are
  // checked before a day is dropped).
  Retention(ArchiveStore* store, archive::ArchiveFs* archive, const Clock* clock)
      : store_(store), archive_(archive), clock_(clock) {}

  // Decides on every day partition starting in [from_ns, before_ns), oldest
  // first; unless `dry_run`, drops those it decides to drop (each decided
  // again under the drop's locks), and then decides only on the days old
  // enough for the shortest raw retention of any tenant (the others stay
  // whatever they hold). An error only when the days cannot be
  // read; a day whose drop failed says so in its `error` and is retried at
  // the next run.
  absl::StatusOr<std::vector<RetentionDecision>> Run(int64_t from_ns, int64_t before_ns,
                                                     bool dry_run);
  // A drop is two steps: Run marks the day's hours dropped (reads go to the
  // archive, writes are discarded); Purge drops the partitions of the days
  // marked at least `grace_ns` ago, by when every query service has seen
  // the marks (they refresh them every second), so none reads a day whose
  // partitions are gone while it still takes it for present. Returns the
  // days purged.
  absl::StatusOr<std::vector<int64_t>> Purge(int64_t grace_ns) {
    return store_->PurgeDroppedDays(grace_ns);
  }

 private:
  // Why the day's archive cannot be trusted (missing or resized files, an
  // unreadable root); empty when every file is there.
  std::vector<std::string> CheckArchive(const RetentionDay& day);

  ArchiveStore* store_;
  archive::ArchiveFs* archive_;
  const Clock* clock_;
};

// "2026-12-01" / "2026-12-01 05:00" (UTC).
std::string RetentionDate(int64_t ns);

}  // namespace telemetry
