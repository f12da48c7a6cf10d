// The raw-segment codec (common/segment/raw_segment.h): bit-for-bit round
// trips at the edges of every encoding, rejected input, and corruption.
#include "common/segment/raw_segment.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "common/float_bits.h"
#include "common/testing/raw_rows.h"

namespace telemetry::segment {
namespace {

using ::telemetry::testing::DoubleRow;

constexpr int64_t kHour = 1'764'000'000'000'000'000 / kNsPerHour * kNsPerHour;
constexpr int64_t kSec = 1'000'000'000;

std::vector<RawRow> Regular(const std::vector<double>& values, int64_t step = kSec) {
  std::vector<RawRow> rows;
  for (size_t i = 0; i < values.size(); ++i) {
    rows.push_back(DoubleRow(kHour + static_cast<int64_t>(i) * step, values[i]));
  }
  return rows;
}

// Every field equal, doubles by their bits.
void ExpectSame(const std::vector<RawRow>& want, const std::vector<RawRow>& got, int32_t series) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got[i].series_id, series);
    EXPECT_EQ(got[i].ts_ns, want[i].ts_ns);
    EXPECT_EQ(got[i].kind, want[i].kind);
    EXPECT_EQ(got[i].status, want[i].status);
    switch (want[i].kind) {
      case ValueKind::kDouble:
        EXPECT_EQ(DoubleBits(got[i].d), DoubleBits(want[i].d))
            << want[i].d << " came back as " << got[i].d;
        break;
      case ValueKind::kString:
        EXPECT_EQ(got[i].s, want[i].s);
        break;
      case ValueKind::kBool:
        EXPECT_EQ(got[i].b, want[i].b);
        break;
    }
  }
}

const std::vector<FloatCodec> kAllCodecs = {FloatCodec::kRaw, FloatCodec::kGorilla,
                                            FloatCodec::kPolynomial, FloatCodec::kDecimal,
                                            FloatCodec::kSplitZstd};

// Round trip with each codec forced alone (decimal falls back to raw when it
// does not apply) and with the default choice.
void RoundTripAll(const std::vector<RawRow>& rows) {
  std::vector<EncodeOptions> options;
  for (FloatCodec c : kAllCodecs) options.push_back(EncodeOptions{{c}});
  options.push_back(EncodeOptions{});
  for (const EncodeOptions& o : options) {
    SCOPED_TRACE(o.float_codecs.size() == 1 ? FloatCodecName(o.float_codecs[0]) : "default");
    auto seg = EncodeRawSegment(kHour, rows, o);
    ASSERT_TRUE(seg.ok()) << seg.status();
    std::vector<RawRow> got;
    ASSERT_TRUE(DecodeRawSegment(7, kHour, *seg, &got).ok());
    ExpectSame(rows, got, 7);
    std::vector<int64_t> ts;
    ASSERT_TRUE(DecodeRawSegmentTimestamps(kHour, *seg, &ts).ok());
    ASSERT_EQ(ts.size(), rows.size());
    for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(ts[i], rows[i].ts_ns);
  }
}

TEST(RawSegment, OneReading) {
  RoundTripAll({DoubleRow(kHour + 17, 21.5)});
  RoundTripAll({DoubleRow(kHour - 5, -3.25)});  // before the hour: the offset is signed
}

TEST(RawSegment, EdgeDoubles) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> v = {0.0,
                           -0.0,
                           inf,
                           -inf,
                           std::numeric_limits<double>::quiet_NaN(),
                           DoubleFromBits(0x7ff0000000000001),  // signalling NaN payload
                           DoubleFromBits(0xfff8dead0000beef),  // negative NaN with a payload
                           std::numeric_limits<double>::max(),
                           -std::numeric_limits<double>::max(),
                           std::numeric_limits<double>::min(),
                           std::numeric_limits<double>::denorm_min(),
                           -std::numeric_limits<double>::denorm_min(),
                           1e308,
                           1e-308,
                           1.0,
                           1.0,
                           1.0,
                           9007199254740993.0,
                           -9007199254740992.0,
                           0.1,
                           0.2,
                           0.30000000000000004};
  RoundTripAll(Regular(v));
  // Polynomial prediction across NaN, infinities and sign changes.
  RoundTripAll(Regular({inf, 1.0, 2.0, -inf, 3.0, std::nan("7"), 4.0, 5.0}));
  RoundTripAll(Regular({std::numeric_limits<double>::max(), -std::numeric_limits<double>::max(),
                        std::numeric_limits<double>::max()}));
}

