// End to end: readings through ingest on the real Kafka broker, the alert
// service as a process, transitions in Postgres, on the alerts topic, at a
// local webhook receiver and on a real Prometheus Alertmanager
// (TELEMETRY_ALERTMANAGER); kill -9 and a replay from offset 0 change nothing.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <csignal>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
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

// The alerts a real Alertmanager lists (GET /api/v2/alerts) with the label
// tenant_id=<tenant>: other tests' and other runs' alerts are not seen.
class Alertmanager {
 public:
  explicit Alertmanager(const std::string& url) : client_(url) {
    client_.set_connection_timeout(5, 0);
    client_.set_read_timeout(5, 0);
  }
  // nullopt when it does not answer 200 with a JSON array.
  std::optional<std::vector<google::protobuf::Struct>> Alerts(int64_t tenant, bool active_only) {
    httplib::Params params = {{"filter", absl::StrCat("tenant_id=\"", tenant, "\"")}};
    if (active_only) params.emplace("active", "true");
    auto res = client_.Get("/api/v2/alerts", params, httplib::Headers{});
    if (!res || res->status != 200) return std::nullopt;
    google::protobuf::Value v;
    if (!google::protobuf::util::JsonStringToMessage(res->body, &v).ok() || !v.has_list_value()) {
      return std::nullopt;
    }
    std::vector<google::protobuf::Struct> out;
    for (const auto& a : v.list_value().values()) out.push_back(a.struct_value());
    return out;
  }

 private:
  httplib::Client client_;
};

std::string Field(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? "" : it->second.string_value();
}
std::string Sub(const google::protobuf::Struct& s, const std::string& object,
                const std::string& name) {
  auto it = s.fields().find(object);
  return it == s.fields().end() ? "" : Field(it->second.struct_value(), name);
}
int64_t TimeNs(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) {
    ADD_FAILURE() << "not a time: '" << rfc3339 << "': " << err;
    return 0;
  }
  return absl::ToUnixNanos(t);
}

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

