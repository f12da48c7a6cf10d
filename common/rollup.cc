#include "common/rollup.h"

#include <algorithm>

namespace telemetry {
namespace {

bool KeyLess(const RawRow& a, const RawRow& b) {
  return a.series_id != b.series_id ? a.series_id < b.series_id : a.ts_ns < b.ts_ns;
}

bool SameKey(const RawRow& a, const RawRow& b) {
  return a.series_id == b.series_id && a.ts_ns == b.ts_ns;
}

}  // namespace

bool SortedWithoutRepeatedKeys(const std::vector<RawRow>& rows) {
  return std::adjacent_find(rows.begin(), rows.end(), [](const RawRow& a, const RawRow& b) {
           return !KeyLess(a, b);
         }) == rows.end();
}

int64_t SortAndDropRepeatedKeys(std::vector<RawRow>* rows) {
  std::stable_sort(rows->begin(), rows->end(), KeyLess);
  auto end = std::unique(rows->begin(), rows->end(), SameKey);  // keeps the first of each run
  const auto dropped = static_cast<int64_t>(rows->end() - end);
  rows->erase(end, rows->end());
  return dropped;
}

std::vector<MinuteRollup> MinuteRollups(const std::vector<RawRow>& rows) {
  std::vector<MinuteRollup> out;
  for (const RawRow& r : rows) {
    if (r.kind == ValueKind::kString) continue;
    const double v = r.kind == ValueKind::kDouble ? r.d : (r.b ? 1.0 : 0.0);
    // C++ and Postgres both truncate the remainder towards zero.
    const int64_t bucket = r.ts_ns - r.ts_ns % kNsPerMinute;
    if (out.empty() || out.back().series_id != r.series_id || out.back().bucket_ns != bucket) {
      out.push_back({r.series_id, bucket, 1, v, v, v, r.ts_ns, v});
      continue;
    }
    MinuteRollup& m = out.back();
    ++m.cnt;
    m.sum += v;
    m.min = std::min(m.min, v);
    m.max = std::max(m.max, v);
    m.last_ts = r.ts_ns;  // rows come in time order within a series
    m.last_value = v;
  }
  return out;
}

}  // namespace telemetry
