#include "common/timer.h"

#include "absl/time/time.h"

namespace telemetry {

Timer::Timer(const Clock* clock) : clock_(clock), thread_([this] { Loop(); }) {}

Timer::~Timer() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void Timer::Schedule(int64_t when, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  items_.push(Item{when, seq_++, std::move(fn)});
}

void Timer::Loop() {
  while (true) {
    std::function<void()> due;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      if (!items_.empty() && items_.top().when <= clock_->MonotonicNs()) {
        due = items_.top().fn;
        items_.pop();
      } else {
        int64_t wait_ns = items_.empty() ? 20'000'000 : items_.top().when - clock_->MonotonicNs();
        wait_ns = std::min<int64_t>(std::max<int64_t>(wait_ns, 0), 20'000'000);
        mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Nanoseconds(wait_ns));
        continue;
      }
    }
    due();
  }
}

}  // namespace telemetry
