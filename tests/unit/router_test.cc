#include "services/query/router.h"

#include <gtest/gtest.h>

#include "common/testing/fakes.h"
#include "services/query/query_core.h"

namespace telemetry::query {
namespace {

using telemetry::v1::CONSISTENCY_LEVEL_ANALYTICS;
using telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL;
using telemetry::v1::CONSISTENCY_LEVEL_STRONG;

// Which store a read landed on, and whether it should fail.
struct Target {
  testing::FakeReadingReader store;
  absl::Status next = absl::OkStatus();
  double lag = 0.5;
  bool probe_fails = false;
};

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() : clock_(0), metrics_(&registry_) {}

  std::unique_ptr<Router> Make(int replicas) {
    std::vector<Source> rs;
    for (int i = 0; i < replicas; ++i) {
      Target* t = &replicas_[i];
      rs.push_back({"replica-" + std::to_string(i + 1), &t->store, [t]() -> absl::StatusOr<double> {
                      if (t->probe_fails) return absl::UnavailableError("down");
                      return t->lag;
                    }});
    }
    RouterOptions o;
    auto r = std::make_unique<Router>(Source{"primary", &primary_.store, nullptr}, std::move(rs),
                                      &clock_, o, &metrics_);
    r->ProbeReplicas();
    return r;
  }

  // Reads and returns the data source that answered.
  std::string Read(Router& r, telemetry::v1::ConsistencyLevel level, absl::Status* st = nullptr,
                   double staleness = 0) {
    telemetry::v1::ReadMetadata md;
    absl::Status s = r.Read(
        level, staleness,
        [&](ReadingReader* store) {
          Target* t = store == &primary_.store       ? &primary_
                      : store == &replicas_[0].store ? &replicas_[0]
                                                     : &replicas_[1];
          return t->next;
        },
        &md);
    if (st) *st = s;
    return s.ok() ? md.data_source() : "";
  }

  // A router with one replica and the warehouse.
  std::unique_ptr<Router> MakeWithWarehouse() {
    auto r = Make(1);
    Target* w = &warehouse_;
    r->SetWarehouse({"warehouse", &w->store, [w]() -> absl::StatusOr<double> {
                       if (w->probe_fails) return absl::UnavailableError("connection refused");
                       return w->lag;
                     }});
    r->ProbeReplicas();
    return r;
  }

  // An ANALYTICS read; which target it landed on ("" when it failed).
  std::string Analytics(Router& r, bool fallback, telemetry::v1::ReadMetadata* md,
                        absl::Status* st) {
    std::string where;
    *st = r.Read(
        CONSISTENCY_LEVEL_ANALYTICS, 0,
        [&](ReadingReader* store) {
          Target* t = store == &primary_.store     ? &primary_
                      : store == &warehouse_.store ? &warehouse_
                                                   : &replicas_[0];
          where = t == &primary_ ? "primary" : t == &warehouse_ ? "warehouse" : "replica";
          return t->next;
        },
        md, fallback);
    return st->ok() ? where : "";
  }

  FakeClock clock_;
  MetricsRegistry registry_;
  RouterMetrics metrics_;
  Target primary_;
  Target replicas_[2];
  Target warehouse_;
};

TEST_F(RouterTest, AnalyticsReadsTheWarehouseWithItsFreshnessAsLag) {
  warehouse_.lag = 1.25;
  auto r = MakeWithWarehouse();
  telemetry::v1::ReadMetadata md;
  absl::Status st;
  EXPECT_EQ(Analytics(*r, false, &md, &st), "warehouse");
  EXPECT_EQ(md.data_source(), "warehouse");
  EXPECT_DOUBLE_EQ(md.lag_seconds(), 1.25);
  EXPECT_EQ(md.consistency_level(), CONSISTENCY_LEVEL_ANALYTICS);
  EXPECT_TRUE(md.fallback().empty());
  EXPECT_TRUE(r->WarehouseReachable());
  // STRONG and EVENTUAL are not affected by it.
  EXPECT_EQ(Read(*r, CONSISTENCY_LEVEL_STRONG), "primary");
  EXPECT_EQ(Read(*r, CONSISTENCY_LEVEL_EVENTUAL), "replica-1");
}

TEST_F(RouterTest, AnalyticsNeverReadsThePrimaryWhileTheWarehouseIsDown) {
  warehouse_.probe_fails = true;
  auto r = MakeWithWarehouse();
  EXPECT_FALSE(r->WarehouseReachable());
  telemetry::v1::ReadMetadata md;
  absl::Status st;
  EXPECT_EQ(Analytics(*r, false, &md, &st), "");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("connection refused"), std::string::npos) << st;
  EXPECT_NE(st.message().find("allow_fallback"), std::string::npos) << st;
  // With the fallback: the replica, said so.
  md.Clear();
  EXPECT_EQ(Analytics(*r, true, &md, &st), "replica");
  EXPECT_EQ(md.data_source(), "replica-1");
  EXPECT_EQ(md.consistency_level(), CONSISTENCY_LEVEL_EVENTUAL);
  EXPECT_NE(md.fallback().find("connection refused"), std::string::npos) << md.fallback();
  // No replica either: UNAVAILABLE, still not the primary.
  replicas_[0].next = absl::UnavailableError("replica down");
  EXPECT_EQ(Analytics(*r, true, &md, &st), "");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  // Back: the next probe makes it reachable again.
  warehouse_.probe_fails = false;
  r->ProbeReplicas();
  EXPECT_EQ(Analytics(*r, false, &md, &st), "warehouse");
}

