#include "common/rollup.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <tuple>

#include "absl/strings/escaping.h"

namespace telemetry {
namespace {

RawRow Num(int32_t series, int64_t ts, double v) {
  RawRow r;
  r.series_id = series;
  r.ts_ns = ts;
  r.d = v;
  return r;
}

TEST(Rollup, SortAndDropKeepsTheFirstOfEachKeyInSeriesTimeOrder) {
  std::vector<RawRow> rows = {Num(2, 5, 1), Num(1, 9, 2), Num(2, 5, 3),
                              Num(1, 3, 4), Num(2, 5, 5), Num(1, 9, 6)};
  EXPECT_FALSE(SortedWithoutRepeatedKeys(rows));
  EXPECT_EQ(SortAndDropRepeatedKeys(&rows), 3);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(std::make_tuple(rows[0].series_id, rows[0].ts_ns, rows[0].d),
            std::make_tuple(1, 3, 4.0));
  EXPECT_EQ(std::make_tuple(rows[1].series_id, rows[1].ts_ns, rows[1].d),
            std::make_tuple(1, 9, 2.0));
  EXPECT_EQ(std::make_tuple(rows[2].series_id, rows[2].ts_ns, rows[2].d),
            std::make_tuple(2, 5, 1.0));
  EXPECT_TRUE(SortedWithoutRepeatedKeys(rows));
  EXPECT_EQ(SortAndDropRepeatedKeys(&rows), 0);
  EXPECT_TRUE(SortedWithoutRepeatedKeys({}));
  EXPECT_FALSE(SortedWithoutRepeatedKeys({Num(1, 2, 0), Num(1, 2, 1)}));
}

TEST(Rollup, MinuteRollupsEqualAPerKeyRecomputation) {
  std::mt19937_64 rng(7);
  std::vector<RawRow> rows;
  for (int i = 0; i < 5000; ++i) {
    RawRow r =
        Num(static_cast<int32_t>(rng() % 7), static_cast<int64_t>(rng() % (10 * kNsPerMinute)),
            static_cast<double>(static_cast<int64_t>(rng() % 2001) - 1000));
    switch (rng() % 5) {
      case 0:
        r.kind = ValueKind::kString;
        r.s = "x";
        break;
      case 1:
        r.kind = ValueKind::kBool;
        r.b = rng() % 2 == 0;
        break;
      default:
        break;
    }
    rows.push_back(r);
  }
  SortAndDropRepeatedKeys(&rows);
  // The same aggregates, computed per key from scratch in arrival order.
  struct Want {
    int64_t cnt = 0;
    double sum = 0, min = 1e300, max = -1e300;
    int64_t last_ts = -1;
    double last = 0;
  };
  std::map<std::pair<int32_t, int64_t>, Want> want;
  for (const RawRow& r : rows) {
    if (r.kind == ValueKind::kString) continue;
    const double v = r.kind == ValueKind::kBool ? (r.b ? 1 : 0) : r.d;
    Want& w = want[{r.series_id, r.ts_ns / kNsPerMinute * kNsPerMinute}];
    ++w.cnt;
    w.sum += v;
    w.min = std::min(w.min, v);
    w.max = std::max(w.max, v);
    if (r.ts_ns > w.last_ts) {
      w.last_ts = r.ts_ns;
      w.last = v;
    }
  }
  const std::vector<MinuteRollup> got = MinuteRollups(rows);
  ASSERT_EQ(got.size(), want.size());
  auto it = want.begin();
  for (const MinuteRollup& m : got) {
    EXPECT_EQ(std::make_pair(m.series_id, m.bucket_ns), it->first);
    EXPECT_EQ(m.cnt, it->second.cnt);
    EXPECT_EQ(m.sum, it->second.sum);  // integers: exact in any order
    EXPECT_EQ(m.min, it->second.min);
    EXPECT_EQ(m.max, it->second.max);
    EXPECT_EQ(m.last_ts, it->second.last_ts);
    EXPECT_EQ(m.last_value, it->second.last);
    ++it;
  }
}

TEST(Rollup, StringsHaveNoAggregateAndBucketsFollowPostgresArithmetic) {
  RawRow s = Num(1, kNsPerMinute + 5, 0);
  s.kind = ValueKind::kString;
  EXPECT_TRUE(MinuteRollups({s}).empty());
  // ts % 60 s truncates towards zero, as in Postgres: -1 ns is in bucket 0.
  auto m = MinuteRollups({Num(1, -kNsPerMinute - 1, 1), Num(1, -1, 2), Num(1, 0, 3)});
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].bucket_ns, -kNsPerMinute);
  EXPECT_EQ(m[1].bucket_ns, 0);
  EXPECT_EQ(m[1].cnt, 2);
  EXPECT_EQ(m[1].last_value, 3);
}

