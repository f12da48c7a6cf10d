#include "services/alert/engine.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <limits>

#include "common/kafka/codec.h"
#include "telemetry/v1/alert_state.pb.h"

namespace telemetry::alert {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

int64_t SatSub(int64_t a, int64_t b) { return a < kNever + b ? kNever : a - b; }
int64_t SatAdd(int64_t a, int64_t b) { return a > kMax - b ? kMax : a + b; }

// Start of the tumbling window of length `w` holding `ts` (floor, also for
// times before the epoch).
int64_t WindowStart(int64_t ts, int64_t w) {
  int64_t q = ts / w;
  if (ts % w != 0 && ts < 0) --q;
  return q * w;
}

std::string SeriesKey(const std::string& rule_id, int64_t tenant, const std::string& device,
                      const std::string& sensor) {
  std::string k = rule_id;
  k += '\0';
  k += std::to_string(tenant);
  k += '\0';
  k += device;
  k += '\0';
  k += sensor;
  return k;
}

}  // namespace

const char* StateName(AlertState s) {
  switch (s) {
    case AlertState::kInactive:
      return "inactive";
    case AlertState::kPending:
      return "pending";
    case AlertState::kFiring:
      return "firing";
    case AlertState::kResolved:
      return "resolved";
  }
  return "?";
}

std::string Fingerprint(int64_t tenant_id, const std::string& rule_id, const std::string& device,
                        const std::string& sensor) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;  // separator no name byte can fake
    h *= 1099511628211ULL;
  };
  mix(std::to_string(tenant_id));
  mix(rule_id);
  mix(device);
  mix(sensor);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, h);
  return buf;
}

struct Engine::CompiledRule {
  RuleSpec spec;
  bool by_project = false;
};

struct Engine::Window {
  int64_t count = 0;
  double sum = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  int64_t first_ns = 0, last_ns = 0;
  double first = 0, last = 0;

  void Add(int64_t ts, double v) {
    if (count == 0 || ts < first_ns) {
      first_ns = ts;
      first = v;
    }
    if (count == 0 || ts >= last_ns) {
      last_ns = ts;
      last = v;
    }
    ++count;
    sum += v;
    min = std::min(min, v);
    max = std::max(max, v);
  }

  double Value(Aggregate a) const {
    switch (a) {
      case Aggregate::kAvg:
        return sum / static_cast<double>(count);
      case Aggregate::kMin:
        return min;
      case Aggregate::kMax:
        return max;
      case Aggregate::kCount:
        return static_cast<double>(count);
      case Aggregate::kSum:
        return sum;
      case Aggregate::kLast:
        return last;
      case Aggregate::kRate:
        if (last_ns == first_ns) return 0;
        return (last - first) / (static_cast<double>(last_ns - first_ns) / 1e9);
    }
    return 0;
  }
};

struct Engine::SeriesState {
  const CompiledRule* rule = nullptr;
  int64_t tenant_id = 0;
  std::string rule_id, device, sensor, fingerprint;
  int64_t rule_version = 0;
  std::map<int64_t, Window> windows;  // by start
  AlertState state = AlertState::kInactive;
  int64_t sequence = 0;
  int64_t pending_since = 0;
  bool has_clear_since = false;
  int64_t clear_since = 0;
  int64_t last_active_end = kNever;
  int64_t last_window_end = kNever;
  int64_t last_seen = kNever;
  // This series' entry in its partition's timer set (kNever: none).
  int64_t timer = kNever;
};

struct Engine::Partition {
  int64_t max_event = kNever;
  int64_t watermark = kNever;
  absl::flat_hash_map<std::string, std::unique_ptr<SeriesState>> series;
  // (when the series next needs looking at, series): window ends, no-data
  // deadlines, keep_firing_for running out.
  // Ordered by fingerprint within a time, so that the transitions of one
  // message come out in the same order on every replay.
  struct TimerOrder {
    bool operator()(const std::pair<int64_t, SeriesState*>& a,
                    const std::pair<int64_t, SeriesState*>& b) const {
      if (a.first != b.first) return a.first < b.first;
      if (a.second->fingerprint != b.second->fingerprint) {
        return a.second->fingerprint < b.second->fingerprint;
      }
      return a.second < b.second;
    }
  };
  std::set<std::pair<int64_t, SeriesState*>, TimerOrder> timers;
};

