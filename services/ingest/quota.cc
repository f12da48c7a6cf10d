#include "services/ingest/quota.h"

#include <algorithm>
#include <cmath>

namespace telemetry::ingest {

bool QuotaLimiter::TryTake(int64_t tenant_id, double rate, double burst, int64_t n,
                           int64_t* retry_after_ns) {
  *retry_after_ns = 0;
  if (rate <= 0) return true;
  const double need = static_cast<double>(n);
  if (need > burst) {
    *retry_after_ns = -1;
    return false;
  }
  int64_t now = clock_->MonotonicNs();
  absl::MutexLock lock(&mu_);
  auto [it, fresh] = buckets_.try_emplace(tenant_id, Bucket{burst, now});
  Bucket& b = it->second;
  double elapsed_s = static_cast<double>(now - b.last_ns) / 1e9;
  b.tokens = std::min(burst, b.tokens + std::max(0.0, elapsed_s) * rate);
  b.last_ns = now;
  if (b.tokens >= need) {
    b.tokens -= need;
    return true;
  }
  *retry_after_ns = static_cast<int64_t>(std::ceil((need - b.tokens) / rate * 1e9));
  return false;
}

}  // namespace telemetry::ingest
