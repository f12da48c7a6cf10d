// gRPC front of the alert service (callback API): the rule calls of
// telemetry.v1.AlertService over the handler kit (authentication, deadline,
// bounded pool, status mapping: common/grpc/handler.h). Rules are validated
// (rule_codec.h) before they are stored (common/alert_rules.h); a caller
// only ever sees and changes its own tenant's rules.
//
// ListAlerts reads the alert state store (common/alert_state.h); Subscribe
// streams the tenant's transitions from it (services/alert/subscriptions.h).
// Both see only the caller's tenant.
#pragma once

#include <cstdint>
#include <memory>

#include "common/alert_rules.h"
#include "common/alert_silences.h"
#include "common/alert_state.h"
#include "common/grpc/handler.h"
#include "services/alert/subscriptions.h"
#include "telemetry/v1/alert.grpc.pb.h"

namespace telemetry::alert {

class AlertServiceImpl final : public telemetry::v1::AlertService::CallbackService {
 public:
  static constexpr int kDefaultPageSize = 100;

  AlertServiceImpl(AlertRuleStore* rules, AlertStateStore* alerts, AlertSilenceStore* silences,
                   const HandlerKit* kit, SubscriptionOptions subscriptions = {});

  // The handler kit's options for the alert service: a call without a
  // deadline of its own runs at most `max_call_ns`.
  static HandlerOptions KitOptions(int64_t max_call_ns);

  grpc::ServerUnaryReactor* CreateRule(grpc::CallbackServerContext* ctx,
                                       const telemetry::v1::CreateRuleRequest* request,
                                       telemetry::v1::Rule* response) override;
  grpc::ServerUnaryReactor* GetRule(grpc::CallbackServerContext* ctx,
                                    const telemetry::v1::GetRuleRequest* request,
                                    telemetry::v1::Rule* response) override;
  grpc::ServerUnaryReactor* UpdateRule(grpc::CallbackServerContext* ctx,
                                       const telemetry::v1::UpdateRuleRequest* request,
                                       telemetry::v1::Rule* response) override;
  grpc::ServerUnaryReactor* ListRules(grpc::CallbackServerContext* ctx,
                                      const telemetry::v1::ListRulesRequest* request,
                                      telemetry::v1::ListRulesResponse* response) override;
  grpc::ServerUnaryReactor* DeleteRule(grpc::CallbackServerContext* ctx,
                                       const telemetry::v1::DeleteRuleRequest* request,
                                       telemetry::v1::DeleteRuleResponse* response) override;
  grpc::ServerUnaryReactor* ListAlerts(grpc::CallbackServerContext* ctx,
                                       const telemetry::v1::ListAlertsRequest* request,
                                       telemetry::v1::ListAlertsResponse* response) override;
  grpc::ServerWriteReactor<telemetry::v1::AlertEvent>* Subscribe(
      grpc::CallbackServerContext* ctx, const telemetry::v1::SubscribeRequest* request) override;
  // Silences (silence_handlers.cc).
  grpc::ServerUnaryReactor* CreateSilence(grpc::CallbackServerContext* ctx,
                                          const telemetry::v1::CreateSilenceRequest* request,
                                          telemetry::v1::Silence* response) override;
  grpc::ServerUnaryReactor* ListSilences(grpc::CallbackServerContext* ctx,
                                         const telemetry::v1::ListSilencesRequest* request,
                                         telemetry::v1::ListSilencesResponse* response) override;
  grpc::ServerUnaryReactor* DeleteSilence(grpc::CallbackServerContext* ctx,
                                          const telemetry::v1::DeleteSilenceRequest* request,
                                          telemetry::v1::DeleteSilenceResponse* response) override;

  // Ends every open Subscribe stream (UNAVAILABLE: the client resumes with
  // after_event_id) and refuses new ones. Call as shutdown begins, before the
  // gRPC server drains: streams never end on their own.
  void StopSubscriptions() { subscriptions_->Stop(); }
  int open_subscriptions() { return subscriptions_->open_streams(); }

  AlertRuleStore* rules() const { return rules_; }
  const HandlerKit* kit() const { return kit_; }

 private:
  AlertRuleStore* rules_;
  AlertStateStore* alerts_;
  AlertSilenceStore* silences_;
  const HandlerKit* kit_;
  std::unique_ptr<Subscriptions> subscriptions_;
};

}  // namespace telemetry::alert
