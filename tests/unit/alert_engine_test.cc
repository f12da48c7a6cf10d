// The alert evaluator with no Kafka and no clock: windows, watermarks,
// lateness, for, hysteresis, keep_firing_for, no-data, selectors, and the
// determinism the exactly-once design rests on (snapshot + replay).
#include <gtest/gtest.h>

#include <tuple>

#include "services/alert/engine.h"

namespace telemetry::alert {
namespace {

constexpr int64_t kS = 1'000'000'000;

struct R {
  int64_t ts_s;
  double v;
};

telemetry::v1::ReadingBatch Batch(const std::string& device, const std::string& sensor,
                                  const std::vector<R>& readings, int64_t tenant = 1,
                                  std::map<std::string, std::string> labels = {}) {
  telemetry::v1::ReadingBatch b;
  b.set_tenant_id(tenant);
  auto* s = b.add_series();
  s->set_device_id(device);
  s->set_sensor(sensor);
  for (const auto& [k, v] : labels) (*s->mutable_labels())[k] = v;
  int64_t prev = 0;
  for (const R& r : readings) {
    s->add_timestamp_delta_ns(r.ts_s * kS - prev);
    prev = r.ts_s * kS;
    s->add_double_values(r.v);
  }
  return b;
}

RuleSpec Threshold(const std::string& id, Comparison c, double threshold,
                   Aggregate a = Aggregate::kAvg, int64_t window_s = 60) {
  RuleSpec r;
  r.tenant_id = 1;
  r.rule_id = id;
  r.window_ns = window_s * kS;
  r.aggregate = a;
  r.comparison = c;
  r.threshold = threshold;
  return r;
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest()
      : engine_(Options(), [this](int64_t t, const std::string& d) { return Project(t, d); }) {}

  static EngineOptions Options() {
    EngineOptions o;
    o.allowed_lateness_ns = 5 * kS;
    return o;
  }

  absl::StatusOr<std::string> Project(int64_t tenant, const std::string& device) {
    ++lookups_;
    if (lookup_fails_) return absl::UnavailableError("metadata down");
    return device.rfind("plant-", 0) == 0 ? std::string("factory") : std::string("home");
  }

  std::vector<Transition> Feed(const telemetry::v1::ReadingBatch& b, int32_t partition = 0) {
    std::vector<Transition> out;
    EXPECT_TRUE(engine_.Apply(partition, b, &out).ok());
    return out;
  }

  // A steady reading once a second on device `d` from `from_s` to `to_s`
  // (inclusive), value `v`.
  std::vector<Transition> Steady(const std::string& d, int64_t from_s, int64_t to_s, double v) {
    std::vector<Transition> all;
    for (int64_t t = from_s; t <= to_s; ++t) {
      auto got = Feed(Batch(d, "temp", {{t, v}}));
      all.insert(all.end(), got.begin(), got.end());
    }
    return all;
  }

  Engine engine_;
  int lookups_ = 0;
  bool lookup_fails_ = false;
};

TEST(AlertRule, GlobMatch) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("dev-*", "dev-17"));
  EXPECT_TRUE(GlobMatch("d?v-*-x", "dev-17-x"));
  EXPECT_FALSE(GlobMatch("dev-*", "device"));
  EXPECT_TRUE(GlobMatch("*a*b*", "xxaxxbxx"));
  EXPECT_FALSE(GlobMatch("*a*b", "xxaxxbxx"));
  EXPECT_TRUE(GlobMatch("exact", "exact"));
  EXPECT_FALSE(GlobMatch("exact", "exactly"));
}

TEST(AlertRule, FingerprintIsStableAndDistinct) {
  EXPECT_EQ(Fingerprint(1, "r", "d", "s"), Fingerprint(1, "r", "d", "s"));
  EXPECT_NE(Fingerprint(1, "r", "d", "s"), Fingerprint(2, "r", "d", "s"));
  EXPECT_NE(Fingerprint(1, "r", "ab", "c"), Fingerprint(1, "r", "a", "bc"));
  EXPECT_EQ(Fingerprint(1, "r", "d", "s").size(), 16u);
}

