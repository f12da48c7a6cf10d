// The archive exporter (services/export/exporter.h) on the real Postgres
// (issue 17): a packed hour exported to Parquet equals what the store holds,
// reading for reading, per tenant; a second run exports nothing; a late
// reading (repack) makes a new version that supersedes the old one and
// removes its files; a crashed export resumes under its version and leaves no
// stray file; one tenant's export never holds or lists another's readings.
// Every test runs twice: on a local directory and on S3 (the local stack's
// s3proxy, which checks SigV4 signatures; files of a few hundred kB go up
// in one PUT, ArchiveFs's own test covers multipart uploads).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/archive/archive_fs.h"
#include "common/archive/parquet_readings.h"
#include "common/auth.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "services/export/exporter.h"
#include "tests/integration/archive_s3_env.h"
#include "tests/integration/harness.h"
#include "tests/integration/test_archive_root.h"

namespace telemetry::testing {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kHour = 3'600'000'000'000, kSec = 1'000'000'000;

using Key = std::tuple<std::string, std::string, std::string, int64_t>;  // device, sensor, unit, ts

struct Expected {
  SeriesNames names;
  RawRow row;
};

class ArchiveExport : public ::testing::TestWithParam<std::string> {
 protected:
  ArchiveExport()
      : pool_(RequireEnv("TELEMETRY_PG_PRIMARY"), 4, "test"),
        writer_(NewPgReadingWriter(&pool_)),
        metadata_(NewPgMetadataStore(&pool_)),
        archive_(NewPgArchiveStore(&pool_)),
        // A root of its own per test and backend.
        root_(GetParam(), "archive_export"),
        fs_(root_.fs()),
        local_root_(root_.local()) {
    ExporterOptions options;
    options.max_readings_per_file = 700;  // several parts per tenant-hour
    options.parquet.row_group_rows = 256;
    exporter_ = std::make_unique<Exporter>(archive_.get(), fs_, options);
  }
  void SetUp() override { ASSERT_NE(fs_, nullptr); }

  // A tenant with `devices` × 3 sensors (double with a unit, string with
  // labels, bool) in `hour`, a reading every 10 s per series; returns what
  // it stored.
  int64_t Fill(const std::string& prefix, int devices, int64_t hour) {
    Tenant t = CreateTenant(prefix);
    std::vector<SeriesSpec> specs;
    for (int d = devices - 1; d >= 0; --d) {  // created out of name order
      const std::string dev = absl::StrCat("dev-", d);
      specs.push_back({dev, "temp", "C", ""});
      specs.push_back({dev, "fw", "", R"({"rev":"b"})"});
      specs.push_back({dev, "Zdoor", "", ""});  // byte order puts it first, en_US last
    }
    auto ids = metadata_->ResolveSeries(t.id, specs);
    EXPECT_TRUE(ids.ok()) << ids.status();
    EXPECT_TRUE(writer_->EnsurePartitions(hour, hour + kHour).ok());
    const std::string project = Sql(absl::StrCat(
        "SELECT name FROM projects WHERE tenant_id = ", t.id, " AND is_default"))[0][0];
    std::vector<RawRow> rows;
    for (size_t s = 0; s < specs.size(); ++s) {
      SeriesNames names{specs[s].device, specs[s].sensor, specs[s].unit, project, ""};
      names.labels_json =
          Sql(absl::StrCat("SELECT labels::text FROM series WHERE id = ", (*ids)[s]))[0][0];
      for (int i = 0; i < 360; ++i) {
        RawRow r;
        r.series_id = (*ids)[s];
        r.ts_ns = hour + i * 10 * kSec + static_cast<int64_t>(s);
        switch (s % 3) {
          case 0:
            r.d = 20 + 3 * std::sin(i / 20.0 + static_cast<double>(s));
            r.status = i % 97 == 0 ? 5 : 0;
            break;
          case 1:
            r.kind = ValueKind::kString;
            r.s = i < 200 ? "1.0.0" : "1.1.0";
            break;
          default:
            r.kind = ValueKind::kBool;
            r.b = i % 4 == 0;
        }
        rows.push_back(r);
        expected_[t.id].push_back({names, r});
      }
    }
    auto applied = writer_->Apply(rows, absl::StrCat("archive-export-", t.id), {{0, 1}});
    EXPECT_TRUE(applied.ok()) << applied.status();
    return t.id;
  }

