// raw_seg_unpack (db/migrations/0009_raw_segment_sql.sql), the SQL decoder of
// the raw segments, against the C++ codec (common/segment/raw_segment.h):
// segments encoded in C++ with every float codec over varied readings come
// back from Postgres reading for reading, doubles bit for bit (a NaN as a
// NaN); split-zstd, truncated and inconsistent segments raise.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/float_bits.h"
#include "common/segment/bits.h"
#include "common/segment/raw_segment.h"
#include "common/testing/raw_rows.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

using segment::DecodeRawSegment;
using segment::EncodeOptions;
using segment::EncodeRawSegment;
using segment::FloatCodec;
using segment::kNsPerHour;

constexpr int64_t kHour = 1'764'000'000'000'000'000 / kNsPerHour * kNsPerHour;
constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kMs = 1'000'000;

// `values` one a second from the hour.
std::vector<RawRow> EverySecond(const std::vector<double>& values) {
  std::vector<RawRow> rows;
  for (size_t i = 0; i < values.size(); ++i) {
    rows.push_back(DoubleRow(kHour + static_cast<int64_t>(i) * kSec, values[i]));
  }
  return rows;
}

struct Case {
  std::string name;
  int64_t hour = kHour;
  std::vector<RawRow> rows;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  std::mt19937_64 rng(20240917);
  auto add = [&cases](std::string name, std::vector<RawRow> rows, int64_t hour = kHour) {
    cases.push_back({std::move(name), hour, std::move(rows)});
  };

  add("one_reading", {DoubleRow(kHour + 17, 21.5)});
  add("one_reading_before_the_hour", {DoubleRow(kHour - 5, -3.25, 7)});
  add("two_readings", {DoubleRow(kHour + 3 * kSec, 1.0), DoubleRow(kHour + 4 * kSec, 1.5, -1)});

  std::vector<double> v(3600);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = 20 + 5 * std::sin(2 * M_PI * static_cast<double>(i) / 3600.0);
  add("sine_1hz", EverySecond(v));

