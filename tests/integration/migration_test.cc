// Migration end to end: `telemetry-admin import` of a line-protocol file
// into the platform (ingest and writer as processes), `telemetry-admin
// verify` against it; an import killed with SIGKILL and resumed from its
// checkpoint; a corrupted stored value caught by verify; and a real
// InfluxDB 1.6: written, exported with influx_inspect, imported, verified
// over its HTTP query API.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/migration-" + std::to_string(::getpid()) + "-" + name;
}

std::string Admin() { return BuildDir() + "/tools/admin/telemetry-admin"; }

// The integer after `"key":` (or `key=`) in `text`; -1 when absent.
int64_t Field(const std::string& text, const std::string& key) {
  for (const std::string& k : {absl::StrCat("\"", key, "\":"), absl::StrCat(key, "=")}) {
    const size_t at = text.find(k);
    if (at == std::string::npos) continue;
    size_t end = at + k.size();
    while (end < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '-')) {
      ++end;
    }
    int64_t v = 0;
    if (absl::SimpleAtoi(text.substr(at + k.size(), end - at - k.size()), &v)) return v;
  }
  return -1;
}

// A seeded line-protocol file: three measurements with tags, float, integer,
// unsigned (InfluxDB 1.x takes none: `with_unsigned` false writes them as
// integers), boolean and string fields, over 2.5 hours from `start_ns`;
// every 40th line repeats an earlier one (a retry: stored once).
struct Dataset {
  std::string text;
  int64_t unique = 0;  // readings after de-duplication
};

Dataset Generate(uint64_t seed, int lines, int64_t start_ns, bool with_unsigned = true) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> real(-500, 500);
  Dataset d;
  std::vector<std::pair<std::string, int>> written;  // line, fields
  for (int i = 0; i < lines; ++i) {
    if (i % 40 == 39) {
      const auto& again = written[written.size() - 7];
      absl::StrAppend(&d.text, again.first, "\n");
      continue;
    }
    const int64_t ts = start_ns + static_cast<int64_t>(i) * (9000 * kNsPerSec / lines) + i % 977;
    std::string line;
    int fields = 0;
    switch (i % 3) {
      case 0:
        line = absl::StrFormat(
            "weather,site=s%d,floor=f%d temp=%.17g,hum=%di,ok=%s,note=\"n %d, \\\"q\\\"\" %d",
            i % 4, i % 2, real(rng), static_cast<int>(rng() % 100), rng() % 2 ? "true" : "F", i,
            ts);
        fields = 4;
        break;
      case 1:
        line = absl::StrFormat("power,meter=m%d,phase=L%d watts=%.17g,count=%u%s %d", i % 5,
                               1 + i % 3, real(rng) * 1e6, static_cast<unsigned>(rng() % 100000),
                               with_unsigned ? "u" : "i", ts);
        fields = 2;
        break;
      default:
        // A tag value the device name cannot hold (a space): the mapping's
        // hashed device; a large integer (> 2^53) rounds the same on both sides.
        line = absl::StrFormat("disk\\ io,host=web\\ %d bytes=%di,util=%.17g %d", i % 2,
                               9007199254740993LL + static_cast<int64_t>(i), real(rng) / 7, ts);
        fields = 2;
    }
    absl::StrAppend(&d.text, line, "\n");
    written.emplace_back(line, fields);
    d.unique += fields;
  }
  return d;
}

class Migration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    services_ = new Services();
    services_->StartWriter();
    services_->StartIngest();
  }
  static void TearDownTestSuite() {
    delete services_;
    services_ = nullptr;
  }
  static std::string Ingest() { return "127.0.0.1:" + std::to_string(services_->ingest_port()); }

  // `verify` until the platform holds `want` readings (the writer applies
  // what ingest acknowledged a moment later) or 60 s pass; its exit status
  // and JSON report.
  static std::pair<int, std::string> VerifyWhenStored(const std::string& source, const Tenant& t,
                                                      int64_t want) {
    const std::string json = TempPath(absl::StrCat("verify-", t.id, ".json"));
    const std::string cmd = absl::StrCat(Admin(), " verify --source ", source, " --tenant_id ",
                                         t.id, " --json ", json, " --report ", json, ".md 2>&1");
    std::pair<std::string, int> run;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    do {
      run = Shell(cmd);
      if (Field(ReadAll(json), "platform_readings") == want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    } while (std::chrono::steady_clock::now() < deadline);
    return {run.second, ReadAll(json)};
  }

  static Services* services_;
};
Services* Migration::services_ = nullptr;