TEST_F(EngineTest, WindowIsEvaluatedWhenTheWatermarkPassesItsEnd) {
  engine_.SetRules({Threshold("hot", Comparison::kGt, 30)});
  // Window [0, 60) averages 40. Watermark = newest - 5 s.
  EXPECT_TRUE(Steady("d1", 0, 64, 40).empty());  // watermark 59: still open
  auto t = Feed(Batch("d1", "temp", {{65, 40}}));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, AlertState::kFiring);
  EXPECT_EQ(t[0].from, AlertState::kInactive);
  EXPECT_EQ(t[0].sequence, 1);
  EXPECT_DOUBLE_EQ(t[0].value, 40);
  EXPECT_EQ(t[0].window_start_ns, 0);
  EXPECT_EQ(t[0].window_end_ns, 60 * kS);
  EXPECT_EQ(t[0].event_time_ns, 60 * kS);
  EXPECT_EQ(t[0].fingerprint, Fingerprint(1, "hot", "d1", "temp"));
  // Still above: no new transition per window.
  EXPECT_TRUE(Steady("d1", 66, 200, 40).empty());
}

TEST_F(EngineTest, LateDataWithinTheLatenessChangesTheOutcomePastItDoesNot) {
  engine_.SetRules({Threshold("hot", Comparison::kGt, 30)});
  // Within: window [0, 60) is at 10 and still open at watermark 57 when a
  // reading of 2000 for t=58 arrives; the average crosses 30.
  Steady("d1", 0, 50, 10);
  EXPECT_TRUE(Feed(Batch("d1", "temp", {{62, 10}})).empty());
  EXPECT_TRUE(Feed(Batch("d1", "temp", {{58, 2000}})).empty());
  auto t = Feed(Batch("d1", "temp", {{66, 10}}));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, AlertState::kFiring);
  EXPECT_EQ(engine_.stats().late, 0);

  // Past it: device d2 on partition 1; the window closed at watermark 65
  // before the high reading came.
  for (int64_t s = 0; s <= 50; ++s) Feed(Batch("d2", "temp", {{s, 10}}), 1);
  std::vector<Transition> out;
  ASSERT_TRUE(engine_.Apply(1, Batch("d2", "temp", {{70, 10}}), &out).ok());
  ASSERT_TRUE(engine_.Apply(1, Batch("d2", "temp", {{58, 2000}}), &out).ok());
  ASSERT_TRUE(engine_.Apply(1, Batch("d2", "temp", {{140, 10}}), &out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(engine_.stats().late, 1);
}

TEST_F(EngineTest, ForHoldsTheAlertPendingAndABreakMakesItInactive) {
  RuleSpec r = Threshold("hot", Comparison::kGt, 30);
  r.for_ns = 120 * kS;
  engine_.SetRules({r});
  auto t = Steady("d1", 0, 65, 40);  // window 0 closes: holding for 60 s of 120
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, AlertState::kPending);
  t = Steady("d1", 66, 119, 20);  // window 1 at (40*6 + 20*54)/60 = 22: breaks
  t = Feed(Batch("d1", "temp", {{125, 40}}));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].from, AlertState::kPending);
  EXPECT_EQ(t[0].to, AlertState::kInactive);
  // Two windows in a row above: PENDING at the first, FIRING at the second.
  t = Steady("d1", 126, 305, 40);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].to, AlertState::kPending);
  EXPECT_EQ(t[0].window_end_ns, 180 * kS);
  EXPECT_EQ(t[1].to, AlertState::kFiring);
  EXPECT_EQ(t[1].window_end_ns, 240 * kS);
  EXPECT_EQ(t[1].sequence, 4);
}

TEST_F(EngineTest, HysteresisKeepsItFiringUntilTheResolveThreshold) {
  RuleSpec r = Threshold("hot", Comparison::kGt, 30);
  r.resolve_threshold = 25;
  engine_.SetRules({r});
  auto t = Steady("d1", 0, 59, 40);
  t = Steady("d1", 60, 119, 28);  // window 0 fires at watermark 60+
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, AlertState::kFiring);
  t = Steady("d1", 120, 179, 31);  // window 1 at 28: below 30, above 25: still firing
  EXPECT_TRUE(t.empty());
  t = Steady("d1", 180, 239, 20);  // window 2 at 31
  EXPECT_TRUE(t.empty());
  t = Steady("d1", 240, 300, 20);  // window 3 at 20: resolves
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, AlertState::kResolved);
  EXPECT_DOUBLE_EQ(t[0].value, 20);
  EXPECT_EQ(t[0].window_start_ns, 180 * kS);
}

