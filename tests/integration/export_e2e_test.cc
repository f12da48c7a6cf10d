// telemetry-export as a process against the real Postgres (issue 17): it
// archives packed hours on its own; ExportService answers each tenant about
// its own exports only, with the field and the reason for bad requests; and
// kill -9 in the middle of an export, then a restart, leaves the hour
// archived exactly (every reading once, no stray file). On S3 it archives the
// same way and exits cleanly; a root it cannot open stops it at start.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/archive/archive_fs.h"
#include "common/archive/parquet_readings.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "services/export/exporter.h"
#include "telemetry/v1/export.grpc.pb.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "tests/integration/archive_s3_env.h"
#include "tests/integration/harness.h"
#include "tests/integration/tcp_proxy.h"

namespace telemetry::testing {
namespace {

namespace fs = std::filesystem;
using telemetry::v1::ExportService;

constexpr int64_t kHour = 3'600'000'000'000, kSec = 1'000'000'000;

class ExportE2e : public ::testing::Test {
 protected:
  ExportE2e()
      : pool_(RequireEnv("TELEMETRY_PG_PRIMARY"), 4, "test"),
        writer_(NewPgReadingWriter(&pool_)),
        metadata_(NewPgMetadataStore(&pool_)),
        archive_(NewPgArchiveStore(&pool_)) {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    root_ = fs::temp_directory_path() / absl::StrCat("export_e2e_", getpid(), "_", name);
    log_dir_ = fs::temp_directory_path() / absl::StrCat("export_e2e_logs_", getpid(), "_", name);
    fs::remove_all(root_);
    fs::create_directories(log_dir_);
  }
  ~ExportE2e() override {
    service_.reset();
    fs::remove_all(root_);
  }

  void Start(const std::vector<std::string>& extra = {}) {
    port_ = FreePort();
    http_port_ = FreePort();
    std::vector<std::string> args = {
        "--archive_root=" + root_.string(), "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"),
        absl::StrCat("--listen=127.0.0.1:", port_), absl::StrCat("--http_port=", http_port_),
        "--archive_interval_s=0.2"};
    args.insert(args.end(), extra.begin(), extra.end());
    service_ =
        std::make_unique<Process>(BuildDir() + "/services/export/telemetry-export", args,
                                  (log_dir_ / absl::StrCat("export.", ++runs_, ".log")).string());
    ASSERT_TRUE(WaitForServing(port_, 20000))
        << "telemetry-export did not serve; log in " << log_dir_;
    stub_ = ExportService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  }