TEST_F(AlertE2E, AWebhookDownForAMinuteGetsEachTransitionOnceAfterwards) {
  Receiver hook;
  hook.SetDown(true);
  // Backoff capped at 4 s so that the test does not wait out a 60 s one.
  auto args = AlertArgs(group_);
  args.push_back("--notify_max_backoff_s=4");
  services_->StartAlert(args);
  CreateRule(HotRule(hook.url(), 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const int64_t start = NextSecond();
  WriteSeconds("dev-3", start, 3, [](int k) { return k == 0 ? 80.0 : 20.0; });
  // Recorded while the receiver answers 503: retried with backoff.
  for (int i = 0; i < 100 && History().size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(History().size(), 2u);
  std::this_thread::sleep_for(std::chrono::seconds(60));  // down for a minute
  EXPECT_TRUE(hook.keys().empty());
  // 1, 2, 4, 4, ... s apart (jittered): a dozen attempts each by now.
  EXPECT_GE(MetricValue(services_->alert_http_port(), "alert_notification_retries_total"), 20);
  hook.SetDown(false);
  ASSERT_TRUE(WaitForHistory(2, 30000));  // the outbox drains
  const auto keys = hook.keys();
  EXPECT_EQ(keys.size(), 2u);
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), 2u);
}

// Alertmanager semantics: it resolves an alert by itself once its endsAt
// passed, so a firing alert is posted with endsAt 4 re-send intervals ahead
// and posted again every interval (re-sends record nothing); the resolution
// is posted with its resolve time, and Alertmanager 0.25 then lists the
// alert no more (GET /api/v2/alerts leaves out alerts whose endsAt passed,
// with or without active=true).
TEST_F(AlertE2E, AlertmanagerListsTheFiringAlertKeptAliveByResendsUntilItResolves) {
  const std::string am_url = RequireEnv("TELEMETRY_ALERTMANAGER");
  ASSERT_FALSE(am_url.empty());
  Alertmanager am(am_url);
  ASSERT_TRUE(am.Alerts(tenant_.id, false).has_value()) << "Alertmanager at " << am_url;
  constexpr int kResendS = 3;
  auto args = AlertArgs(group_);
  args.push_back(absl::StrCat("--alertmanager_resend_s=", kResendS));
  services_->StartAlert(args);
  telemetry::v1::Rule rule = HotRule("http://unused", 2);
  rule.clear_webhook_urls();
  rule.add_alertmanager_urls(am_url);
  CreateRule(rule);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));

  // Hot 2 s windows until Alertmanager lists the alert and it was posted
  // again (its updatedAt moved), then cool ones until it resolves.
  const int64_t start = (NextSecond() / (2 * kS) + 1) * 2 * kS;
  std::optional<google::protobuf::Struct> first, last;
  int cool_from = -1;
  for (int k = 0; k < 40 && (cool_from < 0 || k < cool_from + 4); ++k) {
    if (cool_from < 0 && k % 2 == 0) {
      auto alerts = am.Alerts(tenant_.id, false);
      ASSERT_TRUE(alerts.has_value());
      ASSERT_LE(alerts->size(), 1u);
      if (alerts->size() == 1) {
        if (!first) first = alerts->front();
        last = alerts->front();
        if (Field(*last, "updatedAt") != Field(*first, "updatedAt")) cool_from = k;
      }
    }
    for (int i = 0; i < 10; ++i) {
      const int64_t ts = start + k * kS + i * 100 * kNsPerMs;
      while (SystemClock::Get()->NowNs() < ts) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      Write("dev-am", ts, cool_from >= 0 && k >= cool_from ? 20.0 : 80.0);
    }
  }
  ASSERT_TRUE(first.has_value()) << "Alertmanager never listed the alert";
  ASSERT_GE(cool_from, 0) << "the alert was not posted again within 40 s";

  // The alert as Alertmanager has it: our labels, active, and an end ahead.
  const auto fps =
      Sql(absl::StrCat("SELECT DISTINCT fingerprint FROM alert_history"
                       " WHERE tenant_id = ",
                       tenant_.id));
  ASSERT_EQ(fps.size(), 1u);
  EXPECT_EQ(Sub(*first, "labels", "alertname"), "hot");
  EXPECT_EQ(Sub(*first, "labels", "device"), "dev-am");
  EXPECT_EQ(Sub(*first, "labels", "sensor"), "temp");
  EXPECT_EQ(Sub(*first, "labels", "severity"), "critical");
  EXPECT_EQ(Sub(*first, "labels", "fingerprint"), fps[0][0]);
  EXPECT_EQ(Sub(*first, "status", "state"), "active");
  EXPECT_EQ(Sub(*last, "status", "state"), "active");
  // endsAt: 4 intervals after the post (12 s; up to 4 minutes if an alert
  // service with the default interval on the same database posted it too).
  for (const auto* a : {&*first, &*last}) {
    const int64_t ahead = TimeNs(Field(*a, "endsAt")) - TimeNs(Field(*a, "updatedAt"));
    EXPECT_GE(ahead, 4 * kResendS * kS - kS) << Field(*a, "endsAt");
    EXPECT_LE(ahead, 4 * 60 * kS + kS) << Field(*a, "endsAt");
  }
  EXPECT_LT(TimeNs(Field(*first, "startsAt")), TimeNs(Field(*first, "updatedAt")));
  const int64_t last_ends_at = TimeNs(Field(*last, "endsAt"));

  // Resolved: recorded, delivered, and Alertmanager lists it no more, well
  // before the endsAt of the last re-send (the resolve post did it, not a
  // timeout).
  ASSERT_TRUE(WaitForHistory(2, 15000));
  std::optional<std::vector<google::protobuf::Struct>> after, active;
  for (int i = 0; i < 50; ++i) {
    after = am.Alerts(tenant_.id, false);
    active = am.Alerts(tenant_.id, true);
    if (after && active && after->empty() && active->empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const int64_t gone_at = SystemClock::Get()->NowNs();
  ASSERT_TRUE(after.has_value() && active.has_value());
  EXPECT_TRUE(after->empty()) << after->size() << " alerts listed after the resolution";
  EXPECT_TRUE(active->empty()) << active->size() << " active alerts after the resolution";
  EXPECT_LT(gone_at, last_ends_at);

  // Re-sends go on (resolved alerts too, for a while) and change nothing:
  // still not listed, no transition, no outbox row; one delivery to
  // Alertmanager per transition.
  std::this_thread::sleep_for(std::chrono::seconds(kResendS + 1));
  after = am.Alerts(tenant_.id, false);
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(after->empty());
  EXPECT_EQ(History().size(), 2u);
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM alert_deliveries d JOIN alert_history h"
                                " USING (event_id) WHERE h.tenant_id = ",
                                tenant_.id,
                                " AND d.target LIKE 'alertmanager:%' AND d.outcome = 'delivered'")),
            2);
  EXPECT_GE(MetricValue(services_->alert_http_port(), "alert_alertmanager_resent_total"), 2);
}