TEST_F(EngineTest, ResolveForNeedsTheClearToLast) {
  RuleSpec r = Threshold("hot", Comparison::kGt, 30);
  r.resolve_for_ns = 120 * kS;
  engine_.SetRules({r});
  Steady("d1", 0, 59, 40);
  auto t = Steady("d1", 60, 119, 10);
  ASSERT_EQ(t.size(), 1u);         // fired
  t = Steady("d1", 120, 179, 40);  // window 1 clear (60 s of 120)
  EXPECT_TRUE(t.empty());
  t = Steady("d1", 180, 239, 10);  // window 2 holds again: the clear restarts
  EXPECT_TRUE(t.empty());
  t = Steady("d1", 240, 299, 10);  // window 3 clear: 60 s
  EXPECT_TRUE(t.empty());
  t = Steady("d1", 300, 370, 10);  // window 4 clear: 120 s → resolved
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, AlertState::kResolved);
  EXPECT_EQ(t[0].window_end_ns, 300 * kS);
}

TEST_F(EngineTest, KeepFiringForOutlastsTheConditionAndASilentSeries) {
  RuleSpec r = Threshold("hot", Comparison::kGt, 30);
  r.keep_firing_for_ns = 150 * kS;
  engine_.SetRules({r});
  Steady("d1", 0, 59, 40);
  auto t = Steady("d1", 60, 119, 10);
  ASSERT_EQ(t.size(), 1u);         // fired, last held at 60
  t = Steady("d1", 120, 239, 10);  // windows ending 120, 180: 120 s since: keeps firing
  EXPECT_TRUE(t.empty());
  t = Steady("d1", 240, 245, 10);  // window ending 240: 180 s ≥ 150 → resolved
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, AlertState::kResolved);
  EXPECT_EQ(t[0].window_end_ns, 240 * kS);

  // A series that goes silent while FIRING resolves when keep_firing_for
  // runs out on the partition's watermark (driven here by another device).
  Steady("d2", 300, 359, 40);
  t = Steady("d3", 360, 366, 0);
  ASSERT_EQ(t.size(), 1u);  // d2 fired (window 300-360)
  EXPECT_EQ(t[0].device, "d2");
  t = Steady("d3", 367, 514, 0);  // watermark 509: not yet 360 + 150
  EXPECT_TRUE(t.empty());
  t = Steady("d3", 515, 516, 0);  // watermark 510
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].device, "d2");
  EXPECT_EQ(t[0].to, AlertState::kResolved);
  EXPECT_FALSE(t[0].has_value);
  EXPECT_EQ(t[0].event_time_ns, 510 * kS);
}

TEST_F(EngineTest, NoDataFiresOnTheStreamPositionAndResolvesWhenDataReturns) {
  RuleSpec r;
  r.tenant_id = 1;
  r.rule_id = "silent";
  r.selector.device = "d1";
  r.no_data_ns = 30 * kS;
  engine_.SetRules({r});
  Feed(Batch("d1", "temp", {{0, 1}}));
  // Another device moves the partition's watermark; d1 says nothing.
  auto t = Steady("d2", 1, 35, 1);  // watermark 30: d1 silent for 30 s
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, AlertState::kFiring);
  EXPECT_TRUE(t[0].no_data);
  EXPECT_FALSE(t[0].has_value);
  EXPECT_EQ(t[0].event_time_ns, 30 * kS);
  EXPECT_TRUE(Steady("d2", 36, 60, 1).empty());  // fires once
  t = Feed(Batch("d1", "temp", {{61, 1}}));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, AlertState::kResolved);
  EXPECT_EQ(t[0].event_time_ns, 61 * kS);
  EXPECT_EQ(t[0].sequence, 2);
  // A device never seen is not watched (nothing to fire on).
  EXPECT_TRUE(Steady("d2", 61, 200, 1).size() == 1u);  // d1 silent again from 61
}