Engine::Engine(EngineOptions options, ProjectLookup project_lookup)
    : options_(options), project_lookup_(std::move(project_lookup)) {}

Engine::~Engine() = default;

void Engine::SetRules(std::vector<RuleSpec> rules) {
  std::vector<std::unique_ptr<CompiledRule>> compiled;
  absl::flat_hash_map<std::string, CompiledRule*> by_id;
  for (RuleSpec& r : rules) {
    auto c = std::make_unique<CompiledRule>();
    c->by_project = !r.selector.project.empty() && r.selector.project != "*";
    c->spec = std::move(r);
    by_id[c->spec.rule_id] = c.get();
    compiled.push_back(std::move(c));
  }
  for (auto& [pid, p] : partitions_) {
    for (auto it = p->series.begin(); it != p->series.end();) {
      SeriesState* s = it->second.get();
      auto r = by_id.find(s->rule_id);
      if (r == by_id.end() || r->second->spec.tenant_id != s->tenant_id) {
        if (s->timer != kNever) p->timers.erase({s->timer, s});
        p->series.erase(it++);
        continue;
      }
      s->rule = r->second;
      if (s->rule_version != r->second->spec.version) {
        s->rule_version = r->second->spec.version;
        s->windows.clear();
        s->last_window_end = kNever;
      }
      Schedule(p.get(), s);
      ++it;
    }
  }
  rules_ = std::move(compiled);
  rules_by_id_ = std::move(by_id);
  match_cache_.clear();
}

Engine::Partition* Engine::GetPartition(int32_t partition, int64_t tenant_id) {
  auto& p = partitions_[{partition, tenant_id}];
  if (!p) p = std::make_unique<Partition>();
  return p.get();
}

const std::vector<Engine::CompiledRule*>* Engine::Match(int64_t tenant_id,
                                                        const telemetry::v1::SeriesBlock& block,
                                                        absl::Status* error) {
  std::string key = std::to_string(tenant_id);
  key += '\0';
  key += block.device_id();
  key += '\0';
  key += block.sensor();
  key += '\0';
  key += LabelsJson(block.labels());
  auto cached = match_cache_.find(key);
  if (cached != match_cache_.end()) return &cached->second;
  std::vector<CompiledRule*> matched;
  std::optional<std::string> project;
  for (const auto& r : rules_) {
    const RuleSpec& spec = r->spec;
    if (spec.tenant_id != tenant_id) continue;
    if (!GlobMatch(spec.selector.device.empty() ? "*" : spec.selector.device, block.device_id()) ||
        !GlobMatch(spec.selector.sensor.empty() ? "*" : spec.selector.sensor, block.sensor())) {
      continue;
    }
    bool labels_ok = true;
    for (const LabelMatcher& m : spec.selector.labels) {
      auto l = block.labels().find(m.name);
      const bool hit = GlobMatch(m.value, l == block.labels().end() ? std::string() : l->second);
      if (hit == m.negate) {
        labels_ok = false;
        break;
      }
    }
    if (!labels_ok) continue;
    if (r->by_project) {
      if (!project) {
        absl::StatusOr<std::string> got = project_lookup_(tenant_id, block.device_id());
        if (!got.ok()) {
          *error = got.status();
          return nullptr;
        }
        project = *std::move(got);
      }
      if (!GlobMatch(spec.selector.project, *project)) continue;
    }
    matched.push_back(r.get());
  }
  return &(match_cache_[key] = std::move(matched));
}

