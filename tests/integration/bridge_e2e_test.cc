// End to end: MQTT devices (mosquitto_pub from Debian, paho-mqtt from the
// pinned venv) publish through the local stack's Mosquitto; the bridge (a
// process) writes through the write path; exactly the unique readings land in
// Postgres. The robustness case kills the bridge with SIGKILL and restarts the
// broker in the middle of a publishing fleet, and nothing is lost.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

std::string TenantName(int64_t id) {
  auto rows = Sql(absl::StrCat("SELECT name FROM tenants WHERE id = ", id));
  return rows.empty() ? "" : rows[0][0];
}

class BridgeE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    services_ = std::make_unique<Services>();
    services_->StartWriter();
    services_->StartBridge();
  }
  void TearDown() override { services_.reset(); }

  static std::string Python() {
    auto venv = Shell("bash " + SourceDir() + "/scripts/client-venv.sh 2>/dev/null");
    EXPECT_EQ(venv.second, 0) << "scripts/client-venv.sh failed";
    std::string python = venv.first;
    while (!python.empty() && python.back() == '\n') python.pop_back();
    return python;
  }
  static std::string Broker() {
    return " -h " + RequireEnv("TELEMETRY_MQTT_HOST") + " -p " + RequireEnv("TELEMETRY_MQTT_PORT");
  }
  static std::string Device() {
    return " -u " + RequireEnv("TELEMETRY_MQTT_DEVICE_USER") + " -P " +
           RequireEnv("TELEMETRY_MQTT_DEVICE_PASSWORD");
  }
  // The fleet publisher (tests/clients/mqtt_fleet.py); its JSON summary.
  static std::string FleetCommand(const std::string& tenant, int devices, int messages, int metrics,
                                  double rate) {
    return absl::StrCat(
        Python(), " ", SourceDir(), "/tests/clients/mqtt_fleet.py --host ",
        RequireEnv("TELEMETRY_MQTT_HOST"), " --port ", RequireEnv("TELEMETRY_MQTT_PORT"),
        " --user ", RequireEnv("TELEMETRY_MQTT_DEVICE_USER"), " --password ",
        RequireEnv("TELEMETRY_MQTT_DEVICE_PASSWORD"), " --tenant ", tenant, " --devices ", devices,
        " --messages ", messages, " --metrics ", metrics, " --rate ", rate);
  }

  std::unique_ptr<Services> services_;
};

