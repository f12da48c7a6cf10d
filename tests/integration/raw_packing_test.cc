// The warm tier's write side on the real Postgres (issue 16): packing a
// closed hour of raw rows into per-series segments (ReadingWriter::
// PackRawHour) keeps every reading exactly once, also when a batch is
// replayed, a late reading arrives, the packer is killed mid-hour, or writers
// replay and add late readings while it packs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/float_bits.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/reading_reader.h"
#include "common/segment/raw_segment.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

constexpr int64_t kHour = 3'600'000'000'000, kSec = 1'000'000'000;

class RawPacking : public ::testing::Test {
 protected:
  RawPacking()
      : pool_(RequireEnv("TELEMETRY_PG_PRIMARY"), 4, "test"),
        store_(NewPgReadingWriter(&pool_)),
        metadata_(NewPgMetadataStore(&pool_)) {}

  // A tenant with `n` series of mixed kinds and a long-closed hour of its
  // own (tenant ids only grow), filled as the writer lays it out: every 30 s
  // every series, in batches of a few minutes. Returns every reading.
  std::vector<RawRow> Fill(const std::string& prefix, int n, bool own_day = false) {
    Tenant t = CreateTenant(prefix);
    std::vector<SeriesSpec> specs;
    for (int s = 0; s < n; ++s)
      specs.push_back({"d" + std::to_string(s / 4), "s" + std::to_string(s % 4), "", ""});
    auto ids = metadata_->ResolveSeries(t.id, specs);
    EXPECT_TRUE(ids.ok()) << ids.status();
    ids_ = *ids;
    hour_ = 1'640'995'200 * kSec + t.id * 3 * kHour;  // 2022-01-01 + 3 h per tenant id
    // (or 05:00 of a day of its own: 2019-01-01 + id days)
    if (own_day) hour_ = 1'546'300'800 * kSec + t.id * 24 * kHour + 5 * kHour;
    topic_ = absl::StrCat("raw-packing-", t.id);
    EXPECT_TRUE(store_->EnsurePartitions(hour_, hour_ + 2 * kHour).ok());
    std::vector<RawRow> all;
    for (int step = 0; step < 125; ++step) {  // the last 5 steps in the next hour
      std::vector<RawRow> batch;
      for (int s = 0; s < n; ++s) {
        RawRow r;
        r.series_id = ids_[static_cast<size_t>(s)];
        r.ts_ns = hour_ + step * 30 * kSec + s;
        switch (s % 4) {
          case 0:
            r.d = 20 + 5 * std::sin(step / 30.0 + s);
            break;
          case 1:
            r.kind = ValueKind::kString;
            r.s = step % 3 ? "running" : "idle\ttab";
            break;
          case 2:
            r.kind = ValueKind::kBool;
            r.b = step % 2 == 0;
            break;
          default:
            r.d = std::round(step * 10.0 + s) / 10;
            r.status = step % 7 == 0 ? -2 : 0;
        }
        batch.push_back(r);
      }
      all.insert(all.end(), batch.begin(), batch.end());
      batches_.push_back(batch);
      if (step % 10 == 9 || step == 124) {
        std::vector<RawRow> flat;
        for (auto& b : batches_) flat.insert(flat.end(), b.begin(), b.end());
        auto r = store_->Apply(flat, topic_, {{0, step + 1}});
        EXPECT_TRUE(r.ok()) << r.status();
        EXPECT_EQ(r->inserted, static_cast<int64_t>(flat.size()));
        applied_.push_back(std::move(flat));
        batches_.clear();
      }
    }
    return all;
  }