absl::Status Engine::Apply(int32_t partition, const telemetry::v1::ReadingBatch& batch,
                           std::vector<Transition>* out) {
  if (match_cache_.size() > 1'000'000) match_cache_.clear();
  // Match every block first: the one step that can fail (a project lookup),
  // so a failure changes nothing and the message can be retried.
  std::vector<const std::vector<CompiledRule*>*> matched(batch.series_size());
  for (int i = 0; i < batch.series_size(); ++i) {
    absl::Status error;
    matched[i] = Match(batch.tenant_id(), batch.series(i), &error);
    if (matched[i] == nullptr) return error;
  }
  Partition* p = GetPartition(partition, batch.tenant_id());
  const int64_t wm = p->watermark;  // lateness is judged against the message's start
  // Per block, the states of its matching rules are looked up once (at its
  // first reading in time) and its readings added in order.
  struct Target {
    SeriesState* state = nullptr;
    int64_t window_start = kNever;
    Window* window = nullptr;
  };
  std::vector<Target> targets;
  for (int i = 0; i < batch.series_size(); ++i) {
    const telemetry::v1::SeriesBlock& b = batch.series(i);
    const int n = b.timestamp_delta_ns_size();
    const bool doubles = b.double_values_size() == n && n > 0;
    const bool bools = !doubles && b.bool_values_size() == n && n > 0;
    if (!doubles && !bools) continue;  // text readings are not evaluated
    const std::vector<CompiledRule*>& rules = *matched[i];
    targets.assign(rules.size(), Target());
    int64_t ts = 0;
    for (int j = 0; j < n; ++j) {
      ts += b.timestamp_delta_ns(j);
      const double v = doubles ? b.double_values(j) : (b.bool_values(j) ? 1.0 : 0.0);
      ++stats_.readings;
      if (ts < wm) {
        ++stats_.late;
        continue;
      }
      p->max_event = std::max(p->max_event, ts);
      for (size_t k = 0; k < rules.size(); ++k) {
        CompiledRule* r = rules[k];
        Target& target = targets[k];
        if (target.state == nullptr) {
          auto& slot =
              p->series[SeriesKey(r->spec.rule_id, batch.tenant_id(), b.device_id(), b.sensor())];
          if (!slot) {
            slot = std::make_unique<SeriesState>();
            slot->rule = r;
            slot->tenant_id = batch.tenant_id();
            slot->rule_id = r->spec.rule_id;
            slot->rule_version = r->spec.version;
            slot->device = b.device_id();
            slot->sensor = b.sensor();
            slot->fingerprint =
                Fingerprint(batch.tenant_id(), r->spec.rule_id, b.device_id(), b.sensor());
          }
          target.state = slot.get();
        }
        SeriesState* s = target.state;
        ++stats_.evaluated;
        if (r->spec.no_data_ns > 0) {
          if (s->state == AlertState::kFiring) {
            Transition t;
            t.event_time_ns = ts;
            t.no_data = true;
            Emit(s, AlertState::kResolved, partition, out, std::move(t));
          }
          s->last_seen = std::max(s->last_seen, ts);
        } else {
          const int64_t start = WindowStart(ts, r->spec.window_ns);
          if (start != target.window_start) {
            target.window_start = start;
            target.window = &s->windows[start];  // std::map: stable while the block lasts
          }
          target.window->Add(ts, v);
        }
      }
    }
    for (const Target& target : targets) {
      if (target.state != nullptr) Schedule(p, target.state);
    }
  }
  if (p->max_event != kNever) {
    p->watermark = std::max(p->watermark, SatSub(p->max_event, options_.allowed_lateness_ns));
  }
  CloseUpTo(p, partition, out);
  return absl::OkStatus();
}

void Engine::AdvanceWatermark(int32_t partition, int64_t watermark_ns,
                              std::vector<Transition>* out) {
  for (auto it = partitions_.lower_bound({partition, std::numeric_limits<int64_t>::min()});
       it != partitions_.end() && it->first.first == partition; ++it) {
    Partition* p = it->second.get();
    if (watermark_ns <= p->watermark) continue;
    p->watermark = watermark_ns;
    CloseUpTo(p, partition, out);
  }
}

