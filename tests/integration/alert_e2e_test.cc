// End to end: readings through ingest on the real Kafka broker, the alert
// service as a process, transitions in Postgres, on the alerts topic and at a
// local webhook receiver; kill -9 and a replay from offset 0 change nothing.
#include <gtest/gtest.h>
#include <httplib.h>

#include <csignal>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

constexpr int64_t kS = kNsPerSec;

// A webhook receiver on a free port: every POST's Idempotency-Key.
class Receiver {
 public:
  Receiver() : port_(FreePort()) {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      if (down_) {
        res.status = 503;
        return;
      }
      keys_.push_back(req.get_header_value("Idempotency-Key"));
      bodies_.push_back(req.body);
      res.status = 200;
    });
    thread_ = std::thread([this] { server_.listen("127.0.0.1", port_); });
    for (int i = 0; i < 200 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<std::string> keys() {
    std::lock_guard<std::mutex> lock(mu_);
    return keys_;
  }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }
  void SetDown(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    down_ = down;
  }

 private:
  int port_;
  httplib::Server server_;
  std::thread thread_;
  std::mutex mu_;
  bool down_ = false;
  std::vector<std::string> keys_, bodies_;
};

class AlertE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    tenant_ = CreateTenant("alert");
    topic_ = CreateTopic("alert-e2e.readings", 4);
    alerts_topic_ = CreateTopic("alert-e2e.alerts", 2);
    group_ = "alert-e2e-" + std::to_string(getpid()) + "-" + std::to_string(tenant_.id);
    services_ = std::make_unique<Services>();
    services_->StartIngest({"--topic=" + topic_});
    ingest_ = services_->IngestStub();
  }
  void TearDown() override {
    services_.reset();
    DeleteTopic(topic_);
    DeleteTopic(alerts_topic_);
  }

  std::vector<std::string> AlertArgs(const std::string& group) {
    return {"--topic=" + topic_,      "--alerts_topic=" + alerts_topic_, "--group=" + group,
            "--allowed_lateness_s=1", "--checkpoint_interval_s=1",       "--idle_after_s=1"};
  }

  telemetry::v1::Rule CreateRule(telemetry::v1::Rule rule) {
    auto stub = services_->AlertStub();
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + tenant_.key);
    telemetry::v1::CreateRuleRequest req;
    *req.mutable_rule() = rule;
    telemetry::v1::Rule out;
    grpc::Status st = stub->CreateRule(&ctx, req, &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  }

  void Write(const std::string& device, int64_t ts, double v) {
    telemetry::v1::WriteRequest req;
    auto* r = req.add_readings();
    r->set_device_id(device);
    r->set_sensor("temp");
    r->set_timestamp_ns(ts);
    r->set_double_value(v);
    for (int attempt = 0; attempt < 50; ++attempt) {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer " + tenant_.key);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      telemetry::v1::WriteResponse resp;
      if (ingest_->Write(&ctx, req, &resp).ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "write not acknowledged";
  }

  // Readings every 100 ms of event time from `start` for `seconds`, paced in
  // real time; the value of second k is `value(k)`.
  void WriteSeconds(const std::string& device, int64_t start, int seconds,
                    const std::function<double(int)>& value,
                    const std::function<void(int)>& at_second = nullptr) {
    for (int k = 0; k < seconds; ++k) {
      if (at_second) at_second(k);
      for (int i = 0; i < 10; ++i) {
        const int64_t ts = start + k * kS + i * 100 * kNsPerMs;
        while (SystemClock::Get()->NowNs() < ts) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        Write(device, ts, value(k));
      }
    }
  }

  // History rows of the tenant: "fingerprint/sequence/to_state/value/event_time".
  std::vector<std::string> History() {
    std::vector<std::string> out;
    for (const auto& row :
         Sql(absl::StrCat("SELECT fingerprint || '/' || sequence || '/' || to_state || '/' ||"
                          " coalesce(value::text, '-') || '/' || event_time FROM alert_history"
                          " WHERE tenant_id = ",
                          tenant_.id, " ORDER BY fingerprint, sequence"))) {
      out.push_back(row[0]);
    }
    return out;
  }

  // Waits until the tenant's history has `n` rows and the outbox is empty.
  bool WaitForHistory(size_t n, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 100) {
      if (History().size() >= n &&
          SqlInt(absl::StrCat("SELECT count(*) FROM alert_outbox o JOIN alert_history h"
                              " USING (event_id) WHERE h.tenant_id = ",
                              tenant_.id)) == 0) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  static int64_t NextSecond() { return (SystemClock::Get()->NowNs() / kS + 1) * kS; }

  std::unique_ptr<Services> services_;
  Tenant tenant_;
  std::string topic_, alerts_topic_, group_;
  std::unique_ptr<telemetry::v1::IngestService::Stub> ingest_;
};

telemetry::v1::Rule HotRule(const std::string& webhook, int64_t window_s) {
  telemetry::v1::Rule r;
  r.set_name("hot");
  r.set_device_id("dev-*");
  r.set_sensor("temp");
  r.set_window_seconds(window_s);
  r.set_function(telemetry::v1::WINDOW_FUNCTION_AVG);
  r.set_comparison(telemetry::v1::COMPARISON_GT);
  r.set_threshold(50);
  r.set_severity(telemetry::v1::SEVERITY_CRITICAL);
  (*r.mutable_annotations())["summary"] = "{{device}} {{sensor}} at {{value}} > {{threshold}}";
  r.add_webhook_urls(webhook);
  return r;
}

TEST_F(AlertE2E, FiresWithinWindowEndPlusLatenessAndNotifiesOncePerTransition) {
  Receiver hook;
  services_->StartAlert(AlertArgs(group_));
  CreateRule(HotRule(hook.url(), 2));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // rules reload within 1 s
  // Windows of 2 s: [s, s+2) hot (80), [s+2, s+4) cool (20), then silence.
  const int64_t start = (NextSecond() / (2 * kS) + 1) * 2 * kS;
  WriteSeconds("dev-1", start, 4, [](int k) { return k < 2 ? 80.0 : 20.0; });
  // The first window ended at start + 2 s, within the stream; with 1 s of
  // lateness it is decided once a reading at start + 3 s arrived.
  const int64_t fired_by = start + 2 * kS + 1 * kS + 1 * kS;
  // Both transitions (the second from the idle partition's clock).
  ASSERT_TRUE(WaitForHistory(2, 15000));
  const auto history = History();
  ASSERT_EQ(history.size(), 2u);
  EXPECT_NE(history[0].find("/1/1/80/"), std::string::npos) << history[0];  // FIRING
  EXPECT_NE(history[1].find("/2/2/20/"), std::string::npos) << history[1];  // RESOLVED
  const int64_t detected_firing = SqlInt(
      absl::StrCat("SELECT (extract(epoch FROM detected_at) * 1e9)::bigint FROM alert_history WHERE"
                   " tenant_id = ",
                   tenant_.id, " AND sequence = 1"));
  EXPECT_LE(detected_firing, fired_by)
      << "fired " << static_cast<double>(detected_firing - fired_by) / 1e6
      << " ms after window end + lateness + 1 s";
  // The webhook got each transition exactly once, keyed fingerprint-sequence.
  for (int i = 0; i < 50 && hook.keys().size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // nothing more comes
  const auto keys = hook.keys();
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_NE(keys[0], keys[1]);
  EXPECT_EQ(keys[0].substr(keys[0].size() - 2), "-1");
  EXPECT_NE(hook.bodies()[0].find("\"state\":\"ALERT_STATE_FIRING\""), std::string::npos)
      << hook.bodies()[0];
  EXPECT_NE(hook.bodies()[0].find("dev-1 temp at 80 \\u003e 50"), std::string::npos)
      << hook.bodies()[0];
  // And the delivery record says so.
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM alert_deliveries d JOIN alert_history h"
                                " USING (event_id) WHERE h.tenant_id = ",
                                tenant_.id, " AND d.outcome = 'delivered'")),
            4);  // two transitions x (kafka, webhook)
}

