#include "services/ingest/ingest_core.h"

#include <gtest/gtest.h>

#include <future>

#include "common/status_payload.h"
#include "common/testing/fakes.h"
#include "common/testing/kafka_fake.h"
#include "common/token.h"
#include "telemetry/v1/events.pb.h"

namespace telemetry::ingest {
namespace {

using telemetry::v1::WriteRequest;
using telemetry::v1::WriteResponse;

class IngestCoreTest : public ::testing::Test {
 protected:
  IngestCoreTest()
      : clock_(SystemClock::Get()->NowNs()),
        kafka_({{"telemetry.readings.v1", 4}}),
        publisher_(&kafka_),
        metrics_(&registry_) {
    IngestOptions o;
    core_ = std::make_unique<IngestCore>(o, &publisher_, &metadata_, &clock_, &metrics_);
    EXPECT_TRUE(core_->Start().ok());
    NewTenant t;
    t.name = "a";
    t.rate_per_sec = 1000;
    t.burst = 1000;
    tenant_.id = *metadata_.CreateTenant(t);
    tenant_.rate_per_sec = 1000;
    tenant_.burst = 1000;
    tenant_.raw_retention_days = 30;
  }

  // Through the fixture's core, or `core`.
  absl::StatusOr<WriteResponse> Write(const WriteRequest& req, int64_t deadline_ns = 0,
                                      IngestCore* core = nullptr) {
    std::promise<absl::StatusOr<WriteResponse>> p;
    auto f = p.get_future();
    if (deadline_ns == 0) deadline_ns = clock_.MonotonicNs() + kNsPerSec;
    (core != nullptr ? core : core_.get())
        ->Write(tenant_, req, 0, deadline_ns,
                [&p](absl::StatusOr<WriteResponse> r) { p.set_value(std::move(r)); });
    return f.get();
  }

  WriteRequest Readings(int n, int devices = 5) {
    WriteRequest req;
    for (int i = 0; i < n; ++i) {
      auto* r = req.add_readings();
      r->set_device_id("dev-" + std::to_string(i % devices));
      r->set_sensor("temp");
      r->set_timestamp_ns(clock_.NowNs() - (n - i) * kNsPerMs);
      r->set_double_value(i);
    }
    return req;
  }