  // A tenant with `series` double series in `hour`, one reading every
  // `step_s` seconds each; packed. Returns the tenant and the readings stored.
  std::pair<Tenant, int64_t> FillPacked(const std::string& prefix, int series, int step_s,
                                        int64_t hour) {
    Tenant t = CreateTenant(prefix);
    std::vector<SeriesSpec> specs;
    for (int s = 0; s < series; ++s) {
      specs.push_back({absl::StrCat("dev-", s / 8), absl::StrCat("s", s % 8), "", ""});
    }
    auto ids = metadata_->ResolveSeries(t.id, specs);
    EXPECT_TRUE(ids.ok()) << ids.status();
    EXPECT_TRUE(writer_->EnsurePartitions(hour, hour + kHour).ok());
    std::vector<RawRow> rows;
    int64_t n = 0;
    for (int i = 0; i * step_s < 3600; ++i) {
      for (int s = 0; s < series; ++s) {
        RawRow r;
        r.series_id = (*ids)[static_cast<size_t>(s)];
        r.ts_ns = hour + static_cast<int64_t>(i) * step_s * kSec + s;
        r.d = std::round(200 * std::sin(i / 50.0 + s)) / 10;
        rows.push_back(r);
      }
      if (rows.size() >= 200'000) {
        auto a = writer_->Apply(rows, absl::StrCat("export-e2e-", t.id), {{0, i + 1}});
        EXPECT_TRUE(a.ok()) << a.status();
        n += static_cast<int64_t>(rows.size());
        rows.clear();
      }
    }
    if (!rows.empty()) {
      auto a = writer_->Apply(rows, absl::StrCat("export-e2e-", t.id), {{0, 1'000'000}});
      EXPECT_TRUE(a.ok()) << a.status();
      n += static_cast<int64_t>(rows.size());
    }
    auto packed = writer_->PackRawHour(hour, 50'000);
    EXPECT_TRUE(packed.ok()) << packed.status();
    return {t, n};
  }

  // Waits until the tenant's hour has a current export; its status.
  absl::StatusOr<ArchiveExport> WaitArchived(int64_t tenant, int64_t hour, int timeout_ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < until) {
      auto cur = archive_->CurrentExport(tenant, hour);
      if (cur.ok() || cur.status().code() != absl::StatusCode::kNotFound) return cur;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return absl::DeadlineExceededError("not archived in time");
  }

  // Readings in the export's readings files, each file's bytes as the manifest says.
  int64_t ArchivedReadings(const ArchiveExport& e) {
    int64_t n = 0;
    for (const auto& f : e.files) {
      if (f.kind != "readings") continue;
      EXPECT_EQ(static_cast<int64_t>(fs::file_size(root_ / f.path)), f.bytes) << f.path;
      auto rows = archive::ReadParquetReadings((root_ / f.path).string());
      EXPECT_TRUE(rows.ok()) << rows.status();
      if (rows.ok()) n += static_cast<int64_t>(rows->size());
    }
    return n;
  }

  std::set<std::string> FilesIn(const fs::path& dir) {
    std::set<std::string> out;
    if (!fs::exists(dir)) return out;
    for (const auto& e : fs::directory_iterator(dir))
      out.insert(fs::relative(e.path(), root_).string());
    return out;
  }

  int64_t HourFor(int64_t seed) const {
    return 1'609'459'200 * kSec + seed * 3 * kHour;  // 2021-01-01 + 3 h per seed
  }

  PgPool pool_;
  std::unique_ptr<ReadingWriter> writer_;
  std::unique_ptr<MetadataStore> metadata_;
  std::unique_ptr<ArchiveStore> archive_;
  fs::path root_, log_dir_;
  std::unique_ptr<Process> service_;
  std::unique_ptr<ExportService::Stub> stub_;
  int port_ = 0, http_port_ = 0, runs_ = 0;
};

TEST_F(ExportE2e, ArchivesOnItsOwnAndAnswersEachTenantAboutItsOwnOnly) {
  const int64_t hour = HourFor(SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants"));
  auto [a, a_n] = FillPacked("export-e2e-a", 16, 30, hour);
  auto [b, b_n] = FillPacked("export-e2e-b", 8, 60, hour);
  // From this test's hour on: the database holds other tests' packed hours,
  // which an export from the start would go through first, oldest first.
  Start({absl::StrCat("--archive_from_ns=", hour)});
  auto cur = WaitArchived(a.id, hour, 30000);
  ASSERT_TRUE(cur.ok()) << cur.status();
  EXPECT_EQ(ArchivedReadings(*cur), a_n);

  auto call = [&](const std::string& key) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!key.empty()) ctx->AddMetadata("authorization", "Bearer " + key);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return ctx;
  };
  // ListExports: A sees its export, with its files.
  v1::ListExportsRequest list;
  list.set_from_ns(hour);
  list.set_to_ns(hour + kHour);
  v1::ListExportsResponse listed;
  auto ctx = call(a.key);
  grpc::Status st = stub_->ListExports(ctx.get(), list, &listed);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(listed.exports_size(), 1);
  const v1::ExportStatus mine = listed.exports(0);
  EXPECT_EQ(mine.tenant_id(), a.id);
  EXPECT_EQ(mine.state(), v1::EXPORT_STATE_DONE);
  EXPECT_EQ(mine.rows(), a_n);
  EXPECT_EQ(mine.version(), 1);
  EXPECT_EQ(mine.files_size(), 2);  // one readings part, the last-reading file