TEST(RawSegment, EqualValues) {
  std::vector<double> v(3600, 42.125);
  RoundTripAll(Regular(v));
  auto seg = EncodeRawSegment(kHour, Regular(v));
  ASSERT_TRUE(seg.ok());
  EXPECT_LT(seg->size(), 200u);  // ~1 bit or less a reading
}

TEST(RawSegment, FullHourSmoothAndNoisy) {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> noise(0, 1);
  std::vector<double> smooth, noisy, decimal;
  for (int i = 0; i < 3600; ++i) {
    smooth.push_back(20 + 5 * std::sin(i / 30.0));
    noisy.push_back(20 + 5 * std::sin(i / 30.0) + noise(rng));
    decimal.push_back(std::round((20 + 5 * std::sin(i / 300.0) + 0.2 * noise(rng)) * 10) / 10);
  }
  RoundTripAll(Regular(smooth));
  RoundTripAll(Regular(noisy));
  RoundTripAll(Regular(decimal));
  // Values with one decimal take the decimal codec, far under 8 bytes.
  auto seg = EncodeRawSegment(kHour, Regular(decimal));
  ASSERT_TRUE(seg.ok());
  EXPECT_LT(seg->size(), 3600u * 2);
  std::string d;
  ASSERT_TRUE(EncodeDoubles(FloatCodec::kDecimal, decimal, &d));
  std::string g;
  ASSERT_TRUE(EncodeDoubles(FloatCodec::kGorilla, decimal, &g));
  EXPECT_LT(d.size(), g.size());
  // Full-precision values are not decimal.
  std::string none;
  EXPECT_FALSE(EncodeDoubles(FloatCodec::kDecimal, noisy, &none));
  EXPECT_TRUE(none.empty());
}

TEST(RawSegment, Timestamps) {
  // Regular at 1 Hz: a few bytes for the whole hour's timestamps (the
  // equal values take 57 more: a 7-bit width 0 per block of 64).
  std::vector<double> v(3600, 1.0);
  auto seg = EncodeRawSegment(kHour, Regular(v));
  ASSERT_TRUE(seg.ok());
  EXPECT_LT(seg->size(), 100u);
  // Jitter in nanoseconds, gaps, and huge gaps.
  std::mt19937_64 rng(2);
  std::vector<RawRow> rows;
  int64_t t = kHour + 3;
  for (int i = 0; i < 3600; ++i) {
    rows.push_back(DoubleRow(t, i));
    t += kSec + static_cast<int64_t>(rng() % 2'000'000) - 1'000'000;
    if (i % 500 == 0) t += 37 * kSec;
  }
  RoundTripAll(rows);
  RoundTripAll({DoubleRow(std::numeric_limits<int64_t>::min(), 1), DoubleRow(0, 2),
                DoubleRow(std::numeric_limits<int64_t>::max() - 1, 3),
                DoubleRow(std::numeric_limits<int64_t>::max(), 4)});
  RoundTripAll({DoubleRow(kHour, 1), DoubleRow(kHour + 1, 2)});
  RoundTripAll(
      {DoubleRow(kHour, 1), DoubleRow(kHour + 1, 2), DoubleRow(kHour + kNsPerHour - 1, 3)});
}

TEST(RawSegment, MixedKindsStatusesAndStrings) {
  std::vector<RawRow> rows;
  for (int i = 0; i < 1000; ++i) {
    RawRow r;
    r.ts_ns = kHour + i * kSec;
    switch (i % 7) {
      case 0:
      case 3:
        r.kind = ValueKind::kString;
        r.s = i % 2 ? "running" : (i % 5 ? "" : std::string("nul\0inside", 10));
        break;
      case 1:
        r.kind = ValueKind::kBool;
        r.b = i % 3 == 0;
        break;
      default:
        r.kind = ValueKind::kDouble;
        r.d = i * 0.5;
    }
    r.status = i % 11 == 0 ? (i % 2 ? std::numeric_limits<int32_t>::min() : -3)
                           : (i % 13 ? 0 : 2147483647);
    rows.push_back(r);
  }
  RoundTripAll(rows);
  // All distinct strings: stored plainly.
  std::vector<RawRow> distinct;
  for (int i = 0; i < 300; ++i) {
    RawRow r;
    r.ts_ns = kHour + i;
    r.kind = ValueKind::kString;
    r.s = std::string(static_cast<size_t>(i), static_cast<char>('a' + i % 26));
    distinct.push_back(r);
  }
  RoundTripAll(distinct);
  // Only booleans, only strings of four states (the benchmark's string sensor).
  std::vector<RawRow> bools, states;
  const char* kStates[] = {"ok", "warn", "idle", "running"};
  for (int i = 0; i < 3600; ++i) {
    RawRow b;
    b.ts_ns = kHour + i * kSec;
    b.kind = ValueKind::kBool;
    b.b = (i / 7) % 2 == 0;
    bools.push_back(b);
    RawRow s = b;
    s.kind = ValueKind::kString;
    s.s = kStates[i % 4];
    states.push_back(s);
  }
  RoundTripAll(bools);
  RoundTripAll(states);
  auto seg = EncodeRawSegment(kHour, states);
  ASSERT_TRUE(seg.ok());
  EXPECT_LT(seg->size(), 3600u / 3);  // 2 bits a reading and the dictionary
}

