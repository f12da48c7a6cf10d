// The archive's Parquet files read by readers nobody here wrote: pyarrow and
// DuckDB (pinned in tests/clients/requirements.txt) read an archive root in
// Hive layout written by ParquetReadingsWriter, and report what they see
// (tests/clients/archive_read.py); this test compares every row, the
// row-group statistics, the metadata and DuckDB's partition-aware aggregates
// with what it wrote.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/archive/archive_fs.h"
#include "common/archive/parquet_readings.h"
#include "gtest/gtest.h"
#include "tests/integration/archive_s3_env.h"
#include "tests/integration/harness.h"

namespace telemetry::archive {
namespace {

namespace fs = std::filesystem;
using telemetry::testing::Shell;
using telemetry::testing::SourceDir;

constexpr int64_t kHourNs = 3'600'000'000'000LL;
constexpr int64_t kSecNs = 1'000'000'000LL;

struct Written {
  std::string rel;  // path under the root
  int64_t tenant = 0, hour = 0;
  std::vector<std::pair<SeriesNames, RawRow>> rows;  // in file order
  int64_t row_group_rows = 0;
};

std::string HivePath(int64_t tenant, int64_t hour_ns) {
  time_t secs = static_cast<time_t>(hour_ns / kSecNs);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "date=%04d-%02d-%02d/hour=%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour);
  return absl::StrCat("tenant=", tenant, "/", buf);
}

double ParseHex(const std::string& s) { return std::strtod(s.c_str(), nullptr); }

// On a local directory and on S3 (the stack's S3Proxy).
class ArchiveReaders : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchiveReaders, PyarrowAndDuckDbReadWhatWasWritten) {
  auto venv = Shell("bash " + SourceDir() + "/scripts/client-venv.sh 2>/dev/null");
  ASSERT_EQ(venv.second, 0) << "scripts/client-venv.sh failed";
  std::string python = std::string(absl::StripAsciiWhitespace(venv.first));

  const std::string leaf = absl::StrCat("archive_readers_", getpid());
  fs::path local = fs::temp_directory_path() / leaf;
  fs::remove_all(local);
  const std::string root =
      GetParam() == "s3" ? telemetry::testing::S3ArchiveRoot(leaf) : local.string();
  auto archive = ArchiveFs::Open(root);
  ASSERT_TRUE(archive.ok()) << archive.status();

  // Two tenants, two hours each (one crossing a day boundary), several
  // devices, every value kind, row groups of 500 rows.
  const int64_t day_end = 20'454LL * 24 * kHourNs;  // 2026-01-01T00:00Z
  std::vector<Written> files;
  for (int64_t tenant : {7, 1234}) {
    for (int64_t hour : {day_end - kHourNs, day_end}) {
      Written w;
      w.tenant = tenant;
      w.hour = hour;
      w.row_group_rows = 500;
      w.rel = HivePath(tenant, hour) + "/readings-v1-0000.parquet";
      for (int d = 0; d < 3; ++d) {
        SeriesNames base{absl::StrCat("dev-", tenant, "-", d), "", "", "proj",
                         absl::StrCat(R"({"slot":")", d, R"("})")};
        SeriesNames temp = base, state = base, ok = base;
        temp.sensor = "temp";
        temp.unit = "C";
        state.sensor = "state";
        ok.sensor = "z_ok";
        for (int i = 0; i < 30; ++i) {
          RawRow r;
          r.ts_ns = hour + i * 120 * kSecNs;
          r.kind = ValueKind::kString;
          r.s = i % 3 == 0 ? "idle" : "running";
          w.rows.push_back({state, r});
        }
        for (int i = 0; i < 240; ++i) {
          RawRow r;
          r.ts_ns = hour + i * 15 * kSecNs + d;
          r.kind = ValueKind::kDouble;
          r.d = 20 + static_cast<double>(tenant) * 0.001 + std::sin(i / 10.0) * (d + 1);
          r.status = i % 50 == 0 ? 2 : 0;
          w.rows.push_back({temp, r});
        }
        for (int i = 0; i < 10; ++i) {
          RawRow r;
          r.ts_ns = hour + i * 360 * kSecNs;
          r.kind = ValueKind::kBool;
          r.b = i % 2 == 0;
          w.rows.push_back({ok, r});
        }
      }
      ASSERT_TRUE((*archive)->CreateDirs(fs::path(w.rel).parent_path().string()).ok());
      ParquetOptions opt;
      opt.row_group_rows = w.row_group_rows;
      auto writer = ParquetReadingsWriter::Create(archive->get(), w.rel, {tenant, hour, 1}, opt);
      ASSERT_TRUE(writer.ok()) << writer.status();
      for (const auto& [series, row] : w.rows) {
        absl::Status st = (*writer)->Append(series, {row});
        ASSERT_TRUE(st.ok()) << st;
      }
      auto summary = (*writer)->Finish();
      ASSERT_TRUE(summary.ok()) << summary.status();
      files.push_back(std::move(w));
    }
  }

