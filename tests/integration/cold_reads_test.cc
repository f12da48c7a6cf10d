// Cold reads on the real Postgres and a real archive root, local and S3
// (issue 17; docs/archive.md "Cold reads"): every read kind through the
// query core returns the same answer before and after retention drops the
// day (Range with cursors and small pages, ranges across the tiers, Playback
// with neighbours in the other tier, Latest, Aggregate), the metadata names
// the archive, and a file missing from the root is DATA_LOSS.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/archive/archive_fs.h"
#include "common/archive/cold_readings.h"
#include "common/metrics.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "services/export/exporter.h"
#include "services/export/retention.h"
#include "services/query/query_core.h"
#include "tests/integration/archive_s3_env.h"
#include "tests/integration/harness.h"
#include "tests/integration/test_archive_root.h"

namespace telemetry::testing {
namespace {

namespace fs = std::filesystem;
using telemetry::v1::PlaybackRequest;
using telemetry::v1::RangeRequest;
using telemetry::v1::RangeResponse;

constexpr int64_t kSec = 1'000'000'000, kMin = 60 * kSec, kHour = 60 * kMin, kDay = 24 * kHour;

std::string Show(const google::protobuf::RepeatedPtrField<telemetry::v1::StoredReading>& rs) {
  std::string out;
  for (const auto& r : rs) absl::StrAppend(&out, r.ShortDebugString(), "\n");
  return out;
}

class ColdReads : public ::testing::TestWithParam<std::string> {
 protected:
  ColdReads()
      : pool_(RequireEnv("TELEMETRY_PG_PRIMARY"), 4, "test"),
        writer_(NewPgReadingWriter(&pool_)),
        metadata_(NewPgMetadataStore(&pool_)),
        archive_(NewPgArchiveStore(&pool_)),
        reader_(NewPgReadingReader(&pool_)),
        router_metrics_(&metrics_),
        query_metrics_(&metrics_),
        router_({"primary", reader_.get(), nullptr}, {}, SystemClock::Get(), query::RouterOptions(),
                &router_metrics_),
        root_(GetParam(), "cold_reads"),
        fs_(root_.fs()) {}
  void SetUp() override { ASSERT_NE(fs_, nullptr); }

  // A query core over the primary, reading dropped hours from `cold`.
  std::unique_ptr<query::QueryCore> Core(ColdReadings* cold) {
    return std::make_unique<query::QueryCore>(query::QueryOptions(), writer_.get(), &router_,
                                              nullptr, SystemClock::Get(), &query_metrics_, cold);
  }
  std::unique_ptr<archive::ArchiveColdReadings> Cold() {
    archive::ColdReadingsOptions options;
    options.refresh_ns = 0;  // the test drops a day and reads at once
    return std::make_unique<archive::ArchiveColdReadings>(archive_.get(), fs_, SystemClock::Get(),
                                                          options, nullptr);
  }
  static int64_t Deadline() { return SystemClock::Get()->MonotonicNs() + 60 * kSec; }

  // A whole Range, resumed from its cursor while it has one; the readings
  // as text and the data source of the first page.
  static std::pair<std::string, std::string> RangeAll(query::QueryCore& core, int64_t tenant,
                                                      RangeRequest req) {
    std::string out, source;
    for (int calls = 0; calls < 1000; ++calls) {
      std::string cursor;
      bool first = true;
      absl::Status st = core.Range(tenant, req, Deadline(), [&](RangeResponse&& page, bool last) {
        if (first && source.empty()) source = page.metadata().data_source();
        first = false;
        out += Show(page.readings());
        if (last) cursor = page.next_cursor();
        return true;
      });
      EXPECT_TRUE(st.ok()) << st;
      if (!st.ok() || cursor.empty()) break;
      req.set_cursor(cursor);
    }
    return {out, source};
  }