  // Every reading of the tenant's current export, read back from its files,
  // checking each file's bytes against the manifest.
  std::vector<archive::ArchivedReading> Archived(int64_t tenant, int64_t hour, std::string kind,
                                                 int32_t* version = nullptr) {
    auto current = archive_->CurrentExport(tenant, hour);
    EXPECT_TRUE(current.ok()) << current.status();
    if (!current.ok()) return {};
    if (version) *version = current->version;
    std::vector<archive::ArchivedReading> out;
    for (const ArchiveFile& f : current->files) {
      if (f.kind != kind) continue;
      auto bytes = fs_->Read(f.path);
      EXPECT_TRUE(bytes.ok()) << bytes.status();
      if (!bytes.ok()) continue;
      EXPECT_EQ(static_cast<int64_t>(bytes->size()), f.bytes) << f.path;
      EXPECT_EQ(Sha256Hex(*bytes), f.sha256_hex) << f.path;
      auto info = archive::ReadParquetFileInfo(*fs_, f.path);
      EXPECT_TRUE(info.ok()) << info.status();
      if (info.ok()) {
        EXPECT_EQ(info->tenant_id, tenant);
        EXPECT_EQ(info->hour_start_ns, hour);
        EXPECT_EQ(info->export_version, current->version);
      }
      auto rows = archive::ReadParquetReadings(*fs_, f.path);
      EXPECT_TRUE(rows.ok()) << rows.status();
      EXPECT_EQ(static_cast<int64_t>(rows->size()), f.readings) << f.path;
      for (auto& r : *rows) out.push_back(std::move(r));
    }
    return out;
  }

  // What the tenant stored, in the archive's order (byte order of names).
  std::vector<Expected> Sorted(int64_t tenant) const {
    std::vector<Expected> v = expected_.at(tenant);
    std::sort(v.begin(), v.end(), [](const Expected& a, const Expected& b) {
      return std::tie(a.names.device, a.names.sensor, a.names.unit, a.row.ts_ns) <
             std::tie(b.names.device, b.names.sensor, b.names.unit, b.row.ts_ns);
    });
    return v;
  }

  void ExpectSame(const std::vector<archive::ArchivedReading>& got,
                  const std::vector<Expected>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      const auto& g = got[i];
      const auto& w = want[i];
      SCOPED_TRACE(absl::StrCat(i, ": ", w.names.device, "/", w.names.sensor, " @", w.row.ts_ns));
      ASSERT_EQ(g.series.device, w.names.device);
      ASSERT_EQ(g.series.sensor, w.names.sensor);
      ASSERT_EQ(g.series.unit, w.names.unit);
      EXPECT_EQ(g.series.project, w.names.project);
      EXPECT_EQ(g.series.labels_json, w.names.labels_json);
      ASSERT_EQ(g.reading.ts_ns, w.row.ts_ns);
      EXPECT_EQ(g.reading.kind, w.row.kind);
      EXPECT_EQ(g.reading.status, w.row.status);
      switch (w.row.kind) {
        case ValueKind::kDouble:
          EXPECT_EQ(g.reading.d, w.row.d);
          break;
        case ValueKind::kString:
          EXPECT_EQ(g.reading.s, w.row.s);
          break;
        case ValueKind::kBool:
          EXPECT_EQ(g.reading.b, w.row.b);
          break;
      }
    }
  }

  // The files of an hour's directory, as paths from the root.
  std::set<std::string> FilesUnder(const std::string& dir) const {
    std::set<std::string> out;
    auto names = fs_->ListFiles(dir);
    EXPECT_TRUE(names.ok()) << names.status();
    if (!names.ok()) return out;
    for (const auto& n : *names) out.insert(absl::StrCat(dir, "/", n));
    return out;
  }

  // An hour of its own per test run: tenant ids only grow.
  int64_t HourFor(int64_t seed) const {
    return 1'590'969'600 * kSec + seed * 5 * kHour;  // 2020-06-01 + 5 h per seed
  }

  PgPool pool_;
  std::unique_ptr<ReadingWriter> writer_;
  std::unique_ptr<MetadataStore> metadata_;
  std::unique_ptr<ArchiveStore> archive_;
  TestArchiveRoot root_;
  archive::ArchiveFs* fs_;
  fs::path local_root_;
  std::unique_ptr<Exporter> exporter_;
  std::map<int64_t, std::vector<Expected>> expected_;
};