  auto out = Shell(python + " " + SourceDir() + "/tests/clients/archive_read.py '" + root + "'");
  ASSERT_EQ(out.second, 0) << out.first;

  std::map<std::string, std::vector<std::vector<std::string>>> rows_of, groups_of;
  std::map<std::string, std::map<std::string, std::string>> meta_of;
  std::map<std::string, std::vector<std::string>> file_line;
  std::vector<std::vector<std::string>> duck;
  std::vector<std::string> pruned;
  for (absl::string_view line : absl::StrSplit(out.first, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f[0] == "R") rows_of[f[1]].push_back(f);
    if (f[0] == "G") groups_of[f[1]].push_back(f);
    if (f[0] == "M") meta_of[f[1]][f[2]] = f[3];
    if (f[0] == "F") file_line[f[1]] = f;
    if (f[0] == "D") duck.push_back(f);
    if (f[0] == "P") pruned = f;
  }
  ASSERT_EQ(file_line.size(), files.size()) << out.first.substr(0, 2000);

  // Aggregates DuckDB should find, keyed as it reports them.
  struct Agg {
    int64_t count = 0;
    double sum = 0;
    bool has_double = false;
    int64_t min_ts = INT64_MAX, max_ts = INT64_MIN;
  };
  std::map<std::tuple<std::string, std::string, std::string, std::string, std::string, std::string>,
           Agg>
      want_agg;
  std::map<int64_t, int64_t> per_tenant;

