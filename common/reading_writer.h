// The write side of the readings: what the writer (and its compactor) need
// to apply Kafka batches exactly once. WriterProgress, the offsets applied
// and the ranges the broker dropped, is also read by ingest (writer lag) and
// the query service (consistency tokens). Postgres implementation in
// common/pg/reading_writer.cc, fake in common/testing/fakes.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"

namespace telemetry {

// How far the writer got on a topic (stored next to the data it applied).
class WriterProgress {
 public:
  virtual ~WriterProgress() = default;
  // Next offset to apply per partition of `topic` (absent: nothing applied).
  virtual absl::StatusOr<std::map<int32_t, int64_t>> AppliedOffsets(const std::string& topic) = 0;
  // Offset ranges [from, to) per partition of `topic` that were recorded as
  // dropped by the broker before they were applied (RecordLogGap): writes
  // acknowledged there will never be readable.
  virtual absl::StatusOr<std::map<int32_t, std::vector<std::pair<int64_t, int64_t>>>>
  DroppedOffsets(const std::string& topic) = 0;
  // The time (ns since the epoch) through which every reading produced to
  // `topic` has been applied: the oldest of its partitions' (RecordFreshness);
  // absent when none was recorded.
  virtual absl::StatusOr<std::optional<int64_t>> FreshThrough(const std::string& topic) = 0;
};

class ReadingWriter : public WriterProgress {
 public:
  // Atomically: inserts `rows` (duplicates of stored (series,
  // timestamp) are dropped), merges only the newly inserted numeric rows into
  // the 1-minute and 1-hour rollups, and records `next_offsets` as applied
  // for `topic` (never moving an offset backwards).
  virtual absl::StatusOr<ApplyResult> Apply(const std::vector<RawRow>& rows,
                                            const std::string& topic,
                                            const std::vector<PartitionOffset>& next_offsets) = 0;
  // Records that offsets [from, to) of a partition were lost before being
  // applied (dropped by the broker).
  virtual absl::Status RecordLogGap(const std::string& topic, int32_t partition,
                                    int64_t from_offset, int64_t to_offset) = 0;
  // The partition's log restarted below the applied offset `applied`: sets
  // its next offset to `restart_at` (downwards, unlike Apply) and records
  // the reset.
  virtual absl::Status ResetOffset(const std::string& topic, int32_t partition, int64_t applied,
                                   int64_t restart_at) = 0;
  // Records, per partition of `topic`, the time through which every reading
  // produced to it has been applied (never moving one backwards).
  virtual absl::Status RecordFreshness(const std::string& topic,
                                       const std::map<int32_t, int64_t>& fresh_through_ns) = 0;
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
  // The warm tier (docs/design-storage-layout.md, "Raw segments"). Hours
  // that start before `before_ns` and hold raw rows not in segments yet:
  // never packed, interrupted while packing, or with late rows since; oldest
  // first, at most `limit`.
  virtual absl::StatusOr<std::vector<int64_t>> UnpackedRawHours(int64_t before_ns, int limit) = 0;
  // Moves the raw rows of the hour starting at `hour_ns` into one segment
  // per series (raw_readings_seg), merged with the series' segment when the
  // hour was packed before, in steps of about `step_readings` readings (one
  // transaction each: an interrupted hour is resumed by the next call).
  // Readings stay exactly once: a writer finds them in the segments.
  virtual absl::StatusOr<RawPackResult> PackRawHour(int64_t hour_ns, int64_t step_readings) = 0;
  // Empties the day partitions of raw rows whose every hour is packed (no
  // late rows pending) and that hold no live row but still take space: the
  // moved rows' space is never reused otherwise (closed days get no new
  // rows). Returns the bytes freed. Skips a day whose lock it cannot get
  // within a few milliseconds (a reader or writer on it): the next call
  // tries again.
  virtual absl::StatusOr<int64_t> TruncatePackedDays(int64_t before_ns) = 0;
  // Removes the old row versions compactions left behind (until then every
  // read of a compacted hour visits them too, which makes it slower than
  // before). Returns how many dead row versions remain: those a running
  // query or the standby (hot_standby_feedback) may still need; a later call
  // removes them.
  virtual absl::StatusOr<int64_t> VacuumRollups() = 0;
};

// UTC day index (days since the epoch) of a nanosecond timestamp.
inline int64_t DayOf(int64_t ts_ns) {
  constexpr int64_t kNsPerDay = 86'400'000'000'000;
  return ts_ns >= 0 ? ts_ns / kNsPerDay : -((-ts_ns + kNsPerDay - 1) / kNsPerDay);
}

}  // namespace telemetry
