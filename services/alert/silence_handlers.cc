// The silence calls of AlertServiceImpl (alert_service.h): create, list and
// end silences of the caller's tenant.
#include "services/alert/alert_service.h"
#include "services/alert/silence.h"

namespace telemetry::alert {

grpc::ServerUnaryReactor* AlertServiceImpl::CreateSilence(
    grpc::CallbackServerContext* ctx, const telemetry::v1::CreateSilenceRequest* request,
    telemetry::v1::Silence* response) {
  return kit_->Unary(
      ctx, [this, request, response](const HandlerKit::Tenant& tenant, int64_t, auto finish) {
        const int64_t now = kit_->clock()->NowNs();
        absl::StatusOr<telemetry::v1::Silence> s = NormalizeSilence(request->silence(), now);
        if (!s.ok()) return finish(s.status());
        if (!s->rule_id().empty()) {
          // Only a rule of the caller's own tenant can be named.
          absl::StatusOr<telemetry::v1::Rule> rule = rules_->Get(tenant->id, s->rule_id());
          if (!rule.ok()) {
            return finish(rule.status().code() == absl::StatusCode::kNotFound
                              ? absl::InvalidArgumentError("silence.rule_id: no rule " +
                                                           s->rule_id() + " in this tenant")
                              : rule.status());
          }
        }
        absl::StatusOr<telemetry::v1::Silence> stored = silences_->Create(tenant->id, *s, now);
        if (stored.ok()) *response = *std::move(stored);
        finish(stored.status());
      });
}

grpc::ServerUnaryReactor* AlertServiceImpl::ListSilences(
    grpc::CallbackServerContext* ctx, const telemetry::v1::ListSilencesRequest* request,
    telemetry::v1::ListSilencesResponse* response) {
  return kit_->Unary(
      ctx, [this, request, response](const HandlerKit::Tenant& tenant, int64_t, auto finish) {
        auto list = silences_->List(tenant->id, request->include_expired(), kit_->clock()->NowNs());
        if (list.ok()) {
          for (auto& s : *list) *response->add_silences() = std::move(s);
        }
        finish(list.status());
      });
}

grpc::ServerUnaryReactor* AlertServiceImpl::DeleteSilence(
    grpc::CallbackServerContext* ctx, const telemetry::v1::DeleteSilenceRequest* request,
    telemetry::v1::DeleteSilenceResponse*) {
  return kit_->Unary(ctx, [this, request](const HandlerKit::Tenant& tenant, int64_t, auto finish) {
    if (request->silence_id().empty()) {
      return finish(absl::InvalidArgumentError("silence_id: required"));
    }
    finish(silences_->End(tenant->id, request->silence_id(), kit_->clock()->NowNs()));
  });
}

}  // namespace telemetry::alert
