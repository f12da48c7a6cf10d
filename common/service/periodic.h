// A task run every interval on a thread of its own, stopped promptly: Stop()
// wakes the wait at once, and waits for a run in progress only as long as
// the caller allows (a run stuck in a client library, e.g. librdkafka waiting
// for a broker that went away, must not hold a shutdown forever).
#pragma once

#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace telemetry {

class PeriodicTask {
 public:
  // Starts at once: runs `fn` (first right away when `run_at_start`, else
  // after one interval), then every `interval` after the end of the last run.
  PeriodicTask(std::string name, absl::Duration interval, std::function<void()> fn,
               bool run_at_start = true);
  // Stops (waiting as long as the run in progress takes).
  ~PeriodicTask();

  // Stops: no new run starts. Returns true once the thread ended within
  // `grace`; false when a run is still going then (the thread is left to
  // finish on its own; the process should exit without waiting for it).
  bool Stop(absl::Duration grace = absl::InfiniteDuration());
  const std::string& name() const { return name_; }

 private:
  void Loop(absl::Duration interval, bool run_at_start);

  const std::string name_;
  std::function<void()> fn_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool abandoned_ = false;
  std::thread thread_;
};

}  // namespace telemetry