void Engine::Schedule(Partition* p, SeriesState* s) {
  const RuleSpec& spec = s->rule->spec;
  int64_t next = kMax;
  if (!s->windows.empty()) next = s->windows.begin()->first + spec.window_ns;
  if (spec.no_data_ns > 0 && s->state != AlertState::kFiring && s->last_seen != kNever) {
    next = std::min(next, SatAdd(s->last_seen, spec.no_data_ns));
  }
  if (spec.no_data_ns == 0 && s->state == AlertState::kFiring && spec.keep_firing_for_ns > 0 &&
      s->last_active_end != kNever) {
    // Only when no open window starts before it: such a window decides.
    const int64_t until = SatAdd(s->last_active_end, spec.keep_firing_for_ns);
    if (s->windows.empty() || s->windows.begin()->first >= until) next = std::min(next, until);
  }
  if (next == kMax) next = kNever;
  if (next == s->timer) return;
  if (s->timer != kNever) p->timers.erase({s->timer, s});
  s->timer = next;
  if (next != kNever) p->timers.insert({next, s});
}

void Engine::CloseUpTo(Partition* p, int32_t partition, std::vector<Transition>* out) {
  while (!p->timers.empty() && p->timers.begin()->first <= p->watermark) {
    SeriesState* s = p->timers.begin()->second;
    const RuleSpec& spec = s->rule->spec;
    // Windows the watermark passed, oldest first.
    while (!s->windows.empty() && s->windows.begin()->first + spec.window_ns <= p->watermark) {
      auto w = s->windows.begin();
      const int64_t start = w->first;
      const Window win = w->second;
      s->windows.erase(w);
      ++stats_.windows_closed;
      Close(s, partition, start, win, out);
    }
    // A silence that reached the no-data limit.
    if (spec.no_data_ns > 0 && s->state != AlertState::kFiring && s->last_seen != kNever &&
        SatAdd(s->last_seen, spec.no_data_ns) <= p->watermark) {
      Transition t;
      t.event_time_ns = SatAdd(s->last_seen, spec.no_data_ns);
      t.window_start_ns = s->last_seen;
      t.window_end_ns = t.event_time_ns;
      t.no_data = true;
      Emit(s, AlertState::kFiring, partition, out, std::move(t));
    }
    // keep_firing_for ran out with no window to decide: the series stopped
    // reporting while FIRING.
    if (spec.no_data_ns == 0 && s->state == AlertState::kFiring && spec.keep_firing_for_ns > 0 &&
        s->last_active_end != kNever) {
      const int64_t until = SatAdd(s->last_active_end, spec.keep_firing_for_ns);
      if (until <= p->watermark && (s->windows.empty() || s->windows.begin()->first >= until)) {
        Transition t;
        t.event_time_ns = until;
        t.window_start_ns = s->last_active_end;
        t.window_end_ns = until;
        Emit(s, AlertState::kResolved, partition, out, std::move(t));
      }
    }
    const int64_t before = s->timer;
    Schedule(p, s);
    if (s->timer == before) {
      // Nothing moved it (cannot happen with the checks above; guards a
      // loop on a state this code did not foresee).
      p->timers.erase({s->timer, s});
      s->timer = kNever;
    }
  }
}