  // GetExport: A reads it; B is told it does not exist, and lists only its own.
  v1::GetExportRequest get;
  get.set_export_id(mine.export_id());
  v1::ExportStatus got;
  ctx = call(a.key);
  st = stub_->GetExport(ctx.get(), get, &got);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(got.export_id(), mine.export_id());
  ctx = call(b.key);
  st = stub_->GetExport(ctx.get(), get, &got);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  ASSERT_TRUE(WaitArchived(b.id, hour, 30000).ok());
  ctx = call(b.key);
  st = stub_->ListExports(ctx.get(), list, &listed);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(listed.exports_size(), 1);
  EXPECT_EQ(listed.exports(0).tenant_id(), b.id);
  EXPECT_EQ(listed.exports(0).rows(), b_n);
  for (const auto& f : listed.exports(0).files()) {
    EXPECT_EQ(f.rfind(absl::StrCat("tenant=", b.id, "/"), 0), 0u) << f;
  }

  // TriggerExport of an archived hour: reported, not repeated.
  v1::TriggerExportRequest trig;
  trig.set_hour_start_ns(hour);
  v1::ExportStatus triggered;
  ctx = call(a.key);
  st = stub_->TriggerExport(ctx.get(), trig, &triggered);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(triggered.export_id(), mine.export_id());
  EXPECT_EQ(triggered.version(), 1);

  // Bad requests: the field and the reason; no key: UNAUTHENTICATED.
  trig.set_hour_start_ns(hour + 1);
  ctx = call(a.key);
  st = stub_->TriggerExport(ctx.get(), trig, &triggered);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("hour_start_ns"), std::string::npos) << st.error_message();
  trig.set_hour_start_ns(hour + 40 * kHour);  // nothing packed there
  ctx = call(a.key);
  st = stub_->TriggerExport(ctx.get(), trig, &triggered);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  list.set_to_ns(hour + 40LL * 24 * kHour);
  ctx = call(a.key);
  st = stub_->ListExports(ctx.get(), list, &listed);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("to_ns"), std::string::npos) << st.error_message();
  get.set_export_id("not-an-id");
  ctx = call(a.key);
  st = stub_->GetExport(ctx.get(), get, &got);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("export_id"), std::string::npos) << st.error_message();
  ctx = call("");
  st = stub_->ListExports(ctx.get(), list, &listed);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
}

TEST_F(ExportE2e, KillNineMidExportThenRestartArchivesTheHourExactly) {
  const int64_t hour = HourFor(SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants"));
  // 400 series at 2 s: 720,000 readings, in parts of about 2,000.
  auto [t, n] = FillPacked("export-e2e-kill", 400, 2, hour);
  const fs::path dir = root_ / ArchiveHourDir(t.id, hour);
  const std::string last = absl::StrCat("last-v1.parquet");
  {
    // Hold the manifest's files table: the export writes every file, then
    // waits to record them. Killed there, it has written everything and
    // published nothing (and the hours before ours are not its business:
    // --archive_from_ns).
    pqxx::connection c(RequireEnv("TELEMETRY_PG_PRIMARY"));
    pqxx::work lock(c);
    // SHARE: the export reads the manifest, it cannot write it.
    lock.exec("LOCK TABLE archive_files IN SHARE MODE");
    Start({"--max_readings_per_file=2000", "--row_group_rows=1000",
           absl::StrCat("--archive_from_ns=", hour)});
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < until && !fs::exists(dir / last)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(fs::exists(dir / last))
        << "the export did not write its files; log in " << log_dir_;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // into CommitExport's wait
    service_->Signal(SIGKILL);
    service_->Wait();
    lock.abort();
  }
  EXPECT_FALSE(archive_->CurrentExport(t.id, hour).ok());
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM archive_exports WHERE tenant_id = ", t.id,
                                " AND state = 'writing'")),
            1);
  EXPECT_GT(FilesIn(dir).size(), 100u) << "the killed run's files are there, unpublished";

  Start({"--max_readings_per_file=2000", "--row_group_rows=1000",
         absl::StrCat("--archive_from_ns=", hour)});
  auto cur = WaitArchived(t.id, hour, 120000);
  ASSERT_TRUE(cur.ok()) << cur.status();
  EXPECT_EQ(cur->version, 1) << "resumed under the version the killed run began";
  EXPECT_EQ(cur->readings, n);
  EXPECT_EQ(ArchivedReadings(*cur), n);
  // Exactly the manifest's files: nothing left of the killed run.
  std::set<std::string> want;
  for (const auto& f : cur->files) want.insert(f.path);
  EXPECT_EQ(FilesIn(dir), want);
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM archive_exports WHERE tenant_id = ", t.id)),
            1);
}