TEST_F(EngineTest, AnIdlePartitionDetectsSilenceWhenTheServiceAdvancesItsWatermark) {
  RuleSpec r;
  r.tenant_id = 1;
  r.rule_id = "silent";
  r.no_data_ns = 30 * kS;
  engine_.SetRules({r});
  Feed(Batch("d1", "temp", {{100, 1}}));
  std::vector<Transition> out;
  engine_.AdvanceWatermark(0, 129 * kS, &out);
  EXPECT_TRUE(out.empty());
  engine_.AdvanceWatermark(0, 131 * kS, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].event_time_ns, 130 * kS);
  engine_.AdvanceWatermark(0, 100 * kS, &out);  // never back
  EXPECT_EQ(engine_.Watermark(0, 1), 131 * kS);
}

TEST_F(EngineTest, AggregatesAndComparisons) {
  struct Case {
    Aggregate a;
    Comparison c;
    double threshold;
  };
  // Window [0, 10): readings 1 at t=0, 5 at t=4, 3 at t=8: avg 3, min 1,
  // max 5, count 3, sum 9, last 3, rate (3-1)/8 = 0.25.
  const std::vector<Case> fire = {
      {Aggregate::kAvg, Comparison::kEq, 3},     {Aggregate::kMin, Comparison::kLe, 1},
      {Aggregate::kMax, Comparison::kGe, 5},     {Aggregate::kCount, Comparison::kEq, 3},
      {Aggregate::kSum, Comparison::kGt, 8.5},   {Aggregate::kLast, Comparison::kEq, 3},
      {Aggregate::kRate, Comparison::kEq, 0.25}, {Aggregate::kAvg, Comparison::kNe, 2},
      {Aggregate::kMin, Comparison::kLt, 1.5}};
  const std::vector<Case> quiet = {{Aggregate::kAvg, Comparison::kNe, 3},
                                   {Aggregate::kMax, Comparison::kGt, 5},
                                   {Aggregate::kRate, Comparison::kGt, 0.25}};
  std::vector<RuleSpec> rules;
  for (size_t i = 0; i < fire.size(); ++i) {
    rules.push_back(
        Threshold("fire" + std::to_string(i), fire[i].c, fire[i].threshold, fire[i].a, 10));
  }
  for (size_t i = 0; i < quiet.size(); ++i) {
    rules.push_back(
        Threshold("quiet" + std::to_string(i), quiet[i].c, quiet[i].threshold, quiet[i].a, 10));
  }
  engine_.SetRules(rules);
  Feed(Batch("d1", "temp", {{0, 1}, {4, 5}, {8, 3}}));
  auto t = Feed(Batch("d1", "temp", {{15, 0}}));
  std::set<std::string> fired;
  for (const auto& x : t) fired.insert(x.rule_id);
  EXPECT_EQ(fired.size(), fire.size());
  for (size_t i = 0; i < fire.size(); ++i)
    EXPECT_TRUE(fired.count("fire" + std::to_string(i))) << i;
}

TEST_F(EngineTest, BooleansCountAsZeroOrOneAndTextIsNotEvaluated) {
  engine_.SetRules({Threshold("open", Comparison::kGe, 1, Aggregate::kMax, 10)});
  telemetry::v1::ReadingBatch b;
  b.set_tenant_id(1);
  auto* door = b.add_series();
  door->set_device_id("d1");
  door->set_sensor("door");
  door->add_timestamp_delta_ns(1 * kS);
  door->add_bool_values(true);
  auto* note = b.add_series();
  note->set_device_id("d1");
  note->set_sensor("note");
  note->add_timestamp_delta_ns(1 * kS);
  note->add_string_values("hello");
  Feed(b);
  auto t = Feed(Batch("d1", "door", {{20, 0}}));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].sensor, "door");
  EXPECT_EQ(engine_.stats().readings, 2);
}

