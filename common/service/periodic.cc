#include "common/service/periodic.h"

namespace telemetry {

PeriodicTask::PeriodicTask(std::string name, absl::Duration interval, std::function<void()> fn,
                           bool run_at_start)
    : name_(std::move(name)), fn_(std::move(fn)) {
  thread_ = std::thread([this, interval, run_at_start] { Loop(interval, run_at_start); });
}

PeriodicTask::~PeriodicTask() { Stop(); }

void PeriodicTask::Loop(absl::Duration interval, bool run_at_start) {
  bool first = true;
  while (true) {
    if (!(first && run_at_start)) {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), interval)) break;
    }
    first = false;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
    }
    fn_();
  }
  absl::MutexLock lock(&mu_);
  done_ = true;
}

bool PeriodicTask::Stop(absl::Duration grace) {
  if (!thread_.joinable()) return !abandoned_;
  bool ended = false;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    ended = mu_.AwaitWithTimeout(absl::Condition(&done_), grace);
  }
  if (!ended) {
    abandoned_ = true;
    thread_.detach();
    return false;
  }
  thread_.join();
  return true;
}

}  // namespace telemetry