// --enforce_retention: a day past its tenants' 30 days is dropped once its
// hour is archived, on the service's own schedule. (The days before the
// test's are other tests' and are left alone: --retention_from_ns.)
TEST_F(ExportE2e, EnforcesRetentionOnceTheDayIsArchived) {
  // A day past the default 30 days, of its own (a dropped day takes no
  // readings again): 35 + (tenant id % 200) days ago.
  const int64_t seed = SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants");
  const int64_t now_s = static_cast<int64_t>(std::time(nullptr));
  const int64_t day = (now_s / 86400 - 35 - seed % 200) * 86400 * kSec;
  auto [t, n] = FillPacked("export-e2e-retention", 8, 60, day + 5 * kHour);
  auto day_table = [](int64_t d) {
    return Sql(absl::StrCat("SELECT 'raw_readings_d' || to_char(to_timestamp(", d / kSec,
                            ") AT TIME ZONE 'UTC', 'YYYYMMDD')"))[0][0];
  };
  const std::string raw = day_table(day);
  ASSERT_EQ(Sql("SELECT to_regclass('" + raw + "') IS NOT NULL")[0][0], "t");
  // An older day, archived and past retention too, but before
  // --retention_from_ns: it must stay (1995-01-01 + a day per tenant id).
  const int64_t before = 788'918'400LL * kSec + seed * 24 * kHour;
  FillPacked("export-e2e-retention-before", 2, 600, before + 5 * kHour);
  {
    auto fs = archive::ArchiveFs::Open(root_.string());
    ASSERT_TRUE(fs.ok()) << fs.status();
    Exporter exporter(archive_.get(), fs->get(), ExporterOptions());
    auto pass = exporter.RunOnce(before, before + 24 * kHour, 24);
    ASSERT_TRUE(pass.ok()) << pass.status();
    ASSERT_FALSE(pass->exports.empty());
  }
  Start({"--enforce_retention", "--retention_interval_s=0.2", "--retention_purge_grace_s=1",
         absl::StrCat("--retention_from_ns=", day), absl::StrCat("--archive_from_ns=", day)});
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < until &&
         Sql("SELECT to_regclass('" + raw + "') IS NULL")[0][0] != "t") {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(Sql("SELECT to_regclass('" + raw + "') IS NULL")[0][0], "t")
      << "the day was not dropped; log in " << log_dir_;
  auto cur = archive_->CurrentExport(t.id, day + 5 * kHour);
  ASSERT_TRUE(cur.ok()) << cur.status();
  EXPECT_EQ(ArchivedReadings(*cur), n) << "every reading of the dropped day is in the archive";
  EXPECT_GE(SqlInt(absl::StrCat("SELECT readings FROM retention_drops WHERE day = ", day)), n);
  EXPECT_EQ(Sql("SELECT to_regclass('" + day_table(before) + "') IS NOT NULL")[0][0], "t")
      << "a day before --retention_from_ns was dropped";

  // telemetry-query with the archive root answers the dropped hour from it,
  // saying so; without it, the hour reads as empty.
  for (const bool with_archive : {true, false}) {
    const int port = FreePort();
    std::vector<std::string> args = {"--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"),
                                     absl::StrCat("--listen=127.0.0.1:", port),
                                     absl::StrCat("--http_port=", FreePort())};
    if (with_archive) args.push_back("--archive_root=" + root_.string());
    Process query(BuildDir() + "/services/query/telemetry-query", args,
                  (log_dir_ / absl::StrCat("query.", with_archive, ".log")).string());
    ASSERT_TRUE(WaitForServing(port, 20000))
        << "telemetry-query did not serve; log in " << log_dir_;
    auto stub = telemetry::v1::QueryService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + t.key);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    telemetry::v1::RangeRequest req;
    req.set_device_id("dev-0");
    req.set_start_ns(day + 5 * kHour);  // the tenant's hour (its other hours: not dropped)
    req.set_end_ns(day + 6 * kHour);
    req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_STRONG);
    auto reader = stub->Range(&ctx, req);
    telemetry::v1::RangeResponse page;
    int64_t got = 0;
    std::string source;
    while (reader->Read(&page)) {
      if (source.empty()) source = page.metadata().data_source();
      got += page.readings_size();
    }
    grpc::Status st = reader->Finish();
    ASSERT_TRUE(st.ok()) << st.error_message() << "; log in " << log_dir_;
    if (with_archive) {
      EXPECT_EQ(got, n) << "every reading of the dropped day, from the archive";
      EXPECT_EQ(source, "archive");
    } else {
      EXPECT_EQ(got, 0);
      EXPECT_EQ(source, "primary");
    }
  }
}

