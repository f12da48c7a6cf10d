// A consecutive-failure circuit breaker: after `threshold` failures in a row
// the circuit opens for `open_ns`; then one trial is let through (half-open):
// success closes it, failure opens it again.
#pragma once

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace telemetry {

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  CircuitBreaker(const Clock* clock, int threshold = 5, int64_t open_ns = 60 * kNsPerSec)
      : clock_(clock), threshold_(threshold), open_ns_(open_ns) {}

  // Whether a call may go through now. In half-open state only one caller
  // gets true until its outcome is recorded.
  bool Allow() {
    absl::MutexLock l(&mu_);
    if (state_ == State::kOpen) {
      if (clock_->MonotonicNs() < opened_at_ + open_ns_) return false;
      state_ = State::kHalfOpen;
      trial_out_ = false;
    }
    if (state_ == State::kHalfOpen) {
      if (trial_out_) return false;
      trial_out_ = true;
    }
    return true;
  }
  void RecordSuccess() {
    absl::MutexLock l(&mu_);
    failures_ = 0;
    state_ = State::kClosed;
  }
  void RecordFailure() {
    absl::MutexLock l(&mu_);
    ++failures_;
    if (state_ == State::kHalfOpen || failures_ >= threshold_) {
      state_ = State::kOpen;
      opened_at_ = clock_->MonotonicNs();
      failures_ = 0;
    }
  }
  State state() {
    absl::MutexLock l(&mu_);
    if (state_ == State::kOpen && clock_->MonotonicNs() >= opened_at_ + open_ns_) {
      return State::kHalfOpen;
    }
    return state_;
  }

 private:
  const Clock* clock_;
  const int threshold_;
  const int64_t open_ns_;
  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kClosed;
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t opened_at_ ABSL_GUARDED_BY(mu_) = 0;
  bool trial_out_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace telemetry
