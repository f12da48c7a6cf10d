// End to end: clients nobody here wrote write InfluxDB line protocol to
// ingest's HTTP endpoint, and exactly their unique readings land in
// Postgres: curl with a gzip body (v1, sent twice), the influx 1.x CLI
// (Debian's influxdb-client: `-execute INSERT` and `-import` of a file with
// its DDL/DML sections) and the official Python influxdb-client (v2 API,
// from the pinned venv of scripts/client-venv.sh).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

class InfluxE2E : public ::testing::Test {
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
  static std::string Url() {
    return "http://127.0.0.1:" + std::to_string(services_->influx_port());
  }
  static std::string File(const std::string& name, const std::string& text) {
    const std::string path = ::testing::TempDir() + "/" + name + "-" + std::to_string(::getpid());
    std::ofstream(path) << text;
    return path;
  }
  static Services* services_;
};
Services* InfluxE2E::services_ = nullptr;

TEST_F(InfluxE2E, CurlInfluxCliAndPythonClientLandExactlyTheirUniqueReadings) {
  Tenant t = CreateTenant("influx");
  const int64_t now_s = SystemClock::Get()->NowNs() / kNsPerSec;
  int64_t expected = 0;

  // curl, gzip, v1, seconds: 200 lines of 3 fields, sent twice (the second
  // time is a client's retry: de-duplicated).
  std::string body;
  for (int i = 0; i < 200; ++i) {
    absl::StrAppend(&body, "curl,host=h", i % 10, " v=", i, ",s=\"text ", i,
                    "\",b=", i % 2 == 0 ? "true" : "false", " ", now_s - 600 + i, "\n");
  }
  expected += 600;
  const std::string gz = File("curl-body", body);
  ASSERT_EQ(Shell("gzip -kf " + gz).second, 0);
  const std::string curl =
      absl::StrCat("curl -s -o /dev/null -w '%{http_code}' --data-binary @", gz,
                   ".gz -H 'Content-Encoding: gzip' -H 'Authorization: Token ", t.key, "' '", Url(),
                   "/write?db=telemetry&precision=s'");
  EXPECT_EQ(Shell(curl).first, "204");
  EXPECT_EQ(Shell(curl).first, "204");
  // A wrong key: 401, nothing stored.
  EXPECT_EQ(Shell(absl::StrCat("curl -s -o /dev/null -w '%{http_code}' --data-binary 'x v=1' '",
                               Url(), "/write?db=telemetry&u=a&p=tk_wrong'"))
                .first,
            "401");

  // The influx 1.x CLI: one INSERT, then -import of a file with DDL and DML.
  const std::string cli = absl::StrCat("influx -host 127.0.0.1 -port ", services_->influx_port(),
                                       " -username any -password ", t.key);
  auto insert =
      Shell(absl::StrCat(cli, " -database telemetry -precision s -execute 'INSERT cli,host=x v=1 ",
                         now_s - 5, "' 2>&1"));
  EXPECT_EQ(insert.second, 0) << insert.first;
  expected += 1;
  std::string dump =
      "# DDL\nCREATE DATABASE telemetry\n\n# DML\n# CONTEXT-DATABASE: telemetry\n"
      "# CONTEXT-RETENTION-POLICY: autogen\n";
  for (int i = 0; i < 100; ++i) {
    absl::StrAppend(&dump, "imported,site=s", i % 4, " temp=", 20 + i * 0.1, " ",
                    (now_s - 1000 + i) * kNsPerSec, "\n");
  }
  expected += 100;
  auto imported = Shell(cli + " -import -path " + File("import", dump) + " 2>&1");
  EXPECT_EQ(imported.second, 0) << imported.first;
  EXPECT_NE(imported.first.find("Processed 100 inserts"), std::string::npos) << imported.first;
  EXPECT_NE(imported.first.find("Failed 0 inserts"), std::string::npos) << imported.first;

  // The Python influxdb-client, v2 API: 50 points of 2 fields, then one bad
  // line, which it reports as an error with our message.
  auto venv = Shell("bash " + SourceDir() + "/scripts/client-venv.sh 2>/dev/null");
  ASSERT_EQ(venv.second, 0) << "scripts/client-venv.sh failed";
  std::string python = venv.first;
  while (!python.empty() && python.back() == '\n') python.pop_back();
  const std::string script =
      File("client.py", absl::StrCat(R"(
import sys
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
client = InfluxDBClient(url=")",
                                     Url(), R"(", token=")", t.key, R"(", org="any")
assert client.ping()
write = client.write_api(write_options=SYNCHRONOUS)
points = [Point("py").tag("host", "p%d" % (i % 5)).field("v", i * 1.5).field("n", i)
          .time()",
                                     now_s - 300, R"( + i, WritePrecision.S) for i in range(50)]
write.write(bucket="telemetry", record=points, write_precision=WritePrecision.S)
try:
    write.write(bucket="telemetry", record="py,host=bad v=oops", write_precision=WritePrecision.S)
    print("bad line accepted")
    sys.exit(1)
except ApiException as e:
    print(e.status, e.body)
)"));
  auto py = Shell(python + " " + script + " 2>&1");
  EXPECT_EQ(py.second, 0) << py.first;
  EXPECT_NE(py.first.find("400"), std::string::npos) << py.first;
  EXPECT_NE(py.first.find("invalid field value 'oops'"), std::string::npos) << py.first;
  expected += 100;

  // Exactly the unique readings, once the writer has caught up.
  EXPECT_EQ(WaitForReadings(t.id, expected), expected);
  // Types survive: a string field, a boolean, an integer as a double.
  EXPECT_EQ(
      SqlInt(absl::StrCat(
          "SELECT count(*) FROM ", TenantReadingsSql(t.id),
          " r JOIN series s ON s.id = r.series_id JOIN "
          "devices d ON d.id = s.device_id WHERE s.tenant_id = ",
          t.id, " AND d.name = 'curl/host:h3' AND s.sensor = 's' AND r.value_text = 'text 3'")),
      1);
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM ", TenantReadingsSql(t.id),
                                " r JOIN series s ON s.id = r.series_id WHERE "
                                "s.tenant_id = ",
                                t.id, " AND s.sensor = 'b' AND r.value_bool")),
            100);
  EXPECT_EQ(SqlInt(absl::StrCat(
                "SELECT count(*) FROM ", TenantReadingsSql(t.id),
                " r JOIN series s ON s.id = r.series_id JOIN "
                "devices d ON d.id = s.device_id WHERE s.tenant_id = ",
                t.id, " AND d.name = 'py/host:p1' AND s.sensor = 'n' AND r.value_double = 6")),
            1);
}

}  // namespace
}  // namespace telemetry::testing