TEST_F(ExportE2e, ArchivesToS3AndARootItCannotOpenStopsItAtStart) {
  const int64_t hour = HourFor(SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants"));
  auto [t, n] = FillPacked("export-e2e-s3", 8, 30, hour);
  const std::string root = S3ArchiveRoot(absl::StrCat("export_e2e_", getpid()));
  auto fs = archive::ArchiveFs::Open(root);
  ASSERT_TRUE(fs.ok()) << fs.status();
  // The last --archive_root wins: the S3 root, credentials from the
  // environment the process inherits.
  Start({"--archive_root=" + root, absl::StrCat("--archive_from_ns=", hour)});
  auto cur = WaitArchived(t.id, hour, 30000);
  ASSERT_TRUE(cur.ok()) << cur.status() << "; log in " << log_dir_;
  EXPECT_EQ(cur->readings, n);
  int64_t archived = 0;
  for (const auto& f : cur->files) {
    if (f.kind != "readings") continue;
    auto rows = archive::ReadParquetReadings(**fs, f.path);
    ASSERT_TRUE(rows.ok()) << rows.status();
    archived += static_cast<int64_t>(rows->size());
  }
  EXPECT_EQ(archived, n);
  service_->Signal(SIGTERM);
  EXPECT_EQ(service_->Wait(), 0) << "a clean exit after S3 was used; log in " << log_dir_;
  service_.reset();
  EXPECT_TRUE((*fs)->DeleteFilesUnder("").ok());

  // A bucket that does not exist: exit code 2 at start, saying so.
  const std::string log = (log_dir_ / "bad-root.log").string();
  Process bad(
      BuildDir() + "/services/export/telemetry-export",
      {absl::StrCat("--archive_root=s3://no-such-bucket-", getpid(),
                    "?endpoint=", RequireEnv("TELEMETRY_S3_ENDPOINT")),
       "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"),
       absl::StrCat("--listen=127.0.0.1:", FreePort()), absl::StrCat("--http_port=", FreePort())},
      log);
  EXPECT_EQ(bad.Wait(20000), 2);
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("does not exist"), std::string::npos) << text;

  // The query service's cold reads refuse the same root, and a negative
  // cache size, at start with exit code 2 and the flag named.
  auto query_exit = [&](const std::string& flag, const std::string& name) {
    const std::string qlog = (log_dir_ / (name + ".log")).string();
    Process q(BuildDir() + "/services/query/telemetry-query",
              {flag, "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"),
               absl::StrCat("--listen=127.0.0.1:", FreePort()), "--http_port=0"},
              qlog);
    const int code = q.Wait(20000);
    std::ifstream qin(qlog);
    return std::make_pair(
        code, std::string((std::istreambuf_iterator<char>(qin)), std::istreambuf_iterator<char>()));
  };
  auto [code, said] = query_exit(absl::StrCat("--archive_root=s3://no-such-bucket-", getpid(),
                                              "?endpoint=", RequireEnv("TELEMETRY_S3_ENDPOINT")),
                                 "query-bad-root");
  EXPECT_EQ(code, 2) << said;
  EXPECT_NE(said.find("--archive_root"), std::string::npos) << said;
  EXPECT_NE(said.find("does not exist"), std::string::npos) << said;
  std::tie(code, said) = query_exit("--archive_cache_mb=-1", "query-bad-cache");
  EXPECT_EQ(code, 2) << said;
  EXPECT_NE(said.find("--archive_cache_mb"), std::string::npos) << said;
}

