// The alert state store's reads on the real PostgreSQL (common/pg/alert_state.cc):
// ListAlerts (current state and history, filters, keyset pages, tokens),
// HistoryAfter (ascending, since_ns to the microsecond), LastEventId, tenant
// isolation, and no gap for a reader polling while several recorders commit
// at once (Commit serializes the recording).
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/alert_state.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

using telemetry::v1::AlertEvent;

AlertRecord Record(int64_t tenant, const std::string& fingerprint, int64_t sequence,
                   telemetry::v1::AlertState state, const std::string& rule,
                   const std::string& device, telemetry::v1::Severity severity) {
  AlertEvent e;
  e.set_fingerprint(fingerprint);
  e.set_tenant_id(tenant);
  e.set_rule_id(rule);
  e.set_device_id(device);
  e.set_state(state);
  e.set_sequence(sequence);
  e.set_severity(severity);
  AlertRecord r;
  r.tenant_id = tenant;
  r.fingerprint = fingerprint;
  r.sequence = sequence;
  r.rule_id = rule;
  r.rule_version = 1;
  r.device = device;
  r.sensor = "temp";
  r.to_state = state;
  r.event_time_ns = sequence;
  r.severity = severity;
  r.event = e.SerializeAsString();
  return r;
}

std::vector<int64_t> Ids(const std::vector<AlertEvent>& events) {
  std::vector<int64_t> ids;
  for (const auto& e : events) ids.push_back(e.event_id());
  return ids;
}

class AlertStatePg : public ::testing::Test {
 protected:
  AlertStatePg()
      : pool_(RequireEnv("TELEMETRY_PG_PRIMARY"), 6, "test"),
        store_(NewPgAlertStateStore(&pool_)),
        a_(CreateTenant("alert-state-a")),
        b_(CreateTenant("alert-state-b")) {}

  std::string Fp(const Tenant& t, const std::string& name) { return absl::StrCat(name, "-", t.id); }
  AlertPage List(const Tenant& t, const AlertListFilter& f, int limit = 100,
                 const std::string& token = "") {
    auto page = store_->ListAlerts(t.id, f, limit, token);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? *page : AlertPage();
  }

  PgPool pool_;
  std::unique_ptr<AlertStateStore> store_;
  Tenant a_, b_;
};

