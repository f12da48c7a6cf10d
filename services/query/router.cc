#include "services/query/router.h"

#include <algorithm>

#include "common/logging.h"

namespace telemetry::query {

using telemetry::v1::ConsistencyLevel;

RouterMetrics::RouterMetrics(MetricsRegistry* r)
    : primary_reads(
          r->AddCounter("query_source_reads_total", "Reads by source kind", "source=\"primary\"")),
      replica_reads(
          r->AddCounter("query_source_reads_total", "Reads by source kind", "source=\"replica\"")),
      replica_stale(r->AddCounter("query_replica_stale_total",
                                  "EVENTUAL reads that skipped a replica lagging too much")),
      replica_failures(
          r->AddCounter("query_replica_failures_total", "Failed replica reads and lag probes")),
      replica_skipped_open(r->AddCounter("query_replica_breaker_open_total",
                                         "Replica skipped because its circuit breaker is open")),
      stale_fallbacks(r->AddCounter("query_stale_fallbacks_total",
                                    "Primary unavailable: served from a lagging replica")),
      warehouse_reads(r->AddCounter("query_source_reads_total", "Reads by source kind",
                                    "source=\"warehouse\"")),
      warehouse_failures(r->AddCounter("query_warehouse_failures_total",
                                       "Failed warehouse reads and freshness probes")),
      warehouse_fallbacks(r->AddCounter(
          "query_warehouse_fallbacks_total",
          "ANALYTICS reads served from a replica (allow_fallback) while the warehouse was "
          "unavailable")) {}

bool IsSourceFailure(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

Router::Router(Source primary, std::vector<Source> replicas, const Clock* clock,
               RouterOptions options, RouterMetrics* metrics)
    : primary_(std::move(primary)), clock_(clock), options_(options), metrics_(metrics) {
  for (auto& s : replicas)
    replicas_.push_back(std::make_unique<Replica>(std::move(s), clock, options_));
}

void Router::SetWarehouse(Source warehouse) {
  warehouse_ = std::make_unique<Replica>(std::move(warehouse), clock_, options_);
  absl::MutexLock l(&warehouse_mu_);
  warehouse_problem_ = "not probed yet";
}

void Router::ProbeReplicas() {
  if (warehouse_ != nullptr) {
    // Probed even while its breaker is open: the probe is what tells that it
    // is back (reads wait for the breaker).
    auto lag = warehouse_->source.probe_lag();
    absl::MutexLock l(&warehouse_mu_);
    if (lag.ok()) {
      warehouse_->lag_s = std::max(0.0, *lag);
      warehouse_problem_.clear();
    } else {
      if (warehouse_->lag_s.load() < 1e9 || warehouse_problem_ != lag.status().message()) {
        metrics_->warehouse_failures->Inc();
        GetLogger("router")->warn("warehouse: freshness probe failed: {}", lag.status().ToString());
      }
      warehouse_->lag_s = 1e9;
      warehouse_problem_ = std::string(lag.status().message());
    }
  }
  for (auto& r : replicas_) {
    if (!r->breaker.Allow()) continue;
    auto lag = r->source.probe_lag();
    if (lag.ok()) {
      r->lag_s = *lag;
      r->breaker.RecordSuccess();
    } else {
      r->lag_s = 1e9;
      r->breaker.RecordFailure();
      metrics_->replica_failures->Inc();
      GetLogger("router")->warn("{}: lag probe failed: {}", r->source.name,
                                lag.status().ToString());
    }
  }
}

bool Router::AnyReplicaReachable() const {
  for (const auto& r : replicas_) {
    if (r->lag_s.load() < 1e9) return true;
  }
  return false;
}

std::vector<size_t> Router::Candidates(double max_staleness_s, bool ignore_staleness) {
  std::vector<size_t> out;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    if (!ignore_staleness && replicas_[i]->lag_s.load() > max_staleness_s) {
      metrics_->replica_stale->Inc();
      continue;
    }
    out.push_back(i);
  }
  if (ignore_staleness) {
    std::sort(out.begin(), out.end(), [&](size_t a, size_t b) {
      return replicas_[a]->lag_s.load() < replicas_[b]->lag_s.load();
    });
  } else if (!out.empty()) {
    // Spread load over the healthy ones.
    std::rotate(out.begin(), out.begin() + static_cast<long>(rr_++ % out.size()), out.end());
  }
  return out;
}

absl::Status Router::OnReplica(size_t i, const std::function<absl::Status(ReadingReader*)>& read,
                               telemetry::v1::ReadMetadata* md) {
  Replica& r = *replicas_[i];
  // Filled before the read, so a streaming read can attach it to its first
  // page; a retry elsewhere overwrites it.
  md->set_data_source(r.source.name);
  md->set_lag_seconds(r.lag_s.load());
  md->set_consistency_level(telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL);
  absl::Status st = read(r.source.store);
  if (IsSourceFailure(st)) {
    r.breaker.RecordFailure();
    metrics_->replica_failures->Inc();
    GetLogger("router")->warn("{} failed a read: {}", r.source.name, st.ToString());
    return st;
  }
  r.breaker.RecordSuccess();
  metrics_->replica_reads->Inc();
  return st;
}

absl::Status Router::Analytics(const std::function<absl::Status(ReadingReader*)>& read,
                               telemetry::v1::ReadMetadata* md, bool allow_fallback) {
  std::string problem;
  if (warehouse_->lag_s.load() >= 1e9) {
    absl::MutexLock l(&warehouse_mu_);
    problem = warehouse_problem_;
  } else if (!warehouse_->breaker.Allow()) {
    problem = "its reads failed repeatedly (circuit breaker open)";
  } else {
    md->set_data_source(warehouse_->source.name);
    md->set_lag_seconds(warehouse_->lag_s.load());
    md->set_consistency_level(telemetry::v1::CONSISTENCY_LEVEL_ANALYTICS);
    absl::Status st = read(warehouse_->source.store);
    if (!IsSourceFailure(st)) {
      warehouse_->breaker.RecordSuccess();
      if (st.ok()) metrics_->warehouse_reads->Inc();
      return st;
    }
    warehouse_->breaker.RecordFailure();
    metrics_->warehouse_failures->Inc();
    GetLogger("router")->warn("warehouse failed a read: {}", st.ToString());
    problem = std::string(st.message());
    // A streaming read that already sent pages fails rather than repeat them
    // elsewhere (the caller's read returns its first failure again).
    if (!allow_fallback)
      return absl::UnavailableError("the analytics warehouse failed: " + problem);
  }
  const std::string why = "the analytics warehouse is unavailable: " + problem;
  if (!allow_fallback) {
    return absl::UnavailableError(why +
                                  " (ANALYTICS reads never go to the primary; retry later, or set "
                                  "options.allow_fallback to read a replica)");
  }
  for (size_t i : Candidates(0, /*ignore_staleness=*/true)) {
    if (!replicas_[i]->breaker.Allow()) continue;
    absl::Status st = OnReplica(i, read, md);
    if (!IsSourceFailure(st)) {
      md->set_fallback(why);
      metrics_->warehouse_fallbacks->Inc();
      return st;
    }
  }
  return absl::UnavailableError(why + ", and no replica answered the fallback");
}

absl::Status Router::Read(ConsistencyLevel level, double max_staleness_s,
                          const std::function<absl::Status(ReadingReader*)>& read,
                          telemetry::v1::ReadMetadata* md, bool allow_fallback) {
  if (level == telemetry::v1::CONSISTENCY_LEVEL_ANALYTICS && warehouse_ != nullptr) {
    return Analytics(read, md, allow_fallback);
  }
  if (max_staleness_s <= 0) max_staleness_s = options_.default_max_staleness_s;
  if (level == telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL) {
    for (size_t i : Candidates(max_staleness_s, /*ignore_staleness=*/false)) {
      if (!replicas_[i]->breaker.Allow()) {
        metrics_->replica_skipped_open->Inc();
        continue;
      }
      absl::Status st = OnReplica(i, read, md);
      if (!IsSourceFailure(st)) return st;
    }
  }
  md->set_data_source(primary_.name);
  md->set_lag_seconds(0);
  md->set_consistency_level(level == telemetry::v1::CONSISTENCY_LEVEL_ANALYTICS
                                ? telemetry::v1::CONSISTENCY_LEVEL_ANALYTICS
                                : telemetry::v1::CONSISTENCY_LEVEL_STRONG);
  absl::Status st = read(primary_.store);
  if (level == telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL &&
      st.code() == absl::StatusCode::kUnavailable) {
    // The primary is down: an EVENTUAL read prefers a stale answer, with its
    // lag stated, to none.
    for (size_t i : Candidates(0, /*ignore_staleness=*/true)) {
      if (!replicas_[i]->breaker.Allow()) continue;
      absl::Status rst = OnReplica(i, read, md);
      if (!IsSourceFailure(rst)) {
        metrics_->stale_fallbacks->Inc();
        GetLogger("router")->warn("primary unavailable; served from {} ({:.1f} s behind)",
                                  replicas_[i]->source.name, replicas_[i]->lag_s.load());
        return rst;
      }
    }
    return st;
  }
  if (!st.ok()) return st;
  metrics_->primary_reads->Inc();
  return st;
}

}  // namespace telemetry::query
