// The writer's batch arithmetic, independent of any store: de-duplication
// within a batch and the per-minute partial aggregates that the rollup
// tables absorb.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/model.h"

namespace telemetry {

constexpr int64_t kNsPerMinute = 60'000'000'000;

// True if `rows` are in strictly increasing (series, time) order: sorted and
// no two rows with the same key.
bool SortedWithoutRepeatedKeys(const std::vector<RawRow>& rows);

// Sorts `rows` by (series, time), stably, and drops every row whose key an
// earlier row already has: the first given is the one kept, the same choice
// `INSERT … ON CONFLICT DO NOTHING` makes in statement order. Returns the
// number of rows dropped.
int64_t SortAndDropRepeatedKeys(std::vector<RawRow>* rows);

// One (series, minute) partial aggregate, as agg_1m stores it.
struct MinuteRollup {
  int32_t series_id = 0;
  int64_t bucket_ns = 0;  // ts - ts % kNsPerMinute (as Postgres computes it)
  int64_t cnt = 0;
  double sum = 0, min = 0, max = 0;
  int64_t last_ts = 0;
  double last_value = 0;
};

// The per-minute aggregates of numeric and boolean rows (booleans as 0/1;
// strings carry no aggregate) of `rows`, which must satisfy
// SortedWithoutRepeatedKeys. Output in (series, bucket) order, one element
// per key.
std::vector<MinuteRollup> MinuteRollups(const std::vector<RawRow>& rows);

// Folds `from` into `into` (same series or not): counts and sums add, min
// and max combine, the last value is the one with the later last_ts (`into`
// keeps its own on a tie).
void MergeMinuteRollup(MinuteRollup* into, const MinuteRollup& from);

// A closed hour of one series' 1-minute rollups packed into one string, as
// the agg_1m_seg table stores it (format 1, defined in
// db/migrations/0006_rollup_segments.sql; the compactor packs in SQL).
// `minutes` must lie in [hour_ns, hour_ns + 1 h) in increasing order.
std::string EncodeMinuteSegment(int64_t hour_ns, const std::vector<MinuteRollup>& minutes);
// Appends the minutes of a segment to `out` with `series_id`; DATA_LOSS if
// the text is not a format-1 segment.
absl::Status DecodeMinuteSegment(int32_t series_id, int64_t hour_ns, absl::string_view data,
                                 std::vector<MinuteRollup>* out);

}  // namespace telemetry