TEST_F(AlertE2E, KillNineAndAReplayFromOffsetZeroNeitherLoseNorRepeatATransition) {
  Receiver hook;
  services_->StartAlert(AlertArgs(group_));
  CreateRule(HotRule(hook.url(), 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // 12 windows of 1 s alternating hot / cool: a transition per window, 12
  // in all. The alert service is killed -9 after 4 s and back after 7 s.
  const int64_t start = NextSecond();
  WriteSeconds(
      "dev-2", start, 12, [](int k) { return k % 2 == 0 ? 80.0 : 20.0; },
      [&](int k) {
        if (k == 4) services_->StopAlert(SIGKILL);
        if (k == 7) services_->StartAlert(AlertArgs(group_));
      });
  ASSERT_TRUE(WaitForHistory(12, 30000));
  const auto history = History();
  ASSERT_EQ(history.size(), 12u);
  for (size_t i = 0; i < history.size(); ++i) {
    // Sequences 1..12, FIRING (1) and RESOLVED (2) in turn, each at its
    // window's end.
    const std::string want = absl::StrCat("/", i + 1, "/", i % 2 == 0 ? 1 : 2, "/",
                                          i % 2 == 0 ? 80 : 20, "/", start + (i + 1) * kS);
    EXPECT_NE(history[i].find(want), std::string::npos) << history[i] << " want " << want;
  }
  // Every transition reached the webhook; a delivery cut by the kill may
  // have been sent again, under the same Idempotency-Key.
  for (int i = 0; i < 100; ++i) {
    const auto got = hook.keys();
    if (std::set<std::string>(got.begin(), got.end()).size() >= 12) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto keys = hook.keys();
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), 12u);
  EXPECT_LE(keys.size(), 13u);

  // A fresh state store (a new group: no checkpoint) replays the topic from
  // offset 0: the history stays exactly as it was, nothing is notified again.
  services_->StopAlert(SIGTERM);
  services_->StartAlert(AlertArgs(group_ + "-fresh"));
  std::this_thread::sleep_for(std::chrono::seconds(5));
  EXPECT_EQ(History(), history);
  EXPECT_GE(MetricValue(services_->alert_http_port(), "alert_transitions_replayed_total"), 12);
  EXPECT_EQ(MetricValue(services_->alert_http_port(), "alert_transitions_total"), 0);
  EXPECT_EQ(hook.keys().size(), keys.size());
}

TEST_F(AlertE2E, AWebhookDownForAWhileGetsEachTransitionOnceAfterwards) {
  Receiver hook;
  hook.SetDown(true);
  services_->StartAlert(AlertArgs(group_));
  CreateRule(HotRule(hook.url(), 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const int64_t start = NextSecond();
  WriteSeconds("dev-3", start, 3, [](int k) { return k == 0 ? 80.0 : 20.0; });
  // Recorded while the receiver answers 503: retried with backoff.
  for (int i = 0; i < 100 && History().size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(History().size(), 2u);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_TRUE(hook.keys().empty());
  EXPECT_GE(MetricValue(services_->alert_http_port(), "alert_notification_retries_total"), 2);
  hook.SetDown(false);
  ASSERT_TRUE(WaitForHistory(2, 90000));  // the outbox drains
  const auto keys = hook.keys();
  EXPECT_EQ(keys.size(), 2u);
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), 2u);
}

}  // namespace
}  // namespace telemetry::testing