  FakeClock clock_;
  FakeKafka kafka_;
  FakePublisher publisher_;
  testing::FakeMetadataStore metadata_;
  MetricsRegistry registry_;
  IngestMetrics metrics_;
  std::unique_ptr<IngestCore> core_;
  TenantInfo tenant_;
};

TEST_F(IngestCoreTest, AcceptsValidRejectsInvalidWithIndexAndReturnsToken) {
  WriteRequest req = Readings(10);
  req.mutable_readings(3)->set_sensor("");
  req.mutable_readings(7)->set_double_value(std::nan(""));
  auto resp = Write(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(resp->accepted(), 8);
  ASSERT_EQ(resp->rejected_size(), 2);
  EXPECT_EQ(resp->rejected(0).index(), 3);
  EXPECT_EQ(resp->rejected(0).field(), "sensor");
  EXPECT_EQ(resp->rejected(1).index(), 7);
  EXPECT_EQ(resp->rejected(1).field(), "value");
  // Every accepted reading is in the log, many per message.
  size_t in_log = 0;
  auto msgs = kafka_.Messages("telemetry.readings.v1");
  for (const auto& m : msgs) {
    telemetry::v1::ReadingBatch b;
    ASSERT_TRUE(b.ParseFromString(m.payload));
    for (const auto& s : b.series()) in_log += static_cast<size_t>(s.timestamp_delta_ns_size());
  }
  EXPECT_EQ(in_log, 8u);
  EXPECT_LE(msgs.size(), 4u);
  auto token = DecodeConsistencyToken(resp->consistency_token());
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(token->offsets.size(), msgs.size());
  EXPECT_EQ(metrics_.accepted->Value(), 8);
  EXPECT_EQ(metrics_.rejected->Value(), 2);
}

TEST_F(IngestCoreTest, QuotaRefusalProducesNothingAndAdvisesRetry) {
  auto ok = Write(Readings(900));
  ASSERT_TRUE(ok.ok());
  size_t before = kafka_.Messages("telemetry.readings.v1").size();
  auto refused = Write(Readings(200));
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  auto retry = refused.status().GetPayload(kRetryAfterPayload);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(std::string(*retry), "100");  // 100 missing tokens at 1000/s
  EXPECT_EQ(kafka_.Messages("telemetry.readings.v1").size(), before);
  EXPECT_EQ(metrics_.quota_refusals->Value(), 1);
}

TEST_F(IngestCoreTest, KafkaDownFailsUnavailableNeverSuccess) {
  kafka_.SetAvailable(false);
  auto resp = Write(Readings(5));
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(metrics_.accepted->Value(), 0);
}

// A publisher that never acknowledges: the deadline answers UNAVAILABLE.
class SilentPublisher final : public EventPublisher {
 public:
  void Publish(const std::string&, int32_t, const std::string&, std::string,
               DeliveryCallback cb) override {
    held_.push_back(std::move(cb));
  }
  absl::StatusOr<int32_t> PartitionCount(const std::string&) override { return 4; }
  absl::Status Watermarks(const std::string&, int32_t, int64_t*, int64_t*, int) override {
    return absl::UnavailableError("silent");
  }
  absl::Status Flush(int) override { return absl::OkStatus(); }
  std::vector<DeliveryCallback> held_;
};

TEST_F(IngestCoreTest, NoAcknowledgementBeforeDeadlineIsUnavailable) {
  SilentPublisher silent;
  IngestCore core(IngestOptions{}, &silent, &metadata_, SystemClock::Get(), &metrics_);
  ASSERT_TRUE(core.Start().ok());
  std::promise<absl::StatusOr<WriteResponse>> p;
  auto f = p.get_future();
  core.Write(tenant_, Readings(3), 0, SystemClock::Get()->MonotonicNs() + 100 * kNsPerMs,
             [&p](absl::StatusOr<WriteResponse> r) { p.set_value(std::move(r)); });
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto r = f.get();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  // A late acknowledgement does not answer twice.
  for (auto& cb : silent.held_) cb(DeliveryReport{absl::OkStatus(), 0, 1});
}

TEST_F(IngestCoreTest, UnknownDevicesAreRegisteredUnlessTheTenantRequiresRegistration) {
  ASSERT_TRUE(Write(Readings(5, 5)).ok());
  EXPECT_EQ(metadata_.device_count(), 5);
  tenant_.require_registered_devices = true;
  WriteRequest req = Readings(2, 1);
  req.mutable_readings(1)->set_device_id("stranger");
  auto resp = Write(req);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->accepted(), 1);
  ASSERT_EQ(resp->rejected_size(), 1);
  EXPECT_EQ(resp->rejected(0).index(), 1);
  EXPECT_EQ(resp->rejected(0).field(), "device_id");
  EXPECT_NE(resp->rejected(0).reason().find("not registered"), std::string::npos);
}

TEST_F(IngestCoreTest, OversizedRequestIsInvalidArgument) {
  auto resp = Write(Readings(50'001));
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(resp.status().message().find("readings"), std::string::npos);
}

TEST_F(IngestCoreTest, WriterLagPushesBack) {
  // Two requests: two messages on some partition, none applied yet.
  ASSERT_TRUE(Write(Readings(20, 20)).ok());
  ASSERT_TRUE(Write(Readings(20, 20)).ok());
  IngestOptions o;
  o.max_writer_lag_messages = 1;
  IngestCore core(o, &publisher_, &metadata_, &clock_, &metrics_);
  ASSERT_TRUE(core.Start().ok());
  ASSERT_TRUE(core.UpdateWriterLag({}).ok());
  EXPECT_GE(core.writer_lag_messages(), 2);
  std::promise<absl::StatusOr<WriteResponse>> p;
  core.Write(tenant_, Readings(1), 0, clock_.MonotonicNs() + kNsPerSec,
             [&p](absl::StatusOr<WriteResponse> r) { p.set_value(std::move(r)); });
  auto r = p.get_future().get();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(r.status().GetPayload(kRetryAfterPayload).has_value());
  // Once the writer caught up, writes flow again.
  std::map<int32_t, int64_t> applied;
  for (int32_t p2 = 0; p2 < 4; ++p2) {
    int64_t lo = 0, hi = 0;
    ASSERT_TRUE(publisher_.Watermarks("telemetry.readings.v1", p2, &lo, &hi, 0).ok());
    applied[p2] = hi;
  }
  ASSERT_TRUE(core.UpdateWriterLag(applied).ok());
  EXPECT_EQ(core.writer_lag_messages(), 0);
}

TEST_F(IngestCoreTest, WriterLagScanStopsAtTheFirstPartitionKafkaDoesNotAnswerFor) {
  ASSERT_TRUE(Write(Readings(20, 20)).ok());
  IngestOptions o;
  IngestCore core(o, &publisher_, &metadata_, &clock_, &metrics_);
  ASSERT_TRUE(core.Start().ok());
  ASSERT_TRUE(core.UpdateWriterLag({}).ok());
  const int64_t lag = core.writer_lag_messages();
  EXPECT_GE(lag, 1);
  kafka_.SetAvailable(false);
  const int before = kafka_.watermark_queries();
  EXPECT_EQ(core.UpdateWriterLag({}).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(kafka_.watermark_queries() - before, 1);  // not one per partition
  EXPECT_EQ(core.writer_lag_messages(), lag);         // the last known value
}

TEST_F(IngestCoreTest, WriterLagInBytesPushesBack) {
  IngestOptions o;
  o.max_writer_lag_messages = 0;  // only the byte limit
  o.max_writer_lag_bytes = 1000;
  IngestCore core(o, &publisher_, &metadata_, &clock_, &metrics_);
  ASSERT_TRUE(core.Start().ok());
  auto write = [&](int n) { return Write(Readings(n, n), 0, &core); };
  // Small messages: a lag of a few messages stays under 1000 bytes.
  ASSERT_TRUE(write(1).ok());
  ASSERT_TRUE(core.UpdateWriterLag({}).ok());
  EXPECT_GT(core.writer_lag_bytes(), 0);
  EXPECT_LT(core.writer_lag_bytes(), 1000);
  ASSERT_TRUE(write(1).ok());
  // Large messages: the same count of messages is now too many bytes.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(write(200).ok());
  ASSERT_TRUE(core.UpdateWriterLag({}).ok());
  EXPECT_GT(core.writer_lag_bytes(), 1000);
  auto refused = write(1);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("KiB"), std::string::npos);
}

// A topic with a size-based retention: back-pressure must come before the
// broker could drop messages the writer has not read (issue 13, item 0: a
// write is never acknowledged when it cannot be stored). The limit drops to
// half of retention.bytes when it was higher or off, and stays otherwise.
TEST_F(IngestCoreTest, WriterLagLimitStaysUnderTheTopicsRetentionBytes) {
  IngestOptions o;
  o.max_writer_lag_messages = 0;
  o.max_writer_lag_bytes = 1 << 20;
  IngestCore core(o, &publisher_, &metadata_, &clock_, &metrics_);
  EXPECT_EQ(core.LimitLagToRetention(-1), 1 << 20);
  EXPECT_EQ(core.LimitLagToRetention(64 << 20), 1 << 20);
  EXPECT_EQ(core.LimitLagToRetention(1000), 500);
  ASSERT_TRUE(core.Start().ok());
  auto write = [&](int n) { return Write(Readings(n, n), 0, &core); };
  // A lag far below 1 MiB but above half the retention is refused.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(write(200).ok());
  ASSERT_TRUE(core.UpdateWriterLag({}).ok());
  ASSERT_GT(core.writer_lag_bytes(), 500);
  ASSERT_LT(core.writer_lag_bytes(), 1 << 20);
  EXPECT_EQ(write(1).status().code(), absl::StatusCode::kResourceExhausted);

  IngestOptions off;
  off.max_writer_lag_bytes = 0;  // no byte limit asked for: the retention still sets one
  IngestCore unbounded(off, &publisher_, &metadata_, &clock_, &metrics_);
  EXPECT_EQ(unbounded.LimitLagToRetention(1000), 500);
  EXPECT_EQ(unbounded.LimitLagToRetention(-1), 0);
}

}  // namespace
}  // namespace telemetry::ingest