TEST_P(ArchiveExport, PackedHourEqualsTheStorePerTenantAndIsExportedOnce) {
  const int64_t seed = SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants");
  const int64_t hour = HourFor(seed);
  const int64_t a = Fill("archive-a", 4, hour);
  const int64_t b = Fill("archive-b", 1, hour);

  // Not packed yet: nothing is due, a direct export says why.
  auto due = archive_->DueHours(hour, hour + kHour, 10);
  ASSERT_TRUE(due.ok()) << due.status();
  EXPECT_TRUE(due->empty());
  auto early = exporter_->ExportTenantHour(a, hour);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kNotFound) << early.status();

  auto packed = writer_->PackRawHour(hour, 10'000);
  ASSERT_TRUE(packed.ok()) << packed.status();
  auto done = exporter_->RunOnce(hour, hour + kHour, 10);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->failed.empty());
  ASSERT_EQ(done->exports.size(), 2u);
  for (const TenantHourExport& e : done->exports) {
    EXPECT_FALSE(e.up_to_date);
    EXPECT_EQ(e.version, 1);
    EXPECT_EQ(e.readings, static_cast<int64_t>(expected_[e.tenant_id].size()));
  }

  // Every reading, in (device, sensor, unit, ts) byte order, in files of at
  // most 700 readings (4 devices × 3 series × 360: several parts).
  ExpectSame(Archived(a, hour, "readings"), Sorted(a));
  ExpectSame(Archived(b, hour, "readings"), Sorted(b));
  auto current = archive_->CurrentExport(a, hour);
  ASSERT_TRUE(current.ok());
  EXPECT_EQ(current->state, "current");
  EXPECT_EQ(current->source_packs, 1);
  EXPECT_GT(current->finished_at_ns, 0);
  int parts = 0;
  for (const auto& f : current->files) parts += f.kind == "readings";
  EXPECT_EQ(parts, static_cast<int>((4 * 3 * 360 + 720 - 1) / 720));  // a series never splits
  for (const auto& f : current->files) {
    EXPECT_EQ(f.path.rfind(ArchiveHourDir(a, hour) + "/", 0), 0u) << f.path;
  }

  // The last reading of each series.
  std::vector<Expected> last;
  for (const Expected& e : Sorted(a)) {
    if (!last.empty() && last.back().names.device == e.names.device &&
        last.back().names.sensor == e.names.sensor && last.back().names.unit == e.names.unit) {
      last.back() = e;
    } else {
      last.push_back(e);
    }
  }
  ExpectSame(Archived(a, hour, "last"), last);

  // Exported once: the hour is archived, a second run finds nothing, a
  // direct export reports the current version.
  due = archive_->DueHours(hour, hour + kHour, 10);
  ASSERT_TRUE(due.ok());
  EXPECT_TRUE(due->empty());
  auto again = exporter_->RunOnce(hour, hour + kHour, 10);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->exports.empty());
  auto direct = exporter_->ExportTenantHour(a, hour);
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_TRUE(direct->up_to_date);
  EXPECT_EQ(direct->version, 1);

  // Tenants apart: each manifest lists only its own files, under its own directory.
  auto listed_b = archive_->ListExports(b, hour, hour + kHour);
  ASSERT_TRUE(listed_b.ok());
  ASSERT_EQ(listed_b->size(), 1u);
  for (const auto& f : (*listed_b)[0].files) {
    EXPECT_EQ(f.path.rfind(absl::StrCat("tenant=", b, "/"), 0), 0u) << f.path;
  }
  EXPECT_EQ(Archived(b, hour, "readings").size(), expected_[b].size());
}

