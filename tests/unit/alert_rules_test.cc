// The alert service's rule half: validation (rule_codec.h), the conversion
// to the evaluator's RuleSpec, the fake rule store's contract, and the rule
// handlers in-process over it (as tests/unit/handlers_test.cc does for the
// other services): CRUD, versions, paging, authentication, tenant isolation.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <set>

#include "common/auth.h"
#include "common/grpc/handler.h"
#include "common/grpc/server.h"
#include "common/service/health.h"
#include "common/testing/fakes.h"
#include "common/thread_pool.h"
#include "services/alert/alert_service.h"
#include "services/alert/rule_codec.h"

namespace telemetry {
namespace {

using alert::ToSpec;
using alert::ValidateRule;
using v1::Rule;

Rule ThresholdRule() {
  Rule r;
  r.set_name("hot");
  r.set_device_id("dev-*");
  r.set_sensor("temp");
  r.set_project("plant-?");
  r.set_window_seconds(60);
  r.set_function(v1::WINDOW_FUNCTION_AVG);
  r.set_comparison(v1::COMPARISON_GT);
  r.set_threshold(30);
  r.set_for_seconds(120);
  r.set_resolve_threshold(28);
  r.set_resolve_for_seconds(30);
  r.set_keep_firing_for_seconds(600);
  r.set_severity(v1::SEVERITY_CRITICAL);
  auto* m = r.add_label_matchers();
  m->set_name("site");
  m->set_value("north*");
  m->set_negate(true);
  (*r.mutable_labels())["team"] = "ops";
  (*r.mutable_annotations())["summary"] = "{{device}} is hot: {{value}}";
  r.add_webhook_urls("http://hooks.example:8080/alert");
  r.add_alertmanager_urls("http://am:9093");
  return r;
}

Rule NoDataRule() {
  Rule r;
  r.set_name("silent");
  r.set_sensor("heartbeat");
  r.set_no_data_seconds(300);
  return r;
}

// The rule with `mutate` applied must be INVALID_ARGUMENT naming `field`.
void ExpectInvalid(const Rule& base, const std::function<void(Rule*)>& mutate,
                   const std::string& field, const std::string& also = "") {
  Rule r = base;
  mutate(&r);
  absl::Status st = ValidateRule(r);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << field << ": " << st;
  EXPECT_NE(st.message().find(field), std::string::npos) << "want " << field << " in: " << st;
  if (!also.empty()) {
    EXPECT_NE(st.message().find(also), std::string::npos) << "want " << also << " in: " << st;
  }
}

TEST(AlertRuleValidation, ValidRulesPass) {
  EXPECT_TRUE(ValidateRule(ThresholdRule()).ok()) << ValidateRule(ThresholdRule());
  EXPECT_TRUE(ValidateRule(NoDataRule()).ok()) << ValidateRule(NoDataRule());
  Rule minimal;
  minimal.set_name("m");
  minimal.set_window_seconds(1);
  minimal.set_function(v1::WINDOW_FUNCTION_RATE);
  minimal.set_comparison(v1::COMPARISON_NE);
  EXPECT_TRUE(ValidateRule(minimal).ok()) << ValidateRule(minimal);
  // Bounds are inclusive; resolve_threshold may equal the threshold.
  Rule edges = ThresholdRule();
  edges.set_name(std::string(200, 'n'));
  edges.set_window_seconds(3600);
  edges.set_for_seconds(86400);
  edges.set_resolve_for_seconds(86400);
  edges.set_keep_firing_for_seconds(86400);
  edges.set_resolve_threshold(30);
  edges.set_device_id(std::string(200, 'd'));
  EXPECT_TRUE(ValidateRule(edges).ok()) << ValidateRule(edges);
  Rule below = ThresholdRule();
  below.set_comparison(v1::COMPARISON_LE);
  below.set_resolve_threshold(31);
  EXPECT_TRUE(ValidateRule(below).ok()) << ValidateRule(below);
  // Server-assigned fields are not the caller's business.
  Rule assigned = ThresholdRule();
  assigned.set_rule_id("whatever");
  assigned.set_version(7);
  EXPECT_TRUE(ValidateRule(assigned).ok());
  // Up to 10 targets in all; IPv6 and user info are fine.
  Rule targets = NoDataRule();
  for (int i = 0; i < 5; ++i) targets.add_webhook_urls("http://[::1]:8080/hook");
  for (int i = 0; i < 5; ++i) targets.add_alertmanager_urls("http://user@am.local/");
  EXPECT_TRUE(ValidateRule(targets).ok()) << ValidateRule(targets);
}

TEST(AlertRuleValidation, NameAndHysteresis) {
  const Rule base = ThresholdRule();
  ExpectInvalid(
      base, [](Rule* r) { r->clear_name(); }, "rule.name", "required");
  ExpectInvalid(
      base, [](Rule* r) { r->set_name(std::string(201, 'x')); }, "rule.name", "200");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  ExpectInvalid(
      base, [](Rule* r) { r->set_hysteresis(0.5); }, "rule.hysteresis");
  ExpectInvalid(
      base, [](Rule* r) { r->set_hysteresis(std::nan("")); }, "rule.hysteresis");
#pragma GCC diagnostic pop
}

TEST(AlertRuleValidation, ThresholdRuleFields) {
  const Rule base = ThresholdRule();
  ExpectInvalid(
      base, [](Rule* r) { r->set_window_seconds(0); }, "rule.window_seconds",
      "must be between 1 and 3600");
  ExpectInvalid(
      base, [](Rule* r) { r->set_window_seconds(3601); }, "rule.window_seconds");
  ExpectInvalid(
      base, [](Rule* r) { r->set_window_seconds(-5); }, "rule.window_seconds");
  ExpectInvalid(
      base, [](Rule* r) { r->set_function(v1::WINDOW_FUNCTION_UNSPECIFIED); }, "rule.function",
      "required");
  ExpectInvalid(
      base, [](Rule* r) { r->set_function(static_cast<v1::WindowFunction>(42)); }, "rule.function",
      "unknown value 42");
  ExpectInvalid(
      base, [](Rule* r) { r->set_comparison(v1::COMPARISON_UNSPECIFIED); }, "rule.comparison",
      "required");
  ExpectInvalid(
      base, [](Rule* r) { r->set_comparison(static_cast<v1::Comparison>(9)); }, "rule.comparison",
      "unknown value 9");
  ExpectInvalid(
      base, [](Rule* r) { r->set_threshold(std::numeric_limits<double>::infinity()); },
      "rule.threshold", "finite");
  ExpectInvalid(
      base, [](Rule* r) { r->set_threshold(std::nan("")); }, "rule.threshold");
  ExpectInvalid(
      base, [](Rule* r) { r->set_for_seconds(-1); }, "rule.for_seconds", "0 and 86400");
  ExpectInvalid(
      base, [](Rule* r) { r->set_for_seconds(86401); }, "rule.for_seconds");
  ExpectInvalid(
      base, [](Rule* r) { r->set_resolve_for_seconds(86401); }, "rule.resolve_for_seconds");
  ExpectInvalid(
      base, [](Rule* r) { r->set_keep_firing_for_seconds(-1); }, "rule.keep_firing_for_seconds");
}

TEST(AlertRuleValidation, ResolveThresholdSideAndComparison) {
  const Rule base = ThresholdRule();  // > 30
  ExpectInvalid(
      base, [](Rule* r) { r->set_resolve_threshold(31); }, "rule.resolve_threshold", "<=");
  ExpectInvalid(
      base,
      [](Rule* r) {
        r->set_comparison(v1::COMPARISON_GE);
        r->set_resolve_threshold(30.5);
      },
      "rule.resolve_threshold", "<=");
  ExpectInvalid(
      base,
      [](Rule* r) {
        r->set_comparison(v1::COMPARISON_LT);
        r->set_resolve_threshold(29);
      },
      "rule.resolve_threshold", ">=");
  ExpectInvalid(
      base,
      [](Rule* r) {
        r->set_comparison(v1::COMPARISON_LE);
        r->set_resolve_threshold(29.9);
      },
      "rule.resolve_threshold", ">=");
  for (auto c : {v1::COMPARISON_EQ, v1::COMPARISON_NE}) {
    ExpectInvalid(
        base, [c](Rule* r) { r->set_comparison(c); }, "rule.resolve_threshold", "GT, GE, LT or LE");
  }
  ExpectInvalid(
      base, [](Rule* r) { r->set_resolve_threshold(-std::numeric_limits<double>::infinity()); },
      "rule.resolve_threshold", "finite");
  ExpectInvalid(
      base, [](Rule* r) { r->set_resolve_threshold(std::nan("")); }, "rule.resolve_threshold");
}

TEST(AlertRuleValidation, NoDataRuleLeavesTheThresholdFieldsUnset) {
  const Rule base = NoDataRule();
  ExpectInvalid(
      base, [](Rule* r) { r->set_no_data_seconds(86401); }, "rule.no_data_seconds",
      "between 1 and 86400");
  ExpectInvalid(
      base, [](Rule* r) { r->set_no_data_seconds(-1); }, "rule.no_data_seconds");
  ExpectInvalid(
      base, [](Rule* r) { r->set_window_seconds(60); }, "rule.window_seconds", "no-data");
  ExpectInvalid(
      base, [](Rule* r) { r->set_function(v1::WINDOW_FUNCTION_MAX); }, "rule.function");
  ExpectInvalid(
      base, [](Rule* r) { r->set_comparison(v1::COMPARISON_GT); }, "rule.comparison");
  ExpectInvalid(
      base, [](Rule* r) { r->set_threshold(1); }, "rule.threshold");
  ExpectInvalid(
      base, [](Rule* r) { r->set_for_seconds(1); }, "rule.for_seconds");
  ExpectInvalid(
      base, [](Rule* r) { r->set_resolve_threshold(0); }, "rule.resolve_threshold");
  ExpectInvalid(
      base, [](Rule* r) { r->set_resolve_for_seconds(1); }, "rule.resolve_for_seconds");
  ExpectInvalid(
      base, [](Rule* r) { r->set_keep_firing_for_seconds(1); }, "rule.keep_firing_for_seconds");
}

TEST(AlertRuleValidation, SelectorsLabelsAndAnnotations) {
  const Rule base = ThresholdRule();
  const std::string long_glob(201, '*');
  ExpectInvalid(
      base, [&](Rule* r) { r->set_device_id(long_glob); }, "rule.device_id", "200 bytes");
  ExpectInvalid(
      base, [&](Rule* r) { r->set_sensor(long_glob); }, "rule.sensor");
  ExpectInvalid(
      base, [&](Rule* r) { r->set_project(long_glob); }, "rule.project");
  ExpectInvalid(
      base, [](Rule* r) { r->add_label_matchers()->set_value("x"); }, "rule.label_matchers[1].name",
      "required");
  ExpectInvalid(
      base,
      [](Rule* r) {
        for (int i = 0; i < 20; ++i) r->add_label_matchers()->set_name("l");
      },
      "rule.label_matchers", "at most 20");
  ExpectInvalid(
      base, [](Rule* r) { (*r->mutable_labels())[""] = "x"; }, "rule.labels", "empty");
  ExpectInvalid(
      base, [](Rule* r) { (*r->mutable_annotations())[""] = "x"; }, "rule.annotations");
  ExpectInvalid(
      base,
      [](Rule* r) {
        for (int i = 0; i < 50; ++i) (*r->mutable_labels())["k" + std::to_string(i)] = "v";
      },
      "rule.labels", "at most 50");
  ExpectInvalid(
      base,
      [](Rule* r) {
        for (int i = 0; i < 50; ++i) (*r->mutable_annotations())["k" + std::to_string(i)] = "v";
      },
      "rule.annotations", "at most 50");
  ExpectInvalid(
      base, [](Rule* r) { r->set_severity(static_cast<v1::Severity>(7)); }, "rule.severity");
}

TEST(AlertRuleValidation, NotificationTargets) {
  const Rule base = ThresholdRule();
  ExpectInvalid(
      base, [](Rule* r) { r->add_webhook_urls("https://secure.example/hook"); },
      "rule.webhook_urls[1]", "https is not supported yet");
  ExpectInvalid(
      base, [](Rule* r) { r->set_alertmanager_urls(0, "HTTPS://am:9093"); },
      "rule.alertmanager_urls[0]", "https is not supported yet");
  ExpectInvalid(
      base, [](Rule* r) { r->add_webhook_urls("ftp://x/"); }, "rule.webhook_urls[1]", "http://");
  ExpectInvalid(
      base, [](Rule* r) { r->add_webhook_urls("hooks.example/alert"); }, "rule.webhook_urls[1]");
  ExpectInvalid(
      base, [](Rule* r) { r->add_webhook_urls("http:///path"); }, "rule.webhook_urls[1]",
      "no host");
  ExpectInvalid(
      base, [](Rule* r) { r->add_alertmanager_urls("http://:9093"); }, "rule.alertmanager_urls[1]",
      "no host");
  ExpectInvalid(
      base, [](Rule* r) { r->add_webhook_urls("http://"); }, "rule.webhook_urls[1]", "no host");
  ExpectInvalid(
      base, [](Rule* r) { r->add_webhook_urls("http://h:99999/"); }, "rule.webhook_urls[1]",
      "port");
  ExpectInvalid(
      base, [](Rule* r) { r->add_webhook_urls("http://h:/"); }, "rule.webhook_urls[1]", "port");
  ExpectInvalid(
      base,
      [](Rule* r) {
        for (int i = 0; i < 9; ++i) r->add_webhook_urls("http://h/" + std::to_string(i));
      },
      "webhook_urls", "at most 10");
}

TEST(AlertRuleToSpec, ThresholdRuleInNanoseconds) {
  Rule r = ThresholdRule();
  r.set_rule_id("abc");
  r.set_version(3);
  alert::RuleSpec s = ToSpec(42, r);
  EXPECT_EQ(s.tenant_id, 42);
  EXPECT_EQ(s.rule_id, "abc");
  EXPECT_EQ(s.version, 3);
  EXPECT_EQ(s.selector.project, "plant-?");
  EXPECT_EQ(s.selector.device, "dev-*");
  EXPECT_EQ(s.selector.sensor, "temp");
  ASSERT_EQ(s.selector.labels.size(), 1u);
  EXPECT_EQ(s.selector.labels[0].name, "site");
  EXPECT_EQ(s.selector.labels[0].value, "north*");
  EXPECT_TRUE(s.selector.labels[0].negate);
  EXPECT_EQ(s.window_ns, 60 * kNsPerSec);
  EXPECT_EQ(s.aggregate, alert::Aggregate::kAvg);
  EXPECT_EQ(s.comparison, alert::Comparison::kGt);
  EXPECT_EQ(s.threshold, 30);
  EXPECT_EQ(s.for_ns, 120 * kNsPerSec);
  ASSERT_TRUE(s.resolve_threshold.has_value());
  EXPECT_EQ(*s.resolve_threshold, 28);
  EXPECT_EQ(s.resolve_for_ns, 30 * kNsPerSec);
  EXPECT_EQ(s.keep_firing_for_ns, 600 * kNsPerSec);
  EXPECT_EQ(s.no_data_ns, 0);

  r.clear_resolve_threshold();
  EXPECT_FALSE(ToSpec(42, r).resolve_threshold.has_value());
  const std::pair<v1::WindowFunction, alert::Aggregate> functions[] = {
      {v1::WINDOW_FUNCTION_AVG, alert::Aggregate::kAvg},
      {v1::WINDOW_FUNCTION_MIN, alert::Aggregate::kMin},
      {v1::WINDOW_FUNCTION_MAX, alert::Aggregate::kMax},
      {v1::WINDOW_FUNCTION_COUNT, alert::Aggregate::kCount},
      {v1::WINDOW_FUNCTION_SUM, alert::Aggregate::kSum},
      {v1::WINDOW_FUNCTION_LAST, alert::Aggregate::kLast},
      {v1::WINDOW_FUNCTION_RATE, alert::Aggregate::kRate}};
  for (const auto& [f, a] : functions) {
    r.set_function(f);
    EXPECT_EQ(ToSpec(1, r).aggregate, a) << v1::WindowFunction_Name(f);
  }
  const std::pair<v1::Comparison, alert::Comparison> comparisons[] = {
      {v1::COMPARISON_GT, alert::Comparison::kGt}, {v1::COMPARISON_GE, alert::Comparison::kGe},
      {v1::COMPARISON_LT, alert::Comparison::kLt}, {v1::COMPARISON_LE, alert::Comparison::kLe},
      {v1::COMPARISON_EQ, alert::Comparison::kEq}, {v1::COMPARISON_NE, alert::Comparison::kNe}};
  for (const auto& [c, want] : comparisons) {
    r.set_comparison(c);
    EXPECT_EQ(ToSpec(1, r).comparison, want) << v1::Comparison_Name(c);
  }
}

TEST(AlertRuleToSpec, NoDataRule) {
  alert::RuleSpec s = ToSpec(7, NoDataRule());
  EXPECT_EQ(s.tenant_id, 7);
  EXPECT_EQ(s.no_data_ns, 300 * kNsPerSec);
  EXPECT_EQ(s.selector.sensor, "heartbeat");
  EXPECT_EQ(s.for_ns, 0);
  EXPECT_FALSE(s.resolve_threshold.has_value());
  EXPECT_GT(s.window_ns, 0);  // RuleSpec's default: unused, never 0
}

TEST(AlertRuleStoreFake, GenerationPagingAndTokens) {
  FakeClock clock(1'000);
  testing::FakeAlertRuleStore store(&clock);
  EXPECT_EQ(*store.Generation(), 0);
  std::set<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = store.Create(1, ThresholdRule());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->rule_id().size(), 32u);
    EXPECT_EQ(r->version(), 1);
    EXPECT_EQ(r->created_at_ns(), 1'000);
    ids.insert(r->rule_id());
  }
  ASSERT_TRUE(store.Create(2, NoDataRule()).ok());
  EXPECT_EQ(ids.size(), 5u);
  EXPECT_EQ(*store.Generation(), 6);
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = store.List(1, 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    ++pages;
    for (const auto& r : page->rules) seen.push_back(r.rule_id());
    token = page->next_page_token;
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, std::vector<std::string>(ids.begin(), ids.end()));  // ordered by rule_id
  EXPECT_EQ(store.List(1, 0, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.List(1, 1001, "").status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string bad : {"garbage", "r1.", "r1.zz", "r1.abc", "r1.ABCD"}) {
    auto page = store.List(1, 10, bad);
    EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(page.status().message().find("page_token"), std::string::npos);
  }
  auto all = store.LoadAll();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 6u);
  EXPECT_EQ(all->back().first, 2);
  // A failed change does not bump the generation.
  Rule missing = ThresholdRule();
  missing.set_rule_id("nope");
  EXPECT_EQ(store.Update(1, missing).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Delete(1, "nope").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*store.Generation(), 6);
}

// The handlers in-process on port 0 over the fake store, two tenants.
class AlertHandlers : public ::testing::Test {
 protected:
  AlertHandlers()
      : auth_(&metadata_, SystemClock::Get()),
        health_({v1::AlertService::service_full_name()}, "starting") {
    for (auto* t : {&a_, &b_}) {
      NewTenant nt;
      nt.name = t == &a_ ? "tenant-a" : "tenant-b";
      t->id = *metadata_.CreateTenant(nt);
      t->key = GenerateApiKey();
      EXPECT_TRUE(metadata_.AddApiKey(t->id, Sha256Hex(t->key)).ok());
    }
  }
  ~AlertHandlers() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  void SetUp() override {
    pool_ = std::make_unique<ThreadPool>(2, 100);
    kit_ = std::make_unique<HandlerKit>(alert::AlertServiceImpl::KitOptions(5 * kNsPerSec), &auth_,
                                        pool_.get(), SystemClock::Get());
    impl_ = std::make_unique<alert::AlertServiceImpl>(&store_, &alerts_, &silences_, kit_.get());
    auto server = StartGrpcServer("127.0.0.1:0", {impl_.get()}, &port_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    health_.Attach(server_.get());
    stub_ = v1::AlertService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                          grpc::InsecureChannelCredentials()));
  }

