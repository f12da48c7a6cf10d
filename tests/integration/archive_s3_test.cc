// The archive root on S3 (common/archive/archive_fs.h) against the local
// stack's S3Proxy, which checks AWS Signature V4 (issue 17): files round trip
// through single PUTs and multipart uploads; an abandoned Parquet upload
// leaves nothing; wrong credentials, a missing bucket and a stopped server
// are clear errors; the exporter fails an hour while the store is down and
// archives it exactly once it is back.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/archive/archive_fs.h"
#include "common/archive/cold_readings.h"
#include "common/archive/parquet_readings.h"
#include "common/auth.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "services/export/exporter.h"
#include "tests/integration/archive_s3_env.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

constexpr int64_t kHour = 3'600'000'000'000, kSec = 1'000'000'000;

std::string S3Ctl() { return SourceDir() + "/deploy/local/s3.sh"; }

void RunOrFail(const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd; }

class ArchiveS3 : public ::testing::Test {
 protected:
  void SetUp() override {
    prefix_ = absl::StrCat("archive_s3_", getpid(), "_",
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    root_ = S3ArchiveRoot(prefix_);
    auto fs = archive::ArchiveFs::Open(root_);
    ASSERT_TRUE(fs.ok()) << fs.status();
    fs_ = std::move(*fs);
  }
  void TearDown() override {
    if (fs_ != nullptr) {
      absl::Status st = fs_->DeleteFilesUnder("");
      EXPECT_TRUE(st.ok()) << st;
    }
  }

  std::string prefix_, root_;
  std::unique_ptr<archive::ArchiveFs> fs_;
};

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

TEST_F(ArchiveS3, FilesRoundTripInOnePutAndInAMultipartUpload) {
  const std::string small = "hello archive";
  // Larger than Arrow's 10 MB upload part: a multipart upload of two parts.
  const std::string big = RandomBytes(23 << 20, 7);
  ASSERT_TRUE(fs_->Write("d/e/small.bin", small).ok());
  ASSERT_TRUE(fs_->Write("d/e/big.bin", big).ok());
  auto back = fs_->Read("d/e/big.bin");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == big) << "multipart object differs (" << back->size() << " bytes)";
  auto names = fs_->ListFiles("d/e");
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_EQ(*names, (std::vector<std::string>{"big.bin", "small.bin"}));
  // Move is a server-side copy + delete: the object keeps its bytes.
  ASSERT_TRUE(fs_->Move("d/e/big.bin", "d/e/moved.bin").ok());
  back = fs_->Read("d/e/moved.bin");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == big);
  EXPECT_EQ(fs_->Delete("d/e/big.bin").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(fs_->Delete("d/e/moved.bin").ok());
  names = fs_->ListFiles("d/e");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"small.bin"});
  names = fs_->ListFiles("no/such/dir");
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_TRUE(names->empty());
}

TEST_F(ArchiveS3, AnAbandonedParquetUploadLeavesNothing) {
  // ~16 MB of incompressible doubles in row groups of 256 Ki rows: parts are
  // uploaded before the writer is dropped, so the multipart upload must be
  // aborted, not completed.
  constexpr int64_t kH = 1'600'000'000 * kSec / kHour * kHour;
  archive::ParquetOptions opt;
  opt.row_group_rows = 1 << 18;
  {
    auto w =
        archive::ParquetReadingsWriter::Create(fs_.get(), "t/abandoned.parquet", {1, kH, 1}, opt);
    ASSERT_TRUE(w.ok()) << w.status();
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> u(-1e6, 1e6);
    std::vector<RawRow> rows;
    for (int i = 0; i < 2'000'000; ++i) {
      RawRow r;
      r.ts_ns = kH + i * 1000;
      r.kind = ValueKind::kDouble;
      r.d = u(rng);
      rows.push_back(r);
    }
    ASSERT_TRUE((*w)->Append({"dev", "s", "", "p", "{}"}, rows).ok());
  }
  auto names = fs_->ListFiles("t");
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_TRUE(names->empty()) << (*names)[0];

  // The same, finished: readable through the S3 filesystem, digest and all.
  auto w = archive::ParquetReadingsWriter::Create(fs_.get(), "t/kept.parquet", {1, kH, 1});
  ASSERT_TRUE(w.ok()) << w.status();
  RawRow r;
  r.ts_ns = kH + 5;
  r.kind = ValueKind::kString;
  r.s = "on";
  ASSERT_TRUE((*w)->Append({"dev", "s", "", "p", "{}"}, {r}).ok());
  auto summary = (*w)->Finish();
  ASSERT_TRUE(summary.ok()) << summary.status();
  auto bytes = fs_->Read("t/kept.parquet");
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(static_cast<int64_t>(bytes->size()), summary->bytes);
  EXPECT_EQ(Sha256Hex(*bytes), summary->sha256_hex);
  auto rows = archive::ReadParquetReadings(*fs_, "t/kept.parquet");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].reading.s, "on");
}

