// Per-tenant token buckets (readings per second with a burst), in memory.
#pragma once

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace telemetry::ingest {

class QuotaLimiter {
 public:
  explicit QuotaLimiter(const Clock* clock) : clock_(clock) {}
  // Takes `n` tokens from the tenant's bucket (refilled at `rate` per second
  // up to `burst`). All or nothing: on refusal nothing is taken and
  // `*retry_after_ns` says when `n` tokens will be there (-1: never, since
  // n > burst). rate <= 0 means unlimited.
  bool TryTake(int64_t tenant_id, double rate, double burst, int64_t n, int64_t* retry_after_ns);

 private:
  struct Bucket {
    double tokens;
    int64_t last_ns;
  };
  const Clock* clock_;
  absl::Mutex mu_;
  absl::flat_hash_map<int64_t, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace telemetry::ingest
