// gRPC front of the alert service (callback API): the rule calls of
// telemetry.v1.AlertService over the handler kit (authentication, deadline,
// bounded pool, status mapping: common/grpc/handler.h). Rules are validated
// (rule_codec.h) before they are stored (common/alert_rules.h); a caller
// only ever sees and changes its own tenant's rules.
//
// ListAlerts and Subscribe are not served by this class yet (the generated
// base answers UNIMPLEMENTED).
#pragma once

#include <cstdint>

#include "common/alert_rules.h"
#include "common/grpc/handler.h"
#include "telemetry/v1/alert.grpc.pb.h"

namespace telemetry::alert {

class AlertServiceImpl final : public telemetry::v1::AlertService::CallbackService {
 public:
  static constexpr int kDefaultPageSize = 100;

  AlertServiceImpl(AlertRuleStore* rules, const HandlerKit* kit);

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

  AlertRuleStore* rules() const { return rules_; }
  const HandlerKit* kit() const { return kit_; }

 private:
  AlertRuleStore* rules_;
  const HandlerKit* kit_;
};

}  // namespace telemetry::alert
