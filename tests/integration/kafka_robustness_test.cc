// The platform against Apache Kafka failing or forgetting: the broker killed
// mid-ingest, the writer replaying what it already applied, ingest's
// back-pressure while no writer consumes, and a consumer that fell off the
// log start through the broker's own retention. Each test that needs a topic
// of its own creates it (telemetry-admin's EnsureTopics) and deletes it.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/kafka/kafka.h"
#include "common/token.h"
#include "tests/integration/checks.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

// What a tenant's stored data adds up to: raw rows and every rollup. Sums of
// doubles are taken as numeric (exact), so they do not depend on the order
// Postgres happens to add the rows in.
std::string Fingerprint(int64_t tenant_id) {
  const std::string of_tenant =
      absl::StrCat(" JOIN series s ON s.id = x.series_id WHERE s.tenant_id = ", tenant_id);
  std::string out;
  for (const std::string& q : {
           "SELECT count(*), sum(x.ts % 1000003), sum(coalesce(x.value_double, 0)::numeric),"
           " count(x.value_text) FROM " +
               TenantReadingsSql(tenant_id) + " x" + of_tenant,
           "SELECT count(*), sum(x.cnt), sum(x.sum::numeric), sum(x.last_ts % 1000003) FROM "
           "agg_1m_merged x" +
               of_tenant,
           "SELECT count(*), sum(x.cnt), sum(x.sum::numeric), max(x.max)::text FROM agg_1h x" +
               of_tenant,
       }) {
    for (const auto& row : Sql(q)) {
      for (const auto& f : row) absl::StrAppend(&out, f, "|");
    }
  }
  return out;
}

int64_t StoredOffsetSum(const std::string& topic) {
  return SqlInt("SELECT coalesce(sum(next_offset), 0) FROM writer_offsets WHERE topic = '" + topic +
                "'");
}

loadgen::FleetOptions SmallFleet(int devices, int sensors) {
  loadgen::FleetOptions fleet;
  fleet.devices = devices;
  fleet.sensors = sensors;
  fleet.duplicate_fraction = 0.05;
  fleet.late_fraction = 0.05;
  fleet.interval_ns = 500 * kNsPerMs;
  fleet.start_ns = SystemClock::Get()->NowNs() - 3 * 3600 * kNsPerSec;
  return fleet;
}