// The primary goes away under the running service (a proxy in between is cut:
// its connections closed, new ones refused) and comes back: the service says
// NOT_SERVING while it is gone, counts the failed passes, and once it is back
// serves again and archives what was packed meanwhile, exactly.
TEST_F(ExportE2e, ThePrimaryGoingAwayMidRunIsNotServingAndPassesResume) {
  const int64_t hour = HourFor(SqlInt("SELECT coalesce(max(id), 0) + 1 FROM tenants"));
  auto [a, a_n] = FillPacked("export-e2e-pg-a", 8, 60, hour);
  const std::string url = RequireEnv("TELEMETRY_PG_PRIMARY");
  const size_t colon = url.rfind(':'), slash = url.find('/', colon);
  TcpProxy proxy(std::stoi(url.substr(colon + 1, slash - colon - 1)));
  const std::string via_proxy =
      url.substr(0, colon + 1) + std::to_string(proxy.port()) + url.substr(slash);
  Start({"--pg_primary=" + via_proxy, absl::StrCat("--archive_from_ns=", hour)});
  auto cur = WaitArchived(a.id, hour, 30000);
  ASSERT_TRUE(cur.ok()) << cur.status() << "; log in " << log_dir_;
  EXPECT_TRUE(WaitForHealth(port_, "", 1, 5000));

  proxy.Cut();
  EXPECT_TRUE(WaitForHealth(port_, "", 2, 10000)) << "still SERVING; log in " << log_dir_;
  // Packed while the service cannot see the primary: an hour of its own.
  auto [b, b_n] = FillPacked("export-e2e-pg-b", 8, 60, hour + kHour);
  // Passes go on failing, counted (once it is NOT_SERVING, nothing else can
  // fail a pass: other tests' damaged hours fail only while it can read them).
  const double failed = MetricValue(http_port_, "export_failures_total");
  EXPECT_TRUE(
      Eventually([&] { return MetricValue(http_port_, "export_failures_total") > failed; }, 10'000))
      << "no failed pass counted; log in " << log_dir_;
  EXPECT_EQ(archive_->CurrentExport(b.id, hour + kHour).status().code(),
            absl::StatusCode::kNotFound);

  proxy.Restore();
  EXPECT_TRUE(WaitForHealth(port_, "", 1, 10000)) << "not SERVING again; log in " << log_dir_;
  auto later = WaitArchived(b.id, hour + kHour, 30000);
  ASSERT_TRUE(later.ok()) << later.status() << "; log in " << log_dir_;
  EXPECT_EQ(ArchivedReadings(*later), b_n);
  auto first = archive_->CurrentExport(a.id, hour);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->version, cur->version) << "the hour archived before the outage was not redone";
  EXPECT_EQ(ArchivedReadings(*first), a_n);
}

}  // namespace
}  // namespace telemetry::testing