TEST_P(ArchiveExport, LateReadingMakesANewVersionThatSupersedesTheOld) {
  const int64_t seed = SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants");
  const int64_t hour = HourFor(seed);
  const int64_t a = Fill("archive-late", 2, hour);
  ASSERT_TRUE(writer_->PackRawHour(hour, 10'000).ok());
  ASSERT_TRUE(exporter_->RunOnce(hour, hour + kHour, 10).ok());
  const std::string dir = ArchiveHourDir(a, hour);
  const std::set<std::string> v1_files = FilesUnder(dir);
  ASSERT_FALSE(v1_files.empty());

  // A late reading for the packed, archived hour.
  Expected late = expected_[a].front();
  late.row.ts_ns = hour + 3599 * kSec + 7;
  late.row.d = 99.5;
  late.row.status = 0;
  auto applied = writer_->Apply({late.row}, absl::StrCat("archive-export-", a), {{0, 2}});
  ASSERT_TRUE(applied.ok()) << applied.status();
  ASSERT_EQ(applied->inserted, 1);
  expected_[a].push_back(late);
  // Pending (a row, not packed): not due, the archive keeps version 1.
  auto due = archive_->DueHours(hour, hour + kHour, 10);
  ASSERT_TRUE(due.ok());
  EXPECT_TRUE(due->empty());

  ASSERT_TRUE(writer_->PackRawHour(hour, 10'000).ok());
  auto done = exporter_->RunOnce(hour, hour + kHour, 10);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->exports.size(), 1u);
  EXPECT_EQ(done->exports[0].version, 2);
  EXPECT_EQ(done->exports[0].readings, static_cast<int64_t>(expected_[a].size()));

  int32_t version = 0;
  ExpectSame(Archived(a, hour, "readings", &version), Sorted(a));
  EXPECT_EQ(version, 2);
  auto listed = archive_->ListExports(a, hour, hour + kHour);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].version, 1);
  EXPECT_EQ((*listed)[0].state, "superseded");
  EXPECT_EQ((*listed)[0].source_packs, 1);
  EXPECT_EQ((*listed)[1].version, 2);
  EXPECT_EQ((*listed)[1].state, "current");
  EXPECT_EQ((*listed)[1].source_packs, 2);
  // Only version 2's files remain: a reader of the directory never counts twice.
  std::set<std::string> now = FilesUnder(dir), want;
  for (const auto& f : (*listed)[1].files) want.insert(f.path);
  EXPECT_EQ(now, want);
  for (const auto& f : v1_files) EXPECT_EQ(now.count(f), 0u) << f;
}

TEST_P(ArchiveExport, CrashedExportResumesUnderItsVersionAndLeavesNoStrayFile) {
  const int64_t seed = SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants");
  const int64_t hour = HourFor(seed);
  const int64_t a = Fill("archive-crash", 3, hour);
  ASSERT_TRUE(writer_->PackRawHour(hour, 10'000).ok());

  // A run that died after writing some files: its 'writing' row, a part it
  // would not write again, a temporary file.
  auto packs = archive_->PackedVersion(hour);
  ASSERT_TRUE(packs.ok()) << packs.status();
  auto started = archive_->BeginExport(a, hour, *packs);
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string dir = ArchiveHourDir(a, hour);
  ASSERT_TRUE(fs_->CreateDirs(dir).ok());
  for (const auto& [name, text] : std::vector<std::pair<std::string, std::string>>{
           {absl::StrCat("readings-v", *started, "-0099.parquet"), "half"},
           {absl::StrCat("readings-v", *started, "-0000.parquet.tmp"), "half"},
           {absl::StrCat(".readings-v", *started, "-0001.parquet"), "staged"},
           {"notes.txt", "not ours"}}) {
    ASSERT_TRUE(fs_->Write(absl::StrCat(dir, "/", name), text).ok()) << name;
  }
  EXPECT_EQ(archive_->CurrentExport(a, hour).status().code(), absl::StatusCode::kNotFound);

  auto done = exporter_->ExportTenantHour(a, hour);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->version, *started);
  ExpectSame(Archived(a, hour, "readings"), Sorted(a));
  std::set<std::string> want{dir + "/notes.txt"};
  for (const auto& f : done->files) want.insert(f.path);
  EXPECT_EQ(FilesUnder(dir), want);
  auto listed = archive_->ListExports(a, hour, hour + kHour);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].state, "current");
}

