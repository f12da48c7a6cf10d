// The alert rule store on the real PostgreSQL (common/pg/alert_rules.cc,
// tables of db/migrations/0007_alerts.sql): create/get/update/delete with
// versions, the generation every change bumps, keyset paging, tenant
// isolation, the spec stored byte for byte.
//
// The generation is one counter for the whole database, so other tests
// running against the same stack may bump it too: changes are checked to
// raise it by at least one each.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/alert_rules.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

using telemetry::v1::Rule;

Rule ThresholdRule(const std::string& name) {
  Rule r;
  r.set_name(name);
  r.set_device_id("dev-*");
  r.set_sensor("temp");
  r.set_window_seconds(60);
  r.set_function(telemetry::v1::WINDOW_FUNCTION_MAX);
  r.set_comparison(telemetry::v1::COMPARISON_GE);
  r.set_threshold(80.5);
  r.set_resolve_threshold(75);
  r.set_severity(telemetry::v1::SEVERITY_CRITICAL);
  (*r.mutable_labels())["team"] = "ops";
  // Bytes bytea must keep: a NUL, a backslash, a quote, non-ASCII.
  (*r.mutable_annotations())["summary"] = std::string("a\0b\\'\"\xc3\xa9", 8);
  r.add_webhook_urls("http://hooks.local:8080/x");
  return r;
}

class AlertRulesPg : public ::testing::Test {
 protected:
  AlertRulesPg()
      : pool_(RequireEnv("TELEMETRY_PG_PRIMARY"), 4, "test"), store_(NewPgAlertRuleStore(&pool_)) {}

  int64_t Generation() {
    auto g = store_->Generation();
    EXPECT_TRUE(g.ok()) << g.status();
    return g.ok() ? *g : -1;
  }

  PgPool pool_;
  std::unique_ptr<AlertRuleStore> store_;
};

TEST_F(AlertRulesPg, CrudWithVersionsAndGenerationBumps) {
  Tenant t = CreateTenant("alert-crud");
  int64_t gen = Generation();
  ASSERT_GE(gen, 0);

  Rule in = ThresholdRule("hot");
  in.set_rule_id("client-chosen");
  in.set_version(5);
  auto created = store_->Create(t.id, in);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->rule_id().size(), 32u);
  EXPECT_NE(created->rule_id(), "client-chosen");
  EXPECT_EQ(created->version(), 1);
  EXPECT_GT(created->created_at_ns(), 0);
  EXPECT_EQ(created->updated_at_ns(), created->created_at_ns());
  EXPECT_GE(Generation(), gen + 1);
  gen = Generation();

  // The row: lookup columns and the spec byte for byte.
  const std::string where = absl::StrCat(" FROM alert_rules WHERE tenant_id = ", t.id,
                                         " AND rule_id = '", created->rule_id(), "'");
  auto row =
      Sql("SELECT name, version, encode(spec, 'hex'),"
          " (extract(epoch FROM created_at) * 1000000)::bigint" +
          where);
  ASSERT_EQ(row.size(), 1u);
  EXPECT_EQ(row[0][0], "hot");
  EXPECT_EQ(row[0][1], "1");
  EXPECT_EQ(row[0][2], absl::BytesToHexString(created->SerializeAsString()));
  EXPECT_EQ(row[0][3], std::to_string(created->created_at_ns() / 1000));

  auto got = store_->Get(t.id, created->rule_id());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->SerializeAsString(), created->SerializeAsString());
  EXPECT_EQ(got->annotations().at("summary"), in.annotations().at("summary"));

  // Update without a version, then with the current one.
  Rule change = *created;
  change.set_version(0);
  change.set_threshold(90);
  auto v2 = store_->Update(t.id, change);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->version(), 2);
  EXPECT_EQ(v2->threshold(), 90);
  EXPECT_EQ(v2->created_at_ns(), created->created_at_ns());
  EXPECT_GE(v2->updated_at_ns(), created->updated_at_ns());
  EXPECT_GE(Generation(), gen + 1);
  gen = Generation();
  change.set_version(2);
  change.set_name("hotter");
  auto v3 = store_->Update(t.id, change);
  ASSERT_TRUE(v3.ok()) << v3.status();
  EXPECT_EQ(v3->version(), 3);
  EXPECT_EQ(Sql("SELECT name, version" + where)[0], (std::vector<std::string>{"hotter", "3"}));
  EXPECT_GE(Generation(), gen + 1);

  // A stale version: ABORTED naming both, nothing written.
  change.set_version(2);
  change.set_name("lost");
  auto stale = store_->Update(t.id, change);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted) << stale.status();
  EXPECT_NE(stale.status().message().find("version 3"), std::string::npos) << stale.status();
  EXPECT_NE(stale.status().message().find("version 2"), std::string::npos) << stale.status();
  got = store_->Get(t.id, created->rule_id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name(), "hotter");
  EXPECT_EQ(got->version(), 3);

  // The evaluator's view.
  auto all = store_->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  int found = 0;
  for (const auto& [tenant, rule] : *all) {
    if (rule.rule_id() != created->rule_id()) continue;
    ++found;
    EXPECT_EQ(tenant, t.id);
    EXPECT_EQ(rule.version(), 3);
  }
  EXPECT_EQ(found, 1);

  gen = Generation();
  ASSERT_TRUE(store_->Delete(t.id, created->rule_id()).ok());
  EXPECT_GE(Generation(), gen + 1);
  EXPECT_EQ(SqlInt("SELECT count(*)" + where), 0);
  auto gone = store_->Get(t.id, created->rule_id());
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(gone.status().message().find(created->rule_id()), std::string::npos);
  EXPECT_EQ(store_->Delete(t.id, created->rule_id()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Update(t.id, change).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(AlertRulesPg, GenerationCountsEveryChange) {
  Tenant t = CreateTenant("alert-gen");
  const int64_t before = Generation();
  auto a = store_->Create(t.id, ThresholdRule("a"));
  auto b = store_->Create(t.id, ThresholdRule("b"));
  ASSERT_TRUE(a.ok() && b.ok());
  Rule change = *a;
  change.set_threshold(1);
  ASSERT_TRUE(store_->Update(t.id, change).ok());
  ASSERT_TRUE(store_->Delete(t.id, b->rule_id()).ok());
  EXPECT_GE(Generation(), before + 4);  // two creates, an update, a delete
}

TEST_F(AlertRulesPg, KeysetPagesInRuleIdOrder) {
  Tenant t = CreateTenant("alert-pages");
  Tenant other = CreateTenant("alert-pages-other");
  ASSERT_TRUE(store_->Create(other.id, ThresholdRule("theirs")).ok());
  std::set<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    auto r = store_->Create(t.id, ThresholdRule("r" + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.status();
    ids.insert(r->rule_id());
  }
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = store_->List(t.id, 3, token);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->rules.size(), 3u);
    for (const auto& r : page->rules) seen.push_back(r.rule_id());
    token = page->next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, std::vector<std::string>(ids.begin(), ids.end()));

  // Exactly one page's worth: no next page.
  auto exact = store_->List(t.id, 7, "");
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->rules.size(), 7u);
  EXPECT_TRUE(exact->next_page_token.empty());

  EXPECT_EQ(store_->List(t.id, 0, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->List(t.id, 1001, "").status().code(), absl::StatusCode::kInvalidArgument);
  auto bad = store_->List(t.id, 3, "'; DROP TABLE alert_rules; --");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("page_token"), std::string::npos);
}

