// Where the alert service keeps what it decided: the history of transitions
// (unique per fingerprint and sequence), the current state per fingerprint,
// the notification outbox, and the evaluator's checkpoints per readings
// partition. Postgres: common/pg/alert_state.cc; fake: common/testing/fakes.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

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

  // The name of the project a tenant's device belongs to ("" for a device
  // not registered: rules selecting a project never match it).
  virtual absl::StatusOr<std::string> DeviceProject(int64_t tenant_id,
                                                    const std::string& device) = 0;
};

}  // namespace telemetry