  {  // 10 Hz, timestamps in ms with jitter and gaps, noisy values
    std::vector<RawRow> rows;
    std::normal_distribution<double> noise(0, 0.8);
    std::uniform_int_distribution<int64_t> jitter(-20, 20);
    int64_t t = kHour + 250 * kMs;
    for (int i = 0; rows.size() < 3000; ++i) {
      t += 100 * kMs + jitter(rng) * kMs;
      if (i % 500 == 499) t += 37 * kSec;  // a gap
      rows.push_back(DoubleRow(t, 50 + noise(rng)));
    }
    add("noisy_jittered_ms", std::move(rows));
  }
  {  // ns timestamps (gcd 1), a long gap in the middle
    std::vector<RawRow> rows;
    std::uniform_int_distribution<int64_t> step(1, 999'999'999);
    int64_t t = kHour;
    for (int i = 0; i < 700; ++i) {
      t += step(rng) + (i == 350 ? 40 * 60 * kSec : 0);
      rows.push_back(DoubleRow(t, std::cos(i / 10.0)));
    }
    add("ns_jitter_long_gap", std::move(rows));
  }
  {  // 0.1-quantized (decimal, e = 1): (double)i / 10 of a random walk
    std::vector<double> q(3600);
    std::uniform_int_distribution<int> walk(-3, 3);
    int64_t i10 = 215;
    for (double& x : q) {
      i10 += walk(rng);
      x = static_cast<double>(i10) / 10;
    }
    add("quantized_0_1", EverySecond(q));
  }
  {  // a counter (integers), and decimals down to 1e-12
    std::vector<double> c(3600);
    std::poisson_distribution<int> events(4);
    double total = 1e6;
    for (double& x : c) x = total += events(rng);
    add("counter", EverySecond(c));
    std::vector<double> d = {-12.345, 0.001, 123456.789, -0.5, 0, 2.5e-12, -9.999999999999};
    add("decimals", EverySecond(d));
  }
  {  // integer sequences whose best polynomial orders are 0 to 4 (codec 3, e = 0)
    std::uniform_int_distribution<int> small(0, 999);
    std::vector<double> random(200), constant(200, 42), linear(200), square(200), cube(200);
    for (int i = 0; i < 200; ++i) {
      random[i] = small(rng);
      linear[i] = 1000 + 7 * i;
      square[i] = 3.0 * i * i - 5 * i;
      cube[i] = static_cast<double>(i) * i * i - 100.0 * i * i;
    }
    add("order_random", EverySecond(random));
    add("order_constant", EverySecond(constant));
    add("order_linear", EverySecond(linear));
    add("order_square", EverySecond(square));
    add("order_cube", EverySecond(cube));
  }
  {
    const double inf = std::numeric_limits<double>::infinity();
    const double max = std::numeric_limits<double>::max();
    const double min = std::numeric_limits<double>::min();
    const double denorm = std::numeric_limits<double>::denorm_min();
    add("extreme_doubles", EverySecond({0.0,
                                        -0.0,
                                        inf,
                                        -inf,
                                        max,
                                        -max,
                                        min,
                                        -min,
                                        denorm,
                                        -denorm,
                                        DoubleFromBits(0x000FFFFFFFFFFFFF),
                                        1.0,
                                        std::nextafter(1.0, 2.0),
                                        -1.0,
                                        0.0,
                                        -denorm,
                                        M_PI,
                                        -max,
                                        denorm,
                                        1e308,
                                        -1e-308,
                                        0.0,
                                        inf}));
    add("gorilla_full_width", EverySecond({0.0, -denorm, 0.0}));  // an XOR of 64 significant bits
    add("with_nans", EverySecond({1.0, std::numeric_limits<double>::quiet_NaN(),
                                  DoubleFromBits(0xFFF0000000000123), -inf,
                                  DoubleFromBits(0x7FF8000000000001), 2.0}));
  }
  {  // every kind, status codes at the extremes, dictionary strings
    std::vector<RawRow> rows;
    const std::vector<std::string> words = {"ok", "", "überhitzt 🌡️ 温度", "warn", "ok"};
    const std::vector<int32_t> statuses = {
        0, 0, -1, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max(), 0,
        3, 3, 3};
    for (int i = 0; i < 400; ++i) {
      const int64_t t = kHour + i * 2 * kSec + (i % 3) * kMs;
      const int32_t st = statuses[static_cast<size_t>(i / 7) % statuses.size()];
      switch (i % 5) {
        case 0:
        case 3:
          rows.push_back(StringRow(t, words[static_cast<size_t>(i / 5) % words.size()], st));
          break;
        case 1:
          rows.push_back(BoolRow(t, (i / 5) % 3 == 0, st));
          break;
        default:
          rows.push_back(DoubleRow(t, static_cast<double>(i) / 4, st));
      }
    }
    add("mixed_kinds", std::move(rows));
  }
  {  // plain strings (all different, some longer than 127 bytes), no doubles
    std::vector<RawRow> rows;
    for (int i = 0; i < 300; ++i) {
      std::string s = absl::StrCat("msg ", i, " Ωμέγα ✓");
      if (i % 7 == 0) s.append(200 + static_cast<size_t>(i), 'x');
      if (i == 150) s.clear();
      rows.push_back(StringRow(kHour + i * kSec, std::move(s), i % 11 == 0 ? 500 : 0));
    }
    add("plain_strings", std::move(rows));
  }
  {
    std::vector<RawRow> rows;
    rows.push_back(StringRow(kHour + kSec, "long " + std::string(300, 'y')));
    for (int i = 2; i < 50; ++i) rows.push_back(StringRow(kHour + i * kSec, i % 2 ? "a" : "b"));
    add("dictionary_long_entry", std::move(rows));
  }
  {
    std::vector<RawRow> rows;
    for (int i = 0; i < 13; ++i) rows.push_back(BoolRow(kHour + i * 60 * kSec, i % 4 != 1));
    add("only_bools", std::move(rows));
  }
  // Timestamps far apart: the gaps and delta-of-deltas wrap in 64 bits (in
  // SQL, the numeric path).
  const int64_t min = std::numeric_limits<int64_t>::min(),
                max = std::numeric_limits<int64_t>::max();
  add("extreme_timestamps",
      {DoubleRow(min + 1, 1), DoubleRow(-1, 2), DoubleRow(0, 3), DoubleRow(5, 4),
       DoubleRow(max, 5)},
      0);
  add("extreme_regular_timestamps", {DoubleRow(min + 1, 1), DoubleRow(0, 2), DoubleRow(max, 3)}, 0);
  add("extreme_two_timestamps", {DoubleRow(min, 1), DoubleRow(max, 2)}, 0);
  add("extreme_gaps", {DoubleRow(min, 1), DoubleRow(max - 1, 2), DoubleRow(max, 3)},
      0);  // 2^64 - 2, 1
  return cases;
}