  struct Tenant {
    int64_t id = 0;
    std::string key;
  };

  std::unique_ptr<grpc::ClientContext> Context(const Tenant& t) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + t.key);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return ctx;
  }

  grpc::Status Create(const Tenant& t, const Rule& rule, Rule* out) {
    v1::CreateRuleRequest req;
    *req.mutable_rule() = rule;
    return stub_->CreateRule(Context(t).get(), req, out);
  }
  grpc::Status Get(const Tenant& t, const std::string& id, Rule* out) {
    v1::GetRuleRequest req;
    req.set_rule_id(id);
    return stub_->GetRule(Context(t).get(), req, out);
  }
  grpc::Status Update(const Tenant& t, const Rule& rule, Rule* out) {
    v1::UpdateRuleRequest req;
    *req.mutable_rule() = rule;
    return stub_->UpdateRule(Context(t).get(), req, out);
  }
  grpc::Status Delete(const Tenant& t, const std::string& id) {
    v1::DeleteRuleRequest req;
    req.set_rule_id(id);
    v1::DeleteRuleResponse resp;
    return stub_->DeleteRule(Context(t).get(), req, &resp);
  }
  grpc::Status List(const Tenant& t, int page_size, const std::string& token,
                    v1::ListRulesResponse* out) {
    v1::ListRulesRequest req;
    req.set_page_size(page_size);
    req.set_page_token(token);
    return stub_->ListRules(Context(t).get(), req, out);
  }

  testing::FakeMetadataStore metadata_;
  Authenticator auth_;
  HealthState health_;
  testing::FakeAlertRuleStore store_;
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

