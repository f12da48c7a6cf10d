// The Alertmanager side of the notifier: the body's endsAt and the re-sends
// (AlertmanagerResender) over the in-memory stores and a recording poster.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/testing/fakes.h"
#include "services/alert/notifier.h"

namespace telemetry::alert {
namespace {

using telemetry::v1::AlertEvent;
using telemetry::v1::AlertState;

constexpr int64_t kS = kNsPerSec;
constexpr int64_t kT0 = 1'700'000'000 * kS;

// Records every POST; answers `codes[url]` (default 200).
class RecordingPoster final : public HttpPoster {
 public:
  struct Call {
    std::string url;
    std::vector<google::protobuf::Struct> alerts;
  };
  absl::StatusOr<int> Post(const std::string& url, const std::string& body,
                           const std::vector<std::pair<std::string, std::string>>&, int) override {
    absl::MutexLock l(&mu_);
    google::protobuf::Value v;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(body, &v).ok()) << body;
    Call c{url, {}};
    for (const auto& a : v.list_value().values()) c.alerts.push_back(a.struct_value());
    calls_.push_back(std::move(c));
    auto it = codes_.find(url);
    return it == codes_.end() ? 200 : it->second;
  }
  void SetCode(const std::string& url, int code) {
    absl::MutexLock l(&mu_);
    codes_[url] = code;
  }
  std::vector<Call> TakeCalls() {
    absl::MutexLock l(&mu_);
    return std::exchange(calls_, {});
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int> codes_;
  std::vector<Call> calls_;
};

std::string Str(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? "" : it->second.string_value();
}
std::string Label(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find("labels");
  return it == s.fields().end() ? "" : Str(it->second.struct_value(), name);
}
int64_t Ns(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << rfc3339 << ": " << err;
  return absl::ToUnixNanos(t);
}

AlertEvent Event(const std::string& rule_id, const std::string& fp, AlertState state,
                 int64_t event_time) {
  AlertEvent e;
  e.set_tenant_id(7);
  e.set_rule_id(rule_id);
  e.set_rule_name("hot");
  e.set_fingerprint(fp);
  e.set_device_id("dev-" + fp);
  e.set_sensor("temp");
  e.set_state(state);
  e.set_window_start_ns(event_time - 2 * kS);
  e.set_window_end_ns(event_time);
  e.set_event_time_ns(event_time);
  e.set_severity(telemetry::v1::SEVERITY_CRITICAL);
  return e;
}

TEST(AlertmanagerJson, FiringCarriesTheGivenEndResolvedItsResolveTime) {
  google::protobuf::Value v;
  const AlertEvent firing = Event("r", "fp", telemetry::v1::ALERT_STATE_FIRING, kT0);
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(AlertmanagerJson(firing), &v).ok());
  EXPECT_EQ(v.list_value().values(0).struct_value().fields().count("endsAt"), 0u);
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(AlertmanagerJson(firing, kT0 + 240 * kS), &v)
          .ok());
  const auto& a = v.list_value().values(0).struct_value();
  EXPECT_EQ(Ns(Str(a, "startsAt")), kT0);
  EXPECT_EQ(Ns(Str(a, "endsAt")), kT0 + 240 * kS);
  EXPECT_EQ(Label(a, "fingerprint"), "fp");
  EXPECT_EQ(Label(a, "tenant_id"), "7");
  // An end before the start (an event time ahead of the clock) would be
  // refused: a second past the start instead.
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(AlertmanagerJson(firing, kT0 - 10 * kS), &v)
          .ok());
  EXPECT_EQ(Ns(Str(v.list_value().values(0).struct_value(), "endsAt")), kT0 + kS);
  const AlertEvent resolved = Event("r", "fp", telemetry::v1::ALERT_STATE_RESOLVED, kT0 + 10 * kS);
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(AlertmanagerJson(resolved, kT0 + 999 * kS), &v)
          .ok());
  EXPECT_EQ(Ns(Str(v.list_value().values(0).struct_value(), "endsAt")), kT0 + 10 * kS);
  EXPECT_EQ(AlertmanagerAlertsUrl("http://am:9093//"), "http://am:9093/api/v2/alerts");
}

class ResendTest : public ::testing::Test {
 protected:
  ResendTest() : clock_(kT0), state_(&clock_), rules_(&clock_), metrics_(&registry_) {}

  std::string CreateRule(std::vector<std::string> am_urls) {
    telemetry::v1::Rule r;
    r.set_name("hot");
    for (const auto& u : am_urls) r.add_alertmanager_urls(u);
    if (am_urls.empty()) r.add_webhook_urls("http://hook/");
    auto got = rules_.Create(7, r);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? got->rule_id() : "";
  }
  void Record(const AlertEvent& e, int64_t sequence, bool muted = false) {
    AlertRecord r;
    r.tenant_id = e.tenant_id();
    r.fingerprint = e.fingerprint();
    r.sequence = sequence;
    r.rule_id = e.rule_id();
    r.device = e.device_id();
    r.sensor = e.sensor();
    r.to_state = e.state();
    r.event_time_ns = e.event_time_ns();
    r.muted = muted;
    e.SerializeToString(&r.event);
    r.targets = {"kafka"};
    ASSERT_TRUE(state_.Commit("g", {r}, {}).ok());
  }
  AlertmanagerResender Resender(int batch = 100) {
    ResendOptions o;
    o.interval_ns = 60 * kS;
    o.batch = batch;
    o.page = 2;  // several pages
    return AlertmanagerResender(o, &state_, &rules_, &http_, &clock_, &metrics_);
  }