TEST_P(ArchiveExport, ADamagedHourIsReportedAndDoesNotHoldUpTheNext) {
  const int64_t seed = SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants");
  const int64_t bad_hour = HourFor(seed), good_hour = HourFor(seed) + kHour;
  // Two devices: with parts of 700 readings, two parts are complete before
  // the damaged series (dev-1/temp, read last) is reached.
  const int64_t bad = Fill("archive-damaged", 2, bad_hour);
  const int64_t good = Fill("archive-after", 1, good_hour);
  ASSERT_TRUE(writer_->PackRawHour(bad_hour, 10'000).ok());
  ASSERT_TRUE(writer_->PackRawHour(good_hour, 10'000).ok());
  // One byte of one of the bad hour's segments flipped: its CRC fails.
  ASSERT_EQ(
      SqlExec(absl::StrCat(
          "UPDATE raw_readings_seg SET data = set_byte(data, 20, get_byte(data, 20) # 255)"
          " WHERE hour = ",
          bad_hour, " AND series_id = (SELECT min(id) FROM series WHERE tenant_id = ", bad, ")")),
      1);
  auto pass = exporter_->RunOnce(bad_hour, good_hour + kHour, 10);
  ASSERT_TRUE(pass.ok()) << pass.status();
  ASSERT_EQ(pass->failed.size(), 1u);
  EXPECT_EQ(pass->failed[0].first, bad_hour);
  EXPECT_EQ(pass->failed[0].second.code(), absl::StatusCode::kDataLoss) << pass->failed[0].second;
  ASSERT_EQ(pass->exports.size(), 1u);
  EXPECT_EQ(pass->hours, 2) << "the failed hour is handled, and counted";
  EXPECT_EQ(pass->exports[0].tenant_id, good);
  ExpectSame(Archived(good, good_hour, "readings"), Sorted(good));
  // Nothing of the damaged hour is published, nor left where a reader of
  // the directory would see it; it waits for its retry.
  EXPECT_EQ(archive_->CurrentExport(bad, bad_hour).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(FilesUnder(ArchiveHourDir(bad, bad_hour)), std::set<std::string>{});
  pass = exporter_->RunOnce(bad_hour, good_hour + kHour, 10);
  ASSERT_TRUE(pass.ok());
  EXPECT_TRUE(pass->failed.empty());
  EXPECT_TRUE(pass->exports.empty());
  EXPECT_EQ(pass->hours, 0) << "the failed hour waits; nothing else is due";
  // The byte back: the shared database holds no damaged segment after the test.
  EXPECT_EQ(
      SqlExec(absl::StrCat(
          "UPDATE raw_readings_seg SET data = set_byte(data, 20, get_byte(data, 20) # 255)"
          " WHERE hour = ",
          bad_hour, " AND series_id = (SELECT min(id) FROM series WHERE tenant_id = ", bad, ")")),
      1);
}

// A local archive directory that cannot be written (here: a file where the
// hour's directory should be; chmod would not stop root): the hour fails
// with UNAVAILABLE, nothing is committed, and once the directory can be
// made the retry archives it exactly. (On S3 the store's outage is
// archive_s3_outage.)
TEST_P(ArchiveExport, AnUnwritableDirectoryFailsTheHourUntilItIsFixed) {
  if (GetParam() != "local") GTEST_SKIP() << "a local directory's failure";
  const int64_t seed = SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants");
  const int64_t hour = HourFor(seed);
  const int64_t a = Fill("archive-unwritable", 1, hour);
  ASSERT_TRUE(writer_->PackRawHour(hour, 10'000).ok());
  const fs::path blocked = local_root_ / ArchiveHourDir(a, hour);
  fs::create_directories(blocked.parent_path());
  std::ofstream(blocked) << "in the way";
  ExporterOptions options;
  options.retry_after_ns = 0;
  Exporter exporter(archive_.get(), fs_, options);
  auto pass = exporter.RunOnce(hour, hour + kHour, 4);
  ASSERT_TRUE(pass.ok()) << pass.status();
  ASSERT_EQ(pass->failed.size(), 1u);
  EXPECT_EQ(pass->failed[0].second.code(), absl::StatusCode::kUnavailable)
      << pass->failed[0].second;
  EXPECT_EQ(archive_->CurrentExport(a, hour).status().code(), absl::StatusCode::kNotFound);
  fs::remove(blocked);
  pass = exporter.RunOnce(hour, hour + kHour, 4);
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_TRUE(pass->failed.empty()) << pass->failed[0].second;
  ExpectSame(Archived(a, hour, "readings"), Sorted(a));
}

TEST_P(ArchiveExport, HourNotAlignedIsInvalidArgument) {
  auto r = exporter_->ExportTenantHour(1, HourFor(0) + 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
}

INSTANTIATE_TEST_SUITE_P(Roots, ArchiveExport, ::testing::Values("local", "s3"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace telemetry::testing
