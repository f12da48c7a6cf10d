#include "common/rollup.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/float_bits.h"

namespace telemetry {
namespace {

bool KeyLess(const RawRow& a, const RawRow& b) {
  return a.series_id != b.series_id ? a.series_id < b.series_id : a.ts_ns < b.ts_ns;
}

bool SameKey(const RawRow& a, const RawRow& b) {
  return a.series_id == b.series_id && a.ts_ns == b.ts_ns;
}

constexpr uint8_t kSegmentFormat = 1;
constexpr size_t kSegmentRecord = 49;  // minute, cnt, sum, min, max, last_ts, last

void PutBig64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

uint64_t GetBig64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
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

void MergeMinuteRollup(MinuteRollup* into, const MinuteRollup& from) {
  into->cnt += from.cnt;
  into->sum += from.sum;
  into->min = std::min(into->min, from.min);
  into->max = std::max(into->max, from.max);
  if (from.last_ts > into->last_ts) {
    into->last_ts = from.last_ts;
    into->last_value = from.last_value;
  }
}

std::string EncodeMinuteSegment(int64_t hour_ns, const std::vector<MinuteRollup>& minutes) {
  std::string raw;
  raw.reserve(1 + minutes.size() * kSegmentRecord);
  raw.push_back(static_cast<char>(kSegmentFormat));
  for (const MinuteRollup& m : minutes) {
    raw.push_back(static_cast<char>((m.bucket_ns - hour_ns) / kNsPerMinute));
    PutBig64(&raw, static_cast<uint64_t>(m.cnt));
    PutBig64(&raw, DoubleBits(m.sum));
    PutBig64(&raw, DoubleBits(m.min));
    PutBig64(&raw, DoubleBits(m.max));
    PutBig64(&raw, static_cast<uint64_t>(m.last_ts));
    PutBig64(&raw, DoubleBits(m.last_value));
  }
  return absl::Base64Escape(raw);
}

absl::Status DecodeMinuteSegment(int32_t series_id, int64_t hour_ns, absl::string_view data,
                                 std::vector<MinuteRollup>* out) {
  std::string raw;
  if (!absl::Base64Unescape(data, &raw) || raw.empty() ||
      static_cast<uint8_t>(raw[0]) != kSegmentFormat || (raw.size() - 1) % kSegmentRecord != 0) {
    return absl::DataLossError(absl::StrCat("agg_1m_seg: series ", series_id, " hour ", hour_ns,
                                            " is not a format-1 segment (", data.size(),
                                            " characters)"));
  }
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data()) + 1;
  const size_t n = (raw.size() - 1) / kSegmentRecord;
  out->reserve(out->size() + n);
  for (size_t i = 0; i < n; ++i, p += kSegmentRecord) {
    if (p[0] >= 60) {
      return absl::DataLossError(
          absl::StrCat("agg_1m_seg: series ", series_id, " hour ", hour_ns, " has minute ", p[0]));
    }
    MinuteRollup m;
    m.series_id = series_id;
    m.bucket_ns = hour_ns + p[0] * kNsPerMinute;
    m.cnt = static_cast<int64_t>(GetBig64(p + 1));
    m.sum = DoubleFromBits(GetBig64(p + 9));
    m.min = DoubleFromBits(GetBig64(p + 17));
    m.max = DoubleFromBits(GetBig64(p + 25));
    m.last_ts = static_cast<int64_t>(GetBig64(p + 33));
    m.last_value = DoubleFromBits(GetBig64(p + 41));
    out->push_back(m);
  }
  return absl::OkStatus();
}

}  // namespace telemetry