TEST_F(AlertHandlers, CreateGetUpdateDelete) {
  Rule in = ThresholdRule();
  in.set_rule_id("chosen-by-client");  // assigned by the server instead
  in.set_version(9);
  Rule created;
  grpc::Status st = Create(a_, in, &created);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_NE(created.rule_id(), "chosen-by-client");
  EXPECT_EQ(created.rule_id().size(), 32u);
  EXPECT_EQ(created.version(), 1);
  EXPECT_GT(created.created_at_ns(), 0);
  EXPECT_EQ(created.updated_at_ns(), created.created_at_ns());
  EXPECT_EQ(created.name(), "hot");
  EXPECT_EQ(created.webhook_urls_size(), 1);
  EXPECT_EQ(*store_.Generation(), 1);

  Rule got;
  ASSERT_TRUE(Get(a_, created.rule_id(), &got).ok());
  EXPECT_EQ(got.SerializeAsString(), created.SerializeAsString());

  // An update without a version applies; one with the current version too.
  Rule change = created;
  change.set_version(0);
  change.set_threshold(35);
  Rule v2;
  ASSERT_TRUE(Update(a_, change, &v2).ok());
  EXPECT_EQ(v2.version(), 2);
  EXPECT_EQ(v2.threshold(), 35);
  EXPECT_EQ(v2.created_at_ns(), created.created_at_ns());
  EXPECT_GE(v2.updated_at_ns(), created.updated_at_ns());
  change.set_version(2);
  change.set_name("hotter");
  Rule v3;
  ASSERT_TRUE(Update(a_, change, &v3).ok());
  EXPECT_EQ(v3.version(), 3);
  EXPECT_EQ(v3.name(), "hotter");

  // A stale version: ABORTED naming both versions, nothing changed.
  change.set_version(2);
  change.set_name("lost update");
  Rule ignored;
  st = Update(a_, change, &ignored);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ABORTED) << st.error_message();
  EXPECT_NE(st.error_message().find("version 3"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("version 2"), std::string::npos) << st.error_message();
  ASSERT_TRUE(Get(a_, created.rule_id(), &got).ok());
  EXPECT_EQ(got.name(), "hotter");
  EXPECT_EQ(got.version(), 3);
  EXPECT_EQ(*store_.Generation(), 3);

  ASSERT_TRUE(Delete(a_, created.rule_id()).ok());
  EXPECT_EQ(*store_.Generation(), 4);
  st = Get(a_, created.rule_id(), &got);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(st.error_message().find(created.rule_id()), std::string::npos);
  EXPECT_EQ(Delete(a_, created.rule_id()).error_code(), grpc::StatusCode::NOT_FOUND);
  st = Update(a_, change, &ignored);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
}

