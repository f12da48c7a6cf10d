// The query router's source choice: which database answers a read, given
// the consistency level the caller asked for, the replicas' measured lag and
// their circuit breakers. Knows nothing of gRPC or SQL.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/circuit_breaker.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/reading_reader.h"
#include "telemetry/v1/common.pb.h"

namespace telemetry::query {

struct RouterOptions {
  double default_max_staleness_s = 3.0;
  int breaker_threshold = 5;
  int64_t breaker_open_ns = 60 * kNsPerSec;
};

struct RouterMetrics {
  explicit RouterMetrics(MetricsRegistry* r);
  Counter* primary_reads;
  Counter* replica_reads;
  Counter* replica_stale;     // skipped: lag above the request's staleness
  Counter* replica_failures;  // a read or probe failed
  Counter* replica_skipped_open;
  Counter* stale_fallbacks;  // primary down: served from a lagging replica
  Counter* warehouse_reads;
  Counter* warehouse_failures;   // a read or probe failed
  Counter* warehouse_fallbacks;  // warehouse unavailable: served from a replica
};

// A database that can answer reads.
struct Source {
  std::string name;  // "primary" or "replica-<name>"
  ReadingReader* store = nullptr;
  // Seconds behind the primary, measured by the heartbeat (replicas).
  std::function<absl::StatusOr<double>()> probe_lag;
};

class Router {
 public:
  Router(Source primary, std::vector<Source> replicas, const Clock* clock, RouterOptions options,
         RouterMetrics* metrics);

  // The analytics warehouse (optional): ANALYTICS reads go there instead of
  // the primary. Its probe_lag is its freshness (now minus the time through
  // which everything produced is loaded); a probe that fails, or a warehouse
  // never loaded, makes it unavailable until the next probe succeeds.
  void SetWarehouse(Source warehouse);

  // Refreshes every replica's lag, and the warehouse's (called about twice a
  // second by main).
  void ProbeReplicas();

  // Runs `read` against the source the level calls for and fills `md`
  // (data_source, lag, level served). STRONG reads the primary; EVENTUAL
  // reads a healthy replica within `max_staleness_s` (<= 0: the default),
  // else the primary, and when the primary is unavailable the freshest
  // reachable replica, reporting its lag. A failing replica read is retried
  // on the primary. ANALYTICS reads the warehouse, reporting its freshness as
  // the lag, and never the primary; when the warehouse is unavailable it
  // fails with UNAVAILABLE, or with `allow_fallback` reads the freshest
  // reachable replica (level served EVENTUAL, `md->fallback` says why).
  // Without a warehouse (SetWarehouse), ANALYTICS reads the primary.
  absl::Status Read(telemetry::v1::ConsistencyLevel level, double max_staleness_s,
                    const std::function<absl::Status(ReadingReader*)>& read,
                    telemetry::v1::ReadMetadata* md, bool allow_fallback = false);

  bool has_warehouse() const { return warehouse_ != nullptr; }
  // Whether the warehouse's last probe succeeded (health of ANALYTICS).
  bool WarehouseReachable() const {
    return warehouse_ != nullptr && warehouse_->lag_s.load() < 1e9;
  }

  size_t replica_count() const { return replicas_.size(); }
  CircuitBreaker::State breaker_state(size_t replica) {
    return replicas_[replica]->breaker.state();
  }
  double lag_of(size_t replica) const { return replicas_[replica]->lag_s.load(); }
  // Whether the last lag probe of some replica succeeded (health).
  bool AnyReplicaReachable() const;

 private:
  struct Replica {
    Replica(Source s, const Clock* clock, const RouterOptions& o)
        : source(std::move(s)), breaker(clock, o.breaker_threshold, o.breaker_open_ns) {}
    Source source;
    CircuitBreaker breaker;
    std::atomic<double> lag_s{1e9};  // unknown until probed
  };
  // Indexes of replicas ordered by preference (lag, then round robin).
  std::vector<size_t> Candidates(double max_staleness_s, bool ignore_staleness);
  absl::Status OnReplica(size_t i, const std::function<absl::Status(ReadingReader*)>& read,
                         telemetry::v1::ReadMetadata* md);
  absl::Status Analytics(const std::function<absl::Status(ReadingReader*)>& read,
                         telemetry::v1::ReadMetadata* md, bool allow_fallback);

  Source primary_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::unique_ptr<Replica> warehouse_;
  // Why the warehouse's last probe failed (guarded: probes and reads race).
  mutable absl::Mutex warehouse_mu_;
  std::string warehouse_problem_ ABSL_GUARDED_BY(warehouse_mu_);
  const Clock* clock_;
  RouterOptions options_;
  RouterMetrics* metrics_;
  std::atomic<uint64_t> rr_{0};
};

// UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED and INTERNAL from a database mean
// the source is in trouble (not the request): count them against it.
bool IsSourceFailure(const absl::Status& st);

}  // namespace telemetry::query