  for (const Written& w : files) {
    SCOPED_TRACE(w.rel);
    const auto& fl = file_line[w.rel];
    ASSERT_EQ(fl.size(), 5u);
    EXPECT_EQ(fl[2], absl::StrCat(w.rows.size()));
    int64_t groups =
        (static_cast<int64_t>(w.rows.size()) + w.row_group_rows - 1) / w.row_group_rows;
    EXPECT_EQ(fl[3], absl::StrCat(groups));
    EXPECT_NE(fl[4].find("telemetry export"), std::string::npos) << fl[4];
    EXPECT_EQ(meta_of[w.rel]["telemetry.tenant_id"], absl::StrCat(w.tenant));
    EXPECT_EQ(meta_of[w.rel]["telemetry.hour_start_ns"], absl::StrCat(w.hour));
    EXPECT_EQ(meta_of[w.rel]["telemetry.export_version"], "1");
    EXPECT_EQ(meta_of[w.rel]["telemetry.archive.format"], "1");

    // Every row, in order, exactly.
    const auto& got = rows_of[w.rel];
    ASSERT_EQ(got.size(), w.rows.size());
    for (size_t i = 0; i < got.size(); ++i) {
      const auto& [s, r] = w.rows[i];
      const auto& g = got[i];
      ASSERT_EQ(g.size(), 11u);
      EXPECT_EQ(g[2], s.device);
      EXPECT_EQ(g[3], s.sensor);
      EXPECT_EQ(g[4], s.unit);
      EXPECT_EQ(g[5], s.project);
      EXPECT_EQ(g[6], s.labels_json);
      EXPECT_EQ(g[7], absl::StrCat(r.ts_ns));
      EXPECT_EQ(g[10], absl::StrCat(r.status));
      switch (r.kind) {
        case ValueKind::kDouble:
          EXPECT_EQ(g[8], "d");
          EXPECT_EQ(ParseHex(g[9]), r.d) << g[9];
          break;
        case ValueKind::kString:
          EXPECT_EQ(g[8], "s");
          EXPECT_EQ(g[9], r.s);
          break;
        case ValueKind::kBool:
          EXPECT_EQ(g[8], "b");
          EXPECT_EQ(g[9], r.b ? "1" : "0");
          break;
      }
    }

    // Row-group statistics: what a pruning reader relies on.
    const auto& gs = groups_of[w.rel];
    ASSERT_EQ(static_cast<int64_t>(gs.size()), groups);
    for (int64_t gi = 0; gi < groups; ++gi) {
      size_t from = static_cast<size_t>(gi * w.row_group_rows);
      size_t to = std::min(w.rows.size(), from + static_cast<size_t>(w.row_group_rows));
      std::string dmin = w.rows[from].first.device, dmax = dmin;
      int64_t tmin = INT64_MAX, tmax = INT64_MIN;
      for (size_t i = from; i < to; ++i) {
        dmin = std::min(dmin, w.rows[i].first.device);
        dmax = std::max(dmax, w.rows[i].first.device);
        tmin = std::min(tmin, w.rows[i].second.ts_ns);
        tmax = std::max(tmax, w.rows[i].second.ts_ns);
      }
      const auto& g = gs[static_cast<size_t>(gi)];
      EXPECT_EQ(g[3], absl::StrCat(to - from));
      EXPECT_EQ(g[4], dmin);
      EXPECT_EQ(g[5], dmax);
      EXPECT_EQ(g[6], absl::StrCat(tmin));
      EXPECT_EQ(g[7], absl::StrCat(tmax));
    }

    // Hive partition columns as DuckDB derives them from the path.
    std::string hive = HivePath(w.tenant, w.hour);
    std::string date = hive.substr(hive.find("date=") + 5, 10);
    std::string hour = absl::StrCat(std::stoi(hive.substr(hive.find("hour=") + 5, 2)));
    for (const auto& [s, r] : w.rows) {
      Agg& a = want_agg[{absl::StrCat(w.tenant), date, hour, s.device, s.sensor, s.unit}];
      ++a.count;
      if (r.kind == ValueKind::kDouble) {
        a.sum += r.d;
        a.has_double = true;
      }
      a.min_ts = std::min(a.min_ts, r.ts_ns);
      a.max_ts = std::max(a.max_ts, r.ts_ns);
      ++per_tenant[w.tenant];
    }
  }

  ASSERT_EQ(duck.size(), want_agg.size());
  for (const auto& d : duck) {
    ASSERT_EQ(d.size(), 11u);
    auto it = want_agg.find({d[1], d[2], d[3], d[4], d[5], d[6]});
    ASSERT_NE(it, want_agg.end()) << absl::StrJoin(d, " | ");
    const Agg& a = it->second;
    EXPECT_EQ(d[7], absl::StrCat(a.count));
    if (a.has_double) {
      EXPECT_NEAR(ParseHex(d[8]), a.sum, 1e-9 * std::max(1.0, std::fabs(a.sum)));
    } else {
      EXPECT_EQ(d[8], "none");
    }
    EXPECT_EQ(d[9], absl::StrCat(a.min_ts));
    EXPECT_EQ(d[10], absl::StrCat(a.max_ts));
  }
  ASSERT_EQ(pruned.size(), 3u);
  int64_t tenant = 0;
  ASSERT_TRUE(absl::SimpleAtoi(pruned[1], &tenant));
  EXPECT_EQ(pruned[2], absl::StrCat(per_tenant[tenant]));

  EXPECT_TRUE((*archive)->DeleteFilesUnder("").ok());
  fs::remove_all(local);
}

INSTANTIATE_TEST_SUITE_P(Roots, ArchiveReaders, ::testing::Values("local", "s3"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace telemetry::archive
