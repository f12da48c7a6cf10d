// Retention of raw day partitions on the real Postgres (issue 17;
// services/export/retention.h): an unarchived or stale-archived hour keeps
// its day, dry run and apply alike; a tenant within its retention keeps it
// and is named; a file missing from the archive root keeps it; a retention
// change shows in the next dry run; the dry run's
// DROP is exactly what the apply drops; after the drop the partitions are
// gone, the archive still holds every reading, a late reading for the day is
// counted as expired and not stored, and its hours cannot be packed again.
#include "services/export/retention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/archive/archive_fs.h"
#include "common/archive/parquet_readings.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "services/export/exporter.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kHour = 3'600'000'000'000, kMin = 60'000'000'000, kDay = 24 * kHour;

bool Says(const RetentionDecision& d, const std::string& text) {
  for (const auto& r : d.reasons)
    if (r.find(text) != std::string::npos) return true;
  return false;
}

std::string Reasons(const RetentionDecision& d) {
  std::string out;
  for (const auto& r : d.reasons) absl::StrAppend(&out, "\n  ", r);
  return out;
}

class RetentionTest : public ::testing::Test {
 protected:
  RetentionTest()
      : pool_(RequireEnv("TELEMETRY_PG_PRIMARY"), 4, "test"),
        writer_(NewPgReadingWriter(&pool_)),
        metadata_(NewPgMetadataStore(&pool_)),
        archive_(NewPgArchiveStore(&pool_)) {
    root_ = fs::temp_directory_path() / absl::StrCat("retention_", getpid());
    fs::remove_all(root_);
    auto opened = archive::ArchiveFs::Open(root_.string());
    EXPECT_TRUE(opened.ok()) << opened.status();
    archive_fs_ = std::move(*opened);
    retention_ = std::make_unique<Retention>(archive_.get(), archive_fs_.get(), SystemClock::Get());
  }
  ~RetentionTest() override { fs::remove_all(root_); }

  // `series` readings of the tenant, one a minute in `hour`; returns them.
  std::vector<RawRow> Write(int64_t tenant, const std::vector<SeriesSpec>& specs, int64_t hour,
                            int64_t offset) {
    auto ids = metadata_->ResolveSeries(tenant, specs);
    EXPECT_TRUE(ids.ok()) << ids.status();
    std::vector<RawRow> rows;
    for (int32_t id : *ids) {
      for (int i = 0; i < 60; ++i) {
        RawRow r;
        r.series_id = id;
        r.ts_ns = hour + i * kMin;
        r.d = i * 0.5;
        rows.push_back(r);
      }
    }
    auto a = writer_->Apply(rows, absl::StrCat("retention-", tenant), {{0, offset}});
    EXPECT_TRUE(a.ok()) << a.status();
    return rows;
  }

  std::vector<RetentionDecision> Run(int64_t day, bool dry_run) {
    auto r = retention_->Run(day, day + kDay, dry_run);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<RetentionDecision>{};
  }

  PgPool pool_;
  std::unique_ptr<ReadingWriter> writer_;
  std::unique_ptr<MetadataStore> metadata_;
  std::unique_ptr<ArchiveStore> archive_;
  fs::path root_;
  std::unique_ptr<archive::ArchiveFs> archive_fs_;
  std::unique_ptr<Retention> retention_;
};

