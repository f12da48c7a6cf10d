// The one interface in front of the raw and rollup tables. Every read and
// write of readings goes through it, so the storage layout (today: narrow
// rows in day-partitioned tables plus agg_1m/agg_1h) can change without
// touching the services. Postgres implementation: reading_store_pg.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/kafka.h"
#include "common/model.h"

namespace telemetry {

class PgPool;

struct RangeQuery {
  int64_t tenant_id = 0;
  std::string device;
  std::vector<std::string> sensors;  // empty = all
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  int64_t limit = 0;  // 0 = none
  int32_t page_size = 1000;
  // Resume after this (sensor, unit, timestamp); empty sensor = from start.
  std::string after_sensor;
  std::string after_unit;
  int64_t after_ts_ns = 0;
};

struct AggregateQuery {
  int64_t tenant_id = 0;
  std::string device;                // "" = every device (of `project`, or of the tenant)
  std::string project;               // "" = any project
  std::vector<std::string> sensors;  // empty = all
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  // A multiple of one minute (served from agg_1m) or of one hour (agg_1h).
  int64_t bucket_ns = 60 * 1'000'000'000LL;
  bool group_by_device = true;
  // Which values the caller needs (the count is always returned); the
  // others may come back as 0, which saves formatting and parsing them.
  bool need_sum = true, need_min = true, need_max = true, need_last = true;
};

// One bucket of one series (or of one sensor over devices).
struct AggregateRow {
  std::string device;  // "" when not grouped by device
  std::string sensor;
  int64_t bucket_ns = 0;
  int64_t count = 0;
  double sum = 0, min = 0, max = 0, last = 0;
};

struct PlaybackRows {
  std::vector<ReadingRow> before;  // per sensor, the last reading before the window
  std::vector<ReadingRow> inside;  // every reading in the window, by (sensor, time)
  std::vector<ReadingRow> after;   // per sensor, the first reading after it
};

class ReadingStore {
 public:
  virtual ~ReadingStore() = default;

  // Writer side. Atomically: inserts `rows` (duplicates of stored (series,
  // timestamp) are dropped), merges only the newly inserted numeric rows into
  // the 1-minute and 1-hour rollups, and records `next_offsets` as applied
  // for `topic` (never moving an offset backwards).
  virtual absl::StatusOr<ApplyResult> Apply(const std::vector<RawRow>& rows,
                                            const std::string& topic,
                                            const std::vector<PartitionOffset>& next_offsets) = 0;
  // Next offset to apply per partition of `topic` (absent: nothing applied).
  virtual absl::StatusOr<std::map<int32_t, int64_t>> AppliedOffsets(const std::string& topic) = 0;
  // Records that offsets [from, to) of a partition were lost before being
  // applied (dropped by the broker).
  virtual absl::Status RecordLogGap(const std::string& topic, int32_t partition,
                                    int64_t from_offset, int64_t to_offset) = 0;
  // Offset ranges [from, to) per partition of `topic` that were recorded as
  // dropped by the broker before they were applied (RecordLogGap): writes
  // acknowledged there will never be readable.
  virtual absl::StatusOr<std::map<int32_t, std::vector<std::pair<int64_t, int64_t>>>>
  DroppedOffsets(const std::string& topic) = 0;
  // The partition's log restarted below the applied offset `applied`: sets
  // its next offset to `restart_at` (downwards, unlike Apply) and records
  // the reset.
  virtual absl::Status ResetOffset(const std::string& topic, int32_t partition, int64_t applied,
                                   int64_t restart_at) = 0;
  // Creates the day partitions covering [from_ns, to_ns] if missing.
  virtual absl::Status EnsurePartitions(int64_t from_ns, int64_t to_ns) = 0;

  // Physical layout (reads get faster, content never changes). Hours with
  // 1-minute rollups that start before `before_ns` and were not compacted
  // yet, oldest first, at most `limit`.
  virtual absl::StatusOr<std::vector<int64_t>> UncompactedRollupHours(int64_t before_ns,
                                                                      int limit) = 0;
  // Moves the 1-minute rollup rows of the hour starting at `hour_ns` into
  // one packed segment per series (agg_1m_seg) and records the hour as
  // compacted; returns the rows moved (0 when another compactor already did
  // it). Rows written to the hour later (late data) stay rows; reads merge
  // them with the segment.
  virtual absl::StatusOr<int64_t> CompactRollupHour(int64_t hour_ns) = 0;
  // Removes the old row versions compactions left behind (until then every
  // read of a compacted hour visits them too, which makes it slower than
  // before). Returns how many dead row versions remain: those a running
  // query or the standby (hot_standby_feedback) may still need; a later call
  // removes them.
  virtual absl::StatusOr<int64_t> VacuumRollups() = 0;

  // Reader side; always scoped to one tenant.
  virtual absl::StatusOr<std::vector<ReadingRow>> Latest(
      int64_t tenant_id, const std::vector<std::string>& devices,
      const std::vector<std::string>& sensors) = 0;
  // Streams pages ordered by (sensor, unit, timestamp). `page` returns false
  // to stop early. Memory is bounded by the page size.
  virtual absl::Status Range(const RangeQuery& query,
                             const std::function<bool(std::vector<ReadingRow>&&)>& page) = 0;
  // Buckets from the rollup tables (never raw rows), ordered by (device,
  // sensor, bucket); empty buckets are absent.
  virtual absl::StatusOr<std::vector<AggregateRow>> Aggregate(const AggregateQuery& query) = 0;
  // Readings of a device in [from_ns, to_ns] plus each sensor's neighbours.
  virtual absl::StatusOr<PlaybackRows> Playback(int64_t tenant_id, const std::string& device,
                                                const std::vector<std::string>& sensors,
                                                int64_t from_ns, int64_t to_ns) = 0;
};

std::unique_ptr<ReadingStore> NewPgReadingStore(PgPool* pool);

// UTC day index (days since the epoch) of a nanosecond timestamp.
inline int64_t DayOf(int64_t ts_ns) {
  constexpr int64_t kNsPerDay = 86'400'000'000'000;
  return ts_ns >= 0 ? ts_ns / kNsPerDay : -((-ts_ns + kNsPerDay - 1) / kNsPerDay);
}

}  // namespace telemetry