TEST(MinuteSegment, RoundTripsEveryValueExactly) {
  const int64_t hour = 1'700'000'000LL / 3600 * 3600 * 1'000'000'000LL;
  std::vector<MinuteRollup> in;
  in.push_back({0, hour, 3, 0.1 + 0.2, -0.0, 1e308, hour + 59'999'999'999, -2.5});
  in.push_back({0, hour + 7 * kNsPerMinute, 1, 5e-324, 5e-324, 5e-324, hour + 7 * kNsPerMinute, 0});
  in.push_back({0, hour + 59 * kNsPerMinute, int64_t{1} << 40, -1.7976931348623157e308,
                -1.7976931348623157e308, 42, hour + 59 * kNsPerMinute + 1, 42});
  const std::string text = EncodeMinuteSegment(hour, in);
  // Base64 of 1 + 3 * 49 bytes: what Postgres' encode(…, 'base64') gives
  // without its line breaks.
  EXPECT_EQ(text.size(), (1 + 3 * 49 + 2) / 3 * 4);
  std::vector<MinuteRollup> out = {{9, 1, 1, 1, 1, 1, 1, 1}};  // appended to, not replaced
  ASSERT_TRUE(DecodeMinuteSegment(17, hour, text, &out).ok());
  ASSERT_EQ(out.size(), 4u);
  for (size_t i = 0; i < in.size(); ++i) {
    const MinuteRollup &a = in[i], &b = out[i + 1];
    EXPECT_EQ(b.series_id, 17);
    EXPECT_EQ(b.bucket_ns, a.bucket_ns);
    EXPECT_EQ(b.cnt, a.cnt);
    // Bit for bit (so -0.0 stays -0.0).
    EXPECT_EQ(std::memcmp(&b.sum, &a.sum, sizeof(double)), 0) << i;
    EXPECT_EQ(std::memcmp(&b.min, &a.min, sizeof(double)), 0) << i;
    EXPECT_EQ(std::memcmp(&b.max, &a.max, sizeof(double)), 0) << i;
    EXPECT_EQ(b.last_ts, a.last_ts);
    EXPECT_EQ(b.last_value, a.last_value);
  }
}

TEST(MinuteSegment, AnythingButAFormatOneSegmentIsDataLoss) {
  const int64_t hour = 0;
  const std::string good = EncodeMinuteSegment(hour, {{0, 0, 1, 1, 1, 1, 1, 1}});
  std::vector<MinuteRollup> out;
  EXPECT_TRUE(DecodeMinuteSegment(1, hour, good, &out).ok());
  for (const std::string& bad :
       {std::string(""), std::string("not base64!"), good.substr(0, good.size() - 4),
        EncodeMinuteSegment(hour, {}).replace(0, 2, "Ag"),                      // version byte 2
        absl::Base64Escape(std::string(1, '\1') + std::string(49, '\x3c'))}) {  // minute 60
    out.clear();
    absl::Status st = DecodeMinuteSegment(1, hour, bad, &out);
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << "'" << bad << "'";
    EXPECT_NE(st.message().find("agg_1m_seg"), std::string::npos) << st;
  }
}

TEST(MinuteSegment, MergeAddsCombinesAndKeepsTheNewerLast) {
  MinuteRollup a{1, 0, 2, 10, 3, 7, 100, 7};
  MinuteRollup b{2, 0, 1, 4, 4, 4, 90, 4};
  MergeMinuteRollup(&a, b);  // older last: a keeps its own
  EXPECT_EQ(a.cnt, 3);
  EXPECT_EQ(a.sum, 14);
  EXPECT_EQ(a.min, 3);
  EXPECT_EQ(a.max, 7);
  EXPECT_EQ(a.last_ts, 100);
  EXPECT_EQ(a.last_value, 7);
  MergeMinuteRollup(&a, MinuteRollup{3, 0, 1, -1, -1, -1, 101, -1});
  EXPECT_EQ(a.min, -1);
  EXPECT_EQ(a.last_ts, 101);
  EXPECT_EQ(a.last_value, -1);
  MergeMinuteRollup(&a, MinuteRollup{3, 0, 1, 9, 9, 9, 101, 9});  // a tie keeps the first
  EXPECT_EQ(a.last_value, -1);
  EXPECT_EQ(a.max, 9);
}

}  // namespace
}  // namespace telemetry
