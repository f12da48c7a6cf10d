// The alert evaluator: tumbling event-time windows per (rule, series), a
// watermark per Kafka partition and tenant, and the INACTIVE → PENDING → FIRING →
// RESOLVED state machine per fingerprint (tenant, rule, device, sensor).
//
// Everything it decides follows from the readings of the stream and the
// rules, never from the wall clock, so replaying a partition from a snapshot
// (or from offset 0) produces the same transitions with the same sequence
// numbers: the transition key (fingerprint, sequence) is idempotent
// (docs/alerting.md, "Exactly once"). The one input that is not in the
// stream is AdvanceWatermark, which the service calls for a partition that
// is caught up and idle, so that silence is detected without new data.
//
// Single-threaded: the consumer loop owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/alert/rule.h"
#include "telemetry/v1/events.pb.h"

namespace telemetry::alert {

enum class AlertState { kInactive = 0, kPending = 1, kFiring = 2, kResolved = 3 };
const char* StateName(AlertState s);

// Stable id of a (tenant, rule, device, sensor): hex of a 64-bit FNV-1a.
std::string Fingerprint(int64_t tenant_id, const std::string& rule_id, const std::string& device,
                        const std::string& sensor);

struct Transition {
  int64_t tenant_id = 0;
  std::string rule_id;
  int64_t rule_version = 0;
  std::string device;
  std::string sensor;
  std::string fingerprint;
  int64_t sequence = 0;  // 1, 2, ... per fingerprint
  AlertState from = AlertState::kInactive;
  AlertState to = AlertState::kInactive;
  // The window aggregate that caused it (has_value false for no-data and
  // for a resolve by keep_firing_for running out without data).
  bool has_value = false;
  double value = 0;
  int64_t window_start_ns = 0;
  int64_t window_end_ns = 0;
  // The event time the transition happened at: the window end, or for
  // no-data the moment the silence reached the rule's limit, or the time of
  // the reading that ended it.
  int64_t event_time_ns = 0;
  bool no_data = false;
  int32_t partition = 0;
};

struct EngineOptions {
  // A reading older than the newest reading of its tenant in its partition
  // by more than this is late: counted and dropped. A window is evaluated
  // once that watermark (newest event time - lateness) passes its end. Per
  // tenant, so that one tenant's clocks (ahead by up to ingest's 10-minute
  // limit) never make another tenant's readings late.
  int64_t allowed_lateness_ns = 5'000'000'000;
};

struct EngineStats {
  int64_t readings = 0;   // numeric readings looked at
  int64_t evaluated = 0;  // (reading, rule) pairs added to a window
  int64_t late = 0;       // dropped as late
  int64_t windows_closed = 0;
  int64_t series = 0;  // (rule, series) states held
};

class Engine {
 public:
  // The project a tenant's device belongs to (only asked when a rule of the
  // tenant selects by project; cached per device by the caller if needed).
  using ProjectLookup =
      std::function<absl::StatusOr<std::string>(int64_t tenant_id, const std::string& device)>;

  Engine(EngineOptions options, ProjectLookup project_lookup);
  ~Engine();

  // Replaces the rule set. States of deleted rules are dropped; a rule whose
  // version changed keeps its alert states (a FIRING alert resolves under
  // the new condition) but starts its windows afresh.
  void SetRules(std::vector<RuleSpec> rules);
  size_t rule_count() const { return rules_.size(); }

  // Applies one readings message of `partition`, then closes the windows
  // the new watermark passed. Transitions are appended to `out`. Fails
  // (changing nothing) only when the project lookup fails; the caller
  // retries the same message.
  absl::Status Apply(int32_t partition, const telemetry::v1::ReadingBatch& batch,
                     std::vector<Transition>* out);

  // Moves an idle partition's watermarks (every tenant's in it) forward to
  // `watermark_ns` (never back) and evaluates what that closes or silences.
  void AdvanceWatermark(int32_t partition, int64_t watermark_ns, std::vector<Transition>* out);

  // The partition's state, serialized (telemetry.v1.AlertPartitionState),
  // and back. Restore replaces what the partition had.
  std::string Snapshot(int32_t partition) const;
  absl::Status Restore(int32_t partition, const std::string& bytes);
  // Forgets a partition (revoked).
  void Drop(int32_t partition);

  // INT64_MIN before the partition saw any reading of the tenant.
  int64_t Watermark(int32_t partition, int64_t tenant_id) const;
  // Newest event time of the tenant seen in the partition (INT64_MIN before any).
  int64_t MaxEventTime(int32_t partition, int64_t tenant_id) const;
  // The counters and, walking every (partition, tenant), the states held.
  EngineStats stats() const;
  // The counters alone (series left 0): cheap enough for every message.
  const EngineStats& counters() const { return stats_; }

 private:
  struct Window;
  struct SeriesState;
  struct Partition;
  struct CompiledRule;

  // The state of one tenant in one partition (its own watermark and timers).
  Partition* GetPartition(int32_t partition, int64_t tenant_id);
  // The rules matching a block's series (cached); null with `error` set
  // when the project lookup failed.
  const std::vector<CompiledRule*>* Match(int64_t tenant_id,
                                          const telemetry::v1::SeriesBlock& block,
                                          absl::Status* error);
  void Close(SeriesState* s, int32_t partition, int64_t window_start, const Window& w,
             std::vector<Transition>* out);
  void CloseUpTo(Partition* p, int32_t partition, std::vector<Transition>* out);
  void Emit(SeriesState* s, AlertState to, int32_t partition, std::vector<Transition>* out,
            Transition t);
  void Schedule(Partition* p, SeriesState* s);

  EngineOptions options_;
  ProjectLookup project_lookup_;
  std::vector<std::unique_ptr<CompiledRule>> rules_;
  absl::flat_hash_map<std::string, CompiledRule*> rules_by_id_;  // rule_id
  // (partition, tenant) → its series, watermark and timers.
  std::map<std::pair<int32_t, int64_t>, std::unique_ptr<Partition>> partitions_;
  // (tenant, device, sensor, labels) → matching rules; cleared by SetRules
  // and, when it grew past a million entries, at the start of an Apply. A
  // node map: Apply holds pointers to its values while it adds more.
  absl::node_hash_map<std::string, std::vector<CompiledRule*>> match_cache_;
  EngineStats stats_;
};

}  // namespace telemetry::alert