// A Subscribe call read on its own thread; it cancels itself after
// `cancel_after` events (0: never).
class Subscription {
 public:
  Subscription(telemetry::v1::AlertService::Stub* stub, const std::string& key,
               const telemetry::v1::SubscribeRequest& req, size_t cancel_after = 0)
      : cancel_after_(cancel_after) {
    ctx_.AddMetadata("authorization", "Bearer " + key);
    reader_ = stub->Subscribe(&ctx_, req);
    thread_ = std::thread([this] {
      telemetry::v1::AlertEvent e;
      while (reader_->Read(&e)) {
        std::lock_guard<std::mutex> lock(mu_);
        events_.push_back(e);
        if (events_.size() == cancel_after_) ctx_.TryCancel();
      }
      grpc::Status st = reader_->Finish();
      std::lock_guard<std::mutex> lock(mu_);
      status_ = st;
      ended_at_ = std::chrono::steady_clock::now();
      done_ = true;
    });
  }
  ~Subscription() {
    ctx_.TryCancel();
    thread_.join();
  }
  std::vector<telemetry::v1::AlertEvent> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  bool WaitFor(size_t n, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
      if (events().size() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  // The stream's status once it ended (within `timeout_ms`) and when.
  std::optional<std::pair<grpc::Status, std::chrono::steady_clock::time_point>> WaitForEnd(
      int timeout_ms) {
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) return std::make_pair(status_, ended_at_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  }

 private:
  const size_t cancel_after_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<telemetry::v1::AlertEvent>> reader_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<telemetry::v1::AlertEvent> events_;
  grpc::Status status_;
  std::chrono::steady_clock::time_point ended_at_;
  bool done_ = false;
};

TEST_F(AlertE2E, SubscribeResumesAfterTheLastEventIdAndListAlertsShowsFiringAndHistory) {
  Receiver hook;
  services_->StartAlert(AlertArgs(group_));
  CreateRule(HotRule(hook.url(), 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto stub = services_->AlertStub();
  // Neither after_event_id nor since_ns: only transitions from now on. The
  // subscriber goes away right after the first one (the FIRING).
  auto first =
      std::make_unique<Subscription>(stub.get(), tenant_.key, telemetry::v1::SubscribeRequest(), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // authenticated, polling
  // 5 windows of 1 s: hot, cool, hot, cool, hot: FIRING, RESOLVED, FIRING,
  // RESOLVED, FIRING (sequences 1-5), the last one firing still.
  const int64_t start = NextSecond();
  WriteSeconds("dev-7", start, 5, [](int k) { return k % 2 == 0 ? 80.0 : 20.0; });
  ASSERT_TRUE(WaitForHistory(5, 20000));
  std::vector<int64_t> recorded;  // the tenant's event_ids in order
  for (const auto& row : Sql(absl::StrCat("SELECT event_id FROM alert_history WHERE tenant_id = ",
                                          tenant_.id, " ORDER BY event_id"))) {
    recorded.push_back(std::stoll(row[0]));
  }
  ASSERT_EQ(recorded.size(), 5u);

  auto ended = first->WaitForEnd(5000);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->first.error_code(), grpc::StatusCode::CANCELLED);
  const auto seen = first->events();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].state(), telemetry::v1::ALERT_STATE_FIRING);
  EXPECT_EQ(seen[0].sequence(), 1);
  EXPECT_EQ(seen[0].event_id(), recorded[0]);
  EXPECT_EQ(seen[0].device_id(), "dev-7");
  EXPECT_EQ(seen[0].tenant_id(), tenant_.id);
  first.reset();

  // Resume after the last event_id received: exactly the four missed, in
  // order, no gap, no duplicate.
  telemetry::v1::SubscribeRequest resume;
  resume.set_after_event_id(seen.back().event_id());
  auto second = std::make_unique<Subscription>(stub.get(), tenant_.key, resume);
  ASSERT_TRUE(second->WaitFor(4, 5000));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // nothing more comes
  auto rest = second->events();
  ASSERT_EQ(rest.size(), 4u);
  for (size_t i = 0; i < rest.size(); ++i) {
    EXPECT_EQ(rest[i].event_id(), recorded[i + 1]);
    EXPECT_EQ(rest[i].sequence(), static_cast<int64_t>(i + 2));
    EXPECT_EQ(rest[i].state(),
              i % 2 == 0 ? telemetry::v1::ALERT_STATE_RESOLVED : telemetry::v1::ALERT_STATE_FIRING);
    EXPECT_EQ(rest[i].fingerprint(), seen[0].fingerprint());
  }

  // ListAlerts: the alert firing now, and its history newest first.
  auto list = [&](const telemetry::v1::ListAlertsRequest& req) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + tenant_.key);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    telemetry::v1::ListAlertsResponse resp;
    grpc::Status st = stub->ListAlerts(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  };
  telemetry::v1::ListAlertsRequest firing;
  firing.set_firing_only(true);
  auto now_firing = list(firing);
  ASSERT_EQ(now_firing.alerts_size(), 1);
  EXPECT_EQ(now_firing.alerts(0).state(), telemetry::v1::ALERT_STATE_FIRING);
  EXPECT_EQ(now_firing.alerts(0).sequence(), 5);
  EXPECT_EQ(now_firing.alerts(0).event_id(), recorded[4]);
  EXPECT_EQ(now_firing.alerts(0).severity(), telemetry::v1::SEVERITY_CRITICAL);
  EXPECT_GT(now_firing.alerts(0).detected_at_ns(), start);
  telemetry::v1::ListAlertsRequest history;
  history.set_history(true);
  history.set_limit(2);
  std::vector<int64_t> listed;
  for (int page = 0; page < 5; ++page) {
    auto resp = list(history);
    for (const auto& a : resp.alerts()) {
      EXPECT_EQ(a.sequence(), 5 - static_cast<int64_t>(listed.size()));
      listed.push_back(a.event_id());
    }
    if (resp.next_page_token().empty()) break;
    history.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(listed, std::vector<int64_t>(recorded.rbegin(), recorded.rend()));
  // Another tenant sees none of it.
  Tenant other = CreateTenant("alert-other");
  grpc::ClientContext octx;
  octx.AddMetadata("authorization", "Bearer " + other.key);
  telemetry::v1::ListAlertsRequest all;
  all.set_history(true);
  telemetry::v1::ListAlertsResponse theirs;
  ASSERT_TRUE(stub->ListAlerts(&octx, all, &theirs).ok());
  EXPECT_EQ(theirs.alerts_size(), 0);

  // Shutdown ends the open stream at once (UNAVAILABLE, resumable) instead
  // of holding the drain (10 s) open.
  const auto sigterm = std::chrono::steady_clock::now();
  services_->alert()->Signal(SIGTERM);
  auto closed = second->WaitForEnd(8000);
  ASSERT_TRUE(closed.has_value());
  EXPECT_EQ(closed->first.error_code(), grpc::StatusCode::UNAVAILABLE)
      << closed->first.error_message();
  EXPECT_LT(closed->second - sigterm, std::chrono::seconds(3));
  EXPECT_EQ(services_->alert()->Wait(20000), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - sigterm, std::chrono::seconds(8));
}

}  // namespace
}  // namespace telemetry::testing

