// Compaction beside the writer: once an hour is closed and this writer has
// stopped writing to it, its 1-minute rollup rows are packed into one
// segment per series (ReadingWriter::CompactRollupHour, agg_1m_seg), so one
// series' day at 1 minute reads 24 rows instead of 1,440; and (pack_raw) its
// raw rows into one compressed segment per series (PackRawHour,
// raw_readings_seg). See docs/design-storage-layout.md.
#pragma once

#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/reading_writer.h"

namespace telemetry::writer {

struct CompactorOptions {
  // An hour is due this long after it ended (wall clock). Late data that
  // arrives afterwards is merged as usual, only not laid out by series.
  int64_t grace_ns = 3600 * kNsPerSec;
  // ...and once this writer has not written to it for this long: replays and
  // backfills write old hours, which are compacted when they are done.
  int64_t quiet_ns = 300 * kNsPerSec;
  int max_hours_per_round = 24;
  // The warm tier: closed hours of raw rows packed into per-series segments
  // (ReadingWriter::PackRawHour), in steps of about `raw_step_readings`.
  bool pack_raw = true;
  int max_raw_hours_per_round = 4;
  int64_t raw_step_readings = 10'000;
};

struct CompactorMetrics {
  explicit CompactorMetrics(MetricsRegistry* r);
  Counter* hours;
  Counter* rows;
  Counter* failures;
  Counter* vacuums;
  Counter* raw_hours;
  Counter* raw_readings;
  Counter* raw_segments;
  Counter* raw_failures;
  Counter* raw_pack_ms;
  Counter* raw_bytes_freed;
};

class Compactor {
 public:
  Compactor(CompactorOptions options, ReadingWriter* store, const Clock* clock,
            CompactorMetrics* metrics);

  // The writer just stored rows with event times in [from_ns, to_ns].
  void Touched(int64_t from_ns, int64_t to_ns);
  // Compacts the hours that are due (oldest first, at most
  // max_hours_per_round), then (pack_raw) packs the raw rows of the hours
  // that are due (at most max_raw_hours_per_round); returns how many rollup
  // hours it compacted. A round first
  // vacuums what the previous rounds left behind: by then the standby's
  // snapshot (hot_standby_feedback) has moved past the compaction, so the
  // moved rows' old versions can go (right after it they could not).
  absl::StatusOr<int> RunOnce();
  // Vacuums now, retrying every `retry_ns` for up to `max_wait_ns` while
  // old row versions remain that a snapshot still holds (telemetry-admin).
  absl::Status VacuumNow(int64_t max_wait_ns, int64_t retry_ns);
  // Packs the raw hours that are due; returns how many.
  absl::StatusOr<int> PackRawOnce();

 private:
  // Hours written to within quiet_ns (forgetting the older ones).
  std::map<int64_t, int64_t> RecentHours();

  CompactorOptions options_;
  ReadingWriter* store_;
  const Clock* clock_;
  CompactorMetrics* metrics_;
  // Rows moved since the last vacuum that removed their old versions,
  // and how many rounds have tried since.
  int64_t unvacuumed_rows_ = 0;
  int vacuum_tries_ = 0;
  absl::Mutex mu_;
  // Hour start → when (monotonic) this writer last wrote to it.
  std::map<int64_t, int64_t> last_write_ ABSL_GUARDED_BY(mu_);
};

}  // namespace telemetry::writer
