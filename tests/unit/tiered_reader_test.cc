// TieredReader: reads over hours dropped from the database answered from the
// archive, merged with the database's hours. Every answer is compared with
// the same read of one reader holding every reading (as before the drop).
#include "services/query/tiered_reader.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "common/testing/fakes.h"

namespace telemetry::query {
namespace {

constexpr int64_t kHour = kColdHourNs;
constexpr int64_t kT0 = 1'700'000'000LL * 1'000'000'000LL / kHour * kHour;

// The archive side over readings a test adds: the dropped hours and their
// readings by (tenant, hour, device).
class FakeColdReadings final : public ColdReadings {
 public:
  void Drop(int64_t hour) { dropped_.insert(hour); }
  void Add(int64_t tenant, const ReadingRow& r) {
    const int64_t hour = r.ts_ns - ((r.ts_ns % kHour) + kHour) % kHour;
    rows_[{tenant, hour, r.device}].push_back(r);
  }
  void Fail(absl::Status st) { fail_ = std::move(st); }
  int device_hours() const { return device_hours_; }

  absl::StatusOr<std::vector<int64_t>> DroppedHours(int64_t tenant_id, int64_t from_ns,
                                                    int64_t to_ns) override {
    std::vector<int64_t> out;
    for (int64_t h : dropped_) {
      bool any = false;
      for (const auto& [key, rows] : rows_)
        any = any || (std::get<0>(key) == tenant_id && std::get<1>(key) == h);
      if (any && h < to_ns && h + kHour > from_ns) out.push_back(h);
    }
    return out;
  }
  absl::StatusOr<std::shared_ptr<const std::vector<ReadingRow>>> DeviceHour(
      int64_t tenant_id, int64_t hour_ns, const std::string& device) override {
    ++device_hours_;
    if (!fail_.ok()) return fail_;
    auto out = std::make_shared<std::vector<ReadingRow>>();
    auto it = rows_.find({tenant_id, hour_ns, device});
    if (it != rows_.end()) *out = it->second;
    std::sort(out->begin(), out->end(), [](const ReadingRow& a, const ReadingRow& b) {
      return std::tie(a.sensor, a.unit, a.ts_ns) < std::tie(b.sensor, b.unit, b.ts_ns);
    });
    return out;
  }

 private:
  std::set<int64_t> dropped_;
  std::map<std::tuple<int64_t, int64_t, std::string>, std::vector<ReadingRow>> rows_;
  absl::Status fail_;
  int device_hours_ = 0;
};

std::string Show(const ReadingRow& r) {
  return absl::StrCat(r.device, "/", r.sensor, "/", r.unit, "@", r.ts_ns - kT0, "=", r.d);
}
std::vector<std::string> Show(const std::vector<ReadingRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(Show(r));
  return out;
}

// One tenant's readings over 12 hours: two devices, three series of two
// sensors (one sensor with two units), uneven gaps; hours 1, 2, 5, 8 and 11
// dropped (the database forgets them, the archive has them).
class TieredReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(7);
    const std::vector<std::pair<std::string, std::string>> series = {
        {"a", ""}, {"a", "c"}, {"b", ""}};
    for (const std::string device : {"d1", "d2"}) {
      for (const auto& [sensor, unit] : series) {
        // Series "b" of d2 only has readings in dropped hours.
        for (int64_t t = kT0 + static_cast<int64_t>(rng() % 600) * kNsPerSec; t < kT0 + 12 * kHour;
             t += static_cast<int64_t>(60 + rng() % 1500) * kNsPerSec) {
          const int64_t hour = (t - kT0) / kHour;
          if (device == "d2" && sensor == "b" && hour != 2 && hour != 8) continue;
          ReadingRow r;
          r.device = device;
          r.sensor = sensor;
          r.unit = unit;
          r.ts_ns = t;
          r.d = static_cast<double>(rng() % 1000);
          all_.Add(1, r);
          hot_.Add(1, r);
          cold_.Add(1, r);
          // Another tenant's readings, which no read of tenant 1 may return.
          all_.Add(2, r);
          hot_.Add(2, r);
          cold_.Add(2, r);
        }
      }
    }
    for (int64_t h : {1, 2, 5, 8, 11}) {
      cold_.Drop(kT0 + h * kHour);
      hot_.Forget(kT0 + h * kHour, kT0 + (h + 1) * kHour);
    }
  }