TEST_F(AlertHandlers, InvalidRequestsNameTheField) {
  Rule bad = ThresholdRule();
  bad.set_window_seconds(0);
  Rule out;
  grpc::Status st = Create(a_, bad, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("rule.window_seconds"), std::string::npos)
      << st.error_message();
  EXPECT_EQ(*store_.Generation(), 0);

  st = Update(a_, ThresholdRule(), &out);  // no rule_id
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "rule.rule_id: required");

  Rule created;
  ASSERT_TRUE(Create(a_, ThresholdRule(), &created).ok());
  Rule invalid_update = created;
  invalid_update.add_webhook_urls("https://x/");
  st = Update(a_, invalid_update, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("https is not supported yet"), std::string::npos);

  EXPECT_EQ(Get(a_, "", &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Delete(a_, "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListRulesResponse page;
  st = List(a_, 1001, "", &page);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("page_size"), std::string::npos);
  EXPECT_EQ(List(a_, -1, "", &page).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  st = List(a_, 10, "not-a-token", &page);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("page_token"), std::string::npos);
}

TEST_F(AlertHandlers, ListPagesInRuleIdOrder) {
  std::set<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    Rule r = NoDataRule();
    r.set_name("rule-" + std::to_string(i));
    Rule created;
    ASSERT_TRUE(Create(a_, r, &created).ok());
    ids.insert(created.rule_id());
  }
  Rule other;
  ASSERT_TRUE(Create(b_, NoDataRule(), &other).ok());

  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    v1::ListRulesResponse page;
    grpc::Status st = List(a_, 3, token, &page);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_LE(page.rules_size(), 3);
    for (const auto& r : page.rules()) seen.push_back(r.rule_id());
    token = page.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, std::vector<std::string>(ids.begin(), ids.end()));

  // page_size 0 means 100: everything in one page.
  v1::ListRulesResponse all;
  ASSERT_TRUE(List(a_, 0, "", &all).ok());
  EXPECT_EQ(all.rules_size(), 7);
  EXPECT_TRUE(all.next_page_token().empty());
  v1::ListRulesResponse theirs;
  ASSERT_TRUE(List(b_, 0, "", &theirs).ok());
  ASSERT_EQ(theirs.rules_size(), 1);
  EXPECT_EQ(theirs.rules(0).rule_id(), other.rule_id());
}

