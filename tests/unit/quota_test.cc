#include "services/ingest/quota.h"

#include <gtest/gtest.h>

namespace telemetry::ingest {
namespace {

TEST(Quota, BurstThenRefillAtRate) {
  FakeClock clock(0);
  QuotaLimiter q(&clock);
  int64_t retry = 0;
  EXPECT_TRUE(q.TryTake(1, 100, 200, 200, &retry));
  EXPECT_FALSE(q.TryTake(1, 100, 200, 50, &retry));
  EXPECT_EQ(retry, 500 * kNsPerMs);  // 50 tokens at 100/s
  clock.Advance(500 * kNsPerMs);
  EXPECT_TRUE(q.TryTake(1, 100, 200, 50, &retry));
  EXPECT_FALSE(q.TryTake(1, 100, 200, 1, &retry));
}

TEST(Quota, RefusalTakesNothing) {
  FakeClock clock(0);
  QuotaLimiter q(&clock);
  int64_t retry = 0;
  EXPECT_TRUE(q.TryTake(1, 10, 100, 90, &retry));
  EXPECT_FALSE(q.TryTake(1, 10, 100, 20, &retry));  // only 10 left
  EXPECT_TRUE(q.TryTake(1, 10, 100, 10, &retry));   // the 10 are still there
}

TEST(Quota, TenantsHaveSeparateBuckets) {
  FakeClock clock(0);
  QuotaLimiter q(&clock);
  int64_t retry = 0;
  EXPECT_TRUE(q.TryTake(1, 10, 10, 10, &retry));
  EXPECT_FALSE(q.TryTake(1, 10, 10, 1, &retry));
  EXPECT_TRUE(q.TryTake(2, 10, 10, 10, &retry));
}

TEST(Quota, RequestLargerThanBurstCanNeverPass) {
  FakeClock clock(0);
  QuotaLimiter q(&clock);
  int64_t retry = 0;
  EXPECT_FALSE(q.TryTake(1, 10, 10, 11, &retry));
  EXPECT_EQ(retry, -1);
}

TEST(Quota, ZeroRateMeansUnlimited) {
  FakeClock clock(0);
  QuotaLimiter q(&clock);
  int64_t retry = 0;
  EXPECT_TRUE(q.TryTake(1, 0, 0, 1'000'000, &retry));
}

}  // namespace
}  // namespace telemetry::ingest