TEST_F(AlertStatePg, ListAlertsAndHistoryAfterPerTenant) {
  using telemetry::v1::ALERT_STATE_FIRING;
  using telemetry::v1::ALERT_STATE_RESOLVED;
  const std::vector<AlertRecord> records = {
      Record(a_.id, Fp(a_, "one"), 1, ALERT_STATE_FIRING, "r1", "dev-1",
             telemetry::v1::SEVERITY_CRITICAL),
      Record(a_.id, Fp(a_, "one"), 2, ALERT_STATE_RESOLVED, "r1", "dev-1",
             telemetry::v1::SEVERITY_CRITICAL),
      Record(b_.id, Fp(b_, "bee"), 1, ALERT_STATE_FIRING, "r1", "dev-1",
             telemetry::v1::SEVERITY_CRITICAL),
      Record(a_.id, Fp(a_, "two"), 1, ALERT_STATE_FIRING, "r2", "dev-2",
             telemetry::v1::SEVERITY_INFO),
  };
  auto committed = store_->Commit("alert-state-test", records, {});
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(committed->recorded, 4);
  EXPECT_EQ(store_->Commit("alert-state-test", records, {})->duplicates, 4);

  auto all = store_->HistoryAfter(a_.id, 0, 0, 10);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  const std::vector<int64_t> ids = Ids(*all);
  EXPECT_LT(ids[0], ids[1]);
  EXPECT_LT(ids[1], ids[2]);
  EXPECT_EQ((*all)[2].fingerprint(), Fp(a_, "two"));
  EXPECT_GT((*all)[0].detected_at_ns(), 0);
  EXPECT_EQ(Ids(*store_->HistoryAfter(a_.id, ids[0], 0, 10)),
            (std::vector<int64_t>{ids[1], ids[2]}));
  EXPECT_EQ(Ids(*store_->HistoryAfter(a_.id, 0, 0, 2)), (std::vector<int64_t>{ids[0], ids[1]}));
  EXPECT_EQ(*store_->LastEventId(a_.id), ids[2]);
  auto theirs = store_->HistoryAfter(b_.id, 0, 0, 10);
  ASSERT_EQ(theirs->size(), 1u);
  EXPECT_EQ((*theirs)[0].tenant_id(), b_.id);
  // since_ns: at or after, to the microsecond (one transaction: one time).
  const int64_t detected = (*all)[0].detected_at_ns();
  EXPECT_EQ(store_->HistoryAfter(a_.id, 0, detected, 10)->size(), 3u);
  EXPECT_EQ(store_->HistoryAfter(a_.id, 0, detected + 1, 10)->size(), 0u);
  EXPECT_EQ(store_->HistoryAfter(a_.id, 0, detected - 1000, 10)->size(), 3u);

  AlertListFilter current;
  EXPECT_EQ(Ids(List(a_, current).alerts), (std::vector<int64_t>{ids[2], ids[1]}));
  AlertListFilter firing;
  firing.firing_only = true;
  EXPECT_EQ(Ids(List(a_, firing).alerts), (std::vector<int64_t>{ids[2]}));
  AlertListFilter history;
  history.history = true;
  EXPECT_EQ(Ids(List(a_, history).alerts), (std::vector<int64_t>{ids[2], ids[1], ids[0]}));
  history.firing_only = true;
  EXPECT_EQ(Ids(List(a_, history).alerts), (std::vector<int64_t>{ids[2]}));
  history.firing_only = false;
  history.rule_id = "r1";
  EXPECT_EQ(Ids(List(a_, history).alerts), (std::vector<int64_t>{ids[1], ids[0]}));
  history.rule_id.clear();
  history.device_id = "dev-2";
  EXPECT_EQ(Ids(List(a_, history).alerts), (std::vector<int64_t>{ids[2]}));
  history.device_id.clear();
  history.severities = {telemetry::v1::SEVERITY_CRITICAL, telemetry::v1::SEVERITY_WARNING};
  EXPECT_EQ(Ids(List(a_, history).alerts), (std::vector<int64_t>{ids[1], ids[0]}));
  history.severities.clear();
  EXPECT_EQ(List(b_, history).alerts.size(), 1u);

  // Pages of one, newest first.
  std::vector<int64_t> paged;
  std::string token;
  for (int i = 0; i < 5; ++i) {
    AlertPage page = List(a_, history, 1, token);
    for (const auto& e : page.alerts) paged.push_back(e.event_id());
    token = page.next_page_token;
    if (token.empty()) break;
  }
  EXPECT_EQ(paged, (std::vector<int64_t>{ids[2], ids[1], ids[0]}));
  AlertPage first_current = List(a_, current, 1);
  ASSERT_FALSE(first_current.next_page_token.empty());
  EXPECT_EQ(Ids(List(a_, current, 1, first_current.next_page_token).alerts),
            (std::vector<int64_t>{ids[1]}));
  // Tokens of the other mode, junk and bad limits are refused.
  auto bad = store_->ListAlerts(a_.id, history, 1, first_current.next_page_token);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListAlerts(a_.id, history, 1, "ah.x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListAlerts(a_.id, history, 0, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->HistoryAfter(a_.id, 0, 0, 1001).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AlertStatePg, AReaderPollingWhileRecordersCommitAtOnceMissesNone) {
  constexpr int kRecorders = 4, kEach = 25;
  std::atomic<bool> failed{false};
  std::vector<std::thread> recorders;
  for (int w = 0; w < kRecorders; ++w) {
    recorders.emplace_back([&, w] {
      for (int i = 0; i < kEach; ++i) {
        auto r = store_->Commit(
            "alert-state-test",
            {Record(a_.id, Fp(a_, absl::StrCat("w", w)), i + 1, telemetry::v1::ALERT_STATE_FIRING,
                    "r", "dev", telemetry::v1::SEVERITY_WARNING)},
            {});
        if (!r.ok()) failed = true;
      }
    });
  }
  // The reader resumes after the last event_id it saw, as Subscribe does.
  std::vector<int64_t> seen;
  int64_t after = 0;
  for (int round = 0; round < 3000 && seen.size() < kRecorders * kEach; ++round) {
    auto got = store_->HistoryAfter(a_.id, after, 0, 7);
    ASSERT_TRUE(got.ok()) << got.status();
    for (const auto& e : *got) {
      seen.push_back(e.event_id());
      after = e.event_id();
    }
    if (got->empty()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (auto& t : recorders) t.join();
  ASSERT_FALSE(failed);
  auto everything = store_->HistoryAfter(a_.id, 0, 0, 1000);
  ASSERT_TRUE(everything.ok());
  EXPECT_EQ(everything->size(), static_cast<size_t>(kRecorders * kEach));
  EXPECT_EQ(seen, Ids(*everything));
}

}  // namespace
}  // namespace telemetry::testing