// What a segment uses: timestamp mode, float codec, polynomial order, string
// mode (-1: none).
struct Layout {
  int ts_mode = -1, codec = -1, order = -1, string_mode = -1;
};

Layout LayoutOf(const std::string& seg) {
  Layout l;
  segment::ByteReader r(absl::string_view(seg).substr(0, seg.size() - 4));
  uint8_t version;
  uint64_t n;
  absl::string_view ts, kind, status, dbl, str, bools;
  if (!r.Byte(&version) || !r.Varint(&n) || !r.Section(&ts) || !r.Section(&kind) ||
      !r.Section(&status) || !r.Section(&dbl) || !r.Section(&str) || !r.Section(&bools)) {
    ADD_FAILURE() << "unreadable segment";
    return l;
  }
  l.ts_mode = static_cast<uint8_t>(ts[0]);
  if (!dbl.empty()) {
    l.codec = static_cast<uint8_t>(dbl[0]);
    if (l.codec == 2 && dbl.size() > 1) l.order = static_cast<uint8_t>(dbl[1]);
    if (l.codec == 3 && dbl.size() > 2) l.order = static_cast<uint8_t>(dbl[2]);
  }
  if (!str.empty()) l.string_mode = static_cast<uint8_t>(str[0]);
  return l;
}

// A reading as raw_seg_unpack returns it: value_double as the hex of
// float8send (its IEEE bits, big-endian), NULLs as "NULL".
struct SqlRow {
  int64_t ts = 0;
  std::string dbl, text, boolean, status;
};

std::string Hex64(uint64_t b) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(b));
  return buf;
}

SqlRow Expected(const RawRow& r) {
  SqlRow e;
  e.ts = r.ts_ns;
  e.dbl = r.kind == ValueKind::kDouble ? Hex64(DoubleBits(r.d)) : "NULL";
  e.text = r.kind == ValueKind::kString ? r.s : "NULL";
  e.boolean = r.kind == ValueKind::kBool ? (r.b ? "t" : "f") : "NULL";
  e.status = r.status == 0 ? "NULL" : std::to_string(r.status);
  return e;
}

class RawSegmentSql : public ::testing::Test {
 protected:
  RawSegmentSql() : conn_(RequireEnv("TELEMETRY_PG_PRIMARY")) { conn_.set_client_encoding("UTF8"); }

  std::vector<SqlRow> Unpack(int64_t hour, const std::string& seg) {
    pqxx::nontransaction tx(conn_);
    const pqxx::result res = tx.exec_params(
        "SELECT ts, encode(float8send(value_double), 'hex'), value_text, value_bool, status_code "
        "FROM raw_seg_unpack($1, $2)",
        hour, pqxx::binarystring(seg.data(), seg.size()));
    std::vector<SqlRow> out;
    for (const auto& row : res) {
      SqlRow r;
      r.ts = row[0].as<int64_t>();
      std::string* fields[] = {&r.dbl, &r.text, &r.boolean, &r.status};
      for (int k = 0; k < 4; ++k) *fields[k] = row[k + 1].is_null() ? "NULL" : row[k + 1].c_str();
      out.push_back(std::move(r));
    }
    return out;
  }

  // The error raw_seg_unpack raises for `seg` ("" if none).
  std::string UnpackError(int64_t hour, const std::string& seg) {
    try {
      Unpack(hour, seg);
    } catch (const pqxx::sql_error& e) {
      return e.what();
    }
    return "";
  }

  pqxx::connection conn_;
};

