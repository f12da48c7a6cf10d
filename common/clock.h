// Injected time: logic never calls now() directly, so windows, quotas and lag
// are testable.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace telemetry {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, nanoseconds since the Unix epoch.
  virtual int64_t NowNs() const = 0;
  // Monotonic time in nanoseconds (for intervals).
  virtual int64_t MonotonicNs() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowNs() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicNs() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  static SystemClock* Get() {
    static SystemClock clock;
    return &clock;
  }
};

// A clock tests move by hand.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_ns) : now_(now_ns) {}
  int64_t NowNs() const override { return now_.load(); }
  int64_t MonotonicNs() const override { return now_.load(); }
  void Advance(int64_t ns) { now_ += ns; }
  void Set(int64_t ns) { now_ = ns; }

 private:
  std::atomic<int64_t> now_;
};

inline constexpr int64_t kNsPerMs = 1'000'000;
inline constexpr int64_t kNsPerSec = 1'000'000'000;

}  // namespace telemetry