namespace telemetry::testing {
namespace {

TEST_F(AlertE2E, ASilenceMutesTheWebhookButNotTheHistory) {
  Receiver hook;
  services_->StartAlert(AlertArgs(group_));
  const telemetry::v1::Rule rule = CreateRule(HotRule(hook.url(), 1));
  {
    auto stub = services_->AlertStub();
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + tenant_.key);
    telemetry::v1::CreateSilenceRequest req;
    req.mutable_silence()->set_rule_id(rule.rule_id());
    req.mutable_silence()->set_device_id("dev-6");
    req.mutable_silence()->set_ends_at_ns(SystemClock::Get()->NowNs() + 3600 * kS);
    telemetry::v1::Silence out;
    grpc::Status st = stub->CreateSilence(&ctx, req, &out);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // rules and silences reload
  const int64_t start = NextSecond();
  WriteSeconds("dev-6", start, 2, [](int k) { return k == 0 ? 80.0 : 20.0; });
  WriteSeconds("dev-7", start + 2 * kS, 2, [](int k) { return k == 0 ? 80.0 : 20.0; });
  ASSERT_TRUE(WaitForHistory(4, 20000));
  // dev-6's transitions are recorded, muted; dev-7's are not muted.
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM alert_history WHERE tenant_id = ", tenant_.id,
                                " AND device = 'dev-6' AND muted")),
            2);
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM alert_history WHERE tenant_id = ", tenant_.id,
                                " AND device = 'dev-7' AND NOT muted")),
            2);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const auto bodies = hook.bodies();
  ASSERT_EQ(bodies.size(), 2u);
  for (const auto& b : bodies) EXPECT_NE(b.find("\"device_id\":\"dev-7\""), std::string::npos) << b;
  // The Kafka topic still got all four.
  EXPECT_EQ(SqlInt(absl::StrCat("SELECT count(*) FROM alert_deliveries d JOIN alert_history h"
                                " USING (event_id) WHERE h.tenant_id = ",
                                tenant_.id, " AND d.target = 'kafka' AND d.outcome = 'delivered'")),
            4);
}