// Every reading of `rows` comes back from SQL.
void ExpectUnpacked(const std::vector<RawRow>& rows, const std::vector<SqlRow>& got) {
  ASSERT_EQ(got.size(), rows.size());
  int mismatches = 0;
  for (size_t i = 0; i < rows.size() && mismatches < 5; ++i) {
    const SqlRow want = Expected(rows[i]);
    const SqlRow& g = got[i];
    // A NaN comes back as float8's NaN (sign and payload not kept).
    const bool nan = rows[i].kind == ValueKind::kDouble && std::isnan(rows[i].d);
    const bool dbl_ok =
        nan ? g.dbl != "NULL" && std::isnan(DoubleFromBits(std::stoull(g.dbl, nullptr, 16)))
            : g.dbl == want.dbl;
    if (g.ts == want.ts && dbl_ok && g.text == want.text && g.boolean == want.boolean &&
        g.status == want.status) {
      continue;
    }
    ++mismatches;
    ADD_FAILURE() << "reading " << i << ": want ts " << want.ts << " double " << want.dbl
                  << " text '" << want.text << "' bool " << want.boolean << " status "
                  << want.status << "; got ts " << g.ts << " double " << g.dbl << " text '"
                  << g.text << "' bool " << g.boolean << " status " << g.status;
  }
}

