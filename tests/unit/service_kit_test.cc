// The service kit's parts that need no server: periodic tasks and health.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/service/health.h"
#include "common/service/periodic.h"

namespace telemetry {
namespace {

TEST(PeriodicTask, RunsAtStartThenEveryIntervalAndStopsAtOnce) {
  std::atomic<int> runs{0};
  PeriodicTask task("count", absl::Seconds(30), [&] { ++runs; });
  for (int i = 0; i < 100 && runs == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(runs, 1);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(task.Stop());
  // Stop wakes the 30 s wait instead of sitting it out.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  EXPECT_EQ(runs, 1);
}

TEST(PeriodicTask, WithoutRunAtStartWaitsOneIntervalFirst) {
  std::atomic<int> runs{0};
  PeriodicTask task(
      "later", absl::Milliseconds(50), [&] { ++runs; }, /*run_at_start=*/false);
  EXPECT_EQ(runs, 0);
  for (int i = 0; i < 200 && runs < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GE(runs, 2);
  EXPECT_TRUE(task.Stop());
}

TEST(PeriodicTask, ARunStuckPastTheGraceIsLeftBehind) {
  // A run blocked in a client library (librdkafka waiting for a broker) must
  // not hold a shutdown: Stop gives up after its grace and says so.
  std::atomic<bool> release{false}, entered{false};
  auto* task = new PeriodicTask("stuck", absl::Seconds(1), [&] {
    entered = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  while (!entered) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(task->Stop(absl::Milliseconds(100)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  // (The service kit exits the process at this point; here the run is
  // released and the detached thread ends on its own before the task, which
  // it still uses, is freed.)
  release = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(task->Stop());
  delete task;
}

TEST(HealthState, ReadinessCarriesTheReasonAndShutdownIsFinal) {
  HealthState health({"svc", "svc/STRONG"}, "starting");
  std::string reason;
  EXPECT_FALSE(health.Ready(&reason));
  EXPECT_EQ(reason, "starting");
  health.Set({{"", true}, {"svc", true}, {"svc/STRONG", false}, {"unknown", true}}, true, "");
  EXPECT_TRUE(health.Ready(&reason));
  EXPECT_TRUE(health.Serving("svc"));
  EXPECT_FALSE(health.Serving("svc/STRONG"));
  EXPECT_FALSE(health.Serving("unknown"));  // not declared: ignored
  health.ShutDown();
  health.SetAll(true, "");
  EXPECT_FALSE(health.Serving(""));
  EXPECT_FALSE(health.Ready(&reason));
  EXPECT_EQ(reason, "shutting down");
}

}  // namespace
}  // namespace telemetry