TEST_F(AlertHandlers, UnauthenticatedCallsAreRefused) {
  Tenant stranger{0, GenerateApiKey()};
  Rule out;
  EXPECT_EQ(Create(stranger, ThresholdRule(), &out).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext bare;
  v1::CreateRuleRequest req;
  *req.mutable_rule() = ThresholdRule();
  EXPECT_EQ(stub_->CreateRule(&bare, req, &out).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::ListRulesResponse page;
  EXPECT_EQ(List(stranger, 0, "", &page).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(*store_.Generation(), 0);
}

TEST_F(AlertHandlers, ATenantCannotSeeOrChangeAnotherTenantsRules) {
  Rule mine;
  ASSERT_TRUE(Create(a_, ThresholdRule(), &mine).ok());
  Rule out;
  grpc::Status st = Get(b_, mine.rule_id(), &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(st.error_message().find(mine.rule_id()), std::string::npos);
  Rule hijack = mine;
  hijack.set_name("hijacked");
  EXPECT_EQ(Update(b_, hijack, &out).error_code(), grpc::StatusCode::NOT_FOUND);
  hijack.set_version(0);
  EXPECT_EQ(Update(b_, hijack, &out).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Delete(b_, mine.rule_id()).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ListRulesResponse page;
  ASSERT_TRUE(List(b_, 0, "", &page).ok());
  EXPECT_EQ(page.rules_size(), 0);
  // Tenant A's rule is untouched.
  ASSERT_TRUE(Get(a_, mine.rule_id(), &out).ok());
  EXPECT_EQ(out.name(), "hot");
  EXPECT_EQ(out.version(), 1);
  EXPECT_EQ(*store_.Generation(), 1);
}

TEST_F(AlertHandlers, StoreOutageIsUnavailable) {
  store_.SetUp(false);
  Rule out;
  grpc::Status st = Create(a_, ThresholdRule(), &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
}

}  // namespace
}  // namespace telemetry

namespace telemetry {
namespace {

TEST_F(AlertHandlers, SilencesAreCreatedListedEndedAndKeptPerTenant) {
  Rule rule;
  ASSERT_TRUE(Create(a_, ThresholdRule(), &rule).ok());
  v1::CreateSilenceRequest req;
  req.mutable_silence()->set_rule_id(rule.rule_id());
  req.mutable_silence()->set_device_id("dev-*");
  req.mutable_silence()->set_ends_at_ns(SystemClock::Get()->NowNs() + 3600 * kNsPerSec);
  req.mutable_silence()->set_comment("maintenance");
  v1::Silence created;
  grpc::Status st = stub_->CreateSilence(Context(a_).get(), req, &created);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(created.silence_id().size(), 32u);
  EXPECT_GT(created.starts_at_ns(), 0);  // 0 became now

  // Tenant B sees none of it, cannot end it, and cannot silence A's rule.
  v1::ListSilencesResponse listed;
  ASSERT_TRUE(stub_->ListSilences(Context(b_).get(), {}, &listed).ok());
  EXPECT_EQ(listed.silences_size(), 0);
  v1::DeleteSilenceRequest del;
  del.set_silence_id(created.silence_id());
  v1::DeleteSilenceResponse del_resp;
  EXPECT_EQ(stub_->DeleteSilence(Context(b_).get(), del, &del_resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::Silence other;
  st = stub_->CreateSilence(Context(b_).get(), req, &other);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("silence.rule_id"), std::string::npos) << st.error_message();

  // A lists it, ends it, and then finds it only among the expired.
  ASSERT_TRUE(stub_->ListSilences(Context(a_).get(), {}, &listed).ok());
  ASSERT_EQ(listed.silences_size(), 1);
  EXPECT_EQ(listed.silences(0).comment(), "maintenance");
  ASSERT_TRUE(stub_->DeleteSilence(Context(a_).get(), del, &del_resp).ok());
  listed.Clear();
  ASSERT_TRUE(stub_->ListSilences(Context(a_).get(), {}, &listed).ok());
  EXPECT_EQ(listed.silences_size(), 0);
  v1::ListSilencesRequest all;
  all.set_include_expired(true);
  ASSERT_TRUE(stub_->ListSilences(Context(a_).get(), all, &listed).ok());
  EXPECT_EQ(listed.silences_size(), 1);

  // A silence of everything is refused, naming what is missing.
  v1::CreateSilenceRequest everything;
  everything.mutable_silence()->set_ends_at_ns(SystemClock::Get()->NowNs() + kNsPerSec);
  st = stub_->CreateSilence(Context(a_).get(), everything, &other);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("at least one of rule_id"), std::string::npos);
}

}  // namespace
}  // namespace telemetry