TEST_F(RawSegmentSql, UnpacksEveryLayoutAsTheCodecEncodedIt) {
  const std::vector<std::pair<std::string, EncodeOptions>> codecs = {
      {"raw", EncodeOptions{{FloatCodec::kRaw}}},
      {"gorilla", EncodeOptions{{FloatCodec::kGorilla}}},
      {"polynomial", EncodeOptions{{FloatCodec::kPolynomial}}},
      {"decimal", EncodeOptions{{FloatCodec::kDecimal}}},
      {"default", EncodeOptions{}}};
  std::set<int> ts_modes, float_codecs, orders, string_modes;
  for (const Case& c : Cases()) {
    for (const auto& [codec_name, options] : codecs) {
      SCOPED_TRACE(c.name + "/" + codec_name);
      auto seg = EncodeRawSegment(c.hour, c.rows, options);
      ASSERT_TRUE(seg.ok()) << seg.status();
      // The C++ decoder gives the readings back (else the codec is wrong, not the SQL).
      std::vector<RawRow> decoded;
      ASSERT_TRUE(DecodeRawSegment(1, c.hour, *seg, &decoded).ok());
      ASSERT_EQ(decoded.size(), c.rows.size());
      for (size_t i = 0; i < decoded.size(); ++i) {
        const RawRow& a = decoded[i];
        const RawRow& b = c.rows[i];
        ASSERT_TRUE(a.ts_ns == b.ts_ns && a.kind == b.kind && a.status == b.status &&
                    DoubleBits(a.d) == DoubleBits(b.d) && a.s == b.s && a.b == b.b)
            << "DecodeRawSegment, reading " << i;
      }

      const Layout l = LayoutOf(*seg);
      if (l.codec == static_cast<int>(FloatCodec::kSplitZstd)) {  // were it in the default
        EXPECT_NE(UnpackError(c.hour, *seg).find("split-zstd"), std::string::npos);
        continue;
      }
      const auto start = std::chrono::steady_clock::now();
      std::vector<SqlRow> got;
      ASSERT_NO_THROW(got = Unpack(c.hour, *seg));
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      ExpectUnpacked(c.rows, got);
      if (c.rows.size() >= 3000) {
        std::printf("raw_seg_unpack %s/%s: %zu readings, %zu bytes, codec %d: %.1f ms\n",
                    c.name.c_str(), codec_name.c_str(), c.rows.size(), seg->size(), l.codec, ms);
      }
      ts_modes.insert(l.ts_mode);
      if (l.codec >= 0) float_codecs.insert(l.codec);
      if (l.order >= 0) orders.insert(l.order);
      if (l.string_mode >= 0) string_modes.insert(l.string_mode);
    }
  }
  // Every part of the format was exercised.
  EXPECT_EQ(ts_modes, (std::set<int>{0, 1}));
  EXPECT_EQ(float_codecs, (std::set<int>{0, 1, 2, 3}));  // split-zstd: the next test
  EXPECT_EQ(orders, (std::set<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(string_modes, (std::set<int>{0, 1}));
}

TEST_F(RawSegmentSql, SplitZstdRaisesAnErrorNamingIt) {
  std::vector<double> v(500);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<double>(i));
  auto seg = EncodeRawSegment(kHour, EverySecond(v), EncodeOptions{{FloatCodec::kSplitZstd}});
  ASSERT_TRUE(seg.ok()) << seg.status();
  ASSERT_EQ(LayoutOf(*seg).codec, static_cast<int>(FloatCodec::kSplitZstd));
  const std::string error = UnpackError(kHour, *seg);
  EXPECT_NE(error.find("split-zstd"), std::string::npos) << error;
}

// A segment rebuilt from its sections (the CRC is not checked in SQL: zeros).
std::string Rebuild(uint8_t version, uint64_t n, const std::vector<std::string>& sections) {
  std::string out(1, static_cast<char>(version));
  segment::PutVarint(&out, n);
  for (const std::string& s : sections) {
    segment::PutVarint(&out, s.size());
    out.append(s);
  }
  out.append(4, '\0');
  return out;
}

TEST_F(RawSegmentSql, TruncatedOrInconsistentSegmentsRaise) {
  std::vector<RawRow> rows = {
      DoubleRow(kHour + kSec, 1.5, 4),       StringRow(kHour + 2 * kSec, "a"),
      BoolRow(kHour + 3 * kSec, true),       DoubleRow(kHour + 5 * kSec, 2.25),
      StringRow(kHour + 6 * kSec, "bc", -2), BoolRow(kHour + 7 * kSec, false)};
  for (const auto& options :
       {EncodeOptions{{FloatCodec::kRaw}}, EncodeOptions{{FloatCodec::kGorilla}},
        EncodeOptions{{FloatCodec::kPolynomial}}, EncodeOptions{{FloatCodec::kDecimal}}}) {
    auto seg = EncodeRawSegment(kHour, rows, options);
    ASSERT_TRUE(seg.ok()) << seg.status();
    ASSERT_NO_THROW(ExpectUnpacked(rows, Unpack(kHour, *seg)));
    SCOPED_TRACE(absl::StrCat("codec ", LayoutOf(*seg).codec));

    // Every prefix.
    for (size_t len = 0; len < seg->size(); ++len) {
      const std::string error = UnpackError(kHour, seg->substr(0, len));
      EXPECT_NE(error.find("raw segment: "), std::string::npos)
          << "prefix of " << len << " bytes: " << (error.empty() ? "no error" : error);
    }

    // Each section one byte shorter or one byte longer, the lengths consistent.
    segment::ByteReader r(absl::string_view(*seg).substr(0, seg->size() - 4));
    uint8_t version;
    uint64_t n;
    std::vector<std::string> sections(6);
    ASSERT_TRUE(r.Byte(&version) && r.Varint(&n));
    for (std::string& s : sections) {
      absl::string_view v;
      ASSERT_TRUE(r.Section(&v));
      s = std::string(v);
    }
    ASSERT_NO_THROW(ExpectUnpacked(rows, Unpack(kHour, Rebuild(version, n, sections))));
    for (size_t k = 0; k < sections.size(); ++k) {
      std::vector<std::string> changed = sections;
      changed[k].push_back('\0');
      std::string error = UnpackError(kHour, Rebuild(version, n, changed));
      EXPECT_NE(error.find("raw segment: "), std::string::npos)
          << "section " << k << " one byte longer: " << (error.empty() ? "no error" : error);
      if (sections[k].empty()) continue;
      changed = sections;
      changed[k].pop_back();
      error = UnpackError(kHour, Rebuild(version, n, changed));
      EXPECT_NE(error.find("raw segment: "), std::string::npos)
          << "section " << k << " one byte shorter: " << (error.empty() ? "no error" : error);
    }
    EXPECT_NE(UnpackError(kHour, Rebuild(2, n, sections)).find("raw segment: unknown version 2"),
              std::string::npos);
    EXPECT_NE(UnpackError(kHour, Rebuild(version, n + 1, sections)).find("raw segment: "),
              std::string::npos);
    EXPECT_NE(
        UnpackError(kHour, Rebuild(version, 0, sections)).find("raw segment: bad reading count"),
        std::string::npos);
  }
}

TEST_F(RawSegmentSql, MergedViewHasTheColumnsOfRawReadings) {
  pqxx::nontransaction tx(conn_);
  const pqxx::result res = tx.exec(
      "SELECT series_id, ts, value_double, value_text, value_bool, status_code "
      "FROM raw_readings_merged LIMIT 0");
  ASSERT_EQ(res.columns(), 6u);
  const pqxx::result types = tx.exec(
      "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
      "FROM information_schema.columns WHERE table_name = 'raw_readings_merged'");
  EXPECT_EQ(types[0][0].as<std::string>(),
            "series_id integer, ts bigint, value_double double precision, value_text text, "
            "value_bool boolean, status_code integer");
}

}  // namespace
}  // namespace telemetry::testing