TEST_F(BridgeE2E, MosquittoPubAndPahoFleetLandExactlyTheirUniqueReadings) {
  Tenant t = CreateTenant("mqtt");
  const std::string name = TenantName(t.id);
  ASSERT_FALSE(name.empty());
  const int64_t now_s = SystemClock::Get()->NowNs() / kNsPerSec;

  // mosquitto_pub: a JSON document, a single value on a sensor topic, and the
  // same document again (a device's retry: de-duplicated).
  const std::string doc = absl::StrCat(R"({"device_id":"pub-1","timestamp":)", now_s - 30,
                                       R"(,"metrics":{"power_w":12.5,"relay":true,"mode":"eco"},)",
                                       R"("meta":{"firmware":"1.0.3"}})");
  const std::string pub = "mosquitto_pub" + Broker() + Device() + " -q 1 ";
  for (int i = 0; i < 2; ++i) {
    auto r = Shell(pub + "-t telemetry/" + name + "/pub-1 -m '" + doc + "' 2>&1");
    ASSERT_EQ(r.second, 0) << r.first;
  }
  auto single = Shell(pub + "-t telemetry/" + name + "/pub-2/temp -m 21.5 2>&1");
  ASSERT_EQ(single.second, 0) << single.first;
  // A payload that does not decode: reported on the device's error topic.
  const std::string errors = "/tmp/bridge-e2e-errors-" + std::to_string(::getpid());
  Process sub(
      "/usr/bin/mosquitto_sub",
      {"-h", RequireEnv("TELEMETRY_MQTT_HOST"), "-p", RequireEnv("TELEMETRY_MQTT_PORT"), "-u",
       RequireEnv("TELEMETRY_MQTT_DEVICE_USER"), "-P", RequireEnv("TELEMETRY_MQTT_DEVICE_PASSWORD"),
       "-t", "telemetry-errors/" + name + "/#", "-C", "1", "-W", "20"},
      errors);
  // (QoS 0 reports: sent again until the subscriber, once subscribed, got one.)
  int bad_sent = 0;
  for (; bad_sent < 20 && sub.running(); ++bad_sent) {
    ASSERT_EQ(Shell(pub + "-t telemetry/" + name + "/pub-3 -m '{\"metrics\": 5}' 2>&1").second, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  sub.Wait(20000);  // (running() above may have reaped it already: the report below decides)
  std::ifstream in(errors);
  const std::string report((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(report.find("metrics"), std::string::npos) << report;
  std::remove(errors.c_str());

  // paho-mqtt: 50 devices x 20 messages x 4 metrics.
  auto fleet = Shell(FleetCommand(name, 50, 20, 4, 0) + " 2>&1");
  ASSERT_EQ(fleet.second, 0) << fleet.first;
  EXPECT_NE(fleet.first.find("\"sent\": 1000"), std::string::npos) << fleet.first;

  const int64_t expected = 3 + 1 + 50 * 20 * 4;
  EXPECT_EQ(WaitForReadings(t.id, expected), expected);
  // Labels from "meta", the string and boolean types, the device of the topic.
  EXPECT_EQ(SqlInt(absl::StrCat(
                "SELECT count(*) FROM ", TenantReadingsSql(t.id),
                " r JOIN series s ON s.id = r.series_id JOIN "
                "devices d ON d.id = s.device_id WHERE s.tenant_id = ",
                t.id,
                " AND d.name = 'pub-1' AND ((s.sensor = 'mode' AND r.value_text = 'eco') OR "
                "(s.sensor = 'relay' AND r.value_bool)) AND s.labels->>'firmware' = '1.0.3'")),
            2);
  EXPECT_EQ(MetricValue(services_->bridge_http_port(), "bridge_bad_messages_total"), bad_sent);
  // The broker's counters reach our metrics ($SYS, published every second
  // while they change): it received the fleet and dropped nothing.
  double received = 0;
  // (the broker publishes its counters once a second: wait for a fresh one)
  for (int i = 0; i < 100 && received < 1000; ++i) {
    received = MetricValue(services_->bridge_http_port(), "mqtt_broker_messages_received");
    if (received < 1000) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GE(received, 1000);
  EXPECT_EQ(MetricValue(services_->bridge_http_port(), "mqtt_broker_messages_dropped"), 0);
}

TEST_F(BridgeE2E, KillNineOfTheBridgeAndABrokerRestartMidFleetLoseNothing) {
  Tenant t = CreateTenant("mqtt-outage");
  const std::string name = TenantName(t.id);
  // 100 devices x 60 messages x 4 metrics at 800 messages/s: about 8 s.
  const std::string log = "/tmp/bridge-e2e-fleet-" + std::to_string(::getpid());
  Process fleet("/bin/sh", {"-c", FleetCommand(name, 100, 60, 4, 800)}, log);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  services_->StopBridge(SIGKILL);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  services_->StartBridge();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const std::string ctl = SourceDir() + "/deploy/mosquitto/mosquitto.sh restart >/dev/null 2>&1";
  ASSERT_EQ(std::system(ctl.c_str()), 0);
  EXPECT_EQ(fleet.Wait(120000), 0);
  std::ifstream in(log);
  const std::string summary((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(summary.find("\"sent\": 6000"), std::string::npos) << summary;
  std::remove(log.c_str());
  const int64_t expected = 100 * 60 * 4;
  EXPECT_EQ(WaitForReadings(t.id, expected, 90), expected);
  // The restarted bridge took over the session the killed one left, with
  // what it had not acknowledged.
  std::ifstream second(services_->log_dir() + "/bridge.1.log");
  const std::string text((std::istreambuf_iterator<char>(second)),
                         std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("(session resumed)"), std::string::npos) << text;
}

}  // namespace
}  // namespace telemetry::testing