  PgPool pool_;
  std::unique_ptr<ReadingWriter> writer_;
  std::unique_ptr<MetadataStore> metadata_;
  std::unique_ptr<ArchiveStore> archive_;
  std::unique_ptr<ReadingReader> reader_;
  MetricsRegistry metrics_;
  query::RouterMetrics router_metrics_;
  query::QueryMetrics query_metrics_;
  query::Router router_;
  TestArchiveRoot root_;
  archive::ArchiveFs* fs_;
};

TEST_P(ColdReads, EveryReadAnswersTheSameBeforeAndAfterItsDayIsDropped) {
  // A day of its own, long past (1992-01-01 + a day per tenant id), and the
  // morning after it, which stays in Postgres.
  const int64_t seed = SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants");
  const int64_t day = 694'224'000LL * kSec + seed * kDay;
  const Tenant t = CreateTenant("cold-reads");
  const Tenant other = CreateTenant("cold-reads-other");
  ASSERT_TRUE(writer_->EnsurePartitions(day, day + 2 * kDay - 1).ok());
  // Series of two devices: one sensor in two units, a string and a boolean;
  // readings at uneven steps, on hour edges, in the dropped day's last hours
  // and the next day's first (where ranges and playbacks cross the tiers).
  const std::vector<SeriesSpec> specs = {{"pump", "temp", "C", ""},
                                         {"pump", "temp", "F", ""},
                                         {"pump", "mode", "", ""},
                                         {"valve", "open", "", ""}};
  for (const Tenant* tenant : {&t, &other}) {
    auto ids = metadata_->ResolveSeries(tenant->id, specs);
    ASSERT_TRUE(ids.ok()) << ids.status();
    std::vector<RawRow> rows;
    for (size_t s = 0; s < ids->size(); ++s) {
      int i = 0;
      for (int64_t ts :
           {day, day + 7 * kMin, day + kHour, day + kHour + 13 * kSec, day + 5 * kHour - 1,
            day + 12 * kHour + 30 * kMin, day + 23 * kHour + 59 * kMin, day + kDay - 1,
            day + kDay + 10 * kMin, day + kDay + 17 * kMin, day + kDay + kHour}) {
        if (s == 2 && ts >= day + kDay) continue;  // "mode": nothing after the dropped day
        RawRow r;
        r.series_id = (*ids)[s];
        r.ts_ns = ts;
        if (s == 2) {
          r.kind = ValueKind::kString;
          r.s = absl::StrCat("mode-", i);
        } else if (s == 3) {
          r.kind = ValueKind::kBool;
          r.b = i % 2 == 0;
        } else {
          r.d = static_cast<double>(i) * 1.25 + static_cast<double>(s);
        }
        r.status = i == 3 ? 2 : 0;
        rows.push_back(r);
        ++i;
      }
    }
    auto applied = writer_->Apply(rows, absl::StrCat("cold-reads-", tenant->id), {{0, 1}});
    ASSERT_TRUE(applied.ok()) << applied.status();
  }
  for (int64_t h = day; h < day + kDay + 2 * kHour; h += kHour) {
    ASSERT_TRUE(writer_->PackRawHour(h, 10'000).ok());
  }

  auto cold = Cold();
  auto core = Core(cold.get());
  // The reads, each as text.
  auto reads = [&](query::QueryCore& c, std::vector<std::string>* sources) {
    std::vector<std::string> out;
    auto range = [&](const std::vector<std::string>& sensors, int64_t from, int64_t to,
                     int page_size, int limit) {
      RangeRequest req;
      req.set_device_id("pump");
      for (const auto& s : sensors) req.add_sensors(s);
      req.set_start_ns(from);
      req.set_end_ns(to);
      req.set_page_size(page_size);
      req.set_limit(limit);
      auto [text, source] = RangeAll(c, t.id, req);
      out.push_back(text);
      sources->push_back(source);
    };
    range({}, day - kHour, day + 2 * kDay, 1000, 0);         // both tiers
    range({}, day - kHour, day + 2 * kDay, 3, 4);            // paged by a client
    range({"temp"}, day + kHour, day + kDay + kHour, 2, 0);  // one sensor, two units
    range({}, day + kHour, day + 2 * kHour, 1000, 0);        // the dropped day alone
    range({"nothing"}, day, day + 2 * kDay, 1000, 0);        // no such sensor
    auto playback = [&](const std::string& device, int64_t at, int64_t delta) {
      PlaybackRequest req;
      req.set_device_id(device);
      req.set_at_ns(at);
      req.set_delta_ns(delta);
      auto r = c.Playback(t.id, req, Deadline());
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) return;
      out.push_back(absl::StrCat("inside:\n", Show(r->readings()), "before:\n", Show(r->before()),
                                 "after:\n", Show(r->after())));
      sources->push_back(r->metadata().data_source());
    };
    playback("pump", day + kHour + 10 * kSec, 5 * kSec);         // inside the dropped day
    playback("pump", day + kDay, 30 * kSec);                     // across the day's end
    playback("valve", day + 12 * kHour + 30 * kMin, 60 * kSec);  // all cold
    playback("valve", day + kDay + 5 * kMin, 60 * kSec);         // before cold, after hot
    playback("pump", day - kDay, 60 * kSec);                     // after far ahead, in the archive
    telemetry::v1::LatestRequest latest;
    latest.add_device_ids("pump");
    latest.add_device_ids("valve");
    auto l = c.Latest(t.id, latest, Deadline());
    EXPECT_TRUE(l.ok()) << l.status();
    if (l.ok()) {
      out.push_back(Show(l->readings()));
      sources->push_back(l->metadata().data_source());
    }
    telemetry::v1::AggregateRequest agg;
    agg.set_device_id("pump");
    agg.set_start_ns(day);
    agg.set_end_ns(day + 2 * kDay);
    agg.set_bucket_seconds(3600);
    agg.add_functions(telemetry::v1::AGGREGATE_FUNCTION_COUNT);
    agg.add_functions(telemetry::v1::AGGREGATE_FUNCTION_SUM);
    auto a = c.Aggregate(t.id, agg, Deadline());
    EXPECT_TRUE(a.ok()) << a.status();
    if (a.ok())
      out.push_back(a->ShortDebugString().substr(0, a->ShortDebugString().find("metadata")));
    return out;
  };
  std::vector<std::string> sources_before, sources_after;
  const std::vector<std::string> before = reads(*core, &sources_before);
  ASSERT_NE(before[0].find("mode-0"), std::string::npos) << before[0];
  for (const auto& s : sources_before) EXPECT_EQ(s, "primary");

  // Archived and dropped.
  ExporterOptions eopts;
  eopts.max_readings_per_file = 20;  // several files per tenant-hour
  eopts.parquet.row_group_rows = 4;  // several row groups: pruned by device
  Exporter exporter(archive_.get(), fs_, eopts);
  auto pass = exporter.RunOnce(day, day + kDay, 24);
  ASSERT_TRUE(pass.ok()) << pass.status();
  Retention retention(archive_.get(), fs_, SystemClock::Get());
  std::vector<RetentionDecision> applied;
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto r = retention.Run(day, day + kDay, false);
    ASSERT_TRUE(r.ok()) << r.status();
    applied = *r;
    if (applied.size() != 1 || applied[0].error.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(applied.size(), 1u);
  ASSERT_TRUE(applied[0].dropped) << applied[0].error;
  std::vector<std::string> want_sources(11, "primary+archive");
  want_sources[3] = "archive";  // the Range within the dropped day
  auto no_archive = Core(nullptr);
  std::vector<std::string> ignored;

  // Marked, not purged yet: a reader that has not seen the marks (the
  // database alone) still reads the day, unchanged; one that has reads it
  // from the archive, nothing twice.
  EXPECT_EQ(reads(*no_archive, &ignored), before);
  EXPECT_EQ(reads(*core, &sources_after), before);
  // (Neighbours still found in the day's partitions come from the database.)
  EXPECT_EQ(sources_after[3], "archive");

  // Purged: the database alone has lost the day; with the archive, every
  // answer as before.
  absl::StatusOr<std::vector<int64_t>> purged;
  for (int attempt = 0; attempt < 50; ++attempt) {
    purged = retention.Purge(0);
    if (purged.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(std::count(purged->begin(), purged->end(), day), 1);
  EXPECT_NE(reads(*no_archive, &ignored)[0], before[0]);
  sources_after.clear();
  const std::vector<std::string> after = reads(*core, &sources_after);
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i], before[i]) << "read " << i;
  EXPECT_EQ(sources_after, want_sources);

  // A file the manifest lists, gone from the root: DATA_LOSS naming it (a
  // new reader: the first one holds the hour in its cache).
  auto exp = archive_->CurrentExport(t.id, day + kHour);
  ASSERT_TRUE(exp.ok()) << exp.status();
  std::string path;
  for (const auto& f : exp->files) {
    if (f.kind == "readings" && path.empty()) path = f.path;
  }
  ASSERT_FALSE(path.empty());
  auto bytes = fs_->Read(path);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_TRUE(fs_->Delete(path).ok());
  auto cold2 = Cold();
  auto core2 = Core(cold2.get());
  RangeRequest req;
  req.set_device_id("pump");
  req.set_start_ns(day + kHour);
  req.set_end_ns(day + 2 * kHour);
  absl::Status st = core2->Range(t.id, req, Deadline(), [](RangeResponse&&, bool) { return true; });
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_NE(st.message().find(path), std::string::npos) << st;
  ASSERT_TRUE(fs_->Write(path, *bytes).ok());
  EXPECT_EQ(RangeAll(*core2, t.id, req).first, RangeAll(*core, t.id, req).first);
}

INSTANTIATE_TEST_SUITE_P(Roots, ColdReads, ::testing::Values("local", "s3"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace telemetry::testing
