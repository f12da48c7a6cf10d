#include "services/alert/alert_service.h"

#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/alert/rule_codec.h"

namespace telemetry::alert {

using telemetry::v1::Rule;

namespace {

// Sets `*response` from a store result and finishes the call with its status.
template <typename T>
void Reply(absl::StatusOr<T> result, T* response,
           const std::function<void(const absl::Status&)>& finish) {
  if (result.ok()) *response = std::move(*result);
  finish(result.status());
}

}  // namespace

AlertServiceImpl::AlertServiceImpl(AlertRuleStore* rules, AlertStateStore* alerts,
                                   AlertSilenceStore* silences, const HandlerKit* kit,
                                   SubscriptionOptions subscriptions)
    : rules_(rules),
      alerts_(alerts),
      silences_(silences),
      kit_(kit),
      subscriptions_(std::make_unique<Subscriptions>(alerts, kit, subscriptions)) {}

HandlerOptions AlertServiceImpl::KitOptions(int64_t max_call_ns) {
  HandlerOptions options;
  options.service = "alert";
  options.max_call_ns = max_call_ns;
  return options;
}

grpc::ServerUnaryReactor* AlertServiceImpl::CreateRule(
    grpc::CallbackServerContext* ctx, const telemetry::v1::CreateRuleRequest* request,
    Rule* response) {
  return kit_->Unary(
      ctx, [this, request, response](const HandlerKit::Tenant& tenant, int64_t, auto finish) {
        absl::Status valid = ValidateRule(request->rule());
        if (!valid.ok()) return finish(valid);
        Reply(rules_->Create(tenant->id, request->rule()), response, finish);
      });
}

grpc::ServerUnaryReactor* AlertServiceImpl::GetRule(grpc::CallbackServerContext* ctx,
                                                    const telemetry::v1::GetRuleRequest* request,
                                                    Rule* response) {
  return kit_->Unary(
      ctx, [this, request, response](const HandlerKit::Tenant& tenant, int64_t, auto finish) {
        if (request->rule_id().empty()) {
          return finish(absl::InvalidArgumentError("rule_id: required"));
        }
        Reply(rules_->Get(tenant->id, request->rule_id()), response, finish);
      });
}

grpc::ServerUnaryReactor* AlertServiceImpl::UpdateRule(
    grpc::CallbackServerContext* ctx, const telemetry::v1::UpdateRuleRequest* request,
    Rule* response) {
  return kit_->Unary(
      ctx, [this, request, response](const HandlerKit::Tenant& tenant, int64_t, auto finish) {
        if (request->rule().rule_id().empty()) {
          return finish(absl::InvalidArgumentError("rule.rule_id: required"));
        }
        absl::Status valid = ValidateRule(request->rule());
        if (!valid.ok()) return finish(valid);
        Reply(rules_->Update(tenant->id, request->rule()), response, finish);
      });
}

grpc::ServerUnaryReactor* AlertServiceImpl::ListRules(
    grpc::CallbackServerContext* ctx, const telemetry::v1::ListRulesRequest* request,
    telemetry::v1::ListRulesResponse* response) {
  return kit_->Unary(
      ctx, [this, request, response](const HandlerKit::Tenant& tenant, int64_t, auto finish) {
        int page_size = request->page_size();
        if (page_size == 0) page_size = kDefaultPageSize;
        if (page_size < 0 || page_size > AlertRuleStore::kMaxPageSize) {
          return finish(absl::InvalidArgumentError(
              absl::StrCat("page_size: must be between 0 (", kDefaultPageSize, ") and ",
                           AlertRuleStore::kMaxPageSize, ", got ", request->page_size())));
        }
        absl::StatusOr<RulePage> page = rules_->List(tenant->id, page_size, request->page_token());
        if (page.ok()) {
          for (Rule& r : page->rules) *response->add_rules() = std::move(r);
          response->set_next_page_token(std::move(page->next_page_token));
        }
        finish(page.status());
      });
}

grpc::ServerUnaryReactor* AlertServiceImpl::DeleteRule(
    grpc::CallbackServerContext* ctx, const telemetry::v1::DeleteRuleRequest* request,
    telemetry::v1::DeleteRuleResponse* response) {
  return kit_->Unary(ctx, [this, request](const HandlerKit::Tenant& tenant, int64_t, auto finish) {
    if (request->rule_id().empty()) {
      return finish(absl::InvalidArgumentError("rule_id: required"));
    }
    finish(rules_->Delete(tenant->id, request->rule_id()));
  });
}

grpc::ServerUnaryReactor* AlertServiceImpl::ListAlerts(
    grpc::CallbackServerContext* ctx, const telemetry::v1::ListAlertsRequest* request,
    telemetry::v1::ListAlertsResponse* response) {
  return kit_->Unary(ctx, [this, request, response](const HandlerKit::Tenant& tenant, int64_t,
                                                    auto finish) {
    int limit = request->limit();
    if (limit == 0) limit = kDefaultPageSize;
    if (limit < 0 || limit > AlertStateStore::kMaxAlertLimit) {
      return finish(absl::InvalidArgumentError(
          absl::StrCat("limit: must be between 0 (", kDefaultPageSize, ") and ",
                       AlertStateStore::kMaxAlertLimit, ", got ", request->limit())));
    }
    AlertListFilter filter;
    filter.history = request->history();
    filter.firing_only = request->firing_only();
    filter.rule_id = request->rule_id();
    filter.device_id = request->device_id();
    for (int s : request->severities()) {
      if (!telemetry::v1::Severity_IsValid(s)) {
        return finish(absl::InvalidArgumentError(absl::StrCat("severities: unknown value ", s)));
      }
      filter.severities.push_back(s);
    }
    absl::StatusOr<AlertPage> page =
        alerts_->ListAlerts(tenant->id, filter, limit, request->page_token());
    if (page.ok()) {
      for (auto& a : page->alerts) *response->add_alerts() = std::move(a);
      response->set_next_page_token(std::move(page->next_page_token));
    }
    finish(page.status());
  });
}

grpc::ServerWriteReactor<telemetry::v1::AlertEvent>* AlertServiceImpl::Subscribe(
    grpc::CallbackServerContext* ctx, const telemetry::v1::SubscribeRequest* request) {
  return subscriptions_->Open(ctx, request);
}

}  // namespace telemetry::alert
