// The MQTT bridge's core over IngestCore, the fake Kafka and the fake
// metadata store, with a fake session: what is acknowledged when, what is
// reported on the error topic, and back-pressure.
#include "services/bridge/bridge.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/kafka/codec.h"
#include "common/testing/fakes.h"
#include "common/testing/kafka_fake.h"
#include "telemetry/v1/events.pb.h"

namespace telemetry::bridge {
namespace {

class FakeSession final : public Session {
 public:
  absl::Status Ack(uint16_t id) override {
    absl::MutexLock l(&mu_);
    acks_.push_back(id);
    return absl::OkStatus();
  }
  absl::Status Publish(const std::string& topic, const std::string& payload) override {
    absl::MutexLock l(&mu_);
    published_.emplace_back(topic, payload);
    return absl::OkStatus();
  }
  std::vector<uint16_t> acks() {
    absl::MutexLock l(&mu_);
    return acks_;
  }
  std::vector<std::pair<std::string, std::string>> published() {
    absl::MutexLock l(&mu_);
    return published_;
  }

 private:
  absl::Mutex mu_;
  std::vector<uint16_t> acks_;
  std::vector<std::pair<std::string, std::string>> published_;
};

class BridgeTest : public ::testing::Test {
 protected:
  BridgeTest()
      : kafka_({{"telemetry.readings.v1", 2}}),
        publisher_(&kafka_),
        ingest_metrics_(&registry_),
        metrics_(&registry_),
        session_(std::make_shared<FakeSession>()) {
    core_ = std::make_unique<ingest::IngestCore>(ingest::IngestOptions{}, &publisher_, &metadata_,
                                                 SystemClock::Get(), &ingest_metrics_);
    EXPECT_TRUE(core_->Start().ok());
    NewTenant t;
    t.name = "acme";
    acme_ = *metadata_.CreateTenant(t);
    t.name = "globex";
    globex_ = *metadata_.CreateTenant(t);
  }

  void StartBridge(BridgeOptions o = {}) {
    o.max_batch_delay_ns = 2 * kNsPerMs;
    o.max_ack_wait_ns = kNsPerSec / 5;
    o.max_retry_backoff_ns = 50 * kNsPerMs;
    bridge_ = std::make_unique<Bridge>(o, core_.get(), &metadata_, SystemClock::Get(), &metrics_);
    bridge_->Start();
  }

  static mqtt::Message Message(std::string topic, std::string payload, uint16_t id) {
    mqtt::Message m;
    m.topic = std::move(topic);
    m.payload = std::move(payload);
    m.qos = 1;
    m.packet_id = id;
    return m;
  }

  static std::string Json(const std::string& metrics) {
    return R"({"timestamp": "2026-11-30T12:00:00Z", "metrics": )" + metrics + "}";
  }

