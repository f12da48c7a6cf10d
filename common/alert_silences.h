// Silences per tenant: what the AlertService's silence calls change and the
// alert evaluator reads (common/pg/alert_silences.cc: table alert_silences,
// the telemetry.v1.Silence serialized in `spec`; a fake in
// common/testing/fakes.h). A caller sees only its own tenant's silences;
// another tenant's silence id is NOT_FOUND.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "telemetry/v1/alert.pb.h"

namespace telemetry {

class AlertSilenceStore {
 public:
  virtual ~AlertSilenceStore() = default;
  // Stores a silence; the store assigns silence_id (32 hex digits) and
  // created_at_ns. Returns it as stored.
  virtual absl::StatusOr<telemetry::v1::Silence> Create(int64_t tenant_id,
                                                        const telemetry::v1::Silence& silence,
                                                        int64_t now_ns) = 0;
  // The tenant's silences that have not ended by `now_ns` (all with
  // include_expired), ordered by start.
  virtual absl::StatusOr<std::vector<telemetry::v1::Silence>> List(int64_t tenant_id,
                                                                   bool include_expired,
                                                                   int64_t now_ns) = 0;
  // Ends a silence at `now_ns` (NOT_FOUND when the tenant has none by that
  // id; one already ended stays as it was).
  virtual absl::Status End(int64_t tenant_id, const std::string& silence_id, int64_t now_ns) = 0;
  // Every tenant's silences that have not ended by `now_ns` (the evaluator).
  virtual absl::StatusOr<std::vector<std::pair<int64_t, telemetry::v1::Silence>>> Active(
      int64_t now_ns) = 0;
};

}  // namespace telemetry