TEST(RawSegment, RejectsUnsortedRepeatedAndEmpty) {
  auto empty = EncodeRawSegment(kHour, {});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  auto unsorted = EncodeRawSegment(kHour, {DoubleRow(kHour + 2, 1), DoubleRow(kHour + 1, 2)});
  EXPECT_EQ(unsorted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unsorted.status().message().find("strictly increasing"), std::string::npos);
  auto repeated = EncodeRawSegment(kHour, {DoubleRow(kHour + 1, 1), DoubleRow(kHour + 1, 2)});
  EXPECT_EQ(repeated.status().code(), absl::StatusCode::kInvalidArgument);
}

std::string WithCrc(std::string body) {
  const auto crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  for (int k = 0; k < 4; ++k) body.push_back(static_cast<char>(crc >> (8 * k)));
  return body;
}

std::vector<RawRow> Sample() {
  std::vector<RawRow> rows;
  const char* kStates[] = {"ok", "warn"};
  for (int i = 0; i < 200; ++i) {
    RawRow r =
        DoubleRow(kHour + i * kSec + (i % 3) * 1000, 20 + std::sin(i / 10.0), i % 17 ? 0 : 5);
    if (i % 9 == 0) {
      r.kind = ValueKind::kString;
      r.s = kStates[i % 2];
    }
    if (i % 10 == 0) {
      r.kind = ValueKind::kBool;
      r.b = true;
    }
    rows.push_back(r);
  }
  return rows;
}

TEST(RawSegment, CorruptionIsDataLoss) {
  const std::vector<RawRow> rows = Sample();
  for (FloatCodec c : kAllCodecs) {
    SCOPED_TRACE(FloatCodecName(c));
    auto seg = EncodeRawSegment(kHour, rows, EncodeOptions{{c}});
    ASSERT_TRUE(seg.ok());
    std::vector<RawRow> out;
    // Every truncation.
    for (size_t len = 0; len < seg->size(); ++len) {
      absl::Status st = DecodeRawSegment(1, kHour, absl::string_view(*seg).substr(0, len), &out);
      ASSERT_EQ(st.code(), absl::StatusCode::kDataLoss) << len;
    }
    // Every single flipped bit: the checksum catches it.
    for (size_t i = 0; i < seg->size(); ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string bad = *seg;
        bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
        ASSERT_EQ(DecodeRawSegment(1, kHour, bad, &out).code(), absl::StatusCode::kDataLoss) << i;
      }
    }
    EXPECT_TRUE(out.empty());
    // Damage behind a recomputed checksum: the structure checks answer
    // DATA_LOSS or a decoding; never a crash or an overread (ASan pass).
    std::mt19937_64 rng(static_cast<uint64_t>(c));
    const std::string body = seg->substr(0, seg->size() - 4);
    for (int round = 0; round < 3000; ++round) {
      std::string bad = body;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits; ++e) {
        bad[rng() % bad.size()] = static_cast<char>(rng());
      }
      if (rng() % 4 == 0) bad.resize(rng() % bad.size());
      out.clear();
      absl::Status st = DecodeRawSegment(1, kHour, WithCrc(bad), &out);
      if (!st.ok()) {
        ASSERT_EQ(st.code(), absl::StatusCode::kDataLoss);
      }
    }
  }
  std::vector<RawRow> out;
  EXPECT_EQ(
      DecodeRawSegment(1, kHour, WithCrc(std::string("\x02\x01\x00\x00\x00\x00\x00\x00", 8)), &out)
          .code(),
      absl::StatusCode::kDataLoss);  // unknown version
}

TEST(RawSegment, AppendsAfterExistingRows) {
  std::vector<RawRow> out(3);
  auto seg = EncodeRawSegment(kHour, Regular({1, 2}));
  ASSERT_TRUE(seg.ok());
  ASSERT_TRUE(DecodeRawSegment(4, kHour, *seg, &out).ok());
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[3].d, 1);
  EXPECT_EQ(out[4].series_id, 4);
}

}  // namespace
}  // namespace telemetry::segment
