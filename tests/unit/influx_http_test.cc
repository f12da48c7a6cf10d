// The line-protocol write endpoint's answers over IngestCore, the fake Kafka
// and the fake metadata store (no socket: HandleWrite), plus one round trip
// through the HTTP server with a gzip body.
#include "services/ingest/influx_http.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <thread>

#include "absl/strings/escaping.h"
#include "common/kafka/codec.h"
#include "common/testing/fakes.h"
#include "common/testing/kafka_fake.h"

namespace telemetry::ingest {
namespace {

class InfluxHttpTest : public ::testing::Test {
 protected:
  InfluxHttpTest()
      : clock_(SystemClock::Get()->NowNs()),
        kafka_({{"telemetry.readings.v1", 2}}),
        publisher_(&kafka_),
        metrics_(&registry_),
        http_metrics_(&registry_),
        auth_(&metadata_, &clock_) {
    core_ =
        std::make_unique<IngestCore>(IngestOptions{}, &publisher_, &metadata_, &clock_, &metrics_);
    EXPECT_TRUE(core_->Start().ok());
    NewTenant t;
    t.name = "acme";
    t.rate_per_sec = 100;
    t.burst = 100;
    tenant_ = *metadata_.CreateTenant(t);
    EXPECT_TRUE(metadata_.AddApiKey(tenant_, Sha256Hex("tk_good")).ok());
    InfluxHttpOptions o;
    o.chunk_readings = 3;  // several chunks in flight per request
    o.max_wait_ns = kNsPerSec / 2;
    server_ = std::make_unique<InfluxHttpServer>(core_.get(), &auth_, &clock_, &http_metrics_, o);
  }

  HttpWrite V1(std::string body) {
    HttpWrite w;
    w.database = "db";
    w.precision = "s";
    w.authorization = "Token tk_good";
    w.body = std::move(body);
    return w;
  }