TEST_F(Migration, ImportThenVerifyFindsNoMismatch) {
  Tenant t = CreateTenant("migrate");
  const int64_t start = SystemClock::Get()->NowNs() - 3 * 3600 * kNsPerSec;
  Dataset d = Generate(7, 3000, start);
  const std::string file = TempPath("clean.lp");
  std::ofstream(file) << d.text;

  auto run = Shell(absl::StrCat(Admin(), " import --file ", file, " --api_key ", t.key,
                                " --ingest ", Ingest(), " --batch 500 --concurrency 4 2>&1"));
  ASSERT_EQ(run.second, 0) << run.first;
  EXPECT_NE(run.first.find("every line stored"), std::string::npos) << run.first;
  EXPECT_EQ(Field(run.first, "malformed_lines"), 0);
  EXPECT_EQ(Field(run.first, "refused_lines"), 0);

  auto [rc, json] = VerifyWhenStored("file:" + file, t, d.unique);
  EXPECT_EQ(rc, 0) << json;
  EXPECT_EQ(Field(json, "source_readings"), d.unique);
  EXPECT_EQ(Field(json, "platform_readings"), d.unique);
  EXPECT_EQ(Field(json, "mismatched"), 0) << json;
  EXPECT_GT(Field(json, "series_hours"), 20);
  EXPECT_EQ(Field(json, "matching"), Field(json, "series_hours"));

  // One stored value changed behind the platform's back: exactly one
  // series-hour differs, reported with both sides' figures; exit 1.
  ASSERT_EQ(SqlExec(absl::StrCat(
                "UPDATE raw_readings SET value_double = value_double + 0.5 WHERE (series_id, ts) ="
                " (SELECT r.series_id, r.ts FROM raw_readings r JOIN series s ON s.id ="
                " r.series_id WHERE s.tenant_id = ",
                t.id, " AND s.sensor = 'temp' ORDER BY r.ts LIMIT 1)")),
            1);
  const std::string json_path = TempPath("corrupt.json");
  const std::string md_path = TempPath("corrupt.md");
  auto corrupt = Shell(absl::StrCat(Admin(), " verify --source file:", file, " --tenant_id ", t.id,
                                    " --json ", json_path, " --report ", md_path, " 2>&1"));
  EXPECT_EQ(corrupt.second, 1) << corrupt.first;
  const std::string cj = ReadAll(json_path);
  EXPECT_EQ(Field(cj, "mismatched"), 1) << cj;
  EXPECT_EQ(Field(cj, "matching"), Field(json, "series_hours") - 1) << cj;
  EXPECT_NE(cj.find("\"sensor\":\"temp\""), std::string::npos) << cj;
  EXPECT_NE(cj.find("\"sum\""), std::string::npos) << cj;  // in `differs`
  EXPECT_NE(cj.find("\"source\":{\"count\":"), std::string::npos) << cj;
  EXPECT_NE(cj.find("\"platform\":{\"count\":"), std::string::npos) << cj;
  const std::string md = ReadAll(md_path);
  EXPECT_NE(md.find("## Mismatched series-hours"), std::string::npos) << md;
  EXPECT_NE(md.find("not met"), std::string::npos) << md;
}

