#include "common/deadline.h"

#include <algorithm>

namespace telemetry {
namespace {
thread_local std::optional<std::chrono::steady_clock::time_point> current_deadline;
}  // namespace

ScopedCallDeadline::ScopedCallDeadline(std::chrono::steady_clock::time_point deadline)
    : previous_(current_deadline) {
  current_deadline = previous_ ? std::min(*previous_, deadline) : deadline;
}

ScopedCallDeadline::~ScopedCallDeadline() { current_deadline = previous_; }

std::optional<std::chrono::steady_clock::time_point> CurrentCallDeadline() {
  return current_deadline;
}

}  // namespace telemetry
