// The archive's Parquet files (common/archive/parquet_readings.h): round trips
// through Arrow's reader, the ordering the writer enforces, the publish step;
// and that one process holds Apache Arrow (from the pyarrow wheel) beside
// Debian's gRPC, protobuf and Abseil without a symbol clash.
#include <dlfcn.h>
#include <link.h>
#include <openssl/sha.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/archive/parquet_readings.h"
#include "common/auth.h"
#include "common/testing/raw_rows.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "telemetry/v1/common.pb.h"

namespace telemetry::archive {
namespace {

namespace fs = std::filesystem;

class ArchiveParquetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("archive_parquet_test_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

using telemetry::testing::BoolRow;
using telemetry::testing::DoubleRow;
using telemetry::testing::StringRow;

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

constexpr int64_t kHour = 3'600'000'000'000LL;
constexpr int64_t kH = 492'000 * kHour;  // an hour in 2026

TEST_F(ArchiveParquetTest, RoundTripsEveryKindAcrossRowGroups) {
  ParquetOptions opt;
  opt.row_group_rows = 7;  // series cross row-group boundaries
  auto w = ParquetReadingsWriter::Create(Path("a.parquet"), {42, kH, 3}, opt);
  ASSERT_TRUE(w.ok()) << w.status();

  struct Series {
    SeriesNames cols;
    std::vector<RawRow> rows;
  };
  std::vector<Series> in;
  in.push_back({{"dev-a", "door", "", "p1", R"({"site":"x"})"},
                {BoolRow(kH + 1, true), BoolRow(kH + 2, false), BoolRow(kH + 3, true)}});
  std::vector<RawRow> temps;
  for (int i = 0; i < 20; ++i) {
    temps.push_back(DoubleRow(kH + i * 1'000'000'000LL, 20.5 + i * 0.1, i == 5 ? 3 : 0));
  }
  temps.push_back(DoubleRow(kH + 21'000'000'000LL, std::nan("")));
  temps.push_back(DoubleRow(kH + 22'000'000'000LL, -0.0));
  temps.push_back(DoubleRow(kH + 23'000'000'000LL, 1e308));
  in.push_back({{"dev-a", "temp", "C", "p1", "{}"}, temps});
  in.push_back({{"dev-a", "temp", "F", "p1", "{}"}, {DoubleRow(kH + 5, 70)}});
  in.push_back(
      {{"dev-b", "fw", "", "p2", "{}"},
       {StringRow(kH + 10, "1.2.3"), StringRow(kH + 11, ""), StringRow(kH + 12, "ünïcode")}});

  for (const auto& s : in) {
    // The temperature series in two calls: a series may be appended in parts.
    if (s.rows.size() > 4) {
      std::vector<RawRow> a(s.rows.begin(), s.rows.begin() + 4),
          b(s.rows.begin() + 4, s.rows.end());
      ASSERT_TRUE((*w)->Append(s.cols, a).ok());
      ASSERT_TRUE((*w)->Append(s.cols, b).ok());
    } else {
      ASSERT_TRUE((*w)->Append(s.cols, s.rows).ok());
    }
  }
  EXPECT_FALSE(fs::exists(Path("a.parquet"))) << "published before Finish";
  auto summary = (*w)->Finish();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(fs::exists(Path("a.parquet")));
  EXPECT_FALSE(fs::exists(Path("a.parquet.tmp")));
  EXPECT_EQ(summary->rows, 3 + 23 + 1 + 3);
  EXPECT_EQ(summary->row_groups, (30 + 6) / 7);
  std::string bytes = FileBytes(Path("a.parquet"));
  EXPECT_EQ(summary->bytes, static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(summary->sha256_hex, Sha256Hex(bytes));

  auto info = ReadParquetFileInfo(Path("a.parquet"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->tenant_id, 42);
  EXPECT_EQ(info->hour_start_ns, kH);
  EXPECT_EQ(info->export_version, 3);

  auto got = ReadParquetReadings(Path("a.parquet"));
  ASSERT_TRUE(got.ok()) << got.status();
  size_t k = 0;
  for (const auto& s : in) {
    for (const auto& r : s.rows) {
      ASSERT_LT(k, got->size());
      const ArchivedReading& g = (*got)[k++];
      SCOPED_TRACE(
          absl::StrCat(s.cols.device, "/", s.cols.sensor, "/", s.cols.unit, " @", r.ts_ns));
      EXPECT_EQ(g.series.device, s.cols.device);
      EXPECT_EQ(g.series.sensor, s.cols.sensor);
      EXPECT_EQ(g.series.unit, s.cols.unit);
      EXPECT_EQ(g.series.project, s.cols.project);
      EXPECT_EQ(g.series.labels_json, s.cols.labels_json);
      EXPECT_EQ(g.reading.ts_ns, r.ts_ns);
      EXPECT_EQ(g.reading.kind, r.kind);
      EXPECT_EQ(g.reading.status, r.status);
      switch (r.kind) {
        case ValueKind::kDouble: {
          // Bit for bit: NaN and -0.0 included.
          uint64_t want, have;
          std::memcpy(&want, &r.d, 8);
          std::memcpy(&have, &g.reading.d, 8);
          EXPECT_EQ(have, want);
          break;
        }
        case ValueKind::kString:
          EXPECT_EQ(g.reading.s, r.s);
          break;
        case ValueKind::kBool:
          EXPECT_EQ(g.reading.b, r.b);
          break;
      }
    }
  }
  EXPECT_EQ(k, got->size());
}

TEST_F(ArchiveParquetTest, RejectsSeriesOrReadingsOutOfOrder) {
  auto w = ParquetReadingsWriter::Create(Path("b.parquet"), {1, kH, 1});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append({"d2", "s", "", "p", "{}"}, {DoubleRow(kH + 1, 1)}).ok());
  absl::Status st = (*w)->Append({"d1", "s", "", "p", "{}"}, {DoubleRow(kH + 1, 1)});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  st = (*w)->Append({"d2", "s", "", "p", "{}"}, {DoubleRow(kH + 1, 2)});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << "same timestamp twice: " << st;
  st = (*w)->Append({"d2", "t", "", "p", "{}"}, {DoubleRow(kH + 5, 1), DoubleRow(kH + 4, 1)});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
}

TEST_F(ArchiveParquetTest, AbandonedWriterLeavesNoFile) {
  {
    auto w = ParquetReadingsWriter::Create(Path("c.parquet"), {1, kH, 1});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append({"d", "s", "", "p", "{}"}, {DoubleRow(kH + 1, 1)}).ok());
    EXPECT_TRUE(fs::exists(Path("c.parquet.tmp")));
  }
  EXPECT_FALSE(fs::exists(Path("c.parquet")));
  EXPECT_FALSE(fs::exists(Path("c.parquet.tmp")));
}

TEST_F(ArchiveParquetTest, UnwritablePathIsUnavailable) {
  auto w = ParquetReadingsWriter::Create(Path("no/such/dir/d.parquet"), {1, kH, 1});
  EXPECT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kUnavailable) << w.status();
}

TEST_F(ArchiveParquetTest, LocalRootIsCreatedAndBehavesLikeTheObjectStore) {
  auto root = ArchiveFs::Open("file://" + Path("root/sub"));
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_TRUE(fs::is_directory(Path("root/sub")));
  EXPECT_FALSE((*root)->is_s3());
  ASSERT_TRUE((*root)->CreateDirs("x/y").ok());
  ASSERT_TRUE((*root)->Write("x/y/.b", "staged").ok());
  ASSERT_TRUE((*root)->Move("x/y/.b", "x/y/b").ok());
  ASSERT_TRUE((*root)->Write("x/y/a", "1").ok());
  auto names = (*root)->ListFiles("x/y");
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(*(*root)->Read("x/y/b"), "staged");
  EXPECT_EQ((*root)->Delete("x/y/.b").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*root)->ListFiles("none")->empty());
  ASSERT_TRUE((*root)->DeleteFilesUnder("x").ok());
  EXPECT_FALSE(fs::exists(Path("root/sub/x/y/a")));
  EXPECT_FALSE(fs::exists(Path("root/sub/x/y/b")));
  EXPECT_TRUE((*root)->DeleteFilesUnder("none").ok());
}

TEST(ArchiveFsRoots, MalformedRootsAreInvalidArgumentWithTheReason) {
  struct Case {
    std::string root, says;
  };
  for (const Case& c : std::vector<Case>{
           {"s3://", "no bucket"},
           {"s3://key:secret@bucket/p", "credentials"},
           {"s3://bucket/p?endpoint=127.0.0.1:9000", "http:// or https://"},
           {"s3://bucket/p?endpoint=http://h:1/path", "scheme://host[:port]"},
           {"s3://bucket/p?endpoint_override=h:1", "unknown parameter 'endpoint_override'"},
           {"gs://bucket/p", "local directory, file:// or s3://"},
       }) {
    auto fs = ArchiveFs::Open(c.root);
    ASSERT_FALSE(fs.ok()) << c.root;
    EXPECT_EQ(fs.status().code(), absl::StatusCode::kInvalidArgument) << c.root;
    EXPECT_NE(fs.status().message().find(c.says), std::string::npos) << fs.status();
  }
}

TEST_F(ArchiveParquetTest, NotAnArchiveFileIsInvalidArgument) {
  std::ofstream(Path("e.parquet")) << "not parquet";
  EXPECT_FALSE(ReadParquetReadings(Path("e.parquet")).ok());
  EXPECT_FALSE(ReadParquetFileInfo(Path("e.parquet")).ok());
}

// --- One process, two builds of the world --------------------------------
// libarrow / libparquet come from the pyarrow wheel and carry their own
// (static, hidden) protobuf, Abseil, AWS SDK, zstd ...; this process also
// links Debian's gRPC 1.51, protobuf 3.21 and Abseil 2022-06. A clash would
// bind one library's calls to the other's copy (crashes or silent misuse).

std::string ObjectOf(const void* addr) {
  Dl_info info{};
  if (dladdr(addr, &info) == 0 || info.dli_fname == nullptr) return "";
  return fs::path(info.dli_fname).filename().string();
}

bool Loaded(const std::string& prefix) {
  struct Ctx {
    std::string prefix;
    bool found = false;
  } ctx{prefix};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* c = static_cast<Ctx*>(data);
        std::string name = fs::path(info->dlpi_name ? info->dlpi_name : "").filename().string();
        if (name.rfind(c->prefix, 0) == 0) c->found = true;
        return 0;
      },
      &ctx);
  return ctx.found;
}

TEST(ArrowBesideGrpc, OneProcessHoldsBothAndEachBindsToItsOwn) {
  // Arrow works: a Parquet file round trip.
  fs::path dir = fs::temp_directory_path() / absl::StrCat("arrow_link_", getpid());
  fs::create_directories(dir);
  auto w = ParquetReadingsWriter::Create((dir / "x.parquet").string(), {1, kH, 1});
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Append({"d", "s", "", "p", "{}"}, {DoubleRow(kH + 1, 1.5)}).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  auto back = ReadParquetReadings((dir / "x.parquet").string());
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].reading.d, 1.5);
  fs::remove_all(dir);

  // protobuf works: a message through its wire format.
  v1::Reading r;
  r.set_sensor("temp");
  r.set_double_value(21.5);
  v1::Reading parsed;
  ASSERT_TRUE(parsed.ParseFromString(r.SerializeAsString()));
  EXPECT_EQ(parsed.sensor(), "temp");

  // gRPC works: a client connects (HTTP/2 handshake) to an in-process server.
  grpc::CallbackGenericService generic;  // answers UNIMPLEMENTED to everything
  grpc::ServerBuilder builder;
  builder.RegisterCallbackGenericService(&generic);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  EXPECT_TRUE(
      channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5)));
  server->Shutdown();

  // Both worlds are in the process ...
  EXPECT_TRUE(Loaded("libarrow.so")) << "libarrow not loaded";
  EXPECT_TRUE(Loaded("libparquet.so")) << "libparquet not loaded";
  EXPECT_TRUE(Loaded("libprotobuf.so")) << "Debian's libprotobuf not loaded";
  EXPECT_TRUE(Loaded("libgrpc++.so")) << "Debian's libgrpc++ not loaded";
  // ... and our protobuf / Abseil calls bind to Debian's libraries.
  void* self = dlopen(nullptr, RTLD_NOW);
  ASSERT_NE(self, nullptr);
  int bound = 0;
  for (const char* sym : {"_ZNK6google8protobuf11MessageLite17SerializeAsStringB5cxx11Ev",
                          "_ZN4absl12lts_202206236StatusC1ENS0_10StatusCodeESt17basic_string_"
                          "viewIcSt11char_traitsIcEE",
                          "_ZN6google8protobuf8internal14ArenaStringPtr3SetB5cxx11EONSt7__"
                          "cxx1112basic_stringIcSt11char_traitsIcESaIcEEEPNS0_5ArenaE"}) {
    void* addr = dlsym(self, sym);
    if (addr == nullptr) continue;  // not referenced by this binary: nothing to bind
    std::string obj = ObjectOf(addr);
    EXPECT_TRUE(obj.rfind("libprotobuf.so", 0) == 0 || obj.rfind("libabsl_", 0) == 0)
        << sym << " resolves into " << obj;
    ++bound;
  }
  dlclose(self);
  EXPECT_GT(bound, 0) << "none of the probed protobuf / Abseil symbols is in the process";
  // The wheel's libraries export none of the shared dependencies' symbols:
  // looking them up through libarrow / libparquet finds only other objects.
  for (const char* lib : {"libarrow.so.2600", "libparquet.so.2600"}) {
    void* h = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
    ASSERT_NE(h, nullptr) << lib;
    for (const char* sym : {"_ZNK6google8protobuf11MessageLite17SerializeAsStringB5cxx11Ev",
                            "_ZN6google8protobuf7MessageD2Ev", "ZSTD_compress",
                            "_ZN4absl12lts_202206236StatusC1ENS0_10StatusCodeESt17basic_string_"
                            "viewIcSt11char_traitsIcEE",
                            "grpc_init"}) {
      void* addr = dlsym(h, sym);
      if (addr == nullptr) continue;
      std::string obj = ObjectOf(addr);
      EXPECT_EQ(obj.find("arrow"), std::string::npos) << lib << " exports " << sym;
      EXPECT_EQ(obj.find("parquet"), std::string::npos) << lib << " exports " << sym;
    }
    dlclose(h);
  }
}

}  // namespace
}  // namespace telemetry::archive
