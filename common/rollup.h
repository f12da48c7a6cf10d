// The writer's batch arithmetic, independent of any store: de-duplication
// within a batch and the per-minute partial aggregates that the rollup
// tables absorb.
#pragma once

#include <cstdint>
#include <vector>

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

}  // namespace telemetry
