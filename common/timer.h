// One thread running callbacks at given monotonic times (deadlines of
// pending calls). Callbacks must be short.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace telemetry {

class Timer {
 public:
  explicit Timer(const Clock* clock);
  ~Timer();  // drops callbacks not yet due
  void Schedule(int64_t when_monotonic_ns, std::function<void()> fn);

 private:
  struct Item {
    int64_t when;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Item& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  void Loop();
  const Clock* clock_;
  absl::Mutex mu_;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> items_ ABSL_GUARDED_BY(mu_);
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace telemetry
