// Where the alert service keeps what it decided: the history of transitions
// (unique per fingerprint and sequence), the current state per fingerprint,
// the notification outbox, and the evaluator's checkpoints per readings
// partition. Postgres: common/pg/alert_state.cc; fake: common/testing/fakes.h.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "telemetry/v1/alert.pb.h"

namespace telemetry {

// One transition to record. `event` is the serialized telemetry.v1.AlertEvent
// (its event_id is the history row's, filled in by readers).
struct AlertRecord {
  int64_t tenant_id = 0;
  std::string fingerprint;
  int64_t sequence = 0;
  std::string rule_id;
  int64_t rule_version = 0;
  std::string device;
  std::string sensor;
  int from_state = 0;  // telemetry.v1.AlertState
  int to_state = 0;
  std::optional<double> value;
  std::optional<int64_t> window_start_ns, window_end_ns;
  int64_t event_time_ns = 0;
  int severity = 0;
  bool muted = false;
  std::string event;
  // Notification targets, one outbox row each: "kafka", "webhook:<url>",
  // "alertmanager:<url>".
  std::vector<std::string> targets;
};

struct AlertCheckpoint {
  int32_t partition = 0;
  int64_t next_offset = 0;
  std::string state;  // Engine::Snapshot
};

// A notification due for delivery.
struct OutboxItem {
  int64_t id = 0;
  int64_t event_id = 0;
  std::string target;
  int attempts = 0;
  int64_t created_at_ns = 0;
  std::string event;  // serialized AlertEvent, event_id not yet set
};

// An alert as it stands (alert_current) with the transition that put it
// there: what the Alertmanager re-sends post again.
struct ResendAlert {
  int64_t tenant_id = 0;
  std::string fingerprint;
  std::string rule_id;
  int state = 0;  // telemetry.v1.AlertState: FIRING or RESOLVED
  int64_t event_id = 0;
  bool muted = false;  // the transition's notifications were muted
  std::string event;   // serialized AlertEvent, event_id not set
};

// What ListAlerts selects (empty / false: no restriction).
struct AlertListFilter {
  // Every transition, newest first; else the current state (the newest
  // transition) of each fingerprint, newest first.
  bool history = false;
  // Only fingerprints whose current state is FIRING (with `history`: their
  // transitions).
  bool firing_only = false;
  std::string rule_id;          // exact
  std::string device_id;        // exact device name
  std::vector<int> severities;  // telemetry.v1.Severity; any of them
};

struct AlertPage {
  // event_id set from the history row; newest (highest event_id) first.
  std::vector<telemetry::v1::AlertEvent> alerts;
  std::string next_page_token;  // "" on the last page
};

struct CommitResult {
  int64_t recorded = 0;    // new history rows
  int64_t duplicates = 0;  // transitions already recorded (a replay)
};

class AlertStateStore {
 public:
  virtual ~AlertStateStore() = default;

  // In one transaction: records the transitions not recorded before (a
  // replay's are left alone), their outbox rows, the current state of their
  // fingerprints (only moving forward in sequence), and the checkpoints.
  virtual absl::StatusOr<CommitResult> Commit(const std::string& group,
                                              const std::vector<AlertRecord>& records,
                                              const std::vector<AlertCheckpoint>& checkpoints) = 0;
  // The stored checkpoints of these partitions (absent: none yet).
  virtual absl::StatusOr<std::map<int32_t, AlertCheckpoint>> LoadCheckpoints(
      const std::string& group, const std::vector<int32_t>& partitions) = 0;

  // Claims up to `limit` due outbox rows for `lease_ns` (another dispatcher
  // skips them meanwhile; a crashed one's come back after the lease).
  virtual absl::StatusOr<std::vector<OutboxItem>> ClaimOutbox(int limit, int64_t lease_ns) = 0;
  // Ends a row: delivered, gave_up or muted, recorded in alert_deliveries.
  virtual absl::Status FinishOutbox(const OutboxItem& item, const std::string& outcome,
                                    int attempts, const std::string& last_error) = 0;
  // Puts a row back for another attempt in `delay_ns`.
  virtual absl::Status RetryOutbox(const OutboxItem& item, int attempts, int64_t delay_ns,
                                   const std::string& last_error) = 0;
  virtual absl::StatusOr<int64_t> OutboxBacklog() = 0;