TEST_F(EngineTest, SelectorsGlobsLabelsProjectsAndTenants) {
  RuleSpec r = Threshold("sel", Comparison::kGt, 0, Aggregate::kMax, 10);
  r.selector.device = "plant-*";
  r.selector.sensor = "t?mp";
  r.selector.project = "fact*";
  r.selector.labels = {{"zone", "north*", false}, {"test", "yes", true}};
  engine_.SetRules({r});
  const std::map<std::string, std::string> north = {{"zone", "north-1"}};
  Feed(Batch("plant-1", "temp", {{0, 1}}, 1, north));                                 // matches
  Feed(Batch("plant-2", "temp", {{0, 1}}, 1, {{"zone", "south"}}));                   // label
  Feed(Batch("plant-3", "temp", {{0, 1}}, 1, {{"zone", "north"}, {"test", "yes"}}));  // negated
  Feed(Batch("plant-4", "tamp", {{0, 1}}, 1, north));                                 // matches
  Feed(Batch("plant-5", "temperature", {{0, 1}}, 1, north));                          // sensor
  Feed(Batch("home-1", "temp", {{0, 1}}, 1, north));                                  // device glob
  Feed(Batch("plant-6", "temp", {{0, 1}}, 2, north));                                 // tenant 2
  auto t = Feed(Batch("other", "x", {{20, 0}}));
  std::set<std::string> devices;
  for (const auto& x : t) devices.insert(x.device);
  EXPECT_EQ(devices, (std::set<std::string>{"plant-1", "plant-4"}));
}

TEST_F(EngineTest, AFailedProjectLookupChangesNothingAndTheRetryApplies) {
  RuleSpec r = Threshold("sel", Comparison::kGt, 0, Aggregate::kMax, 10);
  r.selector.project = "factory";
  engine_.SetRules({r});
  lookup_fails_ = true;
  std::vector<Transition> out;
  EXPECT_EQ(engine_.Apply(0, Batch("plant-1", "temp", {{0, 1}, {30, 1}}), &out).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(engine_.stats().readings, 0);
  EXPECT_EQ(engine_.MaxEventTime(0, 1), std::numeric_limits<int64_t>::min());
  lookup_fails_ = false;
  ASSERT_TRUE(engine_.Apply(0, Batch("plant-1", "temp", {{0, 1}, {30, 1}}), &out).ok());
  ASSERT_EQ(out.size(), 1u);
  // Looked up once per device, then cached.
  const int before = lookups_;
  Feed(Batch("plant-1", "temp", {{40, 1}}));
  EXPECT_EQ(lookups_, before);
}

TEST_F(EngineTest, RuleChangesTakeEffectAndTransitionsCarryTheVersion) {
  RuleSpec r = Threshold("hot", Comparison::kGt, 30, Aggregate::kAvg, 10);
  engine_.SetRules({r});
  Steady("d1", 0, 9, 40);
  auto t = Feed(Batch("d1", "temp", {{15, 40}}));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].rule_version, 1);
  // Version 2 raises the threshold above the data: the FIRING alert resolves
  // under the new condition, and says so.
  r.version = 2;
  r.threshold = 50;
  engine_.SetRules({r});
  t = Steady("d1", 16, 30, 40);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, AlertState::kResolved);
  EXPECT_EQ(t[0].rule_version, 2);
  EXPECT_EQ(t[0].sequence, 2);
  // Deleted: its states go.
  engine_.SetRules({});
  EXPECT_EQ(engine_.stats().series, 0);
  EXPECT_TRUE(Steady("d1", 31, 60, 100).empty());
}