// kill -9 of the broker during a sustained ingest with duplicates, then a
// restart: calls during the outage fail with UNAVAILABLE within their
// deadline, ingest says NOT_SERVING, writes succeed again afterwards, and
// every acknowledged reading is stored exactly once (the client re-sends what
// failed, as a well-behaved client does; the writer resumes from its stored
// offsets and drops what Kafka or the client delivered twice).
TEST(KafkaBroker, KilledDuringIngestLosesNothingAcknowledgedAndDoublesNothing) {
  Services services;
  services.StartWriter();
  const int ingest_http = FreePort();
  services.StartIngest({"--http_port=" + std::to_string(ingest_http)});
  services.StartQuery();
  Tenant t = CreateTenant("broker-kill");
  auto ingest = services.IngestStub();
  constexpr int64_t kTotal = 300'000;
  std::atomic<int64_t> progress{0};
  WriteOptions options;
  options.deadline_ms = 3000;
  options.retry_failed = true;
  options.progress = &progress;
  Written w;
  std::thread client(
      [&] { w = WriteFleet(ingest.get(), t.key, SmallFleet(40, 5), kTotal, 500, options); });
  ASSERT_TRUE(Eventually([&] { return progress.load() >= 30'000; }, 60'000));
  ASSERT_EQ(KafkaCtl("kill"), 0);
  const int64_t at_kill = progress.load();
  // Ingest notices: NOT_SERVING on gRPC health.
  EXPECT_TRUE(WaitForHealth(services.ingest_port(), "", 2, 20'000));
  ASSERT_EQ(KafkaCtl("start"), 0);
  EXPECT_TRUE(WaitForHealth(services.ingest_port(), "", 1, 30'000));
  client.join();
  EXPECT_LT(at_kill, kTotal) << "the client finished before the broker was killed";
  EXPECT_GT(w.failed_calls, 0) << "no call saw the outage";
  for (const auto& [code, n] : w.failed_codes) {
    EXPECT_EQ(code, grpc::StatusCode::UNAVAILABLE) << n << " calls failed with code " << code;
  }
  EXPECT_LE(w.slowest_failure_ms, options.deadline_ms + 500);
  auto query = services.QueryStub();
  ASSERT_TRUE(WaitForToken(query.get(), t.key, w.token, "dev-0", 120'000).ok());
  EXPECT_EQ(StoredReadings(t.id), w.unique);
  EXPECT_EQ(RollupMismatches(t.id, "agg_1m_merged", 60'000'000'000), 0);
  EXPECT_EQ(RollupMismatches(t.id, "agg_1h", 3'600'000'000'000), 0);
  EXPECT_EQ(CacheMismatches(t.id), 0);
  // The writer resumed where it stood: no offsets skipped or reset.
  EXPECT_EQ(MetricValue(services.writer_http_port(), "writer_log_gap_messages_total"), 0);
  EXPECT_EQ(MetricValue(services.writer_http_port(), "writer_log_resets_total"), 0);
}

// The writer killed with the topic retained past it: a restart replays from
// the position stored with the data, and a replay of the whole topic from
// offset 0 (the offsets table lost) changes no stored row or rollup.
TEST(KafkaBroker, WriterReplayFromItsPositionAndFromZeroChangesNothing) {
  const std::string topic = CreateTopic("test.replay", 4);
  const std::vector<std::string> writer_args = {"--topic=" + topic, "--group=g-" + topic};
  Services services;
  services.StartWriter(writer_args);
  services.StartIngest({"--topic=" + topic});
  services.StartQuery({"--topic=" + topic});
  Tenant t = CreateTenant("replay");
  auto ingest = services.IngestStub();
  Written w = WriteFleet(ingest.get(), t.key, SmallFleet(20, 4), 40'000, 1'000);
  ASSERT_EQ(w.failed_calls, 0);
  auto query = services.QueryStub();
  ASSERT_TRUE(WaitForToken(query.get(), t.key, w.token, "dev-0", 60'000).ok());
  ASSERT_EQ(StoredReadings(t.id), w.unique);
  const std::string before = Fingerprint(t.id);
  const int64_t offsets = StoredOffsetSum(topic);
  ASSERT_GT(offsets, 0);

  // 1. kill -9, restart: from the stored position, nothing to apply again.
  services.StopWriter(SIGKILL);
  services.StartWriter(writer_args);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(MetricValue(services.writer_http_port(), "writer_readings_applied_total"), 0);
  EXPECT_EQ(Fingerprint(t.id), before);

  // 2. the whole topic again from offset 0.
  services.StopWriter(SIGTERM);
  EXPECT_GT(SqlExec("UPDATE writer_offsets SET next_offset = 0 WHERE topic = '" + topic + "'"), 0);
  ASSERT_EQ(StoredOffsetSum(topic), 0);
  services.StartWriter(writer_args);
  EXPECT_TRUE(Eventually([&] { return StoredOffsetSum(topic) == offsets; }, 60'000))
      << StoredOffsetSum(topic) << " of " << offsets;
  const int port = services.writer_http_port();
  EXPECT_EQ(MetricValue(port, "writer_readings_applied_total"), 0);
  EXPECT_EQ(MetricValue(port, "writer_readings_duplicate_total"), w.accepted);
  EXPECT_EQ(MetricValue(port, "writer_log_gap_messages_total"), 0);
  EXPECT_EQ(Fingerprint(t.id), before);
  EXPECT_EQ(RollupMismatches(t.id, "agg_1m_merged", 60'000'000'000), 0);
  EXPECT_EQ(RollupMismatches(t.id, "agg_1h", 3'600'000'000'000), 0);
  EXPECT_EQ(SensorRollupMismatches(t.id), 0);
  DeleteTopic(topic);
}

// One Write of `n` readings of `device`, timestamps from `first_ns` a second
// apart.
grpc::Status WriteOne(telemetry::v1::IngestService::Stub* stub, const std::string& key,
                      const std::string& device, int64_t first_ns, int n,
                      telemetry::v1::WriteResponse* resp, std::string* retry_after = nullptr) {
  telemetry::v1::WriteRequest req;
  for (int i = 0; i < n; ++i) {
    auto* r = req.add_readings();
    r->set_device_id(device);
    r->set_sensor("s");
    r->set_timestamp_ns(first_ns + i * kNsPerSec);
    r->set_double_value(i);
  }
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + key);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Status st = stub->Write(&ctx, req, resp);
  if (retry_after != nullptr) {
    auto it = ctx.GetServerTrailingMetadata().find("retry-after-ms");
    if (it != ctx.GetServerTrailingMetadata().end()) {
      *retry_after = std::string(it->second.data(), it->second.size());
    }
  }
  return st;
}

std::string MergeTokens(const std::vector<std::string>& tokens) {
  ConsistencyPositions merged;
  for (const auto& t : tokens) {
    auto pos = DecodeConsistencyToken(t);
    if (!pos.ok()) continue;
    merged.topic = pos->topic;
    for (const auto& [p, o] : pos->offsets) merged.offsets[p] = std::max(merged.offsets[p], o);
  }
  return EncodeConsistencyToken(merged);
}

// No writer consumes: Kafka's log grows past --max_writer_lag_messages and
// ingest refuses new writes with RESOURCE_EXHAUSTED and a retry-after (not
// UNAVAILABLE: the broker is fine); once a writer catches up, writes pass
// again, and everything acknowledged before is stored.
TEST(KafkaBroker, IngestPushesBackWhileNoWriterConsumesThenRecovers) {
  const std::string topic = CreateTopic("test.backpressure", 2);
  Services services;
  const int ingest_http = FreePort();
  services.StartIngest({"--topic=" + topic, "--max_writer_lag_messages=20",
                        "--http_port=" + std::to_string(ingest_http)});
  services.StartQuery({"--topic=" + topic});
  Tenant t = CreateTenant("backpressure");
  auto ingest = services.IngestStub();
  const int64_t t0 = SystemClock::Get()->NowNs() - 3600 * kNsPerSec;
  std::vector<std::string> tokens;
  int64_t stored = 0;
  grpc::Status refused;
  std::string retry_after;
  for (int i = 0; i < 400 && refused.ok(); ++i) {
    telemetry::v1::WriteResponse resp;
    grpc::Status st = WriteOne(ingest.get(), t.key, "d" + std::to_string(i % 7),
                               t0 + i * 100 * kNsPerSec, 10, &resp, &retry_after);
    if (st.ok()) {
      stored += resp.accepted();
      tokens.push_back(resp.consistency_token());
    } else {
      refused = st;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_FALSE(retry_after.empty());
  EXPECT_GE(MetricValue(ingest_http, "ingest_writer_lag_messages"), 20);
  // The broker is fine: ingest stays SERVING while it pushes back.
  EXPECT_EQ(GrpcHealth(services.ingest_port()), 1);

  services.StartWriter({"--topic=" + topic, "--group=g-" + topic});
  telemetry::v1::WriteResponse resp;
  EXPECT_TRUE(Eventually(
      [&] {
        return WriteOne(ingest.get(), t.key, "late", t0, 10, &resp).ok() &&
               (tokens.push_back(resp.consistency_token()), stored += resp.accepted(), true);
      },
      30'000));
  auto query = services.QueryStub();
  ASSERT_TRUE(WaitForToken(query.get(), t.key, MergeTokens(tokens), "d0", 60'000).ok());
  EXPECT_EQ(StoredReadings(t.id), stored);
  DeleteTopic(topic);
}

// A topic that keeps little (retention.bytes): ingest reads it at start and
// pushes back at half of it, so the broker never drops by size what the
// writer has not read (with no writer, writes are refused long before).
TEST(KafkaBroker, IngestPushesBackBeforeASizeRetentionCouldDropUnreadWrites) {
  const std::string topic = CreateTopic("test.small", 1, {{"retention.bytes", "65536"}});
  Services services;
  const int ingest_http = FreePort();
  services.StartIngest({"--topic=" + topic, "--max_writer_lag_messages=0",
                        "--http_port=" + std::to_string(ingest_http)});
  Tenant t = CreateTenant("small-retention");
  auto ingest = services.IngestStub();
  const int64_t t0 = SystemClock::Get()->NowNs() - 4 * 3600 * kNsPerSec;
  grpc::Status refused;
  int64_t accepted = 0;
  for (int i = 0; i < 200 && refused.ok(); ++i) {
    telemetry::v1::WriteResponse resp;
    grpc::Status st = WriteOne(ingest.get(), t.key, "d", t0 + i * 60 * kNsPerSec, 50, &resp);
    if (st.ok()) {
      accepted += resp.accepted();
    } else {
      refused = st;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.error_message() << "; lag "
      << MetricValue(ingest_http, "ingest_writer_lag_messages") << " messages, " << accepted
      << " readings accepted";
  // Refused before the partition held the retention's worth of unread writes.
  KafkaOptions ko;
  ko.brokers = RequireEnv("TELEMETRY_KAFKA_BROKERS");
  auto kafka = NewKafkaPublisher(ko);
  ASSERT_TRUE(kafka.ok());
  int64_t low = -1, high = -1;
  ASSERT_TRUE((*kafka)->Watermarks(topic, 0, &low, &high, 5000).ok());
  EXPECT_EQ(low, 0) << "the broker dropped unread writes";
  std::ifstream in(services.log_dir() + "/ingest.log");
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("writer-lag back-pressure at 32768 bytes"), std::string::npos) << log;
  DeleteTopic(topic);
}

// A consumer that fell off the log start through Kafka's own retention (the
// writer down longer than the topic keeps data): the writer counts the gap
// (metric, writer_log_gaps row), and the partition goes on storing new
// writes.
TEST(KafkaBroker, WriterThatFellOffTheLogStartCountsTheGapAndThePartitionResumes) {
  // Segments roll every 200 ms and are deleted a second after their newest
  // message (the local broker checks retention every 5 s).
  const std::string topic =
      CreateTopic("test.retention", 1, {{"retention.ms", "1000"}, {"segment.ms", "200"}});
  const std::vector<std::string> writer_args = {"--topic=" + topic, "--group=g-" + topic};
  Services services;
  services.StartWriter(writer_args);
  services.StartIngest({"--topic=" + topic});
  services.StartQuery({"--topic=" + topic});
  Tenant t = CreateTenant("retention");
  auto ingest = services.IngestStub();
  auto query = services.QueryStub();
  const int64_t t0 = SystemClock::Get()->NowNs() - 3600 * kNsPerSec;
  telemetry::v1::WriteResponse resp;
  ASSERT_TRUE(WriteOne(ingest.get(), t.key, "a", t0, 10, &resp).ok());
  ASSERT_TRUE(WaitForToken(query.get(), t.key, resp.consistency_token(), "a", 30'000).ok());
  services.StopWriter(SIGTERM);

  // Written while no writer runs, then dropped by retention.
  std::string lost_token;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(WriteOne(ingest.get(), t.key, "b", t0 + (i + 1) * 100 * kNsPerSec, 10, &resp).ok());
    lost_token = resp.consistency_token();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  KafkaOptions ko;
  ko.brokers = RequireEnv("TELEMETRY_KAFKA_BROKERS");
  auto kafka = NewKafkaPublisher(ko);
  ASSERT_TRUE(kafka.ok());
  int64_t low = 0, high = 0;
  ASSERT_TRUE(Eventually(
      [&] { return (*kafka)->Watermarks(topic, 0, &low, &high, 2000).ok() && low >= 4; }, 60'000))
      << "retention did not drop the messages (log start " << low << ", end " << high << ")";

  // Written after the drop: must be stored once the writer is back.
  ASSERT_TRUE(WriteOne(ingest.get(), t.key, "c", t0, 10, &resp).ok());
  std::string token = resp.consistency_token();
  services.StartWriter(writer_args);
  ASSERT_TRUE(WaitForToken(query.get(), t.key, token, "c", 30'000).ok());
  EXPECT_EQ(StoredReadings(t.id), 20);  // a and c; b was lost, and said so:
  const int port = services.writer_http_port();
  EXPECT_EQ(MetricValue(port, "writer_log_gap_messages_total"), static_cast<double>(low - 1));
  EXPECT_EQ(SqlInt("SELECT count(*) FROM writer_log_gaps WHERE topic = '" + topic +
                   "' AND partition = 0 AND from_offset = 1 AND to_offset = " +
                   std::to_string(low) + " AND kind = 'dropped'"),
            1);
  // A read that waits for a lost write says so (DATA_LOSS), instead of
  // answering as if it were complete.
  grpc::Status lost = WaitForToken(query.get(), t.key, lost_token, "b", 10'000);
  EXPECT_EQ(lost.error_code(), grpc::StatusCode::DATA_LOSS) << lost.error_message();
  EXPECT_NE(lost.error_message().find("dropped by Kafka"), std::string::npos);
  // And the partition goes on: later writes are stored too.
  ASSERT_TRUE(WriteOne(ingest.get(), t.key, "d", t0, 10, &resp).ok());
  EXPECT_TRUE(WaitForToken(query.get(), t.key, resp.consistency_token(), "d", 30'000).ok());
  EXPECT_EQ(StoredReadings(t.id), 30);
  DeleteTopic(topic);
}

}  // namespace
}  // namespace telemetry::testing