  // Every reading in Kafka, as (device, sensor, timestamp) strings.
  std::vector<std::string> Stored() {
    std::vector<std::string> out;
    for (const auto& m : kafka_.Messages("telemetry.readings.v1")) {
      telemetry::v1::ReadingBatch batch;
      EXPECT_TRUE(batch.ParseFromString(m.payload));
      auto decoded = DecodeBatch(batch);
      EXPECT_TRUE(decoded.ok());
      for (const auto& d : *decoded) {
        out.push_back(d.block->device_id() + " " + d.block->sensor() + " " +
                      std::to_string(d.row.ts_ns));
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  int64_t Now() const { return clock_.NowNs() / kNsPerSec; }

  FakeClock clock_;
  FakeKafka kafka_;
  FakePublisher publisher_;
  testing::FakeMetadataStore metadata_;
  MetricsRegistry registry_;
  IngestMetrics metrics_;
  InfluxHttpMetrics http_metrics_;
  Authenticator auth_;
  std::unique_ptr<IngestCore> core_;
  std::unique_ptr<InfluxHttpServer> server_;
  int64_t tenant_ = 0;
};

TEST_F(InfluxHttpTest, ValidBodyIs204AndEveryFieldIsStored) {
  const std::string t = std::to_string(Now() - 10);
  auto reply = server_->HandleWrite(V1("cpu,host=a u=1,s=2 " + t + "\ncpu,host=b u=3 " + t +
                                       "\n# comment\nmem,host=a used=4i " + t + "\n"));
  EXPECT_EQ(reply.status, 204) << reply.body;
  EXPECT_EQ(Stored(),
            (std::vector<std::string>{
                "cpu/host:a s " + t + "000000000", "cpu/host:a u " + t + "000000000",
                "cpu/host:b u " + t + "000000000", "mem/host:a used " + t + "000000000"}));
}

TEST_F(InfluxHttpTest, EveryWayInfluxClientsSendTheKey) {
  const std::string line = "m v=1 " + std::to_string(Now());
  HttpWrite w = V1(line);
  w.authorization = "Bearer tk_good";
  EXPECT_EQ(server_->HandleWrite(w).status, 204);
  w.authorization = "Basic " + absl::Base64Escape("anyone:tk_good");
  EXPECT_EQ(server_->HandleWrite(w).status, 204);
  w.authorization = "";
  w.user = "anyone";
  w.password = "tk_good";
  EXPECT_EQ(server_->HandleWrite(w).status, 204);

  w.password = "";
  auto none = server_->HandleWrite(w);
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.body.find("authentication credentials"), std::string::npos) << none.body;
  w.authorization = "Token tk_bad";
  auto bad = server_->HandleWrite(w);
  EXPECT_EQ(bad.status, 401);
  w.authorization = "Digest x";
  EXPECT_EQ(server_->HandleWrite(w).status, 401);
}

TEST_F(InfluxHttpTest, BadLinesAre400NamingTheFirstAndTheValidLinesAreWritten) {
  const std::string t = std::to_string(Now());
  auto reply = server_->HandleWrite(V1("m v=1 " + t + "\nm v=oops " + t + "\nm w=2 " + t +
                                       "\nm s=\"x\",bad\\ name=1 " + t + "\n"));
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(reply.body.find("unable to parse 'm v=oops"), std::string::npos) << reply.body;
  EXPECT_NE(reply.body.find("(line 2)"), std::string::npos) << reply.body;
  // Line 4's string field is stored; its field "bad name" is refused by the
  // write path's validation (not a sensor name) and counts as a bad line.
  EXPECT_NE(reply.body.find("2 of 4 lines refused, 3 readings written"), std::string::npos)
      << reply.body;
  EXPECT_EQ(Stored().size(), 3u);
  bool header = false;
  for (const auto& [k, v] : reply.headers) header |= k == "X-Influxdb-Error";
  EXPECT_TRUE(header);
}

TEST_F(InfluxHttpTest, V2ErrorsCarryCodeMessageAndLine) {
  HttpWrite w = V1("m v=1 " + std::to_string(Now()) + "\nm v=\n");
  w.v2 = true;
  auto reply = server_->HandleWrite(w);
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(reply.body.find(R"("code":"invalid")"), std::string::npos) << reply.body;
  EXPECT_NE(reply.body.find(R"("line":2)"), std::string::npos) << reply.body;
  w.database = "";
  EXPECT_NE(server_->HandleWrite(w).body.find("bucket is required"), std::string::npos);
}

TEST_F(InfluxHttpTest, MissingDatabaseAndBadPrecisionAre400) {
  HttpWrite w = V1("m v=1");
  w.database = "";
  auto r = server_->HandleWrite(w);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("database is required"), std::string::npos);
  w = V1("m v=1");
  w.precision = "days";
  r = server_->HandleWrite(w);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("precision"), std::string::npos);
  EXPECT_TRUE(kafka_.Messages("telemetry.readings.v1").empty());
}

TEST_F(InfluxHttpTest, QuotaIs429WithRetryAfter) {
  std::string body;
  for (int i = 0; i < 150; ++i)
    body += "m v=" + std::to_string(i) + " " + std::to_string(Now() - i) + "\n";
  auto r = server_->HandleWrite(V1(body));
  EXPECT_EQ(r.status, 429) << r.body;
  bool retry_after = false;
  for (const auto& [k, v] : r.headers) retry_after |= k == "Retry-After" && std::stoi(v) >= 1;
  EXPECT_TRUE(retry_after);
}

TEST_F(InfluxHttpTest, NotReadyOrKafkaSilentIs503) {
  server_->SetReadiness([](std::string* why) {
    *why = "Kafka does not answer";
    return false;
  });
  auto r = server_->HandleWrite(V1("m v=1"));
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("Kafka does not answer"), std::string::npos);
  server_->SetReadiness(nullptr);

  kafka_.HoldDeliveries(true);
  // The deadline passes on the fake clock while the write waits.
  std::atomic<bool> done{false};
  std::thread advance([&] {
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      clock_.Advance(kNsPerSec / 10);
    }
  });
  r = server_->HandleWrite(V1("m v=1 " + std::to_string(Now())));
  done = true;
  advance.join();
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("did not acknowledge"), std::string::npos) << r.body;
  kafka_.HoldDeliveries(false);
}

TEST_F(InfluxHttpTest, OverHttpWithGzipPingAndTooLargeBodies) {
  InfluxHttpOptions o;
  o.max_body_bytes = 4096;
  InfluxHttpServer server(core_.get(), &auth_, &clock_, &http_metrics_, o);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  httplib::Client client("127.0.0.1", server.port());
  auto ping = client.Get("/ping");
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->status, 204);
  EXPECT_EQ(ping->get_header_value("X-Influxdb-Version"), "1.8.10");

  client.set_compress(true);  // gzip request bodies
  httplib::Headers auth = {{"Authorization", "Token tk_good"}};
  const std::string line = "gz,host=a v=1 " + std::to_string(Now()) + "\n";
  auto w = client.Post("/api/v2/write?org=o&bucket=b&precision=s", auth, line, "text/plain");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->status, 204) << w->body;
  EXPECT_EQ(Stored().size(), 1u);

  // 4 KiB after decompression, though it compresses to a few bytes.
  std::string big(8192, '#');
  auto large = client.Post("/write?db=x", auth, big, "text/plain");
  ASSERT_TRUE(large);
  EXPECT_EQ(large->status, 413);
  server.Stop();
}

}  // namespace
}  // namespace telemetry::ingest
