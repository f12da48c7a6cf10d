// The alert service's read half over the fakes: the fake state store's
// Commit contract, ListAlerts (current state and history, filters, paging,
// tenant isolation) and Subscribe (resume after an event_id, since, filters,
// tenant isolation, authentication, store errors, shutdown) in-process.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "common/auth.h"
#include "common/grpc/handler.h"
#include "common/grpc/server.h"
#include "common/testing/fakes.h"
#include "common/thread_pool.h"
#include "services/alert/alert_service.h"

namespace telemetry {
namespace {

using v1::AlertEvent;

constexpr int64_t kStart = 1'700'000'000 * kNsPerSec;

struct Transition {
  Transition(int64_t tenant, std::string fp, int64_t seq = 1)
      : tenant_id(tenant), fingerprint(std::move(fp)), sequence(seq) {}
  int64_t tenant_id = 0;
  std::string fingerprint;
  int64_t sequence = 1;
  std::string rule_id = "rule-1";
  std::string device = "dev-1";
  v1::AlertState state = v1::ALERT_STATE_FIRING;
  v1::Severity severity = v1::SEVERITY_WARNING;
  std::string project;
  std::vector<std::string> targets;
};

AlertRecord RecordOf(const Transition& t) {
  AlertEvent e;
  e.set_fingerprint(t.fingerprint);
  e.set_tenant_id(t.tenant_id);
  e.set_rule_id(t.rule_id);
  e.set_device_id(t.device);
  e.set_sensor("temp");
  e.set_state(t.state);
  e.set_sequence(t.sequence);
  e.set_severity(t.severity);
  e.set_project(t.project);
  AlertRecord r;
  r.tenant_id = t.tenant_id;
  r.fingerprint = t.fingerprint;
  r.sequence = t.sequence;
  r.rule_id = t.rule_id;
  r.rule_version = 1;
  r.device = t.device;
  r.sensor = "temp";
  r.to_state = t.state;
  r.severity = t.severity;
  r.event = e.SerializeAsString();
  r.targets = t.targets;
  return r;
}

TEST(AlertStateFake, CommitRecordsOnceAndMovesCurrentForwardOnly) {
  FakeClock clock(kStart);
  testing::FakeAlertStateStore store(&clock);
  Transition t{1, "fp-1"};
  t.targets = {"kafka", "webhook:http://h/"};
  auto first = store.Commit("g", {RecordOf(t)}, {{0, 10, "s0"}});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->recorded, 1);
  EXPECT_EQ(*store.OutboxBacklog(), 2);
  // A replay: nothing new, no outbox rows; the checkpoint moves anyway.
  auto replay = store.Commit("g", {RecordOf(t)}, {{0, 11, "s1"}});
  ASSERT_TRUE(replay.ok());
  EXPECT_EQ(replay->recorded, 0);
  EXPECT_EQ(replay->duplicates, 1);
  EXPECT_EQ(*store.OutboxBacklog(), 2);
  auto cps = store.LoadCheckpoints("g", {0, 1});
  ASSERT_TRUE(cps.ok());
  ASSERT_EQ(cps->size(), 1u);
  EXPECT_EQ(cps->at(0).next_offset, 11);
  EXPECT_EQ(cps->at(0).state, "s1");
  EXPECT_TRUE(store.LoadCheckpoints("other", {0})->empty());

  // Sequence 3, then a late sequence 2: both recorded, current stays at 3.
  Transition t3 = t;
  t3.sequence = 3;
  t3.state = v1::ALERT_STATE_RESOLVED;
  t3.targets.clear();
  Transition t2 = t;
  t2.sequence = 2;
  t2.state = v1::ALERT_STATE_PENDING;
  t2.targets.clear();
  ASSERT_EQ(store.Commit("g", {RecordOf(t3), RecordOf(t2)}, {})->recorded, 2);
  auto current = store.ListAlerts(1, {}, 10, "");
  ASSERT_TRUE(current.ok());
  ASSERT_EQ(current->alerts.size(), 1u);
  EXPECT_EQ(current->alerts[0].sequence(), 3);
  EXPECT_EQ(current->alerts[0].event_id(), 2);
  EXPECT_EQ(current->alerts[0].detected_at_ns(), kStart);
  EXPECT_EQ(*store.LastEventId(1), 3);
  EXPECT_EQ(*store.LastEventId(2), 0);

