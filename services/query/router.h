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

  // Refreshes every replica's lag (called about twice a second by main).
  void ProbeReplicas();

  // Runs `read` against the source the level calls for and fills `md`
  // (data_source, lag, level served). STRONG and ANALYTICS read the primary;
  // EVENTUAL reads a healthy replica within `max_staleness_s` (<= 0: the
  // default), else the primary, and when the primary is unavailable the
  // freshest reachable replica, reporting its lag. A failing replica read is
  // retried on the primary.
  absl::Status Read(telemetry::v1::ConsistencyLevel level, double max_staleness_s,
                    const std::function<absl::Status(ReadingReader*)>& read,
                    telemetry::v1::ReadMetadata* md);

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

  Source primary_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  const Clock* clock_;
  RouterOptions options_;
  RouterMetrics* metrics_;
  std::atomic<uint64_t> rr_{0};
};

// UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED and INTERNAL from a database mean
// the source is in trouble (not the request): count them against it.
bool IsSourceFailure(const absl::Status& st);

}  // namespace telemetry::query
