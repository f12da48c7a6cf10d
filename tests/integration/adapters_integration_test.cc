// The adapters against the real servers: ReadingWriter, ReadingReader and MetadataStore on
// PostgreSQL, LatestCache on Redis, the Kafka publisher and topic admin on Apache Kafka.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <future>
#include <limits>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "common/deadline.h"
#include "common/kafka/admin.h"
#include "common/kafka/kafka.h"
#include "common/latest_cache.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/redis/latest_cache.h"
#include "common/rollup.h"
#include "tests/integration/checks.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

class Adapters : public ::testing::Test {
 protected:
  Adapters()
      : pool_(RequireEnv("TELEMETRY_PG_PRIMARY"), 2, "test"),
        store_(NewPgReadingWriter(&pool_)),
        reader_(NewPgReadingReader(&pool_)),
        metadata_(NewPgMetadataStore(&pool_)) {}
  PgPool pool_;
  std::unique_ptr<ReadingWriter> store_;
  std::unique_ptr<ReadingReader> reader_;
  std::unique_ptr<MetadataStore> metadata_;
};

RawRow Row(int32_t series, int64_t ts, double v) {
  RawRow r;
  r.series_id = series;
  r.ts_ns = ts;
  r.d = v;
  return r;
}

TEST_F(Adapters, ApplyDeduplicatesRollsUpNewRowsAndKeepsOffsetsMonotonic) {
  Tenant t = CreateTenant("store");
  auto ids = metadata_->ResolveSeries(
      t.id, {{"d1", "temp", "C", "{\"fw\":\"1\"}"}, {"d1", "state", "", ""}});
  ASSERT_TRUE(ids.ok()) << ids.status();
  // Resolving again gives the same ids and updates labels.
  auto again = metadata_->ResolveSeries(t.id, {{"d1", "temp", "C", "{\"fw\":\"2\"}"}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0], (*ids)[0]);
  EXPECT_EQ(Sql(absl::StrCat("SELECT labels->>'fw' FROM series WHERE id = ", (*ids)[0]))[0][0],
            "2");

  const int64_t minute = (SystemClock::Get()->NowNs() / 60'000'000'000 - 10) * 60'000'000'000;
  ASSERT_TRUE(store_->EnsurePartitions(minute, minute + 60'000'000'000).ok());
  ASSERT_TRUE(store_->EnsurePartitions(minute, minute).ok());  // idempotent
  const std::string topic = "adapters-test-" + std::to_string(t.id);
  RawRow text = Row((*ids)[1], minute + 1, 0);
  text.kind = ValueKind::kString;
  text.s = "tab\there \\ newline\n";
  auto r1 = store_->Apply({Row((*ids)[0], minute + 1, 1), Row((*ids)[0], minute + 2, 5),
                           Row((*ids)[0], minute + 2, 99), text},
                          topic, {{0, 10}, {1, 4}});
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->inserted, 3);
  EXPECT_EQ(r1->duplicates, 1);  // repeated within the batch: the first one is kept
  EXPECT_TRUE(r1->bulk);
  auto r2 = store_->Apply({Row((*ids)[0], minute + 2, 7), Row((*ids)[0], minute + 3, 2)}, topic,
                          {{0, 5}});  // an older offset must not move it back
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->inserted, 1);
  EXPECT_TRUE(r2->bulk);  // the stored reading was found and left out
  auto agg = Sql(absl::StrCat(
      "SELECT cnt, sum, min, max, last_value FROM agg_1m WHERE series_id = ", (*ids)[0]));
  ASSERT_EQ(agg.size(), 1u);
  EXPECT_EQ(agg[0], (std::vector<std::string>{"3", "8", "1", "5", "2"}));
  auto offsets = store_->AppliedOffsets(topic);
  ASSERT_TRUE(offsets.ok());
  EXPECT_EQ((*offsets)[0], 10);
  EXPECT_EQ((*offsets)[1], 4);
  EXPECT_EQ(
      Sql(absl::StrCat("SELECT value_text FROM raw_readings WHERE series_id = ", (*ids)[1]))[0][0],
      "tab\there \\ newline\n");

  // Reads: latest per sensor and ranges in pages.
  auto latest = reader_->Latest(t.id, {"d1"}, {});
  ASSERT_TRUE(latest.ok());
  ASSERT_EQ(latest->size(), 2u);
  EXPECT_EQ((*latest)[1].sensor, "temp");
  EXPECT_EQ((*latest)[1].ts_ns, minute + 3);
  RangeQuery q;
  q.tenant_id = t.id;
  q.device = "d1";
  q.start_ns = minute;
  q.end_ns = minute + 60'000'000'000;
  q.page_size = 2;
  std::vector<int64_t> ts;
  int pages = 0;
  ASSERT_TRUE(reader_
                  ->Range(q,
                          [&](std::vector<ReadingRow>&& rows) {
                            ++pages;
                            for (const auto& r : rows) ts.push_back(r.ts_ns);
                            return true;
                          })
                  .ok());
  EXPECT_EQ(ts, (std::vector<int64_t>{minute + 1, minute + 1, minute + 2, minute + 3}));
  EXPECT_EQ(pages, 2);  // 4 rows, pages of 2
  // Another tenant sees none of it.
  Tenant other = CreateTenant("store-other");
  EXPECT_TRUE(reader_->Latest(other.id, {"d1"}, {})->empty());
}

TEST_F(Adapters, BulkPathSkipsStoredReadingsAndGivesWayToAConcurrentWriter) {
  Tenant t = CreateTenant("bulk");
  auto ids = metadata_->ResolveSeries(t.id, {{"d", "a", "", ""}, {"d", "b", "", ""}});
  ASSERT_TRUE(ids.ok()) << ids.status();
  const int64_t m0 = (SystemClock::Get()->NowNs() / kNsPerMinute - 30) * kNsPerMinute;
  ASSERT_TRUE(store_->EnsurePartitions(m0, m0 + 30 * kNsPerMinute).ok());
  const std::string topic = "bulk-test-" + std::to_string(t.id);
  int64_t next_ts = m0, offset = 0;
  // `n` new readings per series, 7 s apart, plus `extra` (stored before).
  auto batch = [&](int n, std::vector<RawRow> extra) {
    for (int i = 0; i < n; ++i, next_ts += 7'000'000'000) {
      extra.push_back(Row((*ids)[0], next_ts, static_cast<double>(i)));
      extra.push_back(Row((*ids)[1], next_ts, static_cast<double>(-i)));
    }
    return extra;
  };
  auto first = store_->Apply(batch(10, {}), topic, {{0, ++offset}});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->bulk);
  EXPECT_EQ(first->inserted, 20);
  // Stored readings: one inside the new run of its series, one late (its
  // own run, an hour of rows before the others).
  auto mixed = store_->Apply(batch(10, {Row((*ids)[0], m0 + 7'000'000'000, 1),
                                        Row((*ids)[1], next_ts - 7'000'000'000, 5)}),
                             topic, {{0, ++offset}});
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_TRUE(mixed->bulk);
  EXPECT_EQ(mixed->inserted, 20);
  EXPECT_EQ(mixed->duplicates, 2);
  const std::string count = absl::StrCat("SELECT count(*) FROM raw_readings WHERE series_id IN (",
                                         (*ids)[0], ",", (*ids)[1], ")");
  EXPECT_EQ(SqlInt(count), 40);
  EXPECT_EQ(RollupMismatches(t.id, "agg_1m_merged", kNsPerMinute), 0);

  // A reading stored by another transaction after the probe: the COPY meets
  // it, is undone, and the upsert path stores the rest.
  const RawRow raced = Row((*ids)[0], next_ts, 42);
  pqxx::connection other(RequireEnv("TELEMETRY_PG_PRIMARY"));
  pqxx::work other_tx(other);
  other_tx.exec(absl::StrCat("INSERT INTO raw_readings (series_id, ts, value_double) VALUES (",
                             raced.series_id, ", ", raced.ts_ns, ", 42)"));
  auto racing = std::async(std::launch::async, [&] {
    return store_->Apply(batch(5, {}), topic, {{0, ++offset}});
  });
  // The COPY waits for the other transaction's outcome on that key.
  EXPECT_EQ(racing.wait_for(std::chrono::milliseconds(500)), std::future_status::timeout);
  other_tx.commit();
  auto raced_result = racing.get();
  ASSERT_TRUE(raced_result.ok()) << raced_result.status();
  EXPECT_FALSE(raced_result->bulk);
  EXPECT_EQ(raced_result->inserted, 9);
  EXPECT_EQ(raced_result->duplicates, 1);
  EXPECT_EQ(SqlInt(count), 50);
  // The other transaction's reading is not in the rollups (it did not go
  // through Apply): every other bucket matches a recomputation.
  EXPECT_EQ(RollupMismatches(t.id, "agg_1m_merged", kNsPerMinute), 1);
  auto offsets = store_->AppliedOffsets(topic);
  ASSERT_TRUE(offsets.ok());
  EXPECT_EQ((*offsets)[0], offset);
}

TEST_F(Adapters, RangePagesAndCursorsReturnEveryRowOnceInOrder) {
  Tenant t = CreateTenant("range");
  auto ids = metadata_->ResolveSeries(
      t.id,
      {{"d1", "a", "C", ""}, {"d1", "b", "C", ""}, {"d1", "b", "F", ""}, {"d1", "c", "", ""}});
  ASSERT_TRUE(ids.ok()) << ids.status();
  const int64_t minute = (SystemClock::Get()->NowNs() / 60'000'000'000 - 10) * 60'000'000'000;
  ASSERT_TRUE(store_->EnsurePartitions(minute, minute + 60'000'000'000).ok());
  std::vector<RawRow> rows;
  std::vector<std::string> want;  // "sensor/unit@offset", in the order Range returns them
  const std::vector<std::pair<std::string, std::string>> names = {
      {"a", "C"}, {"b", "C"}, {"b", "F"}, {"c", ""}};
  for (size_t s = 0; s < ids->size(); ++s) {
    for (int k = 0; k < static_cast<int>(s) * 2 + 1; ++k) {  // 1, 3, 5, 7 rows
      rows.push_back(Row((*ids)[s], minute + 1000 + k, k));
      want.push_back(absl::StrCat(names[s].first, "/", names[s].second, "@", 1000 + k));
    }
  }
  rows.push_back(Row((*ids)[3], minute - 1, 0));  // outside the range
  ASSERT_TRUE(store_->Apply(rows, "range-test-" + std::to_string(t.id), {{0, 1}}).ok());
  auto key = [&](const ReadingRow& r) {
    return absl::StrCat(r.sensor, "/", r.unit, "@", r.ts_ns - minute);
  };
  RangeQuery base;
  base.tenant_id = t.id;
  base.device = "d1";
  base.start_ns = minute;
  base.end_ns = minute + 60'000'000'000;
  // Every page size, whole range: every row once, in order, pages no larger
  // than asked.
  for (int page_size = 1; page_size <= 17; ++page_size) {
    RangeQuery q = base;
    q.page_size = page_size;
    std::vector<std::string> got;
    ASSERT_TRUE(reader_
                    ->Range(q,
                            [&](std::vector<ReadingRow>&& page) {
                              EXPECT_LE(page.size(), static_cast<size_t>(page_size));
                              for (const auto& r : page) got.push_back(key(r));
                              return true;
                            })
                    .ok());
    EXPECT_EQ(got, want) << "page_size " << page_size;
  }
  // A limit, then a resume after the last row returned, from every position.
  for (size_t cut = 1; cut < want.size(); ++cut) {
    RangeQuery q = base;
    q.limit = static_cast<int64_t>(cut);
    q.page_size = 3;
    std::vector<ReadingRow> first;
    ASSERT_TRUE(reader_
                    ->Range(q,
                            [&](std::vector<ReadingRow>&& page) {
                              for (auto& r : page) first.push_back(std::move(r));
                              return true;
                            })
                    .ok());
    ASSERT_EQ(first.size(), cut);
    RangeQuery rest = base;
    rest.page_size = 2;
    rest.after_sensor = first.back().sensor;
    rest.after_unit = first.back().unit;
    rest.after_ts_ns = first.back().ts_ns;
    std::vector<std::string> got;
    for (const auto& r : first) got.push_back(key(r));
    ASSERT_TRUE(reader_
                    ->Range(rest,
                            [&](std::vector<ReadingRow>&& page) {
                              for (const auto& r : page) got.push_back(key(r));
                              return true;
                            })
                    .ok());
    EXPECT_EQ(got, want) << "cut at " << cut;
  }
  // A sensor filter and a page the caller stops early.
  RangeQuery only_b = base;
  only_b.sensors = {"b"};
  only_b.page_size = 2;
  int pages = 0;
  ASSERT_TRUE(reader_->Range(only_b, [&](std::vector<ReadingRow>&&) { return ++pages < 2; }).ok());
  EXPECT_EQ(pages, 2);
}

// Buckets as wide as the rollup's are read without GROUP BY: two units of
// one sensor still come back as one series, merged; values not asked for
// come back 0; wider buckets are grouped in SQL and agree.
TEST_F(Adapters, AggregateAtTheRollupWidthMergesUnitsAndSkipsUnaskedValues) {
  Tenant t = CreateTenant("agg-width");
  auto ids = metadata_->ResolveSeries(t.id, {{"d1", "temp", "C", ""}, {"d1", "temp", "F", ""}});
  ASSERT_TRUE(ids.ok()) << ids.status();
  const int64_t minute = 60'000'000'000;
  // Aligned to two minutes, so the wide bucket below holds both minutes.
  const int64_t m0 = (SystemClock::Get()->NowNs() / (2 * minute) - 15) * (2 * minute);
  ASSERT_TRUE(store_->EnsurePartitions(m0, m0 + 3 * minute).ok());
  ASSERT_TRUE(
      store_
          ->Apply({Row((*ids)[0], m0 + 1, 1), Row((*ids)[0], m0 + 2, 5), Row((*ids)[1], m0 + 3, 40),
                   Row((*ids)[0], m0 + minute + 1, 7), Row((*ids)[1], m0 + minute + 2, -2)},
                  "agg-width-" + std::to_string(t.id), {{0, 1}})
          .ok());
  AggregateQuery q;
  q.tenant_id = t.id;
  q.device = "d1";
  q.start_ns = m0;
  q.end_ns = m0 + 2 * minute;
  q.bucket_ns = minute;
  auto rows = reader_->Aggregate(q);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  const AggregateRow& a = (*rows)[0];
  EXPECT_EQ(a.device, "d1");
  EXPECT_EQ(a.sensor, "temp");
  EXPECT_EQ(a.bucket_ns, m0);
  EXPECT_EQ(a.count, 3);
  EXPECT_DOUBLE_EQ(a.sum, 46);
  EXPECT_DOUBLE_EQ(a.min, 1);
  EXPECT_DOUBLE_EQ(a.max, 40);
  EXPECT_DOUBLE_EQ(a.last, 40);  // the newest of both units
  EXPECT_EQ((*rows)[1].count, 2);
  EXPECT_DOUBLE_EQ((*rows)[1].last, -2);
  // Only the count and the max asked for.
  q.need_sum = q.need_min = q.need_last = false;
  auto only_max = reader_->Aggregate(q);
  ASSERT_TRUE(only_max.ok()) << only_max.status();
  ASSERT_EQ(only_max->size(), 2u);
  EXPECT_EQ((*only_max)[0].count, 3);
  EXPECT_DOUBLE_EQ((*only_max)[0].max, 40);
  EXPECT_DOUBLE_EQ((*only_max)[0].sum, 0);
  EXPECT_DOUBLE_EQ((*only_max)[1].max, 7);
  // Two minutes per bucket: grouped in SQL, the same totals.
  q = AggregateQuery();
  q.tenant_id = t.id;
  q.device = "d1";
  q.start_ns = m0;
  q.end_ns = m0 + 2 * minute;
  q.bucket_ns = 2 * minute;
  auto wide = reader_->Aggregate(q);
  ASSERT_TRUE(wide.ok()) << wide.status();
  ASSERT_EQ(wide->size(), 1u);
  EXPECT_EQ((*wide)[0].count, 5);
  EXPECT_DOUBLE_EQ((*wide)[0].sum, 51);
  EXPECT_DOUBLE_EQ((*wide)[0].min, -2);
  EXPECT_DOUBLE_EQ((*wide)[0].last, -2);
  // Every combination of values asked for (each selects its own columns),
  // per minute as stored and grouped in SQL: the asked ones equal the full
  // answer, the others are 0.
  for (int64_t width : {minute, 2 * minute}) {
    q.bucket_ns = width;
    q.need_sum = q.need_min = q.need_max = q.need_last = true;
    auto full = reader_->Aggregate(q);
    ASSERT_TRUE(full.ok()) << full.status();
    for (int need = 0; need < 16; ++need) {
      q.need_sum = need & 1;
      q.need_min = need & 2;
      q.need_max = need & 4;
      q.need_last = need & 8;
      auto part = reader_->Aggregate(q);
      ASSERT_TRUE(part.ok()) << part.status();
      ASSERT_EQ(part->size(), full->size()) << "need " << need;
      for (size_t i = 0; i < full->size(); ++i) {
        const AggregateRow &f = (*full)[i], &p = (*part)[i];
        SCOPED_TRACE(absl::StrCat("width ", width, " need ", need, " row ", i));
        EXPECT_EQ(p.bucket_ns, f.bucket_ns);
        EXPECT_EQ(p.count, f.count);
        EXPECT_DOUBLE_EQ(p.sum, q.need_sum ? f.sum : 0);
        EXPECT_DOUBLE_EQ(p.min, q.need_min ? f.min : 0);
        EXPECT_DOUBLE_EQ(p.max, q.need_max ? f.max : 0);
        EXPECT_DOUBLE_EQ(p.last, q.need_last ? f.last : 0);
      }
    }
  }
}

TEST_F(Adapters, NumbersReadBackExactly) {
  auto ids = metadata_->ResolveSeries(CreateTenant("numbers").id, {{"d", "x", "", ""}});
  ASSERT_TRUE(ids.ok());
  const int64_t minute = (SystemClock::Get()->NowNs() / 60'000'000'000 - 10) * 60'000'000'000;
  ASSERT_TRUE(store_->EnsurePartitions(minute, minute).ok());
  const std::vector<double> values = {0.1,  -1.5e-300, 1.7976931348623157e308, 123456789.123456789,
                                      -0.0, 5e-324};
  std::vector<RawRow> rows;
  for (size_t i = 0; i < values.size(); ++i)
    rows.push_back(Row((*ids)[0], minute + static_cast<int64_t>(i), values[i]));
  ASSERT_TRUE(store_->Apply(rows, "numbers-test", {{0, 1}}).ok());
  pqxx::connection c(RequireEnv("TELEMETRY_PG_PRIMARY"));
  pqxx::nontransaction tx(c);
  auto r = tx.exec_params(
      "SELECT value_double, ts, 'NaN'::float8, 'Infinity'::float8, '-Infinity'::float8,"
      " 9223372036854775807::bigint FROM raw_readings WHERE series_id = $1 ORDER BY ts",
      (*ids)[0]);
  ASSERT_EQ(r.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(PgDouble(r[i][0]), values[i]);
    EXPECT_EQ(PgInt64(r[i][1]), minute + static_cast<int64_t>(i));
  }
  EXPECT_TRUE(std::isnan(PgDouble(r[0][2])));
  EXPECT_EQ(PgDouble(r[0][3]), std::numeric_limits<double>::infinity());
  EXPECT_EQ(PgDouble(r[0][4]), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(PgInt64(r[0][5]), std::numeric_limits<int64_t>::max());
  auto bad = tx.exec("SELECT '1.5x', '12a'");
  EXPECT_THROW(PgDouble(bad[0][0]), pqxx::conversion_error);
  EXPECT_THROW(PgInt64(bad[0][1]), pqxx::conversion_error);
}

// Every answer of a minute Aggregate for `q`, flattened for comparison.
std::vector<std::string> AggregateText(ReadingReader* store, const AggregateQuery& q) {
  auto rows = store->Aggregate(q);
  EXPECT_TRUE(rows.ok()) << rows.status();
  std::vector<std::string> out;
  if (!rows.ok()) return out;
  for (const AggregateRow& r : *rows) {
    out.push_back(absl::StrCat(r.device, "/", r.sensor, "@", r.bucket_ns, " n=", r.count,
                               " sum=", r.sum, " min=", r.min, " max=", r.max, " last=", r.last));
  }
  return out;
}

TEST_F(Adapters, RollupCompactionPacksAnHourIntoSegmentsAndChangesNoAnswer) {
  Tenant t = CreateTenant("compact");
  std::vector<SeriesSpec> specs;
  for (int s = 0; s < 20; ++s)
    specs.push_back({"d" + std::to_string(s % 10), "temp", s < 10 ? "C" : "F", ""});
  auto ids = metadata_->ResolveSeries(t.id, specs);
  ASSERT_TRUE(ids.ok()) << ids.status();
  // An hour of its own (tenant ids only grow), long closed.
  constexpr int64_t kHour = 3'600'000'000'000, kMinute = 60'000'000'000;
  const int64_t hour = 1'609'459'200'000'000'000 + t.id * kHour;  // 2021-01-01 + id hours
  ASSERT_TRUE(store_->EnsurePartitions(hour, hour + kHour).ok());
  const std::string topic = "compact-test-" + std::to_string(t.id);
  // As the writer lays it out: minute after minute, every series each
  // minute; two readings a minute (the second the minute's last).
  for (int m = 0; m < 60; ++m) {
    std::vector<RawRow> rows;
    for (int s = 0; s < 20; ++s) {
      rows.push_back(Row((*ids)[s], hour + m * kMinute + 1 + s, s * 100 + m + 0.25));
      rows.push_back(Row((*ids)[s], hour + m * kMinute + 30'000'000'000 + s, -s * 3.5 - m));
    }
    ASSERT_TRUE(store_->Apply(rows, topic, {{0, m + 1}}).ok());
  }
  const std::string in_hour =
      absl::StrCat(" WHERE bucket >= ", hour, " AND bucket < ", hour + kHour, " AND series_id IN (",
                   (*ids)[0], ", ", (*ids)[19], ")");
  const std::string values = "SELECT series_id, bucket, cnt, sum, min, max, last_ts, last_value";
  const auto before = Sql(values + " FROM agg_1m" + in_hour + " ORDER BY series_id, bucket");
  ASSERT_EQ(before.size(), 2u * 60u);
  // Reads of every minute shape: one device per minute (both units merged),
  // 5-minute buckets, the tenant merged per sensor, per device in 2-minute
  // buckets, a range that starts and ends inside the hour.
  std::vector<AggregateQuery> queries;
  AggregateQuery q;
  q.tenant_id = t.id;
  q.device = "d3";
  q.start_ns = hour - kHour;
  q.end_ns = hour + 2 * kHour;
  q.bucket_ns = kMinute;
  queries.push_back(q);
  q.bucket_ns = 5 * kMinute;
  queries.push_back(q);
  q.device = "";
  q.group_by_device = false;
  q.bucket_ns = kMinute;
  queries.push_back(q);
  q.group_by_device = true;
  q.bucket_ns = 2 * kMinute;
  queries.push_back(q);
  q.device = "d0";
  q.bucket_ns = kMinute;
  q.start_ns = hour + 17 * kMinute + 5;
  q.end_ns = hour + 43 * kMinute;
  queries.push_back(q);
  std::vector<std::vector<std::string>> answers;
  for (const auto& query : queries) answers.push_back(AggregateText(reader_.get(), query));
  ASSERT_EQ(answers[0].size(), 60u);
  ASSERT_EQ(answers[4].size(), 43u - 17u);

  auto due = store_->UncompactedRollupHours(hour + 1, 100000);
  ASSERT_TRUE(due.ok()) << due.status();
  EXPECT_NE(std::find(due->begin(), due->end(), hour), due->end());
  auto moved = store_->CompactRollupHour(hour);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, 20 * 60);

  // The rows became one segment per series: 1 + 60 × 49 bytes, kept in the
  // row uncompressed (what pg_column_size measures is the text itself).
  EXPECT_EQ(Sql("SELECT count(*) FROM agg_1m" + in_hour)[0][0], "0");
  const std::string segments =
      absl::StrCat(" FROM agg_1m_seg WHERE hour = ", hour, " AND series_id = ANY('{",
                   absl::StrJoin(*ids, ","), "}')");
  EXPECT_EQ(Sql("SELECT count(*), min(octet_length(decode(data, 'base64'))),"
                " max(octet_length(decode(data, 'base64'))),"
                " bool_and(pg_column_size(data) >= octet_length(data))" +
                segments),
            (std::vector<std::vector<std::string>>{{"20", "2941", "2941", "t"}}));
  // Not one value changed: the segments unpacked in SQL, and every read.
  EXPECT_EQ(Sql(values + " FROM agg_1m_merged" + in_hour + " ORDER BY series_id, bucket"), before);
  for (size_t i = 0; i < queries.size(); ++i) {
    EXPECT_EQ(AggregateText(reader_.get(), queries[i]), answers[i]) << "query " << i;
  }

  // Done once: a second compactor finds the claim, and the hour is no longer due.
  auto again = store_->CompactRollupHour(hour);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
  due = store_->UncompactedRollupHours(hour + 1, 100000);
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(std::find(due->begin(), due->end(), hour), due->end());

  // The old versions can be vacuumed away (VACUUM outside a transaction).
  auto dead = store_->VacuumRollups();
  ASSERT_TRUE(dead.ok()) << dead.status();
  EXPECT_GE(*dead, 0);

  // Late data for the packed hour: a row of its own, merged by every read
  // with the segment's minute.
  ASSERT_TRUE(store_->Apply({Row((*ids)[0], hour + 40'000'000'000, 1000)}, topic, {{0, 61}}).ok());
  EXPECT_EQ(Sql(absl::StrCat("SELECT cnt, max FROM agg_1m WHERE series_id = ", (*ids)[0],
                             " AND bucket = ", hour)),
            (std::vector<std::vector<std::string>>{{"1", "1000"}}));
  EXPECT_EQ(Sql(absl::StrCat("SELECT cnt, max, last_value FROM agg_1m_merged WHERE series_id = ",
                             (*ids)[0], " AND bucket = ", hour)),
            (std::vector<std::vector<std::string>>{{"3", "1000", "1000"}}));
  q = queries[0];
  q.device = "d0";
  auto late = reader_->Aggregate(q);
  ASSERT_TRUE(late.ok()) << late.status();
  ASSERT_EQ(late->size(), 60u);
  // d0 is series 0 (°C) and 10 (°F): 4 readings in minute 0, plus the late one.
  EXPECT_EQ((*late)[0].count, 5);
  EXPECT_DOUBLE_EQ((*late)[0].max, 1000.25);  // series 10's first reading
  EXPECT_DOUBLE_EQ((*late)[0].last, 1000);    // the late reading is the minute's newest
  EXPECT_DOUBLE_EQ((*late)[0].sum, 0.25 + 0 + 1000.25 - 35 + 1000);
  EXPECT_EQ((*late)[1].count, 4);
}

TEST_F(Adapters, MinuteAggregatesSpanStatementsOfSeriesAndMergeSegmentsWithRows) {
  // More series than one statement reads (kMinuteSeriesPerRead = 256), in a
  // closed hour: packed, then late rows on top.
  Tenant t = CreateTenant("minute-chunks");
  constexpr int kDevices = 70, kSensors = 4;
  std::vector<SeriesSpec> specs;
  for (int d = 0; d < kDevices; ++d)
    for (int s = 0; s < kSensors; ++s)
      specs.push_back({"dev" + std::to_string(d), "s" + std::to_string(s), "", ""});
  auto ids = metadata_->ResolveSeries(t.id, specs);
  ASSERT_TRUE(ids.ok()) << ids.status();
  constexpr int64_t kHour = 3'600'000'000'000, kMinute = 60'000'000'000;
  const int64_t hour = 1'609'459'200'000'000'000 + t.id * kHour;
  ASSERT_TRUE(store_->EnsurePartitions(hour, hour + kHour).ok());
  const std::string topic = "minute-chunks-" + std::to_string(t.id);
  // Minutes 0 and 1 of every series: value = device + 1000 * minute.
  std::vector<RawRow> rows;
  for (int i = 0; i < kDevices * kSensors; ++i)
    for (int m = 0; m < 2; ++m)
      rows.push_back(Row((*ids)[i], hour + m * kMinute + 5, i / kSensors + 1000 * m));
  ASSERT_TRUE(store_->Apply(rows, topic, {{0, 1}}).ok());
  auto check = [&](int extra_count, double extra_sum) {
    SCOPED_TRACE(absl::StrCat("extra ", extra_count));
    AggregateQuery q;
    q.tenant_id = t.id;
    q.start_ns = hour;
    q.end_ns = hour + kHour;
    q.bucket_ns = kMinute;
    q.group_by_device = false;  // per sensor over all devices
    auto merged = reader_->Aggregate(q);
    ASSERT_TRUE(merged.ok()) << merged.status();
    ASSERT_EQ(merged->size(), 2u * kSensors);
    const double sum_devices = kDevices * (kDevices - 1) / 2.0;
    for (int s = 0; s < kSensors; ++s) {
      for (int m = 0; m < 2; ++m) {
        const AggregateRow& r = (*merged)[s * 2 + m];
        EXPECT_EQ(r.device, "");
        EXPECT_EQ(r.sensor, "s" + std::to_string(s));
        EXPECT_EQ(r.bucket_ns, hour + m * kMinute);
        const bool late = s == 0 && m == 0;
        EXPECT_EQ(r.count, kDevices + (late ? extra_count : 0));
        EXPECT_DOUBLE_EQ(r.sum, sum_devices + 1000.0 * m * kDevices + (late ? extra_sum : 0));
        EXPECT_DOUBLE_EQ(r.min, 1000.0 * m);
        EXPECT_DOUBLE_EQ(r.max, late && extra_count ? 5000 : kDevices - 1 + 1000.0 * m);
      }
    }
    q.group_by_device = true;  // per device and sensor, two minutes a bucket
    q.bucket_ns = 2 * kMinute;
    auto grouped = reader_->Aggregate(q);
    ASSERT_TRUE(grouped.ok()) << grouped.status();
    ASSERT_EQ(grouped->size(), static_cast<size_t>(kDevices * kSensors));
    std::vector<std::string> names;
    for (const AggregateRow& r : *grouped) names.push_back(r.device + "/" + r.sensor);
    EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
    for (const AggregateRow& r : *grouped) {
      EXPECT_EQ(r.count, 2 + (r.device == "dev7" && r.sensor == "s0" ? extra_count : 0));
    }
  };
  check(0, 0);
  auto moved = store_->CompactRollupHour(hour);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_GE(*moved, 2 * kDevices * kSensors);
  check(0, 0);
  ASSERT_TRUE(store_->Apply({Row((*ids)[7 * kSensors], hour + 10, 5000)}, topic, {{0, 2}}).ok());
  check(1, 5000);
}

TEST_F(Adapters, PostgresDownIsUnavailableNotACrash) {
  PgPool dead("postgresql://telemetry@127.0.0.1:1/telemetry", 1, "dead");
  auto store = NewPgReadingWriter(&dead);
  EXPECT_EQ(store->AppliedOffsets("t").status().code(), absl::StatusCode::kUnavailable);
  auto reader = NewPgReadingReader(&dead);
  EXPECT_EQ(reader->Latest(1, {"d"}, {}).status().code(), absl::StatusCode::kUnavailable);
}

TEST(PgPoolDeadline, BoundsWaitsAndCancelsStatementsAtTheCallDeadline) {
  PgPool pool(RequireEnv("TELEMETRY_PG_PRIMARY"), 1, "deadline-test");
  auto sleep = [](double s) {
    return [s](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      tx.exec("SELECT pg_sleep(" + std::to_string(s) + ")");
      return absl::OkStatus();
    };
  };
  using std::chrono::milliseconds;
  using std::chrono::steady_clock;
  {
    ScopedCallDeadline d(steady_clock::now() + milliseconds(300));
    auto t0 = steady_clock::now();
    absl::Status st = pool.Run(sleep(5));
    EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
    EXPECT_LT(steady_clock::now() - t0, milliseconds(2000));
  }
  EXPECT_EQ(pool.open_connections(), 0);  // a cancelled connection is not reused
  {
    ScopedCallDeadline d(steady_clock::now() - milliseconds(1));
    bool ran = false;
    absl::Status st = pool.Run([&](pqxx::connection&) {
      ran = true;
      return absl::OkStatus();
    });
    EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_FALSE(ran);
  }
  // Waiting for a busy pool ends at the deadline too.
  std::thread holder([&] { EXPECT_TRUE(pool.Run(sleep(1.5)).ok()); });
  std::this_thread::sleep_for(milliseconds(300));
  {
    ScopedCallDeadline d(steady_clock::now() + milliseconds(200));
    absl::Status st = pool.Run(sleep(0));
    EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
  }
  holder.join();
  // A statement that finishes in time is untouched and keeps its connection.
  {
    ScopedCallDeadline d(steady_clock::now() + milliseconds(5000));
    EXPECT_TRUE(pool.Run(sleep(0.05)).ok());
  }
  EXPECT_EQ(pool.open_connections(), 1);
}

TEST(RedisCache, KeepsTheNewestValuePerSensor) {
  auto opts = ParseRedisAddress(RequireEnv("TELEMETRY_REDIS"));
  ASSERT_TRUE(opts.ok());
  auto cache = NewRedisLatestCache(*opts);
  const int64_t tenant = 900'000'000 + (SystemClock::Get()->NowNs() % 1'000'000);
  ReadingRow a;
  a.device = "d";
  a.sensor = "t";
  a.ts_ns = 2000;
  a.d = 2;
  ASSERT_TRUE(cache->UpdateIfNewer(tenant, {a}).ok());
  ReadingRow older = a;
  older.ts_ns = 1000;
  older.d = 1;
  ReadingRow other = a;
  other.sensor = "h";
  other.kind = ValueKind::kString;
  other.s = "x|y";
  ASSERT_TRUE(cache->UpdateIfNewer(tenant, {older, other}).ok());
  auto all = cache->Get(tenant, {"d"}, {});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  auto one = cache->Get(tenant, {"d", "nope"}, {"t", "missing"});
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].ts_ns, 2000);
  EXPECT_DOUBLE_EQ((*one)[0].d, 2);
}

// Connections to Redis right now (all clients, this test's and others').
int RedisClients(redisContext* admin) {
  auto* r = static_cast<redisReply*>(redisCommand(admin, "CLIENT LIST"));
  EXPECT_NE(r, nullptr);
  if (r == nullptr) return -1;
  const std::string list(r->str, r->len);
  freeReplyObject(r);
  return static_cast<int>(std::count(list.begin(), list.end(), '\n'));
}

TEST(RedisCache, ConcurrentCallsShareABoundedSetOfConnections) {
  auto opts = ParseRedisAddress(RequireEnv("TELEMETRY_REDIS"));
  ASSERT_TRUE(opts.ok());
  redisContext* admin = redisConnect(opts->host.c_str(), opts->port);
  ASSERT_TRUE(admin != nullptr && admin->err == 0);
  const int before = RedisClients(admin);
  opts->connections = 3;
  auto cache = NewRedisLatestCache(*opts);
  const int64_t tenant = 910'000'000 + (SystemClock::Get()->NowNs() % 1'000'000);
  std::vector<ReadingRow> rows;
  for (int d = 0; d < 8; ++d) {
    ReadingRow r;
    r.device = "d" + std::to_string(d);
    r.sensor = "t";
    r.ts_ns = 1000 + d;
    r.d = d;
    rows.push_back(r);
  }
  ASSERT_TRUE(cache->UpdateIfNewer(tenant, rows).ok());
  // 8 threads, each reading its own device many times: every answer right,
  // never more than 3 connections open.
  std::atomic<int> wrong{0}, failed{0}, most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto got = cache->Get(tenant, {"d" + std::to_string(t)}, {"t"});
        if (!got.ok()) {
          ++failed;
        } else if (got->size() != 1 || (*got)[0].d != t) {
          ++wrong;
        }
      }
    });
  }
  std::thread watcher([&] {
    redisContext* w = redisConnect(opts->host.c_str(), opts->port);
    for (int i = 0; i < 50 && w != nullptr && w->err == 0; ++i) {
      most = std::max(most.load(), RedisClients(w) - before - 1);  // -1: the watcher itself
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (w) redisFree(w);
  });
  for (auto& t : threads) t.join();
  watcher.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(wrong, 0);
  EXPECT_LE(most, 3);
  EXPECT_LE(RedisClients(admin) - before, 3);
  EXPECT_GE(RedisClients(admin) - before, 1);  // kept for reuse, not closed per call
  redisFree(admin);
}

TEST(RedisCache, DownIsUnavailable) {
  RedisOptions o;
  o.port = 1;
  auto cache = NewRedisLatestCache(o);
  EXPECT_EQ(cache->Get(1, {"d"}, {}).status().code(), absl::StatusCode::kUnavailable);
}

TEST(KafkaPublisher, DeliversToKafkaAndReportsOffsets) {
  KafkaOptions o;
  o.brokers = RequireEnv("TELEMETRY_KAFKA_BROKERS");
  auto pub = NewKafkaPublisher(o);
  ASSERT_TRUE(pub.ok());
  auto n = (*pub)->PartitionCount("telemetry.readings.dlq.v1");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 4);
  int64_t low = 0, high_before = 0, high_after = 0;
  ASSERT_TRUE((*pub)->Watermarks("telemetry.readings.dlq.v1", 3, &low, &high_before, 5000).ok());
  std::promise<DeliveryReport> p;
  (*pub)->Publish("telemetry.readings.dlq.v1", 3, "k", "payload",
                  [&p](const DeliveryReport& r) { p.set_value(r); });
  DeliveryReport r = p.get_future().get();
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.partition, 3);
  EXPECT_EQ(r.offset, high_before);
  ASSERT_TRUE((*pub)->Watermarks("telemetry.readings.dlq.v1", 3, &low, &high_after, 5000).ok());
  EXPECT_EQ(high_after, high_before + 1);
}

// What telemetry-admin create-topics relies on: a topic is created with its
// partitions and configs, a second run applies the configs again and keeps
// the partition count (saying so when the spec asks for another).
TEST(KafkaAdmin, EnsureTopicsCreatesThenReappliesConfigsAndKeepsPartitions) {
  KafkaOptions o;
  o.brokers = RequireEnv("TELEMETRY_KAFKA_BROKERS");
  const std::string name = absl::StrCat("test.admin.", ::getpid(), ".", std::random_device{}());
  TopicSpec spec;
  spec.name = name;
  spec.partitions = 3;
  spec.config = {{"retention.ms", "3600000"}, {"max.message.bytes", "2097152"}};
  auto first = EnsureTopics(o, {spec}, 15000);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 1u);
  EXPECT_TRUE((*first)[0].created);
  EXPECT_EQ((*first)[0].partitions, 3);
  EXPECT_TRUE((*first)[0].note.empty());
  auto pub = NewKafkaPublisher(o);
  ASSERT_TRUE(pub.ok());
  auto n = (*pub)->PartitionCount(name);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 3);

  spec.partitions = 5;
  spec.config["retention.ms"] = "7200000";
  auto again = EnsureTopics(o, {spec}, 15000);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE((*again)[0].created);
  EXPECT_EQ((*again)[0].partitions, 3);
  EXPECT_NE((*again)[0].note.find("has 3 partitions, 5 asked"), std::string::npos)
      << (*again)[0].note;

  spec.config["retention.ms"] = "not-a-number";
  EXPECT_FALSE(EnsureTopics(o, {spec}, 15000).ok());
  EXPECT_TRUE(DeleteTopics(o, {name}, 15000).ok());
}

}  // namespace
}  // namespace telemetry::testing