void Engine::Close(SeriesState* s, int32_t partition, int64_t window_start, const Window& w,
                   std::vector<Transition>* out) {
  const RuleSpec& spec = s->rule->spec;
  const int64_t end = window_start + spec.window_ns;
  const double value = w.Value(spec.aggregate);
  const bool active = Compare(spec.comparison, value, spec.threshold);
  const bool adjacent = s->last_window_end == window_start;
  s->last_window_end = end;
  Transition t;
  t.has_value = true;
  t.value = value;
  t.window_start_ns = window_start;
  t.window_end_ns = end;
  t.event_time_ns = end;
  switch (s->state) {
    case AlertState::kInactive:
    case AlertState::kResolved:
      if (!active) break;
      s->has_clear_since = false;
      if (end - window_start >= spec.for_ns) {
        s->last_active_end = end;
        Emit(s, AlertState::kFiring, partition, out, std::move(t));
      } else {
        s->pending_since = window_start;
        Emit(s, AlertState::kPending, partition, out, std::move(t));
      }
      break;
    case AlertState::kPending:
      if (!active) {
        Emit(s, AlertState::kInactive, partition, out, std::move(t));
        break;
      }
      // A window without readings in between starts the wait again.
      if (!adjacent) s->pending_since = window_start;
      if (end - s->pending_since >= spec.for_ns) {
        s->last_active_end = end;
        Emit(s, AlertState::kFiring, partition, out, std::move(t));
      }
      break;
    case AlertState::kFiring: {
      const bool holding = spec.resolve_threshold
                               ? Compare(spec.comparison, value, *spec.resolve_threshold)
                               : active;
      if (holding) {
        s->last_active_end = end;
        s->has_clear_since = false;
        break;
      }
      if (!s->has_clear_since) {
        s->has_clear_since = true;
        s->clear_since = window_start;
      }
      if (end - s->clear_since >= spec.resolve_for_ns &&
          end - s->last_active_end >= spec.keep_firing_for_ns) {
        Emit(s, AlertState::kResolved, partition, out, std::move(t));
      }
      break;
    }
  }
}

void Engine::Emit(SeriesState* s, AlertState to, int32_t partition, std::vector<Transition>* out,
                  Transition t) {
  t.tenant_id = s->tenant_id;
  t.rule_id = s->rule_id;
  t.rule_version = s->rule_version;
  t.device = s->device;
  t.sensor = s->sensor;
  t.fingerprint = s->fingerprint;
  t.from = s->state;
  t.to = to;
  t.sequence = ++s->sequence;
  t.partition = partition;
  s->state = to;
  if (to != AlertState::kFiring) s->has_clear_since = false;
  out->push_back(std::move(t));
}

std::string Engine::Snapshot(int32_t partition) const {
  telemetry::v1::AlertPartitionState st;
  // Tenants in order, each one's series sorted: equal states give equal bytes.
  for (auto it = partitions_.lower_bound({partition, std::numeric_limits<int64_t>::min()});
       it != partitions_.end() && it->first.first == partition; ++it) {
    const Partition& p = *it->second;
    auto* clock = st.add_tenants();
    clock->set_tenant_id(it->first.second);
    clock->set_max_event_ns(p.max_event);
    clock->set_watermark_ns(p.watermark);
    std::vector<const std::pair<const std::string, std::unique_ptr<SeriesState>>*> sorted;
    sorted.reserve(p.series.size());
    for (const auto& e : p.series) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
    for (const auto* e : sorted) {
      const SeriesState& s = *e->second;
      auto* o = st.add_series();
      o->set_tenant_id(s.tenant_id);
      o->set_rule_id(s.rule_id);
      o->set_rule_version(s.rule_version);
      o->set_device_id(s.device);
      o->set_sensor(s.sensor);
      for (const auto& [start, w] : s.windows) {
        auto* ow = o->add_windows();
        ow->set_start_ns(start);
        ow->set_count(w.count);
        ow->set_sum(w.sum);
        ow->set_min(w.min);
        ow->set_max(w.max);
        ow->set_first_ns(w.first_ns);
        ow->set_first(w.first);
        ow->set_last_ns(w.last_ns);
        ow->set_last(w.last);
      }
      o->set_state(static_cast<int32_t>(s.state));
      o->set_sequence(s.sequence);
      o->set_pending_since_ns(s.pending_since);
      o->set_has_clear_since(s.has_clear_since);
      o->set_clear_since_ns(s.clear_since);
      o->set_last_active_end_ns(s.last_active_end);
      o->set_last_window_end_ns(s.last_window_end);
      o->set_last_seen_ns(s.last_seen);
    }
  }
  std::string bytes;
  st.SerializeToString(&bytes);
  return bytes;
}