TEST_F(Migration, KilledImportResumesFromItsCheckpoint) {
  Tenant t = CreateTenant("migrate-kill");
  const int64_t start = SystemClock::Get()->NowNs() - 3 * 3600 * kNsPerSec;
  Dataset d = Generate(11, 4000, start);
  const std::string file = TempPath("kill.lp");
  const std::string ckpt = file + ".ckpt";
  std::ofstream(file) << d.text;
  // Slowed down (--max_rate) so that it is still running when killed.
  {
    Process import(
        Admin(),
        {"import", "--file", file, "--api_key", t.key, "--ingest", Ingest(), "--checkpoint", ckpt,
         "--batch", "100", "--concurrency", "2", "--max_rate", "2000"},
        TempPath("import-killed.log"));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (Field(ReadAll(ckpt), "offset") <= 1000 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(import.running()) << "the import ended before it was killed";
    import.Signal(SIGKILL);
    EXPECT_EQ(import.Wait(), -SIGKILL);
  }
  const std::string saved = ReadAll(ckpt);
  const int64_t offset = Field(saved, "offset");
  EXPECT_GT(offset, 1000) << saved;
  EXPECT_LT(offset, static_cast<int64_t>(d.text.size())) << saved;
  EXPECT_EQ(Field(saved, "complete"), 0) << saved;
  EXPECT_EQ(d.text[static_cast<size_t>(offset) - 1], '\n') << "not at a line start: " << saved;

  auto resumed = Shell(absl::StrCat(Admin(), " import --file ", file, " --api_key ", t.key,
                                    " --ingest ", Ingest(), " --checkpoint ", ckpt, " 2>&1"));
  ASSERT_EQ(resumed.second, 0) << resumed.first;
  EXPECT_NE(resumed.first.find(absl::StrCat("resumed at byte ", offset)), std::string::npos)
      << resumed.first;
  EXPECT_EQ(Field(ReadAll(ckpt), "complete"), 1);
  EXPECT_EQ(Field(ReadAll(ckpt), "offset"), static_cast<int64_t>(d.text.size()));

  // Exactly the unique readings, whatever the killed run had in flight.
  auto [rc, json] = VerifyWhenStored("file:" + file, t, d.unique);
  EXPECT_EQ(rc, 0) << json;
  EXPECT_EQ(Field(json, "platform_readings"), d.unique) << json;
  EXPECT_EQ(Field(json, "mismatched"), 0) << json;

  // Run again with the complete checkpoint: nothing left to send.
  auto again = Shell(absl::StrCat(Admin(), " import --file ", file, " --api_key ", t.key,
                                  " --ingest ", Ingest(), " --checkpoint ", ckpt, " 2>&1"));
  EXPECT_EQ(again.second, 0) << again.first;
  EXPECT_EQ(Field(again.first, "readings_this_run"), 0) << again.first;
}

TEST_F(Migration, MalformedAndRefusedLinesAreCountedAndDoNotStopTheImport) {
  Tenant t = CreateTenant("migrate-bad");
  const int64_t now = SystemClock::Get()->NowNs();
  std::string text;
  for (int i = 0; i < 50; ++i)
    absl::StrAppend(&text, "m,k=v x=", i, " ", now - i * kNsPerSec, "\n");
  absl::StrAppend(&text, "m,k=v x=1,y \n");  // line 51: malformed
  absl::StrAppend(&text, "m,k=v bad\\ field=1 ", now - 100 * kNsPerSec, "\n");  // 52: refused name
  absl::StrAppend(&text, "m,k=v x=7 ", now - 200 * kNsPerSec, "\n");
  const std::string file = TempPath("bad.lp");
  std::ofstream(file) << text;
  auto run = Shell(absl::StrCat(Admin(), " import --file ", file, " --api_key ", t.key,
                                " --ingest ", Ingest(), " 2>&1"));
  EXPECT_EQ(run.second, 1) << run.first;
  EXPECT_EQ(Field(run.first, "malformed_lines"), 1) << run.first;
  EXPECT_EQ(Field(run.first, "refused_lines"), 1) << run.first;
  EXPECT_EQ(Field(run.first, "accepted"), 51) << run.first;
  EXPECT_NE(run.first.find("line 51: malformed"), std::string::npos) << run.first;
  EXPECT_NE(run.first.find("line 52: refused (sensor)"), std::string::npos) << run.first;
  EXPECT_NE(run.first.find("NOT all lines stored"), std::string::npos) << run.first;
}

// Where influx_inspect is (Debian's influxdb has none:
// deploy/local/install-influx-inspect.sh builds it).
std::string InfluxInspect() {
  for (const char* p : {"/usr/local/bin/influx_inspect", "/usr/bin/influx_inspect"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

TEST_F(Migration, RealInfluxDbExportedImportedAndVerified) {
  const std::string inspect = InfluxInspect();
  ASSERT_FALSE(inspect.empty()) << "no influx_inspect: run deploy/local/install-deps.sh";
  // A private influxd (as scripts/bench-compare.sh starts one).
  const std::string dir = TempPath("influx");
  ASSERT_EQ(Shell("rm -rf " + dir + " && mkdir -p " + dir).second, 0);
  const int http_port = FreePort();
  const int rpc_port = FreePort();
  std::ofstream(dir + "/influxdb.conf") << absl::StrCat(
      "reporting-disabled = true\nbind-address = \"127.0.0.1:", rpc_port, "\"\n[meta]\n  dir = \"",
      dir, "/meta\"\n[data]\n  dir = \"", dir, "/data\"\n  wal-dir = \"", dir,
      "/wal\"\n  query-log-enabled = false\n[http]\n  bind-address = \"127.0.0.1:", http_port,
      "\"\n  log-enabled = false\n[monitor]\n  store-enabled = false\n[continuous_queries]\n"
      "  enabled = false\n[subscriber]\n  enabled = false\n");
  Process influxd("/usr/bin/influxd", {"run", "-config", dir + "/influxdb.conf"},
                  dir + "/influxd.log");
  const std::string url = absl::StrCat("http://127.0.0.1:", http_port);
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    up = Shell("curl -sf " + url + "/ping").second == 0;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(up) << ReadAll(dir + "/influxd.log");
  ASSERT_EQ(
      Shell("curl -sf -XPOST " + url + "/query --data-urlencode 'q=CREATE DATABASE mig'").second,
      0);
  const int64_t start = SystemClock::Get()->NowNs() - 3 * 3600 * kNsPerSec;
  Dataset d = Generate(42, 3000, start, /*with_unsigned=*/false);
  const std::string written = TempPath("influx-in.lp");
  std::ofstream(written) << d.text;
  auto write = Shell(absl::StrCat("curl -s -o /dev/null -w '%{http_code}' -XPOST '", url,
                                  "/write?db=mig' --data-binary @", written));
  ASSERT_EQ(write.first, "204");

  // Exported from its files (TSM and WAL), as a migration would.
  const std::string exported = TempPath("influx-export.lp");
  auto exp = Shell(absl::StrCat(inspect, " export -datadir ", dir, "/data -waldir ", dir,
                                "/wal -database mig -out ", exported, " 2>&1"));
  ASSERT_EQ(exp.second, 0) << exp.first;
  const std::string dump = ReadAll(exported);
  ASSERT_EQ(dump.rfind("# INFLUXDB EXPORT", 0), 0u) << dump.substr(0, 200);
  EXPECT_NE(dump.find("# DDL\nCREATE DATABASE mig"), std::string::npos);
  EXPECT_NE(dump.find("# CONTEXT-DATABASE:mig"), std::string::npos);

  Tenant t = CreateTenant("migrate-influx");
  auto run = Shell(absl::StrCat(Admin(), " import --file ", exported, " --api_key ", t.key,
                                " --ingest ", Ingest(), " 2>&1"));
  ASSERT_EQ(run.second, 0) << run.first;
  // The WAL keeps every write, the repeated lines too: the export holds them
  // again, and the platform stores them once.
  EXPECT_GE(Field(run.first, "readings"), d.unique) << run.first;
  EXPECT_EQ(run.first.find("resumed at"), std::string::npos) << run.first;

  auto [rc, json] = VerifyWhenStored(absl::StrCat("influx:", url, "/mig"), t, d.unique);
  EXPECT_EQ(rc, 0) << json;
  EXPECT_EQ(Field(json, "source_readings"), d.unique) << json;
  EXPECT_EQ(Field(json, "platform_readings"), d.unique) << json;
  EXPECT_EQ(Field(json, "mismatched"), 0) << json;
  EXPECT_EQ(Field(json, "series_only_in_source"), 0) << json;
  EXPECT_EQ(Field(json, "series_only_in_platform"), 0) << json;
  // The export file as the source says the same.
  auto from_file = Shell(absl::StrCat(Admin(), " verify --source file:", exported, " --tenant_id ",
                                      t.id, " --report /dev/null 2>&1"));
  EXPECT_EQ(from_file.second, 0) << from_file.first;
  influxd.Signal(SIGTERM);
  influxd.Wait();
  Shell("rm -rf " + dir);
}

}  // namespace
}  // namespace telemetry::testing
