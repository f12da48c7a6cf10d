// The alert service's consumer: its own group on the readings topic, the
// evaluator (engine.h) per assigned partition, the rules reloaded within
// seconds of a change, and every transition recorded exactly once with the
// checkpoints that cover it (docs/alerting.md, "Exactly once").
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "common/alert_rules.h"
#include "common/alert_silences.h"
#include "common/alert_state.h"
#include "common/clock.h"
#include "common/kafka/kafka.h"
#include "common/metrics.h"
#include "services/alert/engine.h"
#include "telemetry/v1/alert.pb.h"

namespace telemetry::alert {

struct ProcessorOptions {
  std::string topic = "telemetry.readings.v1";
  // The consumer group, also the key of the checkpoints.
  std::string group = "telemetry-alert";
  EngineOptions engine;
  size_t poll_max_messages = 1000;
  int poll_timeout_ms = 100;
  // How often each partition's state is checkpointed with its offset (and
  // on revocation and shutdown). A restart replays at most this much.
  int64_t checkpoint_interval_ns = 5 * kNsPerSec;
  // A partition read to its end that got nothing for this long has its
  // watermark moved to wall-clock now - lateness - this, so that silence
  // (no-data rules, keep_firing_for) is seen without new data.
  int64_t idle_after_ns = 2 * kNsPerSec;
  int64_t rules_poll_ns = 1 * kNsPerSec;
  int64_t retry_backoff_ns = 200 * kNsPerMs;
};

struct ProcessorMetrics {
  explicit ProcessorMetrics(MetricsRegistry* r);
  Counter* readings;
  Counter* late;
  Counter* transitions;
  Counter* replayed;  // transitions already recorded (a replay after a restart)
  Counter* undecodable;
  Counter* store_failures;
  Counter* rule_reloads;
  Counter* muted;
  Gauge* rules;
  Gauge* series;
  Histogram* commit_seconds;
};

// The AlertEvent of a transition (without event_id, set by readers from the
// history row) and where it goes.
telemetry::v1::AlertEvent BuildEvent(const Transition& t, const telemetry::v1::Rule& rule,
                                     const std::string& project, int64_t detected_at_ns);
std::vector<std::string> TargetsOf(const telemetry::v1::Rule& rule,
                                   telemetry::v1::AlertState state);

class Processor {
 public:
  // `silences` may be null (nothing is muted).
  Processor(ProcessorOptions options, EventConsumer* consumer, AlertRuleStore* rules,
            AlertStateStore* store, AlertSilenceStore* silences, const Clock* clock,
            ProcessorMetrics* metrics);

  // One round: reload rules if they changed, poll, evaluate, record.
  absl::Status RunOnce();
  // Loops until `stop`, then checkpoints and leaves the group.
  void Run(const std::atomic<bool>& stop);
  // Records what is pending and checkpoints every assigned partition now.
  absl::Status Checkpoint();

  bool assigned() const { return assigned_.load(); }
  bool rules_loaded() const { return rules_loaded_.load(); }

 private:
  absl::Status ReloadRules(bool force);
  // Re-reads the silences in force (with the rules' cadence); on failure the
  // last list stays.
  void ReloadSilences();
  std::map<int32_t, int64_t> OnAssign(const std::vector<int32_t>& partitions);
  void OnRevoke(const std::vector<int32_t>& partitions);
  void Record(const std::vector<Transition>& transitions);
  absl::Status Commit(bool checkpoint, const std::vector<int32_t>& partitions);
  void AdvanceIdle();
  bool Backoff();
  bool Stopping() const { return stop_ != nullptr && stop_->load(); }

  ProcessorOptions options_;
  EventConsumer* consumer_;
  AlertRuleStore* rules_;
  AlertStateStore* store_;
  AlertSilenceStore* silences_;
  const Clock* clock_;
  ProcessorMetrics* metrics_;
  Engine engine_;

  int64_t generation_ = -1;
  int64_t next_rules_check_ns_ = 0;
  absl::flat_hash_map<std::string, telemetry::v1::Rule> rule_protos_;  // rule_id
  absl::flat_hash_map<std::string, std::string> projects_;             // tenant/device
  // Silences in force, per tenant.
  absl::flat_hash_map<int64_t, std::vector<telemetry::v1::Silence>> active_silences_;
  int64_t next_silences_check_ns_ = 0;
  std::vector<AlertRecord> pending_;
  // Per assigned partition: the next offset to read and when it last got a
  // message (monotonic).
  std::map<int32_t, int64_t> next_offset_;
  std::map<int32_t, int64_t> last_message_ns_;
  std::map<int32_t, int64_t> next_idle_check_ns_;
  int64_t next_checkpoint_ns_ = 0;
  std::atomic<bool> assigned_{false};
  std::atomic<bool> rules_loaded_{false};
  const std::atomic<bool>* stop_ = nullptr;
  bool halted_ = false;
};

}  // namespace telemetry::alert