  // Every page of a Range, concatenated.
  static std::vector<ReadingRow> RangeAll(ReadingReader& r, const RangeQuery& q,
                                          size_t* pages = nullptr) {
    std::vector<ReadingRow> out;
    absl::Status st = r.Range(q, [&](std::vector<ReadingRow>&& rows) {
      EXPECT_FALSE(rows.empty());
      EXPECT_LE(static_cast<int64_t>(rows.size()), q.page_size);
      if (pages) ++*pages;
      out.insert(out.end(), rows.begin(), rows.end());
      return true;
    });
    EXPECT_TRUE(st.ok()) << st;
    return out;
  }

  testing::FakeReadingReader all_, hot_;
  FakeColdReadings cold_;
};

TEST_F(TieredReaderTest, RangesEqualTheUndroppedAnswerWithCursorsLimitsAndPages) {
  std::mt19937_64 rng(11);
  const std::vector<std::vector<std::string>> sensor_sets = {{}, {"a"}, {"b"}, {"b", "a"}, {"x"}};
  int reads_with_cold = 0;
  for (int i = 0; i < 400; ++i) {
    RangeQuery q;
    q.tenant_id = 1;
    q.device = rng() % 2 ? "d1" : "d2";
    q.sensors = sensor_sets[rng() % sensor_sets.size()];
    q.start_ns = kT0 - kHour + static_cast<int64_t>(rng() % (14 * 3600)) * kNsPerSec;
    q.end_ns = q.start_ns + static_cast<int64_t>(rng() % (8 * 3600)) * kNsPerSec;
    q.page_size = static_cast<int32_t>(1 + rng() % 9);
    q.limit = rng() % 3 == 0 ? 0 : static_cast<int64_t>(rng() % 40);
    const std::vector<ReadingRow> want = RangeAll(all_, q);
    TieredReader tiered(&hot_, &cold_);
    ASSERT_EQ(Show(RangeAll(tiered, q)), Show(want)) << "read " << i;
    if (tiered.tiers() & kColdTier) ++reads_with_cold;
    // Resumed from every cursor a client could hold: the rest is the same.
    if (!want.empty() && q.limit == 0) {
      const size_t at = rng() % want.size();
      RangeQuery resumed = q;
      resumed.after_sensor = want[at].sensor;
      resumed.after_unit = want[at].unit;
      resumed.after_ts_ns = want[at].ts_ns;
      TieredReader t2(&hot_, &cold_);
      EXPECT_EQ(Show(RangeAll(t2, resumed)),
                Show(std::vector<ReadingRow>(want.begin() + static_cast<long>(at) + 1, want.end())))
          << "read " << i << " resumed after " << Show(want[at]);
    }
  }
  EXPECT_GT(reads_with_cold, 200);
}

TEST_F(TieredReaderTest, AClientPagingWithLimitsReadsEveryReadingOnce) {
  RangeQuery q;
  q.tenant_id = 1;
  q.device = "d1";
  q.start_ns = kT0;
  q.end_ns = kT0 + 12 * kHour;
  q.page_size = 4;
  q.limit = 7;
  std::vector<ReadingRow> got;
  for (int calls = 0; calls < 10'000; ++calls) {
    TieredReader tiered(&hot_, &cold_);
    auto part = RangeAll(tiered, q);
    got.insert(got.end(), part.begin(), part.end());
    if (static_cast<int64_t>(part.size()) < q.limit) break;
    q.after_sensor = part.back().sensor;
    q.after_unit = part.back().unit;
    q.after_ts_ns = part.back().ts_ns;
  }
  RangeQuery whole = q;
  whole.limit = 0;
  whole.after_sensor.clear();
  EXPECT_EQ(Show(got), Show(RangeAll(all_, whole)));
  EXPECT_GT(got.size(), 50u);
}

TEST_F(TieredReaderTest, ARangeOutsideTheDroppedHoursIsTheDatabasesAlone) {
  RangeQuery q;
  q.tenant_id = 1;
  q.device = "d1";
  q.start_ns = kT0 + 3 * kHour;
  q.end_ns = kT0 + 5 * kHour;
  q.page_size = 1000;
  TieredReader tiered(&hot_, &cold_);
  EXPECT_EQ(Show(RangeAll(tiered, q)), Show(RangeAll(all_, q)));
  EXPECT_EQ(tiered.tiers(), kHotTier);
  EXPECT_EQ(cold_.device_hours(), 0);
  EXPECT_EQ(TieredSourceName("replica-1", tiered.tiers()), "replica-1");
}