  std::string Ids() const { return absl::StrCat("'{", absl::StrJoin(ids_, ","), "}'"); }
  int64_t RowsIn(int64_t from, int64_t to) const {
    return SqlInt(absl::StrCat("SELECT count(*) FROM raw_readings WHERE series_id = ANY(", Ids(),
                               ") AND ts >= ", from, " AND ts < ", to));
  }
  int64_t InSegments() const {
    return SqlInt(
        absl::StrCat("SELECT coalesce(sum(n), 0) FROM raw_readings_seg WHERE series_id = ANY(",
                     Ids(), ") AND hour = ", hour_));
  }
  // Every reading of the hour: the rows and the decoded segments, by (series, time).
  // Checks that each segment's first_ts / last_ts are its first and last reading's.
  std::vector<RawRow> Stored() const {
    std::vector<RawRow> out;
    for (const auto& row : Sql(absl::StrCat(
             "SELECT series_id, data, first_ts, last_ts FROM raw_readings_seg WHERE series_id = "
             "ANY(",
             Ids(), ") AND hour = ", hour_))) {
      std::string bytes;
      for (size_t i = 2; i + 1 < row[1].size(); i += 2) {
        bytes.push_back(static_cast<char>(std::stoi(row[1].substr(i, 2), nullptr, 16)));
      }
      const size_t before = out.size();
      absl::Status st = segment::DecodeRawSegment(std::stoi(row[0]), hour_, bytes, &out);
      EXPECT_TRUE(st.ok()) << st;
      if (!st.ok() || out.size() == before) continue;
      EXPECT_EQ(std::stoll(row[2]), out[before].ts_ns) << "series " << row[0];
      EXPECT_EQ(std::stoll(row[3]), out.back().ts_ns) << "series " << row[0];
    }
    for (const auto& row : Sql(absl::StrCat(
             "SELECT series_id, ts, CASE WHEN value_double IS NOT NULL THEN 0"
             " WHEN value_text IS NOT NULL THEN 1 ELSE 2 END,"
             " coalesce(encode(float8send(value_double), 'hex'), ''), coalesce(value_text, ''),"
             " coalesce(value_bool, false), coalesce(status_code, 0)"
             " FROM raw_readings WHERE series_id = ANY(",
             Ids(), ") AND ts >= ", hour_, " AND ts < ", hour_ + kHour))) {
      RawRow r;
      r.series_id = std::stoi(row[0]);
      r.ts_ns = std::stoll(row[1]);
      r.kind = static_cast<ValueKind>(std::stoi(row[2]));
      if (r.kind == ValueKind::kDouble) {
        r.d = DoubleFromBits(std::stoull(row[3], nullptr, 16));
      }
      r.s = row[4];
      r.b = row[5] == "t";
      r.status = std::stoi(row[6]);
      out.push_back(r);
    }
    std::sort(out.begin(), out.end(), [](const RawRow& a, const RawRow& b) {
      return std::make_pair(a.series_id, a.ts_ns) < std::make_pair(b.series_id, b.ts_ns);
    });
    return out;
  }
  // The readings of `all` in the hour, by (series, time).
  std::vector<RawRow> InHour(std::vector<RawRow> all) const {
    all.erase(std::remove_if(
                  all.begin(), all.end(),
                  [&](const RawRow& r) { return r.ts_ns < hour_ || r.ts_ns >= hour_ + kHour; }),
              all.end());
    std::sort(all.begin(), all.end(), [](const RawRow& a, const RawRow& b) {
      return std::make_pair(a.series_id, a.ts_ns) < std::make_pair(b.series_id, b.ts_ns);
    });
    return all;
  }
  static void ExpectSame(const std::vector<RawRow>& want, const std::vector<RawRow>& got) {
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) {
      SCOPED_TRACE(i);
      ASSERT_EQ(got[i].series_id, want[i].series_id);
      ASSERT_EQ(got[i].ts_ns, want[i].ts_ns);
      ASSERT_EQ(got[i].kind, want[i].kind);
      ASSERT_EQ(got[i].status, want[i].status);
      ASSERT_EQ(DoubleBits(got[i].d), DoubleBits(want[i].d)) << want[i].d;
      ASSERT_EQ(got[i].s, want[i].s);
      ASSERT_EQ(got[i].b, want[i].b);
    }
  }

  PgPool pool_;
  std::unique_ptr<ReadingWriter> store_;
  std::unique_ptr<MetadataStore> metadata_;
  std::vector<int32_t> ids_;
  int64_t hour_ = 0;
  std::string topic_;
  std::vector<std::vector<RawRow>> batches_;
  std::vector<std::vector<RawRow>> applied_;  // as applied
};