TEST_F(ArchiveS3, WrongCredentialsAndAMissingBucketAreClearErrors) {
  const std::string secret = RequireEnv("TELEMETRY_S3_SECRET_ACCESS_KEY");
  setenv("AWS_SECRET_ACCESS_KEY", (secret + "x").c_str(), 1);
  auto denied = archive::ArchiveFs::Open(root_);
  // Writes are refused too (the server checks every request's signature).
  absl::Status write = fs_->Write("x.bin", "x");
  setenv("AWS_SECRET_ACCESS_KEY", secret.c_str(), 1);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kUnavailable) << denied.status();
  EXPECT_TRUE(absl::StrContains(denied.status().message(), RequireEnv("TELEMETRY_S3_BUCKET")))
      << denied.status();
  EXPECT_FALSE(write.ok());
  EXPECT_TRUE(absl::StrContains(write.message(), "SIGNATURE_DOES_NOT_MATCH")) << write;

  auto missing = archive::ArchiveFs::Open(absl::StrCat(
      "s3://no-such-bucket-", getpid(), "?endpoint=", RequireEnv("TELEMETRY_S3_ENDPOINT")));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition) << missing.status();
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "does not exist")) << missing.status();
}

// The exporter while the object store is down: the hour fails (UNAVAILABLE,
// nothing committed), it is tried again after retry_after_ns, and once the
// store is back it is archived exactly, once.
TEST_F(ArchiveS3, AnHourFailsWhileTheStoreIsDownAndIsArchivedWhenItIsBack) {
  PgPool pool(RequireEnv("TELEMETRY_PG_PRIMARY"), 2, "test");
  auto writer = NewPgReadingWriter(&pool);
  auto metadata = NewPgMetadataStore(&pool);
  auto store = NewPgArchiveStore(&pool);
  Tenant t = CreateTenant("archive-s3");
  // An hour of its own: 2019-06-01 + 2 h per tenant id.
  const int64_t hour = 1'559'347'200 * kSec + t.id * 2 * kHour;
  auto ids = metadata->ResolveSeries(t.id, {{"dev", "temp", "C", ""}});
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_TRUE(writer->EnsurePartitions(hour, hour + kHour).ok());
  std::vector<RawRow> rows;
  for (int i = 0; i < 360; ++i) {
    RawRow r;
    r.series_id = (*ids)[0];
    r.ts_ns = hour + i * 10 * kSec;
    r.kind = ValueKind::kDouble;
    r.d = 20 + i * 0.25;
    rows.push_back(r);
  }
  ASSERT_TRUE(writer->Apply(rows, absl::StrCat("archive-s3-", t.id), {{0, 1}}).ok());
  ASSERT_TRUE(writer->PackRawHour(hour, 10'000).ok());
  ExporterOptions options;
  options.retry_after_ns = 0;  // tried again at the next pass
  Exporter exporter(store.get(), fs_.get(), options);

  RunOrFail(S3Ctl() + " stop");
  auto pass = exporter.RunOnce(hour, hour + kHour, 4);
  RunOrFail(S3Ctl() + " start");
  ASSERT_TRUE(pass.ok()) << pass.status();
  ASSERT_EQ(pass->failed.size(), 1u);
  EXPECT_EQ(pass->failed[0].second.code(), absl::StatusCode::kUnavailable)
      << pass->failed[0].second;
  EXPECT_EQ(store->CurrentExport(t.id, hour).status().code(), absl::StatusCode::kNotFound);

  pass = exporter.RunOnce(hour, hour + kHour, 4);
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_TRUE(pass->failed.empty()) << pass->failed[0].second;
  ASSERT_EQ(pass->exports.size(), 1u);
  EXPECT_EQ(pass->exports[0].readings, 360);
  auto current = store->CurrentExport(t.id, hour);
  ASSERT_TRUE(current.ok()) << current.status();
  int64_t archived = 0;
  for (const auto& f : current->files) {
    if (f.kind != "readings") continue;
    auto got = archive::ReadParquetReadings(*fs_, f.path);
    ASSERT_TRUE(got.ok()) << got.status();
    for (size_t i = 0; i < got->size(); ++i) {
      EXPECT_EQ((*got)[i].reading.ts_ns, rows[archived + i].ts_ns);
      EXPECT_EQ((*got)[i].reading.d, rows[archived + i].d);
    }
    archived += static_cast<int64_t>(got->size());
  }
  EXPECT_EQ(archived, 360);
  auto names = fs_->ListFiles(ArchiveHourDir(t.id, hour));
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(names->size(), current->files.size()) << "a stray file of the failed attempt";
}

// A cold read (the query service's, docs/archive.md "Cold reads") while the
// object store is down: UNAVAILABLE, which the router counts against the
// source and the caller may retry, never an empty or partial answer; once the
// store is back the same read answers every reading, and what it cached
// before the outage kept answering during it.
TEST_F(ArchiveS3, AColdReadWhileTheStoreIsDownIsUnavailableAndAnswersWhenItIsBack) {
  PgPool pool(RequireEnv("TELEMETRY_PG_PRIMARY"), 2, "test");
  auto writer = NewPgReadingWriter(&pool);
  auto metadata = NewPgMetadataStore(&pool);
  auto store = NewPgArchiveStore(&pool);
  Tenant t = CreateTenant("archive-s3-cold");
  // Two hours of its own: 2019-09-01 + 2 h per tenant id.
  const int64_t hour = 1'567'296'000 * kSec + t.id * 2 * kHour;
  auto ids =
      metadata->ResolveSeries(t.id, {{"dev-a", "temp", "C", ""}, {"dev-b", "temp", "C", ""}});
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_TRUE(writer->EnsurePartitions(hour, hour + 2 * kHour).ok());
  std::vector<RawRow> rows;
  for (int h = 0; h < 2; ++h) {
    for (int i = 0; i < 120; ++i) {
      for (int32_t id : *ids) {
        RawRow r;
        r.series_id = id;
        r.ts_ns = hour + h * kHour + i * 30 * kSec;
        r.d = 20 + i * 0.5;
        rows.push_back(r);
      }
    }
  }
  ASSERT_TRUE(writer->Apply(rows, absl::StrCat("archive-s3-cold-", t.id), {{0, 1}}).ok());
  ASSERT_TRUE(writer->PackRawHour(hour, 10'000).ok());
  ASSERT_TRUE(writer->PackRawHour(hour + kHour, 10'000).ok());
  Exporter exporter(store.get(), fs_.get(), ExporterOptions());
  auto pass = exporter.RunOnce(hour, hour + 2 * kHour, 4);
  ASSERT_TRUE(pass.ok()) << pass.status();
  ASSERT_EQ(pass->exports.size(), 2u);

  archive::ColdReadingsOptions options;
  options.refresh_ns = 0;
  archive::ArchiveColdReadings cold(store.get(), fs_.get(), SystemClock::Get(), options, nullptr);
  auto cached = cold.DeviceHour(t.id, hour, "dev-a");  // read (and cached) before the outage
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ((*cached)->size(), 120u);

  RunOrFail(S3Ctl() + " stop");
  auto down = cold.DeviceHour(t.id, hour + kHour, "dev-a");
  auto again = cold.DeviceHour(t.id, hour, "dev-a");
  RunOrFail(S3Ctl() + " start");
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->size(), 120u) << "the cache answers without the store";

  auto back = cold.DeviceHour(t.id, hour + kHour, "dev-a");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ((*back)->size(), 120u);
  for (size_t i = 0; i < (*back)->size(); ++i) {
    EXPECT_EQ((**back)[i].ts_ns, hour + kHour + static_cast<int64_t>(i) * 30 * kSec);
    EXPECT_EQ((**back)[i].d, 20 + static_cast<double>(i) * 0.5);
  }
}

}  // namespace
}  // namespace telemetry::testing