TEST_F(TieredReaderTest, SourcesAreNamedByTheTiersThatAnswered) {
  RangeQuery q;
  q.tenant_id = 1;
  q.device = "d1";
  q.start_ns = kT0 + kHour;
  q.end_ns = kT0 + 3 * kHour;  // hours 1 and 2: both dropped
  q.page_size = 1000;
  TieredReader cold_only(&hot_, &cold_);
  EXPECT_FALSE(RangeAll(cold_only, q).empty());
  EXPECT_EQ(TieredSourceName("primary", cold_only.tiers()), "archive");
  q.end_ns = kT0 + 4 * kHour;
  TieredReader both(&hot_, &cold_);
  EXPECT_EQ(Show(RangeAll(both, q)), Show(RangeAll(all_, q)));
  EXPECT_EQ(TieredSourceName("primary", both.tiers()), "primary+archive");
}

TEST_F(TieredReaderTest, PlaybackEqualsTheUndroppedAnswerWithNeighboursInEitherTier) {
  std::mt19937_64 rng(5);
  const std::vector<std::vector<std::string>> sensor_sets = {{}, {"a"}, {"b"}, {"x"}};
  for (int i = 0; i < 300; ++i) {
    const std::string device = rng() % 2 ? "d1" : "d2";
    const auto& sensors = sensor_sets[rng() % sensor_sets.size()];
    const int64_t from = kT0 - kHour + static_cast<int64_t>(rng() % (14 * 3600)) * kNsPerSec;
    const int64_t to = from + static_cast<int64_t>(rng() % 1800) * kNsPerSec;
    auto want = all_.Playback(1, device, sensors, from, to);
    ASSERT_TRUE(want.ok());
    TieredReader tiered(&hot_, &cold_);
    auto got = tiered.Playback(1, device, sensors, from, to);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(Show(got->inside), Show(want->inside)) << "read " << i;
    EXPECT_EQ(Show(got->before), Show(want->before)) << "read " << i;
    EXPECT_EQ(Show(got->after), Show(want->after)) << "read " << i;
  }
}

TEST_F(TieredReaderTest, LatestFindsSeriesWhoseNewestReadingWasDropped) {
  // Hour 11, the last, is dropped: most series' newest reading is there; d2's
  // "b" has readings in dropped hours only.
  for (const auto& sensors : std::vector<std::vector<std::string>>{{}, {"b"}, {"a", "x"}}) {
    auto want = all_.Latest(1, {"d1", "d2", "d3"}, sensors);
    ASSERT_TRUE(want.ok());
    TieredReader tiered(&hot_, &cold_);
    auto got = tiered.Latest(1, {"d1", "d2", "d3"}, sensors);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(Show(*got), Show(*want));
    EXPECT_EQ(tiered.tiers(), kHotTier | kColdTier);
  }
  // Nothing newer in the archive than the database's newest: not read.
  cold_ = FakeColdReadings();
  cold_.Drop(kT0 + kHour);
  TieredReader tiered(&hot_, &cold_);
  auto got = tiered.Latest(1, {"d1"}, {"a"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), 2u);
  EXPECT_EQ(cold_.device_hours(), 0);
  EXPECT_EQ(tiered.tiers(), kHotTier);
}

TEST_F(TieredReaderTest, AnArchiveFailureFailsTheReadWithItsStatus) {
  cold_.Fail(absl::DataLossError("archive file x is missing"));
  RangeQuery q;
  q.tenant_id = 1;
  q.device = "d1";
  q.start_ns = kT0;
  q.end_ns = kT0 + 3 * kHour;
  q.page_size = 1000;
  TieredReader tiered(&hot_, &cold_);
  absl::Status st = tiered.Range(q, [](std::vector<ReadingRow>&&) { return true; });
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  auto p = tiered.Playback(1, "d1", {}, kT0 + kHour + 10, kT0 + kHour + 20);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kDataLoss) << p.status();
}

TEST_F(TieredReaderTest, WithoutAnArchiveTheDatabaseAnswersAlone) {
  RangeQuery q;
  q.tenant_id = 1;
  q.device = "d1";
  q.start_ns = kT0;
  q.end_ns = kT0 + 12 * kHour;
  q.page_size = 1000;
  TieredReader tiered(&hot_, nullptr);
  EXPECT_EQ(Show(RangeAll(tiered, q)), Show(RangeAll(hot_, q)));
  EXPECT_EQ(tiered.tiers(), kHotTier);
}

}  // namespace
}  // namespace telemetry::query