TEST_F(AlertE2E, LateDataWithinTheLatenessChangesTheOutcomePastItDoesNot) {
  services_->StartAlert(AlertArgs(group_));  // 1 s of allowed lateness
  telemetry::v1::Rule r = HotRule("http://127.0.0.1:1/unused", 2);
  r.clear_webhook_urls();
  CreateRule(r);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // Event times 30 s ahead (no idle advance reaches them), written at once:
  // only the stream moves the watermark. Window [s, s+2) holds 16 readings of
  // 20; a reading of 1000 for s+1.9 arrives ...
  const int64_t s = (NextSecond() / (2 * kS) + 15) * 2 * kS;
  auto window = [&](const std::string& device, int64_t base) {
    for (int i = 0; i < 16; ++i) Write(device, base + i * 100 * kNsPerMs, 20);
  };
  // ... within the lateness (the newest reading is s+2.5: watermark s+1.5):
  window("dev-8", s);
  Write("dev-8", s + 2500 * kNsPerMs, 20);
  Write("dev-8", s + 1900 * kNsPerMs, 1000);
  Write("dev-8", s + 4 * kS, 20);  // watermark s+3: the window closes, avg 77.6
  // ... and past it (the newest reading is s+4 already: watermark s+3).
  const int64_t s2 = s + 20 * kS;
  window("dev-9", s2);
  Write("dev-9", s2 + 4 * kS, 20);
  Write("dev-9", s2 + 1900 * kNsPerMs, 1000);  // late: dropped, counted
  Write("dev-9", s2 + 6 * kS, 20);
  ASSERT_TRUE(WaitForHistory(1, 15000));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const auto rows =
      Sql(absl::StrCat("SELECT device || '/' || to_state || '/' || round(value)"
                       " FROM alert_history WHERE tenant_id = ",
                       tenant_.id, " ORDER BY event_id"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], "dev-8/1/78");
  EXPECT_GE(MetricValue(services_->alert_http_port(), "alert_late_readings_total"), 1);
}

}  // namespace
}  // namespace telemetry::testing