// The exactly-once design: evaluation from a snapshot taken at any message
// boundary, then the rest of the stream, gives the very transitions of one
// uninterrupted run; so does a replay from the start with no state.
TEST_F(EngineTest, SnapshotAndReplayReproduceTheSameTransitions) {
  RuleSpec hot = Threshold("hot", Comparison::kGt, 30, Aggregate::kAvg, 10);
  hot.for_ns = 20 * kS;
  hot.resolve_threshold = 20;
  RuleSpec silent;
  silent.tenant_id = 1;
  silent.rule_id = "silent";
  silent.no_data_ns = 25 * kS;
  std::vector<telemetry::v1::ReadingBatch> stream;
  for (int64_t t = 0; t < 400; ++t) {
    const double v = (t / 45) % 2 == 0 ? 40 + static_cast<double>(t % 7) : 5;
    stream.push_back(Batch("d" + std::to_string(t % 3), "temp", {{t, v}}));
    if (t % 100 < 40) stream.push_back(Batch("quiet", "temp", {{t, 1}}));
  }
  auto key = [](const Transition& x) {
    return std::make_tuple(x.fingerprint, x.sequence, static_cast<int>(x.from),
                           static_cast<int>(x.to), x.value, x.event_time_ns, x.window_start_ns);
  };
  auto run = [&](Engine* e, size_t from, size_t to) {
    std::vector<Transition> out;
    for (size_t i = from; i < to; ++i) EXPECT_TRUE(e->Apply(0, stream[i], &out).ok());
    return out;
  };
  auto lookup = [](int64_t, const std::string&) -> absl::StatusOr<std::string> { return "p"; };
  Engine whole(Options(), lookup);
  whole.SetRules({hot, silent});
  const auto expected = run(&whole, 0, stream.size());
  ASSERT_GT(expected.size(), 10u);
  std::set<int> states;
  for (const auto& x : expected) states.insert(static_cast<int>(x.to));
  EXPECT_EQ(states.size(), 3u);  // pending, firing, resolved all happen

  for (size_t cut : {size_t{1}, stream.size() / 3, stream.size() / 2, stream.size() - 1}) {
    Engine first(Options(), lookup);
    first.SetRules({hot, silent});
    auto got = run(&first, 0, cut);
    const std::string snap = first.Snapshot(0);
    // Going on past the cut and "crashing" before the next snapshot: the
    // restarted engine replays from the cut and must say the same again.
    run(&first, cut, std::min(stream.size(), cut + 50));
    Engine second(Options(), lookup);
    second.SetRules({hot, silent});
    ASSERT_TRUE(second.Restore(0, snap).ok());
    EXPECT_EQ(second.Snapshot(0), snap);
    auto rest = run(&second, cut, stream.size());
    got.insert(got.end(), rest.begin(), rest.end());
    ASSERT_EQ(got.size(), expected.size()) << "cut " << cut;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(key(got[i]), key(expected[i])) << cut;
  }
}

// One message with many series: the match cache grows while the message's
// earlier matches are in use (a rehash once left them dangling: a crash under
// load, found by the benchmark).
TEST_F(EngineTest, AMessageOfManySeriesMatchesEachOfThem) {
  engine_.SetRules({Threshold("hot", Comparison::kGt, 30, Aggregate::kMax, 10)});
  telemetry::v1::ReadingBatch b;
  b.set_tenant_id(1);
  for (int d = 0; d < 500; ++d) {
    auto* s = b.add_series();
    s->set_device_id("d" + std::to_string(d));
    s->set_sensor("temp");
    s->add_timestamp_delta_ns(1 * kS);
    s->add_double_values(d % 2 == 0 ? 40 : 20);
  }
  Feed(b);
  auto t = Feed(Batch("other", "x", {{20, 0}}));
  EXPECT_EQ(t.size(), 250u);
  EXPECT_EQ(engine_.stats().evaluated, 501);
}

TEST_F(EngineTest, AnotherTenantsClockNeverMakesAReadingLate) {
  RuleSpec one = Threshold("hot", Comparison::kGt, 30, Aggregate::kAvg, 10);
  RuleSpec two = one;
  two.tenant_id = 2;
  two.rule_id = "hot2";
  engine_.SetRules({one, two});
  // Tenant 2's device runs 10 minutes ahead in the same partition.
  Feed(Batch("skewed", "temp", {{600, 40}}, 2));
  Steady("d1", 0, 9, 40);
  EXPECT_EQ(engine_.stats().late, 0);
  auto t = Feed(Batch("d1", "temp", {{15, 40}}));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].tenant_id, 1);
  EXPECT_EQ(engine_.Watermark(0, 1), 10 * kS);
  EXPECT_EQ(engine_.Watermark(0, 2), 595 * kS);
  // Both clocks survive a checkpoint.
  Engine other(Options(), [](int64_t, const std::string&) -> absl::StatusOr<std::string> {
    return std::string();
  });
  other.SetRules({one, two});
  ASSERT_TRUE(other.Restore(0, engine_.Snapshot(0)).ok());
  EXPECT_EQ(other.Watermark(0, 1), 10 * kS);
  EXPECT_EQ(other.Watermark(0, 2), 595 * kS);
}

TEST_F(EngineTest, ACorruptCheckpointIsDataLoss) {
  EXPECT_EQ(engine_.Restore(3, "\xff\xff\xff").code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace telemetry::alert
