// A dependency or a service fails mid-run: nothing is lost, nothing doubled,
// and callers get the documented status.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "tests/integration/checks.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

TEST(Robustness, WriterKilledMidStreamLosesNothingAndDoublesNothing) {
  Services services;
  services.StartWriter();
  services.StartIngest();
  services.StartQuery();
  Tenant t = CreateTenant("sigkill");
  auto ingest = services.IngestStub();
  loadgen::FleetOptions fleet;
  fleet.devices = 40;
  fleet.sensors = 5;
  fleet.duplicate_fraction = 0.05;
  fleet.late_fraction = 0.05;
  fleet.interval_ns = 500 * kNsPerMs;
  fleet.start_ns = SystemClock::Get()->NowNs() - 3 * 3600 * kNsPerSec;
  Written w;
  std::thread writer_thread([&] { w = WriteFleet(ingest.get(), t.key, fleet, 200'000, 1'000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  services.StopWriter(SIGKILL);  // mid-transaction, no goodbye to the group
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  services.StartWriter();
  writer_thread.join();
  ASSERT_EQ(w.failed_calls, 0);
  auto query = services.QueryStub();
  ASSERT_TRUE(WaitForToken(query.get(), t.key, w.token, "dev-0", 120000).ok());
  EXPECT_EQ(StoredReadings(t.id), w.unique);
  EXPECT_EQ(RollupMismatches(t.id, "agg_1m_merged", 60'000'000'000), 0);
  EXPECT_EQ(RollupMismatches(t.id, "agg_1h", 3'600'000'000'000), 0);
  EXPECT_EQ(SensorRollupMismatches(t.id), 0);
  EXPECT_EQ(CacheMismatches(t.id), 0);
}

int ReadyzStatus(int http_port) {
  httplib::Client http("127.0.0.1", http_port);
  http.set_connection_timeout(2, 0);
  auto res = http.Get("/readyz");
  return res ? res->status : -1;
}

// Polls `probe` every 200 ms until it returns `want` (at most `seconds`).
template <typename F>
bool Eventually(F probe, int want, int seconds) {
  for (int i = 0; i < seconds * 5; ++i) {
    if (probe() == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

TEST(Robustness, KafkaOutageFailsWritesWithUnavailableThenRecovers) {
  Services services;
  services.StartWriter();
  const int http_port = FreePort();
  services.StartIngest({"--http_port=" + std::to_string(http_port)});
  const int grpc_port = services.ingest_port();
  EXPECT_TRUE(Eventually([&] { return GrpcHealth(grpc_port); }, 1, 10));
  EXPECT_EQ(ReadyzStatus(http_port), 200);
  services.StartQuery();
  Tenant t = CreateTenant("kafka-outage");
  auto ingest = services.IngestStub();
  telemetry::v1::WriteRequest req;
  auto* r = req.add_readings();
  r->set_device_id("k1");
  r->set_sensor("s");
  r->set_timestamp_ns(SystemClock::Get()->NowNs());
  r->set_double_value(1);
  ASSERT_EQ(KafkaCtl("stop"), 0);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + t.key);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    telemetry::v1::WriteResponse resp;
    auto t0 = std::chrono::steady_clock::now();
    grpc::Status st = ingest->Write(&ctx, req, &resp);
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_LT(took, 2.5);
  }
  // The instance says it cannot take writes: NOT_SERVING, /readyz 503.
  EXPECT_TRUE(Eventually([&] { return GrpcHealth(grpc_port); }, 2, 20));
  EXPECT_EQ(ReadyzStatus(http_port), 503);
  ASSERT_EQ(KafkaCtl("start"), 0);
  EXPECT_TRUE(Eventually([&] { return GrpcHealth(grpc_port); }, 1, 30));
  EXPECT_EQ(ReadyzStatus(http_port), 200);
  // Once Kafka is back, writes succeed again and the data is stored once.
  std::string token;
  for (int i = 0; i < 60 && token.empty(); ++i) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + t.key);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    telemetry::v1::WriteResponse resp;
    if (ingest->Write(&ctx, req, &resp).ok()) token = resp.consistency_token();
  }
  ASSERT_FALSE(token.empty()) << "writes did not recover after Kafka came back";
  auto query = services.QueryStub();
  ASSERT_TRUE(WaitForToken(query.get(), t.key, token, "k1", 60000).ok());
  EXPECT_EQ(StoredReadings(t.id), 1);
}

TEST(Robustness, IngestWhosePortIsTakenExitsWithAnErrorNotAnAbort) {
  // Something else listens on the port (an old instance, another service).
  const int port = FreePort();
  const int taken = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(taken, 1), 0);
  Process ingest(BuildDir() + "/services/ingest/telemetry-ingest",
                 {"--listen=127.0.0.1:" + std::to_string(port), "--http_port=0",
                  "--influx_listen=", "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"),
                  "--kafka_brokers=" + RequireEnv("TELEMETRY_KAFKA_BROKERS")},
                 "/dev/null");
  // Exit status 1 after stopping its background threads (it used to end in
  // std::terminate, SIGABRT, with those threads still joinable).
  EXPECT_EQ(ingest.Wait(15000), 1);
  close(taken);
}

// --kafka_config reaches librdkafka as given: a list that is not name=value
// stops ingest and the writer with status 2 naming the item, a property
// librdkafka does not know stops them with status 1 naming it, and a valid
// one (TLS off, spelled out) lets ingest start.
TEST(Robustness, KafkaConfigFlagIsValidatedAtStart) {
  const std::string log = ::testing::TempDir() + "/kafka-config-" + std::to_string(::getpid());
  auto text = [&] {
    std::ifstream in(log);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::vector<std::string> common = {
      "--http_port=0", "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"),
      "--kafka_brokers=" + RequireEnv("TELEMETRY_KAFKA_BROKERS")};
  for (const char* binary :
       {"/services/ingest/telemetry-ingest", "/services/writer/telemetry-writer"}) {
    SCOPED_TRACE(binary);
    auto args = common;
    if (std::string(binary) == "/services/ingest/telemetry-ingest") {
      args.push_back("--listen=127.0.0.1:" + std::to_string(FreePort()));
      args.push_back("--influx_listen=");
    }
    args.push_back("--kafka_config=linger.ms");
    Process bad_list(BuildDir() + binary, args, log);
    EXPECT_EQ(bad_list.Wait(15000), 2);
    EXPECT_NE(text().find("'linger.ms': want name=value"), std::string::npos) << text();
    args.back() = "--kafka_config=no.such.property=1";
    Process unknown(BuildDir() + binary, args, log);
    EXPECT_EQ(unknown.Wait(15000), 1);
    EXPECT_NE(text().find("no.such.property"), std::string::npos) << text();
  }
  auto args = common;
  args.push_back("--listen=127.0.0.1:" + std::to_string(FreePort()));
  args.push_back("--influx_listen=");
  args.push_back("--kafka_config=security.protocol=plaintext");
  Process ok(BuildDir() + "/services/ingest/telemetry-ingest", args, log);
  EXPECT_EQ(ok.Wait(2000), -1000) << "ingest with a valid --kafka_config exited; see " << log;
}

// README says `--help` lists a binary's flags (issue 13, item 8: it printed
// "No flags matched.").
TEST(Robustness, HelpListsEachBinarysFlags) {
  const std::vector<std::pair<std::string, std::string>> binaries = {
      {"/services/ingest/telemetry-ingest", "--max_writer_lag_messages"},
      {"/services/writer/telemetry-writer", "--batch_readings"},
      {"/services/query/telemetry-query", "--pg_replicas"},
      {"/tools/admin/telemetry-admin", "--readings_partitions"},
      {"/tools/loadgen/telemetry-loadgen", "--api_keys"}};
  for (const auto& [binary, flag] : binaries) {
    SCOPED_TRACE(binary);
    std::string out;
    FILE* p = popen((BuildDir() + binary + " --help 2>&1").c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    pclose(p);
    EXPECT_EQ(out.find("No flags matched"), std::string::npos) << out;
    EXPECT_NE(out.find(flag), std::string::npos) << out;
  }
}

TEST(Robustness, QueryPlanCacheModeFlagIsValidatedAtStart) {
  const std::string log = ::testing::TempDir() + "/plan-cache-mode-" + std::to_string(::getpid());
  std::vector<std::string> args = {
      "--http_port=0", "--listen=127.0.0.1:" + std::to_string(FreePort()),
      "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"), "--pg_plan_cache_mode=generic"};
  Process bad(BuildDir() + "/services/query/telemetry-query", args, log);
  EXPECT_EQ(bad.Wait(15000), 2);
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("--pg_plan_cache_mode: 'generic' is not auto"), std::string::npos) << text;
  args.back() = "--pg_plan_cache_mode=auto";
  args[1] = "--listen=127.0.0.1:" + std::to_string(FreePort());
  Process ok(BuildDir() + "/services/query/telemetry-query", args, log);
  EXPECT_EQ(ok.Wait(2000), -1000) << "query with --pg_plan_cache_mode=auto exited; see " << log;
}

TEST(Robustness, WriterStopsOnSigtermWhilePostgresIsDown) {
  // A writer whose Postgres does not answer waits in its retry loop for the
  // offsets to start from; SIGTERM must still end it promptly (it would be
  // SIGKILLed by an orchestrator otherwise), and cleanly.
  const std::string log =
      ::testing::TempDir() + "/writer-pg-down-" + std::to_string(::getpid()) + ".log";
  std::remove(log.c_str());  // only this run's lines count
  Process writer(BuildDir() + "/services/writer/telemetry-writer",
                 {"--http_port=0", "--pg_primary=postgresql://telemetry@127.0.0.1:1/telemetry",
                  "--redis=", "--kafka_brokers=" + RequireEnv("TELEMETRY_KAFKA_BROKERS"),
                  "--group=stop-while-pg-down-" + std::to_string(::getpid()),
                  "--session_timeout_ms=3000", "--max_poll_interval_ms=10000"},
                 log);
  // Until it is in the loop: the group assigned it partitions and it tried
  // to read their applied offsets.
  bool waiting = false;
  for (int i = 0; i < 200 && !waiting && writer.running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    waiting = text.find("cannot read applied offsets") != std::string::npos;
  }
  ASSERT_TRUE(waiting) << "the writer never reached the offsets retry loop; see " << log;
  const auto asked = std::chrono::steady_clock::now();
  writer.Signal(SIGTERM);
  EXPECT_EQ(writer.Wait(5000), 0) << "see " << log;
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  asked)
                .count(),
            5000);
  if (!::testing::Test::HasFailure()) std::remove(log.c_str());
}

}  // namespace
}  // namespace telemetry::testing
