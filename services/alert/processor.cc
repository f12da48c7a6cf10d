#include "services/alert/processor.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/logging.h"
#include "services/alert/rule_codec.h"
#include "services/alert/silence.h"
#include "telemetry/v1/events.pb.h"

namespace telemetry::alert {
namespace {

using telemetry::v1::AlertEvent;

telemetry::v1::AlertState ProtoState(AlertState s) {
  switch (s) {
    case AlertState::kInactive:
      return telemetry::v1::ALERT_STATE_INACTIVE;
    case AlertState::kPending:
      return telemetry::v1::ALERT_STATE_PENDING;
    case AlertState::kFiring:
      return telemetry::v1::ALERT_STATE_FIRING;
    case AlertState::kResolved:
      return telemetry::v1::ALERT_STATE_RESOLVED;
  }
  return telemetry::v1::ALERT_STATE_UNSPECIFIED;
}

std::string FormatValue(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

ProcessorMetrics::ProcessorMetrics(MetricsRegistry* r)
    : readings(r->AddCounter("alert_readings_total", "Numeric readings evaluated")),
      late(r->AddCounter("alert_late_readings_total",
                         "Readings older than the allowed lateness, dropped")),
      transitions(r->AddCounter("alert_transitions_total", "Alert transitions recorded")),
      replayed(r->AddCounter("alert_transitions_replayed_total",
                             "Transitions found already recorded (a replay after a restart)")),
      undecodable(r->AddCounter("alert_undecodable_messages_total",
                                "Readings messages that did not parse (skipped; the writer "
                                "dead-letters them)")),
      store_failures(r->AddCounter("alert_store_failures_total", "Failed Postgres calls")),
      rule_reloads(r->AddCounter("alert_rule_reloads_total", "Rule set reloads")),
      muted(r->AddCounter("alert_transitions_muted_total",
                          "Transitions whose notifications a silence muted")),
      rules(r->AddGauge("alert_rules", "Rules evaluated")),
      series(r->AddGauge("alert_series", "(rule, series) states held")),
      commit_seconds(r->AddHistogram("alert_commit_seconds",
                                     "Recording transitions and checkpoints",
                                     {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5})) {}

AlertEvent BuildEvent(const Transition& t, const telemetry::v1::Rule& rule,
                      const std::string& project, int64_t detected_at_ns) {
  AlertEvent e;
  e.set_fingerprint(t.fingerprint);
  e.set_tenant_id(t.tenant_id);
  e.set_rule_id(t.rule_id);
  e.set_rule_name(rule.name());
  e.set_rule_version(t.rule_version);
  e.set_device_id(t.device);
  e.set_sensor(t.sensor);
  e.set_project(project);
  e.set_state(ProtoState(t.to));
  e.set_previous_state(ProtoState(t.from));
  e.set_sequence(t.sequence);
  e.set_has_value(t.has_value);
  if (t.has_value) e.set_value(t.value);
  e.set_no_data(t.no_data);
  e.set_window_start_ns(t.window_start_ns);
  e.set_window_end_ns(t.window_end_ns);
  e.set_event_time_ns(t.event_time_ns);
  e.set_threshold(rule.threshold());
  e.set_severity(rule.severity() == telemetry::v1::SEVERITY_UNSPECIFIED
                     ? telemetry::v1::SEVERITY_WARNING
                     : rule.severity());
  e.set_detected_at_ns(detected_at_ns);
  for (const auto& [k, v] : rule.labels()) (*e.mutable_labels())[k] = v;
  const std::vector<std::pair<std::string, std::string>> vars = {
      {"{{device}}", t.device},
      {"{{sensor}}", t.sensor},
      {"{{value}}", t.has_value ? FormatValue(t.value) : std::string("no data")},
      {"{{threshold}}", FormatValue(rule.threshold())},
      {"{{rule}}", rule.name()},
      {"{{state}}", StateName(t.to)}};
  for (const auto& [k, v] : rule.annotations()) {
    (*e.mutable_annotations())[k] = absl::StrReplaceAll(v, vars);
  }
  auto summary = e.annotations().find("summary");
  if (summary != e.annotations().end()) e.set_message(summary->second);
  return e;
}

std::vector<std::string> TargetsOf(const telemetry::v1::Rule& rule,
                                   telemetry::v1::AlertState state) {
  std::vector<std::string> targets = {"kafka"};
  for (const auto& url : rule.webhook_urls()) targets.push_back("webhook:" + url);
  // Alertmanager knows firing and resolved alerts only.
  if (state == telemetry::v1::ALERT_STATE_FIRING || state == telemetry::v1::ALERT_STATE_RESOLVED) {
    for (const auto& url : rule.alertmanager_urls()) targets.push_back("alertmanager:" + url);
  }
  return targets;
}

Processor::Processor(ProcessorOptions options, EventConsumer* consumer, AlertRuleStore* rules,
                     AlertStateStore* store, AlertSilenceStore* silences, const Clock* clock,
                     ProcessorMetrics* metrics)
    : options_(std::move(options)),
      consumer_(consumer),
      rules_(rules),
      store_(store),
      silences_(silences),
      clock_(clock),
      metrics_(metrics),
      engine_(options_.engine,
              [this](int64_t tenant, const std::string& device) -> absl::StatusOr<std::string> {
                const std::string key = absl::StrCat(tenant, "/", device);
                auto cached = projects_.find(key);
                if (cached != projects_.end()) return cached->second;
                absl::StatusOr<std::string> got = store_->DeviceProject(tenant, device);
                if (got.ok()) projects_[key] = *got;
                return got;
              }) {
  consumer_->SetRebalanceCallbacks(
      [this](const std::vector<int32_t>& parts) { return OnAssign(parts); },
      [this](const std::vector<int32_t>& parts) { OnRevoke(parts); });
}

absl::Status Processor::ReloadRules(bool force) {
  const int64_t now = clock_->MonotonicNs();
  if (!force && now < next_rules_check_ns_) return absl::OkStatus();
  next_rules_check_ns_ = now + options_.rules_poll_ns;
  absl::StatusOr<int64_t> gen = rules_->Generation();
  if (!gen.ok()) {
    metrics_->store_failures->Inc();
    return gen.status();
  }
  if (*gen == generation_) return absl::OkStatus();
  auto all = rules_->LoadAll();
  if (!all.ok()) {
    metrics_->store_failures->Inc();
    return all.status();
  }
  std::vector<RuleSpec> specs;
  absl::flat_hash_map<std::string, telemetry::v1::Rule> protos;
  for (const auto& [tenant, rule] : *all) {
    specs.push_back(ToSpec(tenant, rule));
    protos[rule.rule_id()] = rule;
  }
  GetLogger("alert")->info("rules: {} (generation {})", specs.size(), *gen);
  engine_.SetRules(std::move(specs));
  rule_protos_ = std::move(protos);
  projects_.clear();
  generation_ = *gen;
  metrics_->rule_reloads->Inc();
  metrics_->rules->Set(static_cast<double>(engine_.rule_count()));
  rules_loaded_ = true;
  return absl::OkStatus();
}

void Processor::ReloadSilences() {
  if (silences_ == nullptr) return;
  const int64_t mono = clock_->MonotonicNs();
  if (mono < next_silences_check_ns_) return;
  next_silences_check_ns_ = mono + options_.rules_poll_ns;
  auto active = silences_->Active(clock_->NowNs());
  if (!active.ok()) {
    metrics_->store_failures->Inc();
    GetLogger("alert")->warn("cannot load silences (keeping the last list): {}",
                             active.status().ToString());
    return;
  }
  active_silences_.clear();
  for (auto& [tenant, silence] : *active) active_silences_[tenant].push_back(std::move(silence));
}

std::map<int32_t, int64_t> Processor::OnAssign(const std::vector<int32_t>& partitions) {
  auto log = GetLogger("alert");
  std::map<int32_t, int64_t> start;
  // Rules first: a checkpoint's states are kept only for rules that exist.
  while (!rules_loaded_ && !ReloadRules(true).ok()) {
    if (!Backoff()) {
      halted_ = true;
      return start;
    }
  }
  while (true) {
    auto cps = store_->LoadCheckpoints(options_.group, partitions);
    if (cps.ok()) {
      for (int32_t p : partitions) {
        auto it = cps->find(p);
        engine_.Drop(p);
        if (it == cps->end()) {
          start[p] = 0;  // never checkpointed: from the log's start
        } else {
          absl::Status st = engine_.Restore(p, it->second.state);
          if (!st.ok()) {
            // A checkpoint that does not parse cannot be trusted: replay the
            // partition (transitions already recorded are recognised).
            log->error("partition {}: {}; replaying it from offset 0", p, st.ToString());
            engine_.Drop(p);
            start[p] = 0;
          } else {
            start[p] = it->second.next_offset;
          }
        }
        next_offset_[p] = start[p];
        last_message_ns_[p] = clock_->MonotonicNs();
        next_idle_check_ns_[p] = 0;
      }
      break;
    }
    metrics_->store_failures->Inc();
    log->warn("cannot read checkpoints ({}); retrying", cps.status().ToString());
    if (!Backoff()) {
      log->warn("stopping before the checkpoints could be read; not consuming");
      halted_ = true;
      return start;
    }
  }
  log->info("assigned {} partitions of {}", partitions.size(), options_.topic);
  assigned_ = !next_offset_.empty();
  return start;
}

void Processor::OnRevoke(const std::vector<int32_t>& partitions) {
  auto log = GetLogger("alert");
  // Record what these partitions decided and where they stand, so the next
  // owner starts there (if this fails it replays from the last checkpoint:
  // slower, not wrong).
  if (!halted_) {
    absl::Status st = Commit(true, partitions);
    if (!st.ok()) log->warn("checkpoint on revocation failed: {}", st.ToString());
  }
  for (int32_t p : partitions) {
    engine_.Drop(p);
    next_offset_.erase(p);
    last_message_ns_.erase(p);
    next_idle_check_ns_.erase(p);
  }
  assigned_ = !next_offset_.empty();
}

void Processor::Record(const std::vector<Transition>& transitions) {
  const int64_t now = clock_->NowNs();
  for (const Transition& t : transitions) {
    auto rule = rule_protos_.find(t.rule_id);
    if (rule == rule_protos_.end()) continue;  // cannot happen: the engine has the same set
    // The device's project (for Subscribe's filter): cached per device; a
    // failed lookup leaves it empty rather than holding the transition.
    std::string project;
    {
      const std::string key = absl::StrCat(t.tenant_id, "/", t.device);
      auto cached = projects_.find(key);
      if (cached != projects_.end()) {
        project = cached->second;
      } else if (absl::StatusOr<std::string> got = store_->DeviceProject(t.tenant_id, t.device);
                 got.ok()) {
        project = projects_[key] = *got;
      }
    }
    AlertEvent e = BuildEvent(t, rule->second, project, now);
    // A silence mutes the notifications, not the record: history, the
    // Kafka topic and Subscribe still get the transition, marked muted.
    auto silences = active_silences_.find(t.tenant_id);
    if (silences != active_silences_.end()) {
      for (const auto& silence : silences->second) {
        if (SilenceMatches(silence, e, now)) {
          e.set_muted(true);
          metrics_->muted->Inc();
          break;
        }
      }
    }
    AlertRecord r;
    r.tenant_id = t.tenant_id;
    r.fingerprint = t.fingerprint;
    r.sequence = t.sequence;
    r.rule_id = t.rule_id;
    r.rule_version = t.rule_version;
    r.device = t.device;
    r.sensor = t.sensor;
    r.from_state = e.previous_state();
    r.to_state = e.state();
    if (t.has_value) r.value = t.value;
    r.window_start_ns = t.window_start_ns;
    r.window_end_ns = t.window_end_ns;
    r.event_time_ns = t.event_time_ns;
    r.severity = e.severity();
    r.muted = e.muted();
    e.SerializeToString(&r.event);
    r.targets = e.muted() ? std::vector<std::string>{"kafka"} : TargetsOf(rule->second, e.state());
    pending_.push_back(std::move(r));
  }
}

absl::Status Processor::Commit(bool checkpoint, const std::vector<int32_t>& partitions) {
  std::vector<AlertCheckpoint> cps;
  if (checkpoint) {
    for (int32_t p : partitions) {
      auto it = next_offset_.find(p);
      if (it == next_offset_.end()) continue;
      cps.push_back({p, it->second, engine_.Snapshot(p)});
    }
  }
  if (pending_.empty() && cps.empty()) return absl::OkStatus();
  const int64_t started = clock_->MonotonicNs();
  auto result = store_->Commit(options_.group, pending_, cps);
  if (!result.ok()) {
    metrics_->store_failures->Inc();
    return result.status();
  }
  metrics_->commit_seconds->Observe(static_cast<double>(clock_->MonotonicNs() - started) / 1e9);
  metrics_->transitions->Inc(result->recorded);
  metrics_->replayed->Inc(result->duplicates);
  pending_.clear();
  if (!cps.empty()) {
    std::vector<PartitionOffset> offsets;
    for (const auto& cp : cps) offsets.push_back({cp.partition, cp.next_offset});
    consumer_->Commit(offsets).IgnoreError();  // informational
  }
  return absl::OkStatus();
}

absl::Status Processor::Checkpoint() {
  std::vector<int32_t> parts;
  for (const auto& [p, off] : next_offset_) parts.push_back(p);
  absl::Status st = Commit(true, parts);
  if (st.ok()) next_checkpoint_ns_ = clock_->MonotonicNs() + options_.checkpoint_interval_ns;
  return st;
}

void Processor::AdvanceIdle() {
  const int64_t mono = clock_->MonotonicNs();
  std::vector<Transition> out;
  for (auto& [p, last] : last_message_ns_) {
    if (mono - last < options_.idle_after_ns || mono < next_idle_check_ns_[p]) continue;
    next_idle_check_ns_[p] = mono + options_.idle_after_ns;
    int64_t low = 0, high = 0;
    if (!consumer_->Watermarks(p, &low, &high, 1000).ok()) continue;
    if (next_offset_[p] < high) continue;  // not caught up: the stream decides
    engine_.AdvanceWatermark(
        p, clock_->NowNs() - options_.engine.allowed_lateness_ns - options_.idle_after_ns, &out);
  }
  Record(out);
}

absl::Status Processor::RunOnce() {
  auto log = GetLogger("alert");
  // Transitions not recorded yet (the store was down) go first: nothing
  // new is read until they are.
  if (!pending_.empty()) {
    absl::Status st = Commit(false, {});
    if (!st.ok()) {
      Backoff();
      return st;
    }
  }
  absl::Status rules = ReloadRules(!rules_loaded_);
  ReloadSilences();
  if (!rules.ok()) {
    log->warn("cannot load rules: {}", rules.ToString());
    if (!rules_loaded_) {
      Backoff();
      return rules;  // evaluate nothing without the rules
    }
  }
  if (halted_) {
    Backoff();
    return absl::OkStatus();
  }
  auto msgs = consumer_->Poll(options_.poll_max_messages, options_.poll_timeout_ms);
  if (!msgs.ok()) return msgs.status();
  std::vector<Transition> out;
  for (const ConsumedMessage& m : *msgs) {
    auto next = next_offset_.find(m.partition);
    if (next == next_offset_.end() || m.offset < next->second) continue;  // not ours / redelivery
    telemetry::v1::ReadingBatch batch;
    if (!batch.ParseFromString(m.payload)) {
      metrics_->undecodable->Inc();
    } else {
      const EngineStats before = engine_.counters();
      while (true) {
        absl::Status st = engine_.Apply(m.partition, batch, &out);
        if (st.ok()) break;
        metrics_->store_failures->Inc();
        log->warn("partition {} offset {}: {}; retrying", m.partition, m.offset, st.ToString());
        if (!Backoff()) {
          // Stop with this message unapplied: it is read again after the
          // restart, from the checkpoint.
          halted_ = true;
          Record(out);
          return st;
        }
      }
      const EngineStats after = engine_.counters();
      metrics_->readings->Inc(after.readings - before.readings);
      metrics_->late->Inc(after.late - before.late);
    }
    next->second = m.offset + 1;
    last_message_ns_[m.partition] = clock_->MonotonicNs();
  }
  Record(out);
  AdvanceIdle();
  const bool checkpoint_due = clock_->MonotonicNs() >= next_checkpoint_ns_;
  absl::Status st = checkpoint_due ? Checkpoint() : Commit(false, {});
  if (!st.ok()) log->warn("recording alerts failed: {}; retrying", st.ToString());
  metrics_->series->Set(static_cast<double>(engine_.stats().series));
  return st;
}

bool Processor::Backoff() { return SleepUnlessStopped(options_.retry_backoff_ns, stop_); }

void Processor::Run(const std::atomic<bool>& stop) {
  stop_ = &stop;
  while (!stop.load()) RunOnce().IgnoreError();
  auto log = GetLogger("alert");
  const int64_t stopped = clock_->MonotonicNs();
  if (!halted_) {
    for (int i = 0; i < 10; ++i) {
      absl::Status st = Checkpoint();
      if (st.ok()) break;
      log->warn("final checkpoint, try {} of 10: {}", i + 1, st.ToString());
      std::this_thread::sleep_for(std::chrono::nanoseconds(options_.retry_backoff_ns));
    }
  }
  const int64_t checkpointed = clock_->MonotonicNs();
  consumer_->Close();
  log->info("evaluation stopped: final checkpoint {} ms, left the group in {} ms",
            (checkpointed - stopped) / kNsPerMs, (clock_->MonotonicNs() - checkpointed) / kNsPerMs);
  stop_ = nullptr;
}

}  // namespace telemetry::alert
