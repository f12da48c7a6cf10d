// Retention's decision on one raw day partition (services/export/retention.h):
// a day goes only past every tenant's retention and with every tenant-hour
// archived at its hour's current content version; otherwise every reason it
// stays is listed.
#include "services/export/retention.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace telemetry {
namespace {

constexpr int64_t kHour = 3'600'000'000'000LL, kDay = 24 * kHour;
constexpr int64_t kDayStart = 20'000 * kDay;  // 2024-10-04

std::map<int64_t, TenantRetention> Tenants(int a_days, int b_days) {
  return {{1, {1, "acme", a_days}}, {2, {2, "beta", b_days}}};
}

// Two tenants with readings in hours 0 and 1, packed at version `packs`,
// archived at `archived`.
RetentionDay Day(int32_t packs, int32_t archived) {
  RetentionDay d;
  d.day_ns = kDayStart;
  for (int h = 0; h < 2; ++h) {
    d.hours.push_back({kDayStart + h * kHour, "packed", packs, false, false});
    for (int64_t t : {1, 2}) d.tenant_hours.push_back({t, kDayStart + h * kHour, archived});
  }
  d.segments = 40;
  d.readings = 144'000;
  return d;
}

bool Says(const RetentionDecision& d, const std::string& text) {
  for (const auto& r : d.reasons)
    if (r.find(text) != std::string::npos) return true;
  return false;
}

TEST(DecideRetention, PastEveryRetentionAndArchivedAtTheCurrentVersionDrops) {
  const int64_t now = kDayStart + kDay + 31 * kDay;
  RetentionDecision d = DecideRetention(Day(1, 1), Tenants(30, 30), now);
  EXPECT_TRUE(d.drop);
  EXPECT_EQ(d.tenants, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(d.readings, 144'000);
  ASSERT_EQ(d.reasons.size(), 1u);
  EXPECT_TRUE(Says(d, "past the raw retention of every tenant")) << d.reasons[0];
}

TEST(DecideRetention, OneTenantWithinItsRetentionKeepsTheDayAndIsNamed) {
  const int64_t now = kDayStart + kDay + 31 * kDay;
  RetentionDecision d = DecideRetention(Day(1, 1), Tenants(30, 90), now);
  EXPECT_FALSE(d.drop);
  ASSERT_EQ(d.reasons.size(), 1u);
  EXPECT_TRUE(Says(d, "tenant 2 (beta) (raw retention 90 days) keeps it until 2025-01-03"))
      << d.reasons[0];
  // The same day exactly at the end of the 30 days: still kept (until, not after).
  d = DecideRetention(Day(1, 1), Tenants(30, 30), kDayStart + kDay + 30 * kDay - 1);
  EXPECT_FALSE(d.drop);
  d = DecideRetention(Day(1, 1), Tenants(30, 30), kDayStart + kDay + 30 * kDay);
  EXPECT_TRUE(d.drop);
}

TEST(DecideRetention, AnHourNotArchivedOrArchivedAtAnOlderVersionKeepsTheDay) {
  const int64_t now = kDayStart + 100 * kDay;
  RetentionDecision d = DecideRetention(Day(2, -1), Tenants(30, 30), now);
  EXPECT_FALSE(d.drop);
  EXPECT_EQ(d.reasons.size(), 4u);
  EXPECT_TRUE(Says(d, "tenant 1 (acme) hour 00:00 is not archived"));
  EXPECT_TRUE(Says(d, "tenant 2 (beta) hour 01:00 is not archived"));
  d = DecideRetention(Day(2, 1), Tenants(30, 30), now);
  EXPECT_FALSE(d.drop);
  EXPECT_TRUE(Says(d,
                   "tenant 1 (acme) hour 01:00 is archived at content version 1, the hour "
                   "is at 2"));
  // Archived at a newer version than the content (an export during a
  // repack's listing): not older, so not a reason.
  EXPECT_TRUE(DecideRetention(Day(2, 3), Tenants(30, 30), now).drop);
}

TEST(DecideRetention, UnpackedRowsLatePendingOrAPackingClaimKeepTheDay) {
  const int64_t now = kDayStart + 100 * kDay;
  RetentionDay day = Day(1, 1);
  day.hours.push_back({kDayStart + 5 * kHour, "", 0, false, true});  // rows, no claim
  day.hours[0].late_pending = true;
  day.hours[1].state = "packing";
  RetentionDecision d = DecideRetention(day, Tenants(30, 30), now);
  EXPECT_FALSE(d.drop);
  EXPECT_TRUE(Says(d, "hour 00:00 has readings not packed yet"));
  EXPECT_TRUE(Says(d, "hour 01:00 has readings not packed yet"));
  EXPECT_TRUE(Says(d, "hour 05:00 has readings not packed yet"));
}

TEST(DecideRetention, AnEmptyDayWaitsForTheLongestRetentionOfAnyTenant) {
  RetentionDay empty;
  empty.day_ns = kDayStart;
  empty.hours.push_back({kDayStart + 3 * kHour, "dropped", 1, false, false});
  RetentionDecision d = DecideRetention(empty, Tenants(30, 90), kDayStart + 60 * kDay);
  EXPECT_FALSE(d.drop);
  EXPECT_TRUE(Says(d, "the longest raw retention, 90 days")) << d.reasons[0];
  EXPECT_TRUE(DecideRetention(empty, Tenants(30, 90), kDayStart + 92 * kDay).drop);
  // A tenant whose retention is not positive keeps everything, empty days too.
  EXPECT_FALSE(DecideRetention(empty, Tenants(30, 0), kDayStart + 1000 * kDay).drop);
  EXPECT_FALSE(DecideRetention(Day(1, 1), Tenants(0, 30), kDayStart + 1000 * kDay).drop);
}

TEST(DecideRetention, ManyReasonsAreCappedWithACount) {
  RetentionDay day;
  day.day_ns = kDayStart;
  for (int h = 0; h < 24; ++h) day.hours.push_back({kDayStart + h * kHour, "", 0, false, true});
  RetentionDecision d = DecideRetention(day, Tenants(30, 30), kDayStart + 100 * kDay);
  ASSERT_EQ(d.reasons.size(), 9u);
  EXPECT_EQ(d.reasons.back(), "... and 16 more");
}

}  // namespace
}  // namespace telemetry