absl::Status Engine::Restore(int32_t partition, const std::string& bytes) {
  telemetry::v1::AlertPartitionState st;
  if (!st.ParseFromString(bytes)) {
    return absl::DataLossError("alert checkpoint of partition " + std::to_string(partition) +
                               " does not parse");
  }
  std::map<int64_t, std::unique_ptr<Partition>> streams;
  for (const auto& clock : st.tenants()) {
    auto p = std::make_unique<Partition>();
    p->max_event = clock.max_event_ns();
    p->watermark = clock.watermark_ns();
    streams[clock.tenant_id()] = std::move(p);
  }
  for (const auto& o : st.series()) {
    auto r = rules_by_id_.find(o.rule_id());
    if (r == rules_by_id_.end() || r->second->spec.tenant_id != o.tenant_id()) continue;
    if (o.state() < 0 || o.state() > static_cast<int32_t>(AlertState::kResolved)) {
      return absl::DataLossError("alert checkpoint of partition " + std::to_string(partition) +
                                 " has an unknown state " + std::to_string(o.state()));
    }
    auto s = std::make_unique<SeriesState>();
    s->rule = r->second;
    s->tenant_id = o.tenant_id();
    s->rule_id = o.rule_id();
    s->rule_version = o.rule_version();
    s->device = o.device_id();
    s->sensor = o.sensor();
    s->fingerprint = Fingerprint(s->tenant_id, s->rule_id, s->device, s->sensor);
    s->state = static_cast<AlertState>(o.state());
    s->sequence = o.sequence();
    s->pending_since = o.pending_since_ns();
    s->has_clear_since = o.has_clear_since();
    s->clear_since = o.clear_since_ns();
    s->last_active_end = o.last_active_end_ns();
    s->last_window_end = o.last_window_end_ns();
    s->last_seen = o.last_seen_ns();
    if (s->rule_version == r->second->spec.version) {
      for (const auto& ow : o.windows()) {
        Window& w = s->windows[ow.start_ns()];
        w.count = ow.count();
        w.sum = ow.sum();
        w.min = ow.min();
        w.max = ow.max();
        w.first_ns = ow.first_ns();
        w.first = ow.first();
        w.last_ns = ow.last_ns();
        w.last = ow.last();
      }
    } else {
      s->rule_version = r->second->spec.version;
      s->last_window_end = kNever;
    }
    auto& p = streams[s->tenant_id];
    if (!p) p = std::make_unique<Partition>();  // (a checkpoint always has its clock)
    SeriesState* raw = s.get();
    p->series[SeriesKey(s->rule_id, s->tenant_id, s->device, s->sensor)] = std::move(s);
    Schedule(p.get(), raw);
  }
  Drop(partition);
  for (auto& [tenant, p] : streams) partitions_[{partition, tenant}] = std::move(p);
  return absl::OkStatus();
}

void Engine::Drop(int32_t partition) {
  partitions_.erase(partitions_.lower_bound({partition, std::numeric_limits<int64_t>::min()}),
                    partitions_.lower_bound({partition + 1, std::numeric_limits<int64_t>::min()}));
}

int64_t Engine::Watermark(int32_t partition, int64_t tenant_id) const {
  auto it = partitions_.find({partition, tenant_id});
  return it == partitions_.end() ? kNever : it->second->watermark;
}

int64_t Engine::MaxEventTime(int32_t partition, int64_t tenant_id) const {
  auto it = partitions_.find({partition, tenant_id});
  return it == partitions_.end() ? kNever : it->second->max_event;
}

EngineStats Engine::stats() const {
  EngineStats s = stats_;
  s.series = 0;
  for (const auto& [id, p] : partitions_) s.series += static_cast<int64_t>(p->series.size());
  return s;
}

}  // namespace telemetry::alert