TEST_F(RouterTest, AFailingWarehouseReadFallsBackOnlyWhenAllowed) {
  auto r = MakeWithWarehouse();
  warehouse_.next = absl::UnavailableError("terminating connection");
  telemetry::v1::ReadMetadata md;
  absl::Status st;
  EXPECT_EQ(Analytics(*r, false, &md, &st), "");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Analytics(*r, true, &md, &st), "replica");
  EXPECT_NE(md.fallback().find("terminating connection"), std::string::npos);
  // A caller's error is the caller's: no fallback, no breaker.
  warehouse_.next = absl::InvalidArgumentError("bad bucket");
  EXPECT_EQ(Analytics(*r, true, &md, &st), "");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RouterTest, StrongAndAnalyticsReadThePrimary) {
  auto r = Make(1);
  EXPECT_EQ(Read(*r, CONSISTENCY_LEVEL_STRONG), "primary");
  telemetry::v1::ReadMetadata md;
  ASSERT_TRUE(
      r->Read(
           CONSISTENCY_LEVEL_ANALYTICS, 0, [](ReadingReader*) { return absl::OkStatus(); }, &md)
          .ok());
  EXPECT_EQ(md.data_source(), "primary");
  EXPECT_EQ(md.consistency_level(), CONSISTENCY_LEVEL_ANALYTICS);
}

TEST_F(RouterTest, EventualReadsAFreshReplicaAndReportsItsLag) {
  auto r = Make(1);
  telemetry::v1::ReadMetadata md;
  ASSERT_TRUE(
      r->Read(
           CONSISTENCY_LEVEL_EVENTUAL, 0, [](ReadingReader*) { return absl::OkStatus(); }, &md)
          .ok());
  EXPECT_EQ(md.data_source(), "replica-1");
  EXPECT_DOUBLE_EQ(md.lag_seconds(), 0.5);
  EXPECT_EQ(md.consistency_level(), CONSISTENCY_LEVEL_EVENTUAL);
}

TEST_F(RouterTest, LaggingReplicaIsSkippedForThePrimary) {
  replicas_[0].lag = 10;
  auto r = Make(1);
  EXPECT_EQ(Read(*r, CONSISTENCY_LEVEL_EVENTUAL), "primary");
  EXPECT_EQ(metrics_.replica_stale->Value(), 1);
  // A caller who accepts 20 s of staleness gets the replica.
  EXPECT_EQ(Read(*r, CONSISTENCY_LEVEL_EVENTUAL, nullptr, 20), "replica-1");
}

TEST_F(RouterTest, FailingReplicaFallsBackToThePrimaryAndOpensTheBreakerAfterFive) {
  auto r = Make(1);
  replicas_[0].next = absl::UnavailableError("replica down");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Read(*r, CONSISTENCY_LEVEL_EVENTUAL), "primary");
  EXPECT_EQ(r->breaker_state(0), CircuitBreaker::State::kOpen);
  EXPECT_EQ(metrics_.replica_failures->Value(), 5);
  // While open, the replica is not even tried.
  replicas_[0].next = absl::OkStatus();
  EXPECT_EQ(Read(*r, CONSISTENCY_LEVEL_EVENTUAL), "primary");
  EXPECT_EQ(metrics_.replica_skipped_open->Value(), 1);
  // After 60 s one trial goes through (half-open) and closes it.
  clock_.Advance(61 * kNsPerSec);
  EXPECT_EQ(Read(*r, CONSISTENCY_LEVEL_EVENTUAL), "replica-1");
  EXPECT_EQ(r->breaker_state(0), CircuitBreaker::State::kClosed);
}