  // Reads. Every one sees only `tenant_id`'s alerts and sets each event's
  // event_id (and detected_at_ns when the stored event has none) from its
  // history row.
  //
  // Up to `limit` (1 to kMaxAlertLimit) alerts matching `filter`, newest
  // first, after the position `page_token` names (from the previous page of
  // the same mode; "" = the first page). Keyset paging on event_id: in
  // current-state mode an alert that transitions between two pages moves to
  // the front (a new first page shows it). A token that is not one of ours
  // (or of the other mode) is INVALID_ARGUMENT naming page_token.
  static constexpr int kMaxAlertLimit = 1000;
  virtual absl::StatusOr<AlertPage> ListAlerts(int64_t tenant_id, const AlertListFilter& filter,
                                               int limit, const std::string& page_token) = 0;
  // Up to `limit` (1 to kMaxAlertLimit) transitions with event_id >
  // `after_event_id` and, when `since_ns` > 0, recorded (detected_at) at or
  // after `since_ns`, in ascending event_id. A transition becomes visible
  // only after every transition with a lower event_id did (Commit
  // serializes the recording), so a reader that resumes after the last
  // event_id it saw misses none.
  virtual absl::StatusOr<std::vector<telemetry::v1::AlertEvent>> HistoryAfter(
      int64_t tenant_id, int64_t after_event_id, int64_t since_ns, int limit) = 0;
  // The tenant's highest event_id (0: no transition yet).
  virtual absl::StatusOr<int64_t> LastEventId(int64_t tenant_id) = 0;

  // The name of the project a tenant's device belongs to ("" for a device
  // not registered: rules selecting a project never match it).
  virtual absl::StatusOr<std::string> DeviceProject(int64_t tenant_id,
                                                    const std::string& device) = 0;

  // For the Alertmanager re-sends (services/alert/notifier.h): up to `limit`
  // alerts whose current state is FIRING, or RESOLVED by a transition
  // detected less than `resolved_within_ns` ago, each with the event of that
  // transition; ordered by fingerprint, after `after_fingerprint` ("" = from
  // the first).
  virtual absl::StatusOr<std::vector<ResendAlert>> ListAlertsToResend(
      const std::string& after_fingerprint, int limit, int64_t resolved_within_ns) = 0;
};

// Helpers shared by the implementations.
namespace alert_state {

// A ListAlerts page token: "ah." (history) or "ac." (current state) + the
// decimal event_id of the last alert of the previous page.
inline std::string EncodePageToken(bool history, int64_t last_event_id) {
  return std::string(history ? "ah." : "ac.") + std::to_string(last_event_id);
}

// The last event_id of the previous page, or INVALID_ARGUMENT.
inline absl::StatusOr<int64_t> DecodePageToken(bool history, const std::string& token) {
  const std::string prefix = history ? "ah." : "ac.";
  const std::string digits = token.substr(std::min(token.size(), prefix.size()));
  const bool ok = token.compare(0, prefix.size(), prefix) == 0 && !digits.empty() &&
                  digits.size() <= 18 &&
                  digits.find_first_not_of("0123456789") == std::string::npos;
  if (!ok) {
    return absl::InvalidArgumentError(std::string("page_token: not a token from ListAlerts") +
                                      (history ? " with history" : " without history"));
  }
  return std::stoll(digits);
}

inline absl::Status CheckLimit(int limit) {
  if (limit < 1 || limit > AlertStateStore::kMaxAlertLimit) {
    return absl::InvalidArgumentError("limit: must be between 1 and 1000, got " +
                                      std::to_string(limit));
  }
  return absl::OkStatus();
}

}  // namespace alert_state
}  // namespace telemetry