  // The outbox: claimed rows are leased, finished ones recorded.
  auto claimed = store.ClaimOutbox(10, 60 * kNsPerSec);
  ASSERT_TRUE(claimed.ok());
  ASSERT_EQ(claimed->size(), 2u);
  EXPECT_EQ((*claimed)[0].event_id, 1);
  EXPECT_EQ((*claimed)[0].target, "kafka");
  EXPECT_TRUE(store.ClaimOutbox(10, 60 * kNsPerSec)->empty());
  ASSERT_TRUE(store.FinishOutbox((*claimed)[0], "delivered", 1, "").ok());
  ASSERT_TRUE(store.RetryOutbox((*claimed)[1], 1, kNsPerSec, "503").ok());
  EXPECT_EQ(*store.OutboxBacklog(), 1);
  EXPECT_EQ(store.deliveries().at({1, "kafka"}).outcome, "delivered");
  clock.Advance(2 * kNsPerSec);
  auto again = store.ClaimOutbox(10, 60 * kNsPerSec);
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].attempts, 1);

  store.SetUp(false);
  EXPECT_EQ(store.Commit("g", {}, {}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.HistoryAfter(1, 0, 0, 10).status().code(), absl::StatusCode::kUnavailable);
}

// The handlers in-process on port 0 over the fakes, two tenants; Subscribe
// polls every 20 ms and reads 3 transitions at a time.
class AlertReads : public ::testing::Test {
 protected:
  AlertReads()
      : auth_(&metadata_, SystemClock::Get()), store_clock_(kStart), alerts_(&store_clock_) {
    for (auto* t : {&a_, &b_}) {
      NewTenant nt;
      nt.name = t == &a_ ? "tenant-a" : "tenant-b";
      t->id = *metadata_.CreateTenant(nt);
      t->key = GenerateApiKey();
      EXPECT_TRUE(metadata_.AddApiKey(t->id, Sha256Hex(t->key)).ok());
    }
  }
  ~AlertReads() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  void SetUp() override {
    pool_ = std::make_unique<ThreadPool>(2, 100);
    kit_ = std::make_unique<HandlerKit>(alert::AlertServiceImpl::KitOptions(5 * kNsPerSec), &auth_,
                                        pool_.get(), SystemClock::Get());
    alert::SubscriptionOptions so;
    so.poll_interval_ns = 20 * kNsPerMs;
    so.batch = 3;
    impl_ =
        std::make_unique<alert::AlertServiceImpl>(&rules_, &alerts_, &silences_, kit_.get(), so);
    auto server = StartGrpcServer("127.0.0.1:0", {impl_.get()}, &port_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::AlertService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                          grpc::InsecureChannelCredentials()));
  }

  struct Tenant {
    int64_t id = 0;
    std::string key;
  };

  // Records transitions (one Commit); returns the event_id of the last.
  int64_t Record(const std::vector<Transition>& ts) {
    std::vector<AlertRecord> records;
    for (const auto& t : ts) records.push_back(RecordOf(t));
    auto result = alerts_.Commit("g", records, {});
    EXPECT_TRUE(result.ok());
    return static_cast<int64_t>(alerts_.history_size());
  }
  // `n` FIRING / RESOLVED transitions of `fingerprint` from sequence `from`.
  int64_t Flaps(const Tenant& t, const std::string& fingerprint, int from, int n) {
    std::vector<Transition> ts;
    for (int i = 0; i < n; ++i) {
      Transition tr{t.id, fingerprint, from + i};
      tr.state = (from + i) % 2 == 1 ? v1::ALERT_STATE_FIRING : v1::ALERT_STATE_RESOLVED;
      ts.push_back(tr);
    }
    return Record(ts);
  }

  grpc::Status List(const Tenant& t, const v1::ListAlertsRequest& req,
                    v1::ListAlertsResponse* out) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + t.key);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return stub_->ListAlerts(&ctx, req, out);
  }

  // A Subscribe call read on its own thread.
  class Subscriber {
   public:
    Subscriber(v1::AlertService::Stub* stub, const std::string& key,
               const v1::SubscribeRequest& req) {
      if (!key.empty()) ctx_.AddMetadata("authorization", "Bearer " + key);
      ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      reader_ = stub->Subscribe(&ctx_, req);
      thread_ = std::thread([this] {
        AlertEvent e;
        while (reader_->Read(&e)) {
          std::lock_guard<std::mutex> lock(mu_);
          events_.push_back(e);
          cv_.notify_all();
        }
        grpc::Status st = reader_->Finish();
        std::lock_guard<std::mutex> lock(mu_);
        status_ = st;
        done_ = true;
        cv_.notify_all();
      });
    }
    ~Subscriber() {
      Cancel();
      thread_.join();
    }
    void Cancel() { ctx_.TryCancel(); }
    // Waits (up to 5 s) for `n` events; returns what came.
    std::vector<AlertEvent> WaitFor(size_t n) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(5), [&] { return events_.size() >= n || done_; });
      return events_;
    }
    std::vector<AlertEvent> events() {
      std::lock_guard<std::mutex> lock(mu_);
      return events_;
    }
    // Waits (up to `s` seconds) for the end; its status (OK if it did not end).
    std::optional<grpc::Status> WaitForEnd(int s = 5) {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, std::chrono::seconds(s), [&] { return done_; })) {
        return std::nullopt;
      }
      return status_;
    }

   private:
    grpc::ClientContext ctx_;
    std::unique_ptr<grpc::ClientReader<AlertEvent>> reader_;
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<AlertEvent> events_;
    grpc::Status status_;
    bool done_ = false;
  };

  std::unique_ptr<Subscriber> Subscribe(const Tenant& t, const v1::SubscribeRequest& req) {
    return std::make_unique<Subscriber>(stub_.get(), t.key, req);
  }
  // Waits until the service counts `n` open streams (registered after
  // authentication and their starting point).
  bool WaitForStreams(int n) {
    for (int i = 0; i < 500; ++i) {
      if (impl_->open_subscriptions() == n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  static std::vector<int64_t> Ids(const std::vector<AlertEvent>& events) {
    std::vector<int64_t> ids;
    for (const auto& e : events) ids.push_back(e.event_id());
    return ids;
  }

  testing::FakeMetadataStore metadata_;
  Authenticator auth_;
  FakeClock store_clock_;
  testing::FakeAlertRuleStore rules_;
  testing::FakeAlertStateStore alerts_;
  testing::FakeAlertSilenceStore silences_;
  Tenant a_, b_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<HandlerKit> kit_;
  std::unique_ptr<alert::AlertServiceImpl> impl_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<v1::AlertService::Stub> stub_;
};

TEST_F(AlertReads, ListAlertsCurrentHistoryFiltersAndTenants) {
  // Tenant A: fp-1 FIRING, RESOLVED, FIRING (events 1, 2, 4); fp-2 FIRING
  // critical on dev-2 by rule-2 (3); fp-3 PENDING (5). Tenant B: fp-9 (6).
  Transition f1{a_.id, "fp-1"};
  Transition r1 = f1;
  r1.sequence = 2;
  r1.state = v1::ALERT_STATE_RESOLVED;
  Transition f2{a_.id, "fp-2"};
  f2.rule_id = "rule-2";
  f2.device = "dev-2";
  f2.severity = v1::SEVERITY_CRITICAL;
  Transition f1b = f1;
  f1b.sequence = 3;
  Transition p3{a_.id, "fp-3"};
  p3.state = v1::ALERT_STATE_PENDING;
  p3.device = "dev-3";
  Transition b9{b_.id, "fp-9"};
  Record({f1, r1, f2, f1b, p3, b9});

  auto ids = [](const v1::ListAlertsResponse& r) {
    std::vector<int64_t> out;
    for (const auto& a : r.alerts()) out.push_back(a.event_id());
    return out;
  };
  v1::ListAlertsRequest req;
  v1::ListAlertsResponse resp;
  ASSERT_TRUE(List(a_, req, &resp).ok());
  EXPECT_EQ(ids(resp), (std::vector<int64_t>{5, 4, 3}));  // the current state, newest first
  EXPECT_TRUE(resp.next_page_token().empty());
  EXPECT_EQ(resp.alerts(1).fingerprint(), "fp-1");
  EXPECT_EQ(resp.alerts(1).sequence(), 3);
  EXPECT_EQ(resp.alerts(1).detected_at_ns(), kStart);

  req.set_firing_only(true);
  ASSERT_TRUE(List(a_, req, &(resp = {})).ok());
  EXPECT_EQ(ids(resp), (std::vector<int64_t>{4, 3}));
  req.set_history(true);  // the transitions of what fires now
  ASSERT_TRUE(List(a_, req, &(resp = {})).ok());
  EXPECT_EQ(ids(resp), (std::vector<int64_t>{4, 3, 2, 1}));
  req.set_firing_only(false);
  ASSERT_TRUE(List(a_, req, &(resp = {})).ok());
  EXPECT_EQ(ids(resp), (std::vector<int64_t>{5, 4, 3, 2, 1}));
  req.set_rule_id("rule-1");
  ASSERT_TRUE(List(a_, req, &(resp = {})).ok());
  EXPECT_EQ(ids(resp), (std::vector<int64_t>{5, 4, 2, 1}));
  req.set_device_id("dev-1");
  ASSERT_TRUE(List(a_, req, &(resp = {})).ok());
  EXPECT_EQ(ids(resp), (std::vector<int64_t>{4, 2, 1}));
  req.clear_rule_id();
  req.clear_device_id();
  req.add_severities(v1::SEVERITY_CRITICAL);
  req.add_severities(v1::SEVERITY_INFO);
  ASSERT_TRUE(List(a_, req, &(resp = {})).ok());
  EXPECT_EQ(ids(resp), (std::vector<int64_t>{3}));

  // Tenant B sees its own alert only, in either mode.
  v1::ListAlertsRequest theirs;
  ASSERT_TRUE(List(b_, theirs, &(resp = {})).ok());
  EXPECT_EQ(ids(resp), (std::vector<int64_t>{6}));
  theirs.set_history(true);
  ASSERT_TRUE(List(b_, theirs, &(resp = {})).ok());
  EXPECT_EQ(ids(resp), (std::vector<int64_t>{6}));
  theirs.set_rule_id("rule-2");
  ASSERT_TRUE(List(b_, theirs, &(resp = {})).ok());
  EXPECT_TRUE(resp.alerts().empty());
}

TEST_F(AlertReads, ListAlertsPagesAndRejectsBadLimitsAndTokens) {
  Flaps(a_, "fp-1", 1, 5);
  Flaps(b_, "fp-b", 1, 2);
  Flaps(a_, "fp-2", 1, 2);  // event_ids 1-5 and 8-9 are A's
  v1::ListAlertsRequest req;
  req.set_history(true);
  req.set_limit(3);
  std::vector<int64_t> seen;
  int pages = 0;
  do {
    v1::ListAlertsResponse resp;
    grpc::Status st = List(a_, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_LE(resp.alerts_size(), 3);
    for (const auto& a : resp.alerts()) seen.push_back(a.event_id());
    req.set_page_token(resp.next_page_token());
    ++pages;
  } while (!req.page_token().empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, (std::vector<int64_t>{9, 8, 5, 4, 3, 2, 1}));

  // Current state in pages of 1.
  v1::ListAlertsRequest cur;
  cur.set_limit(1);
  v1::ListAlertsResponse first;
  ASSERT_TRUE(List(a_, cur, &first).ok());
  ASSERT_EQ(first.alerts_size(), 1);
  EXPECT_EQ(first.alerts(0).event_id(), 9);
  ASSERT_FALSE(first.next_page_token().empty());
  cur.set_page_token(first.next_page_token());
  v1::ListAlertsResponse second;
  ASSERT_TRUE(List(a_, cur, &second).ok());
  ASSERT_EQ(second.alerts_size(), 1);
  EXPECT_EQ(second.alerts(0).event_id(), 5);
  EXPECT_TRUE(second.next_page_token().empty());

  // A current-state token is not a history token, and junk is junk.
  v1::ListAlertsRequest bad;
  bad.set_history(true);
  bad.set_page_token(first.next_page_token());
  v1::ListAlertsResponse resp;
  grpc::Status st = List(a_, bad, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("page_token"), std::string::npos) << st.error_message();
  bad.set_page_token("ah.12x");
  EXPECT_EQ(List(a_, bad, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  bad.clear_page_token();
  for (int limit : {-1, 1001}) {
    bad.set_limit(limit);
    st = List(a_, bad, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << limit;
    EXPECT_NE(st.error_message().find("limit"), std::string::npos) << st.error_message();
  }
  bad.set_limit(1000);
  EXPECT_TRUE(List(a_, bad, &resp).ok());
  bad.set_limit(0);
  bad.add_severities(static_cast<v1::Severity>(17));
  st = List(a_, bad, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("severities"), std::string::npos) << st.error_message();
}

TEST_F(AlertReads, ListAlertsUnauthenticatedAndStoreDown) {
  v1::ListAlertsResponse resp;
  EXPECT_EQ(List(Tenant{0, GenerateApiKey()}, {}, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  alerts_.SetUp(false);
  EXPECT_EQ(List(a_, {}, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AlertReads, SubscribeResumesAfterTheLastEventIdWithoutGapOrDuplicate) {
  Flaps(a_, "fp-1", 1, 2);  // 1, 2
  Flaps(b_, "fp-b", 1, 1);  // 3 (tenant B)
  Flaps(a_, "fp-1", 3, 2);  // 4, 5
  v1::SubscribeRequest req;
  req.set_after_event_id(2);
  auto sub = Subscribe(a_, req);
  EXPECT_EQ(Ids(sub->WaitFor(2)), (std::vector<int64_t>{4, 5}));
  // New transitions stream as they are recorded (B's never).
  Flaps(b_, "fp-b", 2, 1);  // 6
  Flaps(a_, "fp-1", 5, 1);  // 7
  auto got = sub->WaitFor(3);
  EXPECT_EQ(Ids(got), (std::vector<int64_t>{4, 5, 7}));
  EXPECT_EQ(got[2].sequence(), 5);
  EXPECT_EQ(got[2].tenant_id(), a_.id);
  sub->Cancel();
  ASSERT_TRUE(sub->WaitForEnd().has_value());
  const int64_t last = sub->events().back().event_id();
  sub.reset();

  // Missed while away: more than a batch (3) of them, interleaved with B's.
  Flaps(a_, "fp-1", 6, 2);  // 8, 9
  Flaps(b_, "fp-b", 3, 1);  // 10
  Flaps(a_, "fp-2", 1, 3);  // 11, 12, 13
  req.set_after_event_id(last);
  auto resumed = Subscribe(a_, req);
  EXPECT_EQ(Ids(resumed->WaitFor(5)), (std::vector<int64_t>{8, 9, 11, 12, 13}));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // nothing more comes
  EXPECT_EQ(resumed->events().size(), 5u);
  ASSERT_TRUE(WaitForStreams(1));
}

TEST_F(AlertReads, SubscribeWithoutAStartingPointGetsOnlyNewTransitions) {
  Flaps(a_, "fp-1", 1, 3);
  auto sub = Subscribe(a_, {});
  ASSERT_TRUE(WaitForStreams(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_TRUE(sub->events().empty());
  Flaps(a_, "fp-1", 4, 1);
  EXPECT_EQ(Ids(sub->WaitFor(1)), (std::vector<int64_t>{4}));

  // since_ns: transitions detected at or after it.
  store_clock_.Advance(10 * kNsPerSec);
  Flaps(a_, "fp-2", 1, 2);  // 5, 6 at kStart + 10 s
  v1::SubscribeRequest since;
  since.set_since_ns(kStart + 10 * kNsPerSec);
  auto later = Subscribe(a_, since);
  EXPECT_EQ(Ids(later->WaitFor(2)), (std::vector<int64_t>{5, 6}));
  since.set_since_ns(kStart + 10 * kNsPerSec + 1);
  auto none = Subscribe(a_, since);
  ASSERT_TRUE(WaitForStreams(3));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_TRUE(none->events().empty());
}

TEST_F(AlertReads, SubscribeFiltersBySeverityStateAndProject) {
  std::vector<Transition> ts;
  for (int i = 0; i < 8; ++i) {
    Transition t{a_.id, "fp-" + std::to_string(i % 4), 1 + i / 4};
    t.state = i < 4 ? v1::ALERT_STATE_FIRING : v1::ALERT_STATE_RESOLVED;
    t.severity = i % 2 == 0 ? v1::SEVERITY_CRITICAL : v1::SEVERITY_INFO;
    t.project = i % 4 < 2 ? "plant-1" : "office";
    ts.push_back(t);
  }
  Record(ts);  // event_ids 1-8
  v1::SubscribeRequest critical_firing;
  critical_firing.add_severities(v1::SEVERITY_CRITICAL);
  critical_firing.add_states(v1::ALERT_STATE_FIRING);
  critical_firing.set_since_ns(1);
  auto a = Subscribe(a_, critical_firing);
  v1::SubscribeRequest plants;
  plants.set_project("plant-?");
  plants.set_since_ns(1);
  auto b = Subscribe(a_, plants);
  v1::SubscribeRequest resolved_office;
  resolved_office.set_project("off*");
  resolved_office.add_states(v1::ALERT_STATE_RESOLVED);
  resolved_office.set_after_event_id(0);
  resolved_office.set_since_ns(1);
  auto c = Subscribe(a_, resolved_office);
  EXPECT_EQ(Ids(a->WaitFor(2)), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(Ids(b->WaitFor(4)), (std::vector<int64_t>{1, 2, 5, 6}));
  EXPECT_EQ(Ids(c->WaitFor(2)), (std::vector<int64_t>{7, 8}));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(a->events().size(), 2u);
  EXPECT_EQ(b->events().size(), 4u);
  EXPECT_EQ(c->events().size(), 2u);

  v1::SubscribeRequest bad;
  bad.add_states(static_cast<v1::AlertState>(9));
  auto refused = Subscribe(a_, bad);
  auto st = refused->WaitForEnd();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st->error_message().find("states"), std::string::npos) << st->error_message();
  bad.Clear();
  bad.set_after_event_id(-1);
  refused = Subscribe(a_, bad);
  st = refused->WaitForEnd();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AlertReads, SubscribeSeesOnlyItsTenantAndRefusesTheUnauthenticated) {
  v1::SubscribeRequest from_start;
  from_start.set_since_ns(1);
  auto b = Subscribe(b_, from_start);
  Flaps(a_, "fp-a", 1, 6);
  Flaps(b_, "fp-b", 1, 1);  // 7
  Flaps(a_, "fp-a", 7, 2);
  EXPECT_EQ(Ids(b->WaitFor(1)), (std::vector<int64_t>{7}));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(b->events().size(), 1u);
  EXPECT_EQ(b->events()[0].tenant_id(), b_.id);

  Subscriber stranger(stub_.get(), GenerateApiKey(), from_start);
  auto st = stranger.WaitForEnd();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(stranger.events().empty());
  Subscriber bare(stub_.get(), "", from_start);
  st = bare.WaitForEnd();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AlertReads, AStoreErrorEndsTheStreamUnavailableAndResumingMissesNothing) {
  auto sub = Subscribe(a_, {});
  ASSERT_TRUE(WaitForStreams(1));
  Flaps(a_, "fp-1", 1, 2);
  ASSERT_EQ(sub->WaitFor(2).size(), 2u);
  alerts_.SetUp(false);
  auto st = sub->WaitForEnd();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->error_code(), grpc::StatusCode::UNAVAILABLE) << st->error_message();
  EXPECT_NE(st->error_message().find("after_event_id"), std::string::npos);
  alerts_.SetUp(true);
  Flaps(a_, "fp-1", 3, 2);
  v1::SubscribeRequest req;
  req.set_after_event_id(sub->events().back().event_id());
  auto resumed = Subscribe(a_, req);
  EXPECT_EQ(Ids(resumed->WaitFor(2)), (std::vector<int64_t>{3, 4}));
}

TEST_F(AlertReads, StreamsHoldNoWorkerAndStopEndsThemAtOnce) {
  // More open streams than pool threads (2): unary calls still run.
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (int i = 0; i < 6; ++i) subs.push_back(Subscribe(i % 2 ? a_ : b_, {}));
  ASSERT_TRUE(WaitForStreams(6));
  v1::ListAlertsResponse resp;
  EXPECT_TRUE(List(a_, {}, &resp).ok());
  Flaps(a_, "fp-1", 1, 1);
  EXPECT_EQ(Ids(subs[1]->WaitFor(1)), (std::vector<int64_t>{1}));
  // Idle streams keep polling in the background, bounded: one read per tick each.
  const int64_t reads = alerts_.history_reads();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LE(alerts_.history_reads() - reads, 6 * (200 / 20 + 2));

  const auto begin = std::chrono::steady_clock::now();
  impl_->StopSubscriptions();
  for (auto& s : subs) {
    auto st = s->WaitForEnd();
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(st->error_code(), grpc::StatusCode::UNAVAILABLE) << st->error_message();
    EXPECT_NE(st->error_message().find("shutting down"), std::string::npos);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(1));
  EXPECT_EQ(impl_->open_subscriptions(), 0);
  // A later Subscribe is refused the same way.
  auto late = Subscribe(a_, {});
  auto st = late->WaitForEnd();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AlertReads, ServerShutdownEndsOpenStreams) {
  auto sub = Subscribe(a_, {});
  ASSERT_TRUE(WaitForStreams(1));
  const auto begin = std::chrono::steady_clock::now();
  server_->Shutdown(std::chrono::system_clock::now());  // cancels the stream
  auto st = sub->WaitForEnd();
  ASSERT_TRUE(st.has_value());
  EXPECT_NE(st->error_code(), grpc::StatusCode::OK);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(2));
}

}  // namespace
}  // namespace telemetry