TEST_F(RawPacking, MovesAnHourIntoSegmentsExactlyOnce) {
  const std::vector<RawRow> all = Fill("rawpack", 12);
  const std::vector<RawRow> hour_rows = InHour(all);
  ASSERT_EQ(hour_rows.size(), 12u * 120u);
  ASSERT_EQ(RowsIn(hour_, hour_ + kHour), 12 * 120);

  const std::string in_hour = absl::StrCat(" WHERE series_id = ANY(", Ids(), ") AND ts >= ", hour_,
                                           " AND ts < ", hour_ + kHour);
  const auto as_rows =
      Sql("SELECT series_id, ts, float8send(value_double), value_text, value_bool, status_code"
          " FROM raw_readings" +
          in_hour + " ORDER BY 1, 2");
  ASSERT_EQ(as_rows.size(), 12u * 120u);
  auto due = store_->UnpackedRawHours(hour_ + 1, 1'000'000);
  ASSERT_TRUE(due.ok()) << due.status();
  EXPECT_NE(std::find(due->begin(), due->end(), hour_), due->end());
  auto packed = store_->PackRawHour(hour_, 500);
  ASSERT_TRUE(packed.ok()) << packed.status();
  EXPECT_EQ(packed->readings, 12 * 120);
  EXPECT_EQ(packed->segments, 12);
  EXPECT_GE(packed->steps, 3);  // ~4 series a step
  EXPECT_EQ(RowsIn(hour_, hour_ + kHour), 0);
  EXPECT_EQ(RowsIn(hour_ + kHour, hour_ + 2 * kHour), 12 * 5);  // the next hour is untouched
  EXPECT_EQ(InSegments(), 12 * 120);
  // The bounds the packer wrote are what migration 0010 computes for older segments.
  EXPECT_EQ(SqlInt(absl::StrCat(
                "SELECT count(*) FROM raw_readings_seg g CROSS JOIN LATERAL"
                " (SELECT min(u.ts) AS lo, max(u.ts) AS hi FROM raw_seg_unpack(g.hour, g.data) u) b"
                " WHERE g.series_id = ANY(",
                Ids(), ") AND (g.first_ts, g.last_ts) IS DISTINCT FROM (b.lo, b.hi)")),
            0);
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM raw_compactions WHERE hour = ", hour_,
                                " AND state = 'packed' AND readings = ", 12 * 120)),
            1);
  ExpectSame(hour_rows, Stored());
  // SQL users see one row per reading (migration 0009), the same values.
  EXPECT_EQ(Sql("SELECT series_id, ts, float8send(value_double), value_text, value_bool,"
                " status_code FROM raw_readings_merged" +
                in_hour + " ORDER BY 1, 2"),
            as_rows);
  // Stored as it is: bytea, not compressed again by Postgres.
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM raw_readings_seg WHERE hour = ", hour_,
                                " AND series_id = ANY(", Ids(),
                                ") AND pg_column_compression(data) IS NOT NULL")),
            0);
  due = store_->UnpackedRawHours(hour_ + 1, 1'000'000);
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(std::find(due->begin(), due->end(), hour_), due->end());

  // A replay of every batch stores nothing: the readings are found in the segments.
  for (const auto& batch : applied_) {
    auto r = store_->Apply(batch, topic_, {{0, 1}});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->inserted, 0);
    EXPECT_EQ(r->duplicates, static_cast<int64_t>(batch.size()));
  }
  EXPECT_EQ(RowsIn(hour_, hour_ + kHour), 0);
  ExpectSame(hour_rows, Stored());

  // A genuinely late reading is stored as a row and listed; repacking puts it
  // into its series' segment.
  RawRow late;
  late.series_id = ids_[0];
  late.ts_ns = hour_ + 45 * kSec;
  late.d = -1.5;
  auto r = store_->Apply({late, all[0]}, topic_, {{0, 1}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->inserted, 1);
  EXPECT_EQ(r->duplicates, 1);
  EXPECT_EQ(RowsIn(hour_, hour_ + kHour), 1);
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM raw_late_hours WHERE hour = ", hour_)), 1);
  std::vector<RawRow> with_late = all;
  with_late.push_back(late);
  ExpectSame(InHour(with_late), Stored());  // rows and segments together
  due = store_->UnpackedRawHours(hour_ + 1, 1'000'000);
  ASSERT_TRUE(due.ok());
  EXPECT_NE(std::find(due->begin(), due->end(), hour_), due->end());
  auto again = store_->PackRawHour(hour_, 500);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->readings, 1);
  EXPECT_EQ(again->segments, 1);  // only the late reading's series
  EXPECT_EQ(RowsIn(hour_, hour_ + kHour), 0);
  EXPECT_EQ(InSegments(), 12 * 120 + 1);
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM raw_late_hours WHERE hour = ", hour_)), 0);
  ExpectSame(InHour(with_late), Stored());
  // ...and sending it again is a duplicate.
  r = store_->Apply({late}, topic_, {{0, 1}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->inserted, 0);
  // Nothing more to do.
  auto nothing = store_->PackRawHour(hour_, 500);
  ASSERT_TRUE(nothing.ok());
  EXPECT_EQ(nothing->readings, 0);
}