  FakeClock clock_;
  testing::FakeAlertStateStore state_;
  testing::FakeAlertRuleStore rules_;
  RecordingPoster http_;
  MetricsRegistry registry_;
  NotifierMetrics metrics_;
};

TEST_F(ResendTest, PostsFiringAndRecentlyResolvedAlertsToTheirRulesAlertmanagersOnly) {
  const std::string both = CreateRule({"http://a:9093", "http://b:9093/"});
  const std::string hooks = CreateRule({});
  const std::string gone = CreateRule({"http://a:9093"});
  Record(Event(both, "f1", telemetry::v1::ALERT_STATE_FIRING, kT0 - 30 * kS), 1);
  Record(Event(both, "f2", telemetry::v1::ALERT_STATE_FIRING, kT0 - 30 * kS), 1, /*muted=*/true);
  Record(Event(both, "f3", telemetry::v1::ALERT_STATE_FIRING, kT0 - 30 * kS), 1);
  Record(Event(both, "f3", telemetry::v1::ALERT_STATE_RESOLVED, kT0 - 5 * kS), 2);
  Record(Event(both, "f4", telemetry::v1::ALERT_STATE_PENDING, kT0 - 5 * kS), 1);
  Record(Event(hooks, "f5", telemetry::v1::ALERT_STATE_FIRING, kT0 - 30 * kS), 1);
  Record(Event(gone, "f6", telemetry::v1::ALERT_STATE_FIRING, kT0 - 30 * kS), 1);
  ASSERT_TRUE(rules_.Delete(7, gone).ok());
  const size_t history = state_.history_size();
  auto resender = Resender();

  auto n = resender.RunOnce();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 4);  // f1 and f3, to a and b
  auto calls = http_.TakeCalls();
  ASSERT_EQ(calls.size(), 2u);
  std::map<std::string, std::map<std::string, google::protobuf::Struct>> got;
  for (const auto& c : calls) {
    for (const auto& a : c.alerts) got[c.url][Label(a, "fingerprint")] = a;
  }
  for (const std::string url : {"http://a:9093/api/v2/alerts", "http://b:9093/api/v2/alerts"}) {
    ASSERT_EQ(got[url].size(), 2u) << url;
    const auto& f1 = got[url]["f1"];
    EXPECT_EQ(Ns(Str(f1, "startsAt")), kT0 - 30 * kS);
    EXPECT_EQ(Ns(Str(f1, "endsAt")), kT0 + 4 * 60 * kS);
    EXPECT_EQ(Ns(Str(got[url]["f3"], "endsAt")), kT0 - 5 * kS);
  }
  EXPECT_EQ(metrics_.resent->Value(), 4);
  EXPECT_EQ(metrics_.resend_failures->Value(), 0);
  // Nothing recorded: no history, no outbox rows.
  EXPECT_EQ(state_.history_size(), history);
  EXPECT_EQ(*state_.OutboxBacklog(), 7);  // the "kafka" rows of Record

  // Four intervals after its resolution, f3 is posted no more.
  clock_.Advance(4 * 60 * kS);
  n = resender.RunOnce();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  for (const auto& c : http_.TakeCalls()) {
    ASSERT_EQ(c.alerts.size(), 1u);
    EXPECT_EQ(Label(c.alerts[0], "fingerprint"), "f1");
    EXPECT_EQ(Ns(Str(c.alerts[0], "endsAt")), clock_.NowNs() + 4 * 60 * kS);
  }

  // A rule that names no Alertmanager any more: its alerts are not posted.
  auto rule = rules_.Get(7, both);
  ASSERT_TRUE(rule.ok());
  rule->clear_alertmanager_urls();
  rule->add_webhook_urls("http://hook/");
  rule->set_version(0);
  ASSERT_TRUE(rules_.Update(7, *rule).ok());
  n = resender.RunOnce();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  EXPECT_TRUE(http_.TakeCalls().empty());
}

TEST_F(ResendTest, AFailingAlertmanagerIsCountedAndSkippedForTheRestOfTheRound) {
  const std::string rule = CreateRule({"http://a:9093", "http://b:9093"});
  for (const std::string fp : {"f1", "f2", "f3"}) {
    Record(Event(rule, fp, telemetry::v1::ALERT_STATE_FIRING, kT0 - 30 * kS), 1);
  }
  http_.SetCode("http://b:9093/api/v2/alerts", 503);
  auto resender = Resender(/*batch=*/1);
  auto n = resender.RunOnce();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 3);
  int to_a = 0, to_b = 0;
  for (const auto& c : http_.TakeCalls()) {
    (c.url == "http://a:9093/api/v2/alerts" ? to_a : to_b)++;
  }
  EXPECT_EQ(to_a, 3);
  EXPECT_EQ(to_b, 1);  // failed once: not tried again this round
  EXPECT_EQ(metrics_.resent->Value(), 3);
  EXPECT_EQ(metrics_.resend_failures->Value(), 3);
  // The next round tries again.
  http_.SetCode("http://b:9093/api/v2/alerts", 200);
  n = resender.RunOnce();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 6);
}

TEST_F(ResendTest, AStoreDownIsAnErrorNotACrash) {
  CreateRule({"http://a:9093"});
  state_.SetUp(false);
  auto resender = Resender();
  EXPECT_FALSE(resender.RunOnce().ok());
  EXPECT_EQ(metrics_.store_failures->Value(), 1);
  EXPECT_TRUE(http_.TakeCalls().empty());
}

}  // namespace
}  // namespace telemetry::alert