TEST_F(RetentionTest, DropsOnlyArchivedDaysPastEveryRetentionExactlyAsTheDryRunSaid) {
  // A day of its own, long past: 1990-01-01 + one day per tenant id.
  const int64_t seed = SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants");
  const int64_t day = 631'152'000LL * 1'000'000'000 + seed * kDay;
  Tenant a = CreateTenant("retention-a");
  Tenant b = CreateTenant("retention-b");
  ASSERT_TRUE(writer_->EnsurePartitions(day, day + kDay - 1).ok());
  const std::string raw =
      Sql("SELECT 'raw_readings_d' || to_char(to_timestamp(" + std::to_string(day / 1'000'000'000) +
          ") AT TIME ZONE 'UTC',"
          " 'YYYYMMDD')")[0][0];
  auto a_rows = Write(a.id, {{"pump", "temp", "C", ""}, {"pump", "rpm", "", ""}}, day, 1);
  auto more = Write(a.id, {{"pump", "temp", "C", ""}, {"pump", "rpm", "", ""}}, day + kHour, 2);
  a_rows.insert(a_rows.end(), more.begin(), more.end());
  auto b_rows = Write(b.id, {{"valve", "open", "", ""}}, day + kHour, 1);
  ASSERT_TRUE(writer_->PackRawHour(day, 10'000).ok());
  ASSERT_TRUE(writer_->PackRawHour(day + kHour, 10'000).ok());

  // Not archived: kept, in the dry run and when applied.
  auto plan = Run(day, true);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_FALSE(plan[0].drop) << Reasons(plan[0]);
  EXPECT_TRUE(Says(plan[0], absl::StrCat("tenant ", a.id, " (")) &&
              Says(plan[0], "hour 00:00 is not archived"))
      << Reasons(plan[0]);
  EXPECT_TRUE(Says(plan[0], absl::StrCat("tenant ", b.id, " (")) &&
              Says(plan[0], "hour 01:00 is not archived"))
      << Reasons(plan[0]);
  auto applied = Run(day, false);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_FALSE(applied[0].dropped);
  EXPECT_EQ(SqlInt("SELECT count(*) FROM " + raw), 0) << "rows packed";
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT sum(n) FROM raw_readings_seg WHERE hour >= ", day,
                                " AND hour < ", day + kDay)),
            static_cast<int64_t>(a_rows.size() + b_rows.size()));

  // Archived.
  Exporter exporter(archive_.get(), archive_fs_.get(), ExporterOptions());
  auto pass = exporter.RunOnce(day, day + kDay, 24);
  ASSERT_TRUE(pass.ok()) << pass.status();
  ASSERT_EQ(pass->exports.size(), 3u);

  // A late reading repacks hour 01:00: archived at an older version, kept.
  RawRow late = b_rows.front();
  late.ts_ns += 30'000'000'000;  // between two minutes
  ASSERT_TRUE(writer_->Apply({late}, absl::StrCat("retention-", b.id), {{0, 2}}).ok());
  b_rows.push_back(late);
  ASSERT_TRUE(writer_->PackRawHour(day + kHour, 10'000).ok());
  plan = Run(day, true);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_FALSE(plan[0].drop);
  EXPECT_TRUE(Says(plan[0], "hour 01:00 is archived at content version 1, the hour is at 2"))
      << Reasons(plan[0]);
  pass = exporter.RunOnce(day, day + kDay, 24);
  ASSERT_TRUE(pass.ok()) << pass.status();

  // Tenant B keeps its readings for 100 years: the day stays, B is named.
  ASSERT_EQ(
      SqlExec(absl::StrCat("UPDATE tenants SET raw_retention_days = 36500 WHERE id = ", b.id)), 1);
  plan = Run(day, true);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_FALSE(plan[0].drop);
  ASSERT_EQ(plan[0].reasons.size(), 1u) << Reasons(plan[0]);
  EXPECT_TRUE(Says(plan[0], absl::StrCat("tenant ", b.id, " (")) &&
              Says(plan[0], "(raw retention 36500 days) keeps it until"))
      << Reasons(plan[0]);

  // Back to 30 days: the change shows in the dry run first, then applies.
  ASSERT_EQ(SqlExec(absl::StrCat("UPDATE tenants SET raw_retention_days = 30 WHERE id = ", b.id)),
            1);
  // But not while a file the manifest lists is missing from the root.
  auto b_export = archive_->CurrentExport(b.id, day + kHour);
  ASSERT_TRUE(b_export.ok()) << b_export.status();
  const fs::path moved = root_ / "moved-away.parquet";
  fs::rename(root_ / b_export->files[0].path, moved);
  plan = Run(day, true);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_FALSE(plan[0].drop);
  EXPECT_TRUE(Says(plan[0], "archive file " + b_export->files[0].path + ": NOT_FOUND"))
      << Reasons(plan[0]);
  fs::rename(moved, root_ / b_export->files[0].path);
  plan = Run(day, true);
  ASSERT_EQ(plan.size(), 1u);
  ASSERT_TRUE(plan[0].drop) << Reasons(plan[0]);
  EXPECT_FALSE(plan[0].dropped);
  EXPECT_TRUE(Sql("SELECT to_regclass('" + raw + "') IS NOT NULL")[0][0] == "t")
      << "a dry run drops nothing";
  // (Its locks are waited for 200 ms, then given up until the next run:
  // other tests read the raw tables meanwhile.)
  for (int attempt = 0; attempt < 50; ++attempt) {
    applied = Run(day, false);
    if (applied.size() != 1 || applied[0].error.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_TRUE(applied[0].dropped) << applied[0].error;
  EXPECT_EQ(applied[0].reasons, plan[0].reasons) << "the apply did what the dry run said";
  EXPECT_EQ(applied[0].tenants, (std::vector<int64_t>{a.id, b.id}));
  EXPECT_EQ(applied[0].readings, static_cast<int64_t>(a_rows.size() + b_rows.size()));

  // Marked and recorded, every hour; its partitions stay (frozen) until the
  // purge, for readers that have not seen the marks yet; not decided again.
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM raw_compactions WHERE state = 'dropped'"
                                " AND hour >= ",
                                day, " AND hour < ", day + kDay)),
            24);
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT readings FROM retention_drops WHERE day = ", day)),
            static_cast<int64_t>(a_rows.size() + b_rows.size()));
  EXPECT_EQ(Sql("SELECT to_regclass('" + raw + "') IS NOT NULL")[0][0], "t");
  EXPECT_TRUE(Run(day, true).empty()) << "a dropped day is not decided on again";
  // The purge: not before its grace, then the partitions are gone.
  auto purged = retention_->Purge(3600'000'000'000);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(std::count(purged->begin(), purged->end(), day), 0);
  EXPECT_EQ(Sql("SELECT to_regclass('" + raw + "') IS NOT NULL")[0][0], "t");
  for (int attempt = 0; attempt < 50; ++attempt) {  // (its locks, as the drop's)
    purged = retention_->Purge(0);
    if (purged.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(std::count(purged->begin(), purged->end(), day), 1);
  EXPECT_EQ(Sql("SELECT to_regclass('" + raw + "') IS NULL")[0][0], "t");
  EXPECT_EQ(
      SqlInt(absl::StrCat(
          "SELECT count(*) FROM retention_drops WHERE purged_at IS NOT NULL AND day = ", day)),
      1);
  purged = retention_->Purge(0);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(std::count(purged->begin(), purged->end(), day), 0) << "purged once";
  // The archive still holds every reading.
  int64_t archived = 0;
  for (int64_t tenant : {a.id, b.id}) {
    auto exports = archive_->ListExports(tenant, day, day + kDay);
    ASSERT_TRUE(exports.ok());
    for (const auto& e : *exports) {
      if (e.state != "current") continue;
      for (const auto& f : e.files) {
        if (f.kind != "readings") continue;
        auto rows = archive::ReadParquetReadings(*archive_fs_, f.path);
        ASSERT_TRUE(rows.ok()) << rows.status();
        archived += static_cast<int64_t>(rows->size());
      }
    }
  }
  EXPECT_EQ(archived, static_cast<int64_t>(a_rows.size() + b_rows.size()));

  // A reading for the dropped day that reaches the store now: not stored,
  // counted; the batch's other readings are stored.
  RawRow expired = a_rows.front();
  expired.ts_ns += 1;
  auto result = writer_->Apply({expired}, absl::StrCat("retention-", a.id), {{0, 3}});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->expired, 1);
  EXPECT_EQ(result->inserted, 0);
  EXPECT_EQ(result->duplicates, 0);
  EXPECT_EQ(Sql("SELECT to_regclass('" + raw + "') IS NULL")[0][0], "t");
  EXPECT_EQ(writer_->PackRawHour(day, 10'000).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Enforcing, retention reads only the days some tenant's retention could have
// passed (reading today's partition hour by hour took tens of seconds on a
// test database and starved the purge of its locks); the dry run still lists
// such a day, and why it stays.
TEST_F(RetentionTest, EnforcingSkipsDaysNoRetentionCouldHavePassed) {
  // Tomorrow's partition (writers create it ahead): there, and nearly empty,
  // so the dry run reads it quickly.
  const int64_t now = SystemClock::Get()->NowNs();
  const int64_t tomorrow = now - now % kDay + kDay;
  ASSERT_TRUE(writer_->EnsurePartitions(tomorrow, tomorrow).ok());
  auto plan = Run(tomorrow, /*dry_run=*/true);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_FALSE(plan[0].drop);
  EXPECT_FALSE(plan[0].reasons.empty());
  EXPECT_TRUE(Run(tomorrow, /*dry_run=*/false).empty());
}

}  // namespace
}  // namespace telemetry::testing
