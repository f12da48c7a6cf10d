// The deadline of the call the current thread is working for. The RPC layer
// sets it for the duration of a call; blocking adapters (the Postgres pool)
// bound their waits by it and cancel work still running when it passes, so a
// call past its deadline holds no connection and runs no statement.
#pragma once

#include <chrono>
#include <optional>

namespace telemetry {

class ScopedCallDeadline {
 public:
  explicit ScopedCallDeadline(std::chrono::steady_clock::time_point deadline);
  ~ScopedCallDeadline();
  ScopedCallDeadline(const ScopedCallDeadline&) = delete;
  ScopedCallDeadline& operator=(const ScopedCallDeadline&) = delete;

 private:
  std::optional<std::chrono::steady_clock::time_point> previous_;
};

// The innermost deadline set on this thread, if any.
std::optional<std::chrono::steady_clock::time_point> CurrentCallDeadline();

}  // namespace telemetry