TEST_F(RawPacking, SurvivesKillNineMidHour) {
  const std::vector<RawRow> hour_rows = InHour(Fill("rawkill", 40));
  const std::string url = RequireEnv("TELEMETRY_PG_PRIMARY");
  const int64_t hour = hour_;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A packer of its own: one series a step, slowly enough to be caught.
    PgPool pool(url, 1, "packer");
    auto store = NewPgReadingWriter(&pool);
    auto r = store->PackRawHour(hour, 1);
    _exit(r.ok() ? 0 : 1);
  }
  // Killed once it has packed some series and not all.
  bool caught = false;
  for (int i = 0; i < 2000 && !caught; ++i) {
    const int64_t n = SqlInt(
        absl::StrCat("SELECT coalesce(sum(n), 0) FROM raw_readings_seg WHERE hour = ", hour));
    if (n > 0) {
      kill(child, SIGKILL);
      caught = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(caught);
  // Every reading in exactly one place, the hour still to do.
  const int64_t rows = RowsIn(hour_, hour_ + kHour), in_segments = InSegments();
  EXPECT_EQ(rows + in_segments, 40 * 120);
  EXPECT_GT(in_segments, 0);
  EXPECT_GT(rows, 0);  // caught mid-hour
  ExpectSame(hour_rows, Stored());
  auto due = store_->UnpackedRawHours(hour_ + 1, 1'000'000);
  ASSERT_TRUE(due.ok());
  if (rows > 0) {
    EXPECT_NE(std::find(due->begin(), due->end(), hour_), due->end());
  }
  // A new packer finishes it.
  auto done = store_->PackRawHour(hour_, 1000);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->readings, rows);
  EXPECT_EQ(RowsIn(hour_, hour_ + kHour), 0);
  EXPECT_EQ(InSegments(), 40 * 120);
  ExpectSame(hour_rows, Stored());
}

TEST_F(RawPacking, WritersReplayingAndAddingLateReadingsWhilePackingStoreEachOnce) {
  const std::vector<RawRow> all = Fill("rawrace", 40);
  std::atomic<bool> packing{true};
  std::vector<RawRow> late;
  std::thread writer([&] {
    PgPool pool(RequireEnv("TELEMETRY_PG_PRIMARY"), 1, "writer");
    auto store = NewPgReadingWriter(&pool);
    // Replays of the batches, each with a new late reading (between two
    // stored ones), until the packer is done, and twice more after.
    auto replay = [&](int round) {
      std::vector<RawRow> b = applied_[static_cast<size_t>(round) % applied_.size()];
      RawRow r;
      r.series_id = ids_[static_cast<size_t>(round) % ids_.size()];
      r.ts_ns = hour_ + (round % 100) * 30 * kSec + 15 * kSec + round;
      r.d = round;
      b.push_back(r);
      auto res = store->Apply(b, topic_, {{0, 1}});
      ASSERT_TRUE(res.ok()) << res.status();
      EXPECT_EQ(res->inserted, 1) << "round " << round;
      late.push_back(r);
    };
    int round = 0;
    while (packing.load()) replay(round++);
    replay(round++);
    replay(round++);
  });
  auto packed = store_->PackRawHour(hour_, 200);
  packing.store(false);
  writer.join();
  ASSERT_TRUE(packed.ok()) << packed.status();
  // Then the late rows are packed too.
  auto again = store_->PackRawHour(hour_, 200);
  ASSERT_TRUE(again.ok()) << again.status();
  std::vector<RawRow> want = all;
  want.insert(want.end(), late.begin(), late.end());
  ExpectSame(InHour(want), Stored());
  EXPECT_EQ(RowsIn(hour_, hour_ + kHour), 0);
  EXPECT_GT(late.size(), 2u);
}

