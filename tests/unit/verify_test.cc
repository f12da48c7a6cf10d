// telemetry-admin import and verify without a network: the export file's
// sections, the checkpoint, the import pipeline over a fake WriteSender
// (batches, retries, refusals, resume), and the parity comparison.
#include "tools/admin/verify.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "tools/admin/import.h"

namespace telemetry::admin {
namespace {

std::string Temp(const std::string& name) {
  return ::testing::TempDir() + "/verify-test-" + std::to_string(::getpid()) + "-" + name;
}

TEST(FindDataStart, SkipsTheDdlSectionOfAnInfluxInspectExport) {
  const std::string body =
      "# INFLUXDB EXPORT: 1677-09-21T00:12:43Z - 2262-04-11T23:47:16Z\n# DDL\n"
      "CREATE DATABASE db1 WITH NAME autogen\n# DML\n# CONTEXT-DATABASE:db1\n"
      "cpu v=1 1\n";
  const DataStart s = FindDataStart(body);
  EXPECT_EQ(body.substr(s.offset), "# CONTEXT-DATABASE:db1\ncpu v=1 1\n");
  EXPECT_EQ(s.line, 5);
}

TEST(FindDataStart, StartsAPlainFileAtItsBeginning) {
  EXPECT_EQ(FindDataStart("# a comment\ncpu v=1 1\n# DDL\n").offset, 0u);
  EXPECT_EQ(FindDataStart("").offset, 0u);
  const DataStart ddl_only = FindDataStart("# DDL\nCREATE DATABASE x\n");
  EXPECT_EQ(ddl_only.offset, 24u);  // nothing to import
}

TEST(Checkpoint, RoundTripsAndRefusesGarbage) {
  const std::string path = Temp("ckpt");
  std::remove(path.c_str());
  EXPECT_TRUE(absl::IsNotFound(ReadCheckpoint(path).status()));
  ImportCheckpoint c;
  c.file_size = 1000;
  c.offset = 400;
  c.line = 12;
  c.readings = 30;
  c.accepted = 29;
  c.malformed_lines = 1;
  c.refused_lines = 1;
  ASSERT_TRUE(WriteCheckpoint(path, c).ok());
  auto back = ReadCheckpoint(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->offset, 400);
  EXPECT_EQ(back->line, 12);
  EXPECT_EQ(back->accepted, 29);
  EXPECT_FALSE(back->complete);
  EXPECT_EQ(::access((path + ".tmp").c_str(), F_OK), -1);  // renamed into place
  std::ofstream(path) << "file_size=10\noffset=x\n";
  EXPECT_EQ(ReadCheckpoint(path).status().code(), absl::StatusCode::kInvalidArgument);
  std::ofstream(path) << "file_size=10\noffset=11\nline=1\n";
  EXPECT_EQ(ReadCheckpoint(path).status().code(), absl::StatusCode::kInvalidArgument);
}

// Records what it was sent; refuses readings whose sensor is "bad"; fails
// the first `fail_first` calls with `failure` (and retry advice).
class FakeSender : public WriteSender {
 public:
  absl::Status Write(const v1::WriteRequest& request, v1::WriteResponse* response,
                     int64_t* retry_after_ms) override {
    std::lock_guard<std::mutex> lock(mu);
    ++calls;
    *retry_after_ms = -1;
    if (fail_first > 0) {
      --fail_first;
      *retry_after_ms = retry_after;
      return failure;
    }
    int64_t accepted = 0;
    for (int i = 0; i < request.readings_size(); ++i) {
      const v1::Reading& r = request.readings(i);
      if (r.sensor() == "bad") {
        auto* rej = response->add_rejected();
        rej->set_index(i);
        rej->set_field("sensor");
        rej->set_reason("no");
        continue;
      }
      ++accepted;
      stored.insert(absl::StrCat(r.device_id(), "/", r.sensor(), "@", r.timestamp_ns()));
    }
    response->set_accepted(accepted);
    batch_sizes.push_back(request.readings_size());
    return absl::OkStatus();
  }
  std::mutex mu;
  int calls = 0;
  int fail_first = 0;
  int64_t retry_after = -1;
  absl::Status failure = absl::UnavailableError("down");
  std::set<std::string> stored;
  std::vector<int> batch_sizes;
};

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = Temp(name);
  std::ofstream(path) << text;
  return path;
}

ImportOptions Options(const std::string& file) {
  ImportOptions o;
  o.file = file;
  o.batch = 10;
  o.concurrency = 3;
  o.initial_backoff_ms = 1;
  o.progress_interval_ms = 5;
  return o;
}

std::string Lines(int n, int first = 0) {
  std::string s;
  for (int i = first; i < first + n; ++i)
    absl::StrAppend(&s, "m,t=a x=", i, ",y=", i, " ", 1000 + i, "\n");
  return s;
}

TEST(Import, SendsEveryReadingInBatchesAndCompletesTheCheckpoint) {
  const std::string file = WriteFile("all.lp", Lines(95));
  ImportOptions o = Options(file);
  o.checkpoint = file + ".ckpt";
  std::remove(o.checkpoint.c_str());
  FakeSender sender;
  int reports = 0;
  auto r = RunImport(o, &sender, [&](const ImportProgress&) { ++reports; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(sender.stored.size(), 190u);
  EXPECT_EQ(r->checkpoint.readings, 190);
  EXPECT_EQ(r->checkpoint.accepted, 190);
  EXPECT_TRUE(r->checkpoint.complete);
  EXPECT_GE(reports, 1);
  // A line's readings stay together: batches of 10 readings (5 lines).
  for (int n : sender.batch_sizes) EXPECT_EQ(n, 10);
  auto saved = ReadCheckpoint(o.checkpoint);
  ASSERT_TRUE(saved.ok());
  EXPECT_TRUE(saved->complete);
  EXPECT_EQ(saved->offset, saved->file_size);
  EXPECT_EQ(saved->line, 96);
}

TEST(Import, ResumesAtTheCheckpointAndKeepsItsCounters) {
  const std::string text = Lines(40);
  const std::string file = WriteFile("resume.lp", text);
  ImportOptions o = Options(file);
  o.checkpoint = file + ".ckpt";
  ImportCheckpoint c;
  c.file_size = static_cast<int64_t>(text.size());
  c.offset = static_cast<int64_t>(Lines(30).size());  // the start of line 31
  c.line = 31;
  c.readings = 60;
  c.accepted = 60;
  ASSERT_TRUE(WriteCheckpoint(o.checkpoint, c).ok());
  FakeSender sender;
  auto r = RunImport(o, &sender, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(sender.stored.size(), 20u);  // lines 31..40 only
  EXPECT_EQ(sender.stored.count("m/t:a/x@1030"), 1u);
  EXPECT_EQ(sender.stored.count("m/t:a/x@1029"), 0u);
  EXPECT_EQ(r->resumed_at, c.offset);
  EXPECT_EQ(r->checkpoint.readings, 80);
  EXPECT_TRUE(r->checkpoint.complete);

  // A checkpoint of another file is refused.
  c.file_size = 5;
  c.offset = 1;
  ASSERT_TRUE(WriteCheckpoint(o.checkpoint, c).ok());
  EXPECT_EQ(RunImport(o, &sender, nullptr).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Import, RetriesUnavailableAndHonoursRetryAfter) {
  const std::string file = WriteFile("retry.lp", Lines(20));
  ImportOptions o = Options(file);
  o.concurrency = 1;
  FakeSender sender;
  sender.fail_first = 3;
  sender.retry_after = 2;
  sender.failure = absl::ResourceExhaustedError("quota");
  auto r = RunImport(o, &sender, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->retries, 3);
  EXPECT_EQ(sender.stored.size(), 40u);
  EXPECT_TRUE(r->checkpoint.complete);
}

TEST(Import, StopsOnAWholeRequestRefusalAndKeepsTheCheckpointBeforeIt) {
  const std::string file = WriteFile("fatal.lp", Lines(20));
  ImportOptions o = Options(file);
  o.concurrency = 1;
  o.checkpoint = file + ".ckpt";
  std::remove(o.checkpoint.c_str());
  FakeSender sender;
  sender.fail_first = 1;
  sender.failure = absl::UnauthenticatedError("unknown API key");
  auto r = RunImport(o, &sender, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(r.status().message().find("line 1"), absl::string_view::npos) << r.status();
  auto saved = ReadCheckpoint(o.checkpoint);
  ASSERT_TRUE(saved.ok());
  EXPECT_FALSE(saved->complete);
  EXPECT_EQ(saved->offset, 0);
}

TEST(Import, GivesUpAfterRetryingForTooLong) {
  const std::string file = WriteFile("giveup.lp", Lines(5));
  ImportOptions o = Options(file);
  o.give_up_ms = 20;
  FakeSender sender;
  sender.fail_first = 1'000'000;
  auto r = RunImport(o, &sender, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("gave up"), absl::string_view::npos);
}

TEST(Import, CountsMalformedAndRefusedLinesWithTheirNumbers) {
  const std::string file =
      WriteFile("bad.lp", "m x=1 1\nm x=\nm bad=1 2\n\nm x=2,bad=3 3\nm x=3 4\n");
  ImportOptions o = Options(file);
  FakeSender sender;
  auto r = RunImport(o, &sender, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->checkpoint.malformed_lines, 1);
  EXPECT_EQ(r->checkpoint.refused_lines, 2);
  EXPECT_EQ(r->checkpoint.readings, 5);
  EXPECT_EQ(r->checkpoint.accepted, 3);
  ASSERT_EQ(r->problems.size(), 3u);
  std::set<std::string> lines;
  for (const std::string& p : r->problems) lines.insert(p.substr(0, p.find(':')));
  EXPECT_EQ(lines, (std::set<std::string>{"line 2", "line 3", "line 5"}));
}

TEST(Import, AnInfluxInspectExportImportsItsDmlOnly) {
  const std::string file =
      WriteFile("export.lp",
                "# INFLUXDB EXPORT: 1677-09-21T00:12:43Z - 2262-04-11T23:47:16Z\n# DDL\n"
                "CREATE DATABASE db1 WITH NAME autogen\n# DML\n# CONTEXT-DATABASE:db1\n"
                "# CONTEXT-RETENTION-POLICY:autogen\n# writing tsm data\ncpu,host=a v=1 10\n"
                "# writing wal data\ncpu,host=a v=2 20\n");
  FakeSender sender;
  auto r = RunImport(Options(file), &sender, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->checkpoint.malformed_lines, 0);
  EXPECT_EQ(sender.stored, (std::set<std::string>{"cpu/host:a/v@10", "cpu/host:a/v@20"}));
}

// ---------------------------------------------------------------- verify

SideTable Table(const std::vector<std::tuple<std::string, int64_t, double>>& rows) {
  SideTable t;
  for (const auto& [sensor, ts, v] : rows) t.Add({"d", sensor, ""}, ts, true, v);
  return t;
}

TEST(Compare, IdenticalSidesMatch) {
  const int64_t h = kNsPerHour;
  auto rows = std::vector<std::tuple<std::string, int64_t, double>>{
      {"a", 10, 1.5}, {"a", h + 5, -2}, {"b", 7, 3}};
  ParityReport r = Compare(Table(rows), Table(rows), {});
  EXPECT_EQ(r.series_hours, 3);
  EXPECT_EQ(r.matching, 3);
  EXPECT_EQ(r.mismatched, 0);
  EXPECT_EQ(r.diff_rate(), 0);
}

TEST(Compare, SumsWithinTheRelativeToleranceMatchOtherFiguresExactly) {
  SideTable s = Table({{"a", 1, 0.1}, {"a", 2, 0.2}, {"a", 3, 0.3}});
  SideTable p = Table({{"a", 3, 0.3}, {"a", 2, 0.2}, {"a", 1, 0.1}});  // another order
  EXPECT_EQ(Compare(s, p, {}).mismatched, 0);
  SideTable off = Table({{"a", 1, std::nextafter(0.1, 1.0)}, {"a", 2, 0.2}, {"a", 3, 0.3}});
  ParityReport r = Compare(s, off, {});
  ASSERT_EQ(r.mismatched, 1);
  EXPECT_EQ(r.mismatches[0].differs, (std::vector<std::string>{"min"}));  // sum within 1e-9
  SideTable late = Table({{"a", 1, 0.1}, {"a", 2, 0.2}, {"a", 4, 0.3}});
  EXPECT_EQ(Compare(s, late, {}).mismatches.at(0).differs, (std::vector<std::string>{"last"}));
  SideTable bigger = Table({{"a", 1, 0.1}, {"a", 2, 0.2}, {"a", 3, 0.3001}});
  EXPECT_EQ(Compare(s, bigger, {}).mismatches.at(0).differs,
            (std::vector<std::string>{"max", "sum"}));
}

TEST(Compare, NonNumericReadingsCountAndKeepTheirTimestamps) {
  SideTable s, p;
  s.Add({"d", "state", ""}, 5, false, 0);
  p.Add({"d", "state", ""}, 5, true, 1);  // a number where the source had a string
  ParityReport r = Compare(s, p, {});
  ASSERT_EQ(r.mismatched, 1);
  EXPECT_EQ(r.mismatches[0].differs, (std::vector<std::string>{"numeric"}));
}

TEST(Compare, OneSidedSeriesAreListedAndCappedAndCountAsMismatches) {
  SideTable s = Table({{"a", 1, 1}, {"only_s1", 1, 1}, {"only_s2", 1, 1}, {"only_s3", 1, 1}});
  SideTable p = Table({{"a", 1, 1}, {"only_p", 1, 1}});
  ParityOptions o;
  o.max_listed = 2;
  ParityReport r = Compare(s, p, o);
  EXPECT_EQ(r.series_hours, 5);
  EXPECT_EQ(r.matching, 1);
  EXPECT_EQ(r.mismatched, 4);
  EXPECT_EQ(r.mismatches.size(), 2u);
  EXPECT_EQ(r.only_in_source_total, 3);
  EXPECT_EQ(r.only_in_source.size(), 2u);
  EXPECT_EQ(r.only_in_platform_total, 1);
  EXPECT_DOUBLE_EQ(r.diff_rate(), 0.8);
  const std::string md = RenderMarkdown(r);
  EXPECT_NE(md.find("2 more mismatched series-hours not listed"), std::string::npos) << md;
  EXPECT_NE(md.find("- ... and 1 more"), std::string::npos) << md;
  const std::string json = RenderJson(r);
  EXPECT_NE(json.find("\"mismatches_not_listed\":2"), std::string::npos) << json;
  EXPECT_NE(json.find("\"platform\":null"), std::string::npos) << json;
}

TEST(SourceCollector, ARepeatedSeriesTimestampCountsOnceWithItsLastValue) {
  lineproto::MappingOptions mapping;
  SourceCollector c;
  CollectLineProtocol("m v=1 10\nm v=5 10\nm v=2 20\nm v=3\nnot a line\n", mapping, {}, &c);
  EXPECT_EQ(c.points_without_timestamp, 1);
  EXPECT_EQ(c.malformed_lines, 1);
  SideTable t = c.Finish();
  EXPECT_EQ(c.duplicates, 1);
  EXPECT_EQ(t.readings(), 2);
  const HourFigures& h = t.series().at({"m", "v", ""}).at(0);
  EXPECT_EQ(h.count, 2);
  EXPECT_EQ(h.min, 2);
  EXPECT_EQ(h.max, 5);
  EXPECT_EQ(h.sum, 7);
  EXPECT_EQ(h.first_ns, 10);
  EXPECT_EQ(h.last_ns, 20);
}

TEST(SourceCollector, KeepsOnlyTheWindow) {
  lineproto::MappingOptions mapping;
  mapping.precision_ns = 1'000'000'000;  // seconds
  SourceCollector c;
  CollectLineProtocol("m v=1 3599\nm v=2 3600\nm v=3 7200\n", mapping,
                      {3600 * 1'000'000'000LL, 7200 * 1'000'000'000LL}, &c);
  SideTable t = c.Finish();
  EXPECT_EQ(t.readings(), 1);
  EXPECT_EQ(t.min_ns(), 3600 * 1'000'000'000LL);
}

}  // namespace
}  // namespace telemetry::admin