  // (tenant, device, sensor) of every reading in Kafka.
  std::vector<std::string> Stored() {
    std::vector<std::string> out;
    for (const auto& m : kafka_.Messages("telemetry.readings.v1")) {
      telemetry::v1::ReadingBatch batch;
      EXPECT_TRUE(batch.ParseFromString(m.payload));
      auto decoded = DecodeBatch(batch);
      EXPECT_TRUE(decoded.ok());
      if (!decoded.ok()) continue;
      for (const auto& d : *decoded) {
        out.push_back(std::to_string(batch.tenant_id()) + " " + d.block->device_id() + " " +
                      d.block->sensor());
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  bool WaitFor(const std::function<bool()>& cond, int ms = 5000) {
    for (int i = 0; i < ms / 5; ++i) {
      if (cond()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return cond();
  }

  FakeKafka kafka_;
  FakePublisher publisher_;
  testing::FakeMetadataStore metadata_;
  MetricsRegistry registry_;
  ingest::IngestMetrics ingest_metrics_;
  BridgeMetrics metrics_;
  std::unique_ptr<ingest::IngestCore> core_;
  std::shared_ptr<FakeSession> session_;
  std::unique_ptr<Bridge> bridge_;
  int64_t acme_ = 0, globex_ = 0;
};

TEST_F(BridgeTest, StoresTheReadingsForTheTopicsTenantThenAcknowledges) {
  StartBridge();
  bridge_->OnMessage(
      session_, Message("telemetry/acme/meter-1", Json(R"({"power_w": 12.5, "relay": true})"), 7));
  bridge_->OnMessage(session_, Message("telemetry/globex/m2/temp", "21.5", 8));
  ASSERT_TRUE(WaitFor([&] { return session_->acks().size() == 2; }));
  EXPECT_EQ(Stored(), (std::vector<std::string>{std::to_string(acme_) + " meter-1 power_w",
                                                std::to_string(acme_) + " meter-1 relay",
                                                std::to_string(globex_) + " m2 temp"}));
  EXPECT_TRUE(session_->published().empty());
  EXPECT_EQ(bridge_->unacked(), 0u);
}

TEST_F(BridgeTest, NoAcknowledgementBeforeKafkaAndRetriedUntilItAnswers) {
  StartBridge();
  kafka_.HoldDeliveries(true);
  bridge_->OnMessage(session_, Message("telemetry/acme/d", Json(R"({"v": 1})"), 1));
  // The write times out (200 ms) and is retried; nothing is acknowledged.
  ASSERT_TRUE(WaitFor([&] { return metrics_.write_retries->Value() >= 1; }));
  EXPECT_TRUE(session_->acks().empty());
  EXPECT_EQ(bridge_->unacked(), 1u);
  kafka_.HoldDeliveries(false);
  ASSERT_TRUE(WaitFor([&] { return session_->acks() == std::vector<uint16_t>{1}; }));
  EXPECT_FALSE(Stored().empty());
}

TEST_F(BridgeTest, PostgresDownMeansRetriedNotAcknowledgedNorDropped) {
  StartBridge();
  metadata_.SetUp(false);  // the tenant cannot be looked up
  bridge_->OnMessage(session_, Message("telemetry/acme/d", Json(R"({"v": 1})"), 5));
  ASSERT_TRUE(WaitFor([&] { return metrics_.write_retries->Value() >= 2; }));
  EXPECT_TRUE(session_->acks().empty());
  EXPECT_TRUE(session_->published().empty());
  metadata_.SetUp(true);
  ASSERT_TRUE(WaitFor([&] { return session_->acks() == std::vector<uint16_t>{5}; }));
  EXPECT_EQ(Stored(), (std::vector<std::string>{std::to_string(acme_) + " d v"}));
}

TEST_F(BridgeTest, UnusableMessagesAreAcknowledgedAndReportedOnTheErrorTopic) {
  StartBridge();
  bridge_->OnMessage(session_, Message("telemetry/acme/d1", "{not json", 1));
  bridge_->OnMessage(session_, Message("telemetry/nosuch/d2", Json(R"({"v": 1})"), 2));
  bridge_->OnMessage(session_, Message("elsewhere/x", "1", 3));
  bridge_->OnMessage(session_,
                     Message("telemetry/acme/d3", Json(R"({"ok": 1, "bad name": 2})"), 4));
  ASSERT_TRUE(WaitFor([&] { return session_->acks().size() == 4; }));
  auto published = session_->published();
  ASSERT_EQ(published.size(), 3u);
  std::map<std::string, std::string> by_topic(published.begin(), published.end());
  EXPECT_NE(by_topic["telemetry-errors/acme/d1"].find("JSON"), std::string::npos)
      << by_topic["telemetry-errors/acme/d1"];
  EXPECT_NE(by_topic["telemetry-errors/nosuch/d2"].find("tenant 'nosuch' does not exist"),
            std::string::npos);
  // The valid metric of d3 is stored, the invalid sensor name is reported.
  EXPECT_NE(by_topic["telemetry-errors/acme/d3"].find("sensor"), std::string::npos)
      << by_topic["telemetry-errors/acme/d3"];
  EXPECT_EQ(Stored(), (std::vector<std::string>{std::to_string(acme_) + " d3 ok"}));
  EXPECT_EQ(metrics_.bad_messages->Value(), 3);
}

TEST_F(BridgeTest, BlocksWhileTooManyMessagesAwaitTheirAcknowledgement) {
  BridgeOptions o;
  o.max_unacked_messages = 2;
  StartBridge(o);
  kafka_.HoldDeliveries(true);
  bridge_->OnMessage(session_, Message("telemetry/acme/d", Json(R"({"a": 1})"), 1));
  bridge_->OnMessage(session_, Message("telemetry/acme/d", Json(R"({"b": 1})"), 2));
  std::atomic<bool> third_taken{false};
  std::thread t([&] {
    bridge_->OnMessage(session_, Message("telemetry/acme/d", Json(R"({"c": 1})"), 3));
    third_taken = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(third_taken);
  kafka_.HoldDeliveries(false);
  t.join();
  ASSERT_TRUE(WaitFor([&] { return session_->acks().size() == 3; }));
}

TEST_F(BridgeTest, StopLeavesUnwrittenMessagesUnacknowledged) {
  StartBridge();
  kafka_.HoldDeliveries(true);
  bridge_->OnMessage(session_, Message("telemetry/acme/d", Json(R"({"a": 1})"), 1));
  ASSERT_TRUE(WaitFor([&] { return metrics_.write_retries->Value() >= 1; }));
  bridge_->Stop();
  kafka_.HoldDeliveries(false);
  bridge_.reset();
  EXPECT_TRUE(session_->acks().empty());
}

}  // namespace
}  // namespace telemetry::bridge