TEST_F(RawPacking, APackedDayIsTruncatedWhenNoLiveRowIsLeft) {
  const std::vector<RawRow> all = Fill("rawday", 12, /*own_day=*/true);
  const int64_t day = hour_ - 5 * kHour;
  const std::string partition = Sql(
      absl::StrCat("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                   " WHERE i.inhparent = 'raw_readings'::regclass AND pg_get_expr(c.relpartbound,"
                   " c.oid) LIKE '%",
                   day, "%'"))[0][0];
  const std::string size = absl::StrCat("SELECT pg_total_relation_size('", partition, "')");
  ASSERT_GT(SqlInt(size), 65536);
  // Not all hours packed: nothing to truncate.
  ASSERT_TRUE(store_->PackRawHour(hour_, 10'000).ok());
  auto freed = store_->TruncatePackedDays(day + 24 * kHour);
  ASSERT_TRUE(freed.ok()) << freed.status();
  EXPECT_EQ(*freed, 0);
  EXPECT_EQ(RowsIn(hour_ + kHour, hour_ + 2 * kHour), 12 * 5);
  for (int h = 0; h < 24; ++h) ASSERT_TRUE(store_->PackRawHour(day + h * kHour, 10'000).ok());
  {
    // A reader holding the partition: the truncation gives up after its
    // lock_timeout (no error, nothing freed) rather than queue behind it.
    pqxx::connection reader(RequireEnv("TELEMETRY_PG_PRIMARY"));
    pqxx::work tx(reader);
    tx.exec("SELECT count(*) FROM " + partition);
    freed = store_->TruncatePackedDays(day + 24 * kHour);
    ASSERT_TRUE(freed.ok()) << freed.status();
    EXPECT_EQ(*freed, 0);
    tx.commit();
  }
  freed = store_->TruncatePackedDays(day + 24 * kHour);
  ASSERT_TRUE(freed.ok()) << freed.status();
  EXPECT_GT(*freed, 0);
  EXPECT_LE(SqlInt(size), 65536);
  ExpectSame(InHour(all), Stored());
  // A late reading makes the day hold a row again: kept until it is repacked.
  RawRow late;
  late.series_id = ids_[3];
  late.ts_ns = hour_ + 100 * kSec + 7;
  late.d = 3.25;
  ASSERT_EQ(store_->Apply({late}, topic_, {{0, 1}})->inserted, 1);
  freed = store_->TruncatePackedDays(day + 24 * kHour);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(RowsIn(hour_, hour_ + kHour), 1);
  ASSERT_EQ(store_->PackRawHour(hour_, 10'000)->readings, 1);
  freed = store_->TruncatePackedDays(day + 24 * kHour);
  ASSERT_TRUE(freed.ok());
  std::vector<RawRow> want = all;
  want.push_back(late);
  ExpectSame(InHour(want), Stored());
}

// Every raw read as text, to compare answers exactly (doubles by their bits).
std::string Text(const ReadingRow& r) {
  const uint64_t bits = DoubleBits(r.d);
  return absl::StrCat(r.device, "/", r.sensor, "/", r.unit, "@", r.ts_ns, "=",
                      static_cast<int>(r.kind), ":", bits, ":", r.s, ":", r.b, ":", r.status);
}

// The answers of a set of reads: Latest, Ranges of several shapes (page
// sizes that force paging, limits, a sensor filter, bounds inside hours, a
// cursor), Playbacks with their edges in every tier.
std::vector<std::string> Answers(ReadingReader* reader, int64_t tenant, int64_t hour) {
  std::vector<std::string> out;
  auto latest = reader->Latest(tenant, {"d0", "d1", "d2"}, {});
  EXPECT_TRUE(latest.ok()) << latest.status();
  if (latest.ok()) {
    out.push_back("latest");
    for (const auto& r : *latest) out.push_back(Text(r));
  }
  struct Shape {
    std::string device;
    std::vector<std::string> sensors;
    int64_t start, end, limit;
    int32_t page;
    std::string after_sensor;
    int64_t after_ts;
  };
  const std::vector<Shape> shapes = {
      {"d0", {}, hour - kHour, hour + 3 * kHour, 0, 1000, "", 0},
      {"d0", {}, hour - kHour, hour + 3 * kHour, 0, 7, "", 0},
      {"d1", {"s0", "s3"}, hour + 17 * 60 * kSec + 3, hour + kHour + 40 * 60 * kSec, 0, 50, "", 0},
      {"d1", {}, hour, hour + 3 * kHour, 333, 100, "", 0},
      {"d2", {}, hour + 10 * kSec, hour + 2 * kHour, 0, 40, "s1", hour + 20 * 60 * kSec},
      {"d0", {}, hour + 59 * 60 * kSec, hour + 61 * 60 * kSec, 0, 3, "", 0},
  };
  for (const Shape& sh : shapes) {
    RangeQuery q;
    q.tenant_id = tenant;
    q.device = sh.device;
    q.sensors = sh.sensors;
    q.start_ns = sh.start;
    q.end_ns = sh.end;
    q.limit = sh.limit;
    q.page_size = sh.page;
    q.after_sensor = sh.after_sensor;
    q.after_unit = "";
    q.after_ts_ns = sh.after_ts;
    out.push_back(absl::StrCat("range ", sh.device, " ", sh.start, " ", sh.end));
    absl::Status st = reader->Range(q, [&](std::vector<ReadingRow>&& rows) {
      out.push_back(absl::StrCat("page ", rows.size()));
      for (const auto& r : rows) out.push_back(Text(r));
      return true;
    });
    EXPECT_TRUE(st.ok()) << st;
  }
  const std::vector<std::pair<int64_t, int64_t>> windows = {
      {hour + 10 * 60 * kSec, hour + 10 * 60 * kSec + 95 * kSec},     // inside a packed hour
      {hour - 30 * 60 * kSec, hour + 60 * kSec},                      // before: nothing
      {hour + 59 * 60 * kSec + 50 * kSec, hour + kHour + 20 * kSec},  // across two hours
      {hour + 2 * kHour - 45 * kSec, hour + 2 * kHour + 45 * kSec},   // into the open hour
      {hour + 3 * kHour, hour + 4 * kHour},                           // after: nothing
      {hour + 15, hour + 15},                                         // an instant
      // Starting inside an hour, before the first reading of some series (series s has its
      // readings at s ns past each 30 s): their reading before is in the previous hour's segment.
      {hour + kHour + 2, hour + kHour + 30 * kSec},
      // Ending at a segment's last reading: the one after is in the next hour's segment.
      {hour + kHour - 90 * kSec, hour + kHour - 30 * kSec},
  };
  for (const auto& [from, to] : windows) {
    for (const std::string device : {"d0", "d2"}) {
      auto p = reader->Playback(tenant, device, {}, from, to);
      EXPECT_TRUE(p.ok()) << p.status();
      if (!p.ok()) continue;
      out.push_back(absl::StrCat("playback ", device, " ", from, " ", to));
      for (const auto& r : p->before) out.push_back("before " + Text(r));
      for (const auto& r : p->inside) out.push_back("inside " + Text(r));
      for (const auto& r : p->after) out.push_back("after " + Text(r));
    }
  }
  return out;
}

// Two Answers lists compared, a failure naming the first line that differs
// (gtest's own diff of long vectors is cut before it).
::testing::AssertionResult SameAnswers(const std::vector<std::string>& got,
                                       const std::vector<std::string>& want) {
  if (got == want) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto at = [&](const std::vector<std::string>& v, size_t k) {
    std::string out;
    for (size_t j = k >= 3 ? k - 3 : 0; j < std::min(v.size(), k + 4); ++j) {
      absl::StrAppend(&out, "\n  ", j, (j == k ? " > " : "   "), v[j]);
    }
    return out;
  };
  return ::testing::AssertionFailure()
         << got.size() << " lines against " << want.size() << ", first difference at line " << i
         << "; got:" << at(got, i) << "\nwanted:" << at(want, i);
}

// Waits until the replica has replayed everything the primary has committed.
// The writer's Apply and the packer's steps commit asynchronously: their
// commit records may still be in the primary's WAL buffers, past
// pg_current_wal_lsn() (what is written out), for up to wal_writer_delay (the
// test failed about 1 run in 30). A synchronous commit first flushes them.
// (Not pg_current_wal_insert_lsn(): at a page boundary it points past the
// next page's header, which an idle primary never writes.)
void WaitForReplica() {
  SqlExec("SELECT txid_current()");
  const std::string lsn = Sql("SELECT pg_current_wal_lsn()")[0][0];
  pqxx::connection replica(RequireEnv("TELEMETRY_PG_REPLICA"));
  for (int i = 0; i < 500; ++i) {
    pqxx::nontransaction tx(replica);
    if (tx.exec("SELECT pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn")[0][0].as<bool>()) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL() << "replica did not replay " << lsn;
}

TEST_F(RawPacking, PackingChangesNoReadOnThePrimaryOrTheReplica) {
  // Two closed hours packed, the third open (rows, d0/s0 only): Latest
  // comes from a segment for most series, from a row for d0/s0.
  const std::vector<RawRow> all = Fill("rawreads", 12);
  auto reader = NewPgReadingReader(&pool_);
  PgPool replica_pool(RequireEnv("TELEMETRY_PG_REPLICA"), 1, "replica");
  auto replica = NewPgReadingReader(&replica_pool);
  // A third hour of rows for d0 only.
  std::vector<RawRow> third;
  for (int step = 0; step < 30; ++step) {
    RawRow r;
    r.series_id = ids_[0];
    r.ts_ns = hour_ + 2 * kHour + step * 10 * kSec;
    r.d = step;
    third.push_back(r);
  }
  ASSERT_TRUE(store_->EnsurePartitions(hour_ + 2 * kHour, hour_ + 3 * kHour).ok());
  ASSERT_TRUE(store_->Apply(third, topic_, {{0, 1}}).ok());
  const int64_t tenant = SqlInt(absl::StrCat("SELECT tenant_id FROM series WHERE id = ", ids_[0]));
  const std::vector<std::string> rows_only = Answers(reader.get(), tenant, hour_);
  ASSERT_GT(rows_only.size(), 500u);

  ASSERT_TRUE(store_->PackRawHour(hour_, 400).ok());
  ASSERT_TRUE(store_->PackRawHour(hour_ + kHour, 400).ok());
  ASSERT_EQ(RowsIn(hour_, hour_ + 2 * kHour), 0);
  EXPECT_TRUE(SameAnswers(Answers(reader.get(), tenant, hour_), rows_only));
  WaitForReplica();
  EXPECT_TRUE(SameAnswers(Answers(replica.get(), tenant, hour_), rows_only));

  // A late reading in a packed hour is a row beside the segments until it
  // is repacked; every read sees it the same way before and after.
  RawRow late;
  late.series_id = ids_[8];  // d2/s0
  late.ts_ns = hour_ + 10 * 60 * kSec + 45 * kSec;
  late.kind = ValueKind::kString;
  late.s = "late";
  ASSERT_EQ(store_->Apply({late}, topic_, {{0, 1}})->inserted, 1);
  const std::vector<std::string> mixed = Answers(reader.get(), tenant, hour_);
  EXPECT_NE(mixed, rows_only);
  EXPECT_NE(std::find(mixed.begin(), mixed.end(),
                      "inside d2/s0/@" + std::to_string(late.ts_ns) + "=1:0:late:0:0"),
            mixed.end());
  ASSERT_EQ(store_->PackRawHour(hour_, 400)->readings, 1);
  EXPECT_TRUE(SameAnswers(Answers(reader.get(), tenant, hour_), mixed));
  WaitForReplica();
  EXPECT_TRUE(SameAnswers(Answers(replica.get(), tenant, hour_), mixed));

  // A damaged segment is DATA_LOSS, never a wrong answer.
  SqlExec(
      absl::StrCat("UPDATE raw_readings_seg SET data = set_byte(data, 20, get_byte(data, 20) # 1)"
                   " WHERE series_id = ",
                   ids_[0], " AND hour = ", hour_));
  RangeQuery q;
  q.tenant_id = tenant;
  q.device = "d0";
  q.start_ns = hour_;
  q.end_ns = hour_ + kHour;
  absl::Status st = reader->Range(q, [](std::vector<ReadingRow>&&) { return true; });
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
}

}  // namespace
}  // namespace telemetry::testing