TEST_F(AlertRulesPg, ATenantNeverSeesAnotherTenantsRules) {
  Tenant a = CreateTenant("alert-iso-a");
  Tenant b = CreateTenant("alert-iso-b");
  auto mine = store_->Create(a.id, ThresholdRule("mine"));
  ASSERT_TRUE(mine.ok()) << mine.status();
  const int64_t gen = Generation();

  auto get = store_->Get(b.id, mine->rule_id());
  EXPECT_EQ(get.status().code(), absl::StatusCode::kNotFound);
  Rule hijack = *mine;
  hijack.set_name("hijacked");
  EXPECT_EQ(store_->Update(b.id, hijack).status().code(), absl::StatusCode::kNotFound);
  hijack.set_version(0);
  EXPECT_EQ(store_->Update(b.id, hijack).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete(b.id, mine->rule_id()).code(), absl::StatusCode::kNotFound);
  auto list = store_->List(b.id, 100, "");
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->rules.empty());
  // A's page token is only a position: with it, B still lists nothing of A's.
  ASSERT_TRUE(store_->Create(a.id, ThresholdRule("mine too")).ok());
  auto a_page = store_->List(a.id, 1, "");
  ASSERT_TRUE(a_page.ok());
  ASSERT_EQ(a_page->rules.size(), 1u);
  ASSERT_FALSE(a_page->next_page_token.empty());
  auto b_page = store_->List(b.id, 100, a_page->next_page_token);
  ASSERT_TRUE(b_page.ok()) << b_page.status();
  EXPECT_TRUE(b_page->rules.empty());

  auto still = store_->Get(a.id, mine->rule_id());
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->name(), "mine");
  EXPECT_EQ(still->version(), 1);
  EXPECT_GE(Generation(), gen + 1);  // the second create
}

TEST_F(AlertRulesPg, ConcurrentUpdatesOfOneVersionLetExactlyOneWin) {
  Tenant t = CreateTenant("alert-race");
  auto r = store_->Create(t.id, ThresholdRule("race"));
  ASSERT_TRUE(r.ok()) << r.status();
  std::atomic<int> won{0}, aborted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      Rule change = *r;  // version 1
      change.set_threshold(100 + i);
      auto st = store_->Update(t.id, change).status();
      if (st.ok()) ++won;
      if (st.code() == absl::StatusCode::kAborted) ++aborted;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(aborted.load(), 3);
  auto now = store_->Get(t.id, r->rule_id());
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->version(), 2);
}

TEST_F(AlertRulesPg, UnknownTenantIsRefused) {
  auto r = store_->Create(-12345, ThresholdRule("orphan"));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
}

}  // namespace
}  // namespace telemetry::testing