TEST_F(RouterTest, PrimaryDownEventualServesTheFreshestReplicaStrongFails) {
  replicas_[0].lag = 30;
  replicas_[1].lag = 12;
  auto r = Make(2);
  primary_.next = absl::UnavailableError("primary down");
  absl::Status st;
  EXPECT_EQ(Read(*r, CONSISTENCY_LEVEL_STRONG, &st), "");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  telemetry::v1::ReadMetadata md;
  ASSERT_TRUE(r->Read(
                   CONSISTENCY_LEVEL_EVENTUAL, 0,
                   [&](ReadingReader* s) {
                     return s == &primary_.store ? primary_.next : absl::OkStatus();
                   },
                   &md)
                  .ok());
  EXPECT_EQ(md.data_source(), "replica-2");
  EXPECT_DOUBLE_EQ(md.lag_seconds(), 12);
  EXPECT_EQ(metrics_.stale_fallbacks->Value(), 1);
}

TEST_F(RouterTest, ProbeFailuresCountTowardsTheBreakerAndMakeTheReplicaStale) {
  replicas_[0].probe_fails = true;
  auto r = Make(1);
  EXPECT_EQ(Read(*r, CONSISTENCY_LEVEL_EVENTUAL), "primary");
  for (int i = 0; i < 4; ++i) r->ProbeReplicas();
  EXPECT_EQ(r->breaker_state(0), CircuitBreaker::State::kOpen);
}

TEST_F(RouterTest, ReplicasShareTheLoad) {
  auto r = Make(2);
  std::set<std::string> seen;
  for (int i = 0; i < 4; ++i) seen.insert(Read(*r, CONSISTENCY_LEVEL_EVENTUAL));
  EXPECT_EQ(seen, (std::set<std::string>{"replica-1", "replica-2"}));
}

TEST(CircuitBreaker, HalfOpenLetsOneTrialThrough) {
  FakeClock clock(0);
  CircuitBreaker b(&clock, 2, 10);
  b.RecordFailure();
  EXPECT_TRUE(b.Allow());
  b.RecordFailure();
  EXPECT_FALSE(b.Allow());
  clock.Advance(10);
  EXPECT_TRUE(b.Allow());
  EXPECT_FALSE(b.Allow());  // the trial is out
  b.RecordFailure();        // trial failed: open again
  EXPECT_FALSE(b.Allow());
}

TEST(Aggregate, BucketChoice) {
  telemetry::v1::AggregateRequest req;
  req.set_start_ns(0);
  req.set_end_ns(24 * 3600 * kNsPerSec);
  req.set_bucket_seconds(300);
  EXPECT_EQ(*ChooseBucket(req), 300 * kNsPerSec);
  req.set_bucket_seconds(90);
  EXPECT_EQ(ChooseBucket(req).status().code(), absl::StatusCode::kInvalidArgument);
  req.set_bucket_seconds(0);
  req.set_max_points(24);
  EXPECT_EQ(*ChooseBucket(req), 3600 * kNsPerSec);  // 24 hours give 24 points
  req.set_max_points(100);
  EXPECT_EQ(*ChooseBucket(req), 60 * kNsPerSec);  // hours would give fewer than 100
}

TEST(Aggregate, GapFilling) {
  const int64_t m = 60 * kNsPerSec;
  auto series = [&]() {
    telemetry::v1::AggregateSeries s;
    for (int64_t t : {0L, 3L}) {
      auto* b = s.add_buckets();
      b->set_bucket_start_ns(t * m);
      b->add_values(static_cast<double>(t * 10));
    }
    return s;
  };
  auto s = series();
  FillGaps(telemetry::v1::GAP_FILL_LINEAR, 0, 5 * m, m, 1, &s);
  ASSERT_EQ(s.buckets_size(), 5);
  EXPECT_FALSE(s.buckets(0).filled());
  EXPECT_TRUE(s.buckets(1).filled());
  EXPECT_DOUBLE_EQ(s.buckets(1).values(0), 10);
  EXPECT_DOUBLE_EQ(s.buckets(2).values(0), 20);
  EXPECT_EQ(s.buckets(4).values_size(), 0);  // nothing after to interpolate to
  s = series();
  FillGaps(telemetry::v1::GAP_FILL_PREVIOUS, 0, 5 * m, m, 1, &s);
  EXPECT_DOUBLE_EQ(s.buckets(2).values(0), 0);
  EXPECT_DOUBLE_EQ(s.buckets(4).values(0), 30);
  s = series();
  FillGaps(telemetry::v1::GAP_FILL_NULL, 0, 5 * m, m, 1, &s);
  EXPECT_EQ(s.buckets(1).values_size(), 0);
  EXPECT_TRUE(s.buckets(1).filled());
}

}  // namespace
}  // namespace telemetry::query
