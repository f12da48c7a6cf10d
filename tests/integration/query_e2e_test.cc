// The query router end to end: consistency levels against the real primary,
// hot standby and Redis, the faults of each, aggregates and playback.
#include <gtest/gtest.h>

#include <atomic>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/token.h"
#include "tests/integration/checks.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

using telemetry::v1::AggregateRequest;
using telemetry::v1::AggregateResponse;
using telemetry::v1::LatestRequest;
using telemetry::v1::LatestResponse;

constexpr int64_t kMinute = 60 * kNsPerSec;

std::string Trailer(grpc::ClientContext& ctx, const std::string& key) {
  auto md = ctx.GetServerTrailingMetadata();
  auto it = md.find(key);
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

void ReplicaAdmin(const std::string& sql) {
  pqxx::connection c(RequireEnv("TELEMETRY_PG_REPLICA_ADMIN"));
  pqxx::nontransaction tx(c);
  tx.exec(sql);
}

class Query : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    services_ = new Services();
    services_->StartWriter();
    services_->StartIngest();
    services_->StartQuery({"--pg_replicas=" + RequireEnv("TELEMETRY_PG_REPLICA"),
                           "--redis=" + RequireEnv("TELEMETRY_REDIS"), "--replica_probe_ms=200",
                           "--heartbeat_ms=200",
                           // Fixed, not cores x 2: the deadline test needs more calls than
                           // connections on any machine.
                           "--pg_connections=4"});
    tenant_ = new Tenant(CreateTenant("query"));
    // 3 devices × 2 sensors, one reading every 10 s for 2 hours, aligned.
    base_ = (SystemClock::Get()->NowNs() / (3600 * kNsPerSec) - 3) * 3600 * kNsPerSec;
    auto ingest = services_->IngestStub();
    loadgen::FleetOptions f;
    f.devices = 3;
    f.sensors = 2;
    f.interval_ns = 10 * kNsPerSec;
    f.start_ns = base_;
    written_ = new Written(WriteFleet(ingest.get(), tenant_->key, f, 3 * 2 * 720, 1000));
    auto query = services_->QueryStub();
    ASSERT_TRUE(WaitForToken(query.get(), tenant_->key, written_->token, "dev-0").ok());
  }
  static void TearDownTestSuite() {
    delete services_;
    delete tenant_;
    delete written_;
  }
  void SetUp() override { query_ = services_->QueryStub(); }

  grpc::Status Latest(LatestRequest req, LatestResponse* resp, grpc::ClientContext* ctx) {
    ctx->AddMetadata("authorization", "Bearer " + tenant_->key);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return query_->Latest(ctx, req, resp);
  }

  // Waits until the replica has replayed everything and its lag is small.
  void WaitForReplica() {
    for (int i = 0; i < 100; ++i) {
      LatestRequest req;
      req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL);
      req.add_device_ids("nothing-cached-" + std::to_string(i));
      LatestResponse resp;
      grpc::ClientContext ctx;
      if (Latest(req, &resp, &ctx).ok() && resp.metadata().data_source() == "replica-1") return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "the replica never became fresh enough";
  }

  static Services* services_;
  static Tenant* tenant_;
  static Written* written_;
  static int64_t base_;
  std::unique_ptr<telemetry::v1::QueryService::Stub> query_;
};
Services* Query::services_ = nullptr;
Tenant* Query::tenant_ = nullptr;
Written* Query::written_ = nullptr;
int64_t Query::base_ = 0;

TEST_F(Query, EventualLatestIsACacheHit) {
  LatestRequest req;
  req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL);
  req.add_device_ids("dev-1");
  LatestResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(Latest(req, &resp, &ctx).ok());
  EXPECT_EQ(resp.metadata().data_source(), "cache");
  EXPECT_EQ(resp.metadata().cache_status(), telemetry::v1::CACHE_STATUS_HIT);
  EXPECT_EQ(Trailer(ctx, "x-cache-status"), "hit");
  EXPECT_EQ(Trailer(ctx, "x-consistency-level"), "eventual");
  ASSERT_EQ(resp.readings_size(), 2);
  EXPECT_EQ(resp.readings(0).timestamp_ns(), base_ + 719 * 10 * kNsPerSec);
  // The same answer as the primary gives.
  req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_STRONG);
  LatestResponse strong;
  grpc::ClientContext ctx2;
  ASSERT_TRUE(Latest(req, &strong, &ctx2).ok());
  EXPECT_EQ(strong.metadata().data_source(), "primary");
  EXPECT_EQ(strong.readings(0).double_value(), resp.readings(0).double_value());
}

TEST_F(Query, EventualMissGoesToAFreshReplica) {
  WaitForReplica();
  LatestRequest req;
  req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL);
  req.add_device_ids("dev-2");
  req.add_sensors("no-such-sensor");
  LatestResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(Latest(req, &resp, &ctx).ok());
  EXPECT_EQ(resp.metadata().cache_status(), telemetry::v1::CACHE_STATUS_MISS);
  EXPECT_EQ(resp.metadata().data_source(), "replica-1");
  EXPECT_LT(resp.metadata().lag_seconds(), 3.0);
  EXPECT_EQ(Trailer(ctx, "x-data-source"), "replica-1");
}

TEST_F(Query, PausedReplicaReplayRoutesEventualReadsToThePrimary) {
  WaitForReplica();
  ReplicaAdmin("SELECT pg_wal_replay_pause()");
  std::string source;
  for (int i = 0; i < 100 && source != "primary"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    LatestRequest req;
    req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL);
    req.mutable_options()->set_max_staleness_ms(1000);
    req.add_device_ids("paused-" + std::to_string(i));
    LatestResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(Latest(req, &resp, &ctx).ok());
    source = resp.metadata().data_source();
  }
  ReplicaAdmin("SELECT pg_wal_replay_resume()");
  EXPECT_EQ(source, "primary") << "the lagging replica kept serving";
}

TEST_F(Query, AggregatesEqualARecomputationFromRawRows) {
  AggregateRequest req;
  req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_STRONG);
  req.set_device_id("dev-0");
  req.add_sensors("s1");
  req.set_start_ns(base_);
  req.set_end_ns(base_ + 2 * 3600 * kNsPerSec);
  req.set_bucket_seconds(300);
  for (auto f : {telemetry::v1::AGGREGATE_FUNCTION_AVG, telemetry::v1::AGGREGATE_FUNCTION_MIN,
                 telemetry::v1::AGGREGATE_FUNCTION_MAX, telemetry::v1::AGGREGATE_FUNCTION_COUNT,
                 telemetry::v1::AGGREGATE_FUNCTION_SUM, telemetry::v1::AGGREGATE_FUNCTION_LAST}) {
    req.add_functions(f);
  }
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + tenant_->key);
  AggregateResponse resp;
  ASSERT_TRUE(query_->Aggregate(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.series_size(), 1);
  EXPECT_EQ(resp.bucket_seconds(), 300);
  auto expected = Sql(absl::StrCat(
      "SELECT r.ts - r.ts % 300000000000, avg(value_double), min(value_double), max(value_double),"
      " count(*), sum(value_double), (array_agg(value_double ORDER BY ts DESC))[1]"
      " FROM ",
      TenantReadingsSql(tenant_->id),
      " r JOIN series s ON s.id = r.series_id JOIN devices d ON d.id = "
      "s.device_id"
      " WHERE s.tenant_id = ",
      tenant_->id,
      " AND d.name = 'dev-0' AND s.sensor = 's1'"
      " GROUP BY 1 ORDER BY 1"));
  ASSERT_EQ(static_cast<size_t>(resp.series(0).buckets_size()), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& b = resp.series(0).buckets(static_cast<int>(i));
    EXPECT_EQ(b.bucket_start_ns(), std::stoll(expected[i][0]));
    for (int f = 0; f < 6; ++f) {
      EXPECT_NEAR(b.values(f), std::stod(expected[i][static_cast<size_t>(f) + 1]), 1e-9)
          << "bucket " << i << " function " << f;
    }
  }
  // Across the tenant's devices, hourly, merged: count = all readings of s1.
  AggregateRequest all;
  all.set_start_ns(base_);
  all.set_end_ns(base_ + 2 * 3600 * kNsPerSec);
  all.set_bucket_seconds(3600);
  all.add_sensors("s1");
  all.add_functions(telemetry::v1::AGGREGATE_FUNCTION_COUNT);
  grpc::ClientContext ctx2;
  ctx2.AddMetadata("authorization", "Bearer " + tenant_->key);
  AggregateResponse merged;
  ASSERT_TRUE(query_->Aggregate(&ctx2, all, &merged).ok());
  ASSERT_EQ(merged.series_size(), 1);
  EXPECT_EQ(merged.series(0).device_id(), "");
  ASSERT_EQ(merged.series(0).buckets_size(), 2);
  EXPECT_EQ(merged.series(0).buckets(0).values(0), 3 * 360);
}

// One-minute buckets of one device (the rollup rows as stored) with only some
// functions asked for: still equal to a recomputation from raw rows.
TEST_F(Query, MinuteAggregateWithSomeFunctionsEqualsRawRows) {
  AggregateRequest req;
  req.set_device_id("dev-1");
  req.add_sensors("s0");
  req.set_start_ns(base_);
  req.set_end_ns(base_ + 3600 * kNsPerSec);
  req.set_bucket_seconds(60);
  req.add_functions(telemetry::v1::AGGREGATE_FUNCTION_MAX);
  req.add_functions(telemetry::v1::AGGREGATE_FUNCTION_AVG);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + tenant_->key);
  AggregateResponse resp;
  ASSERT_TRUE(query_->Aggregate(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.series_size(), 1);
  auto expected = Sql(absl::StrCat(
      "SELECT r.ts - r.ts % 60000000000, max(value_double), avg(value_double), count(*)"
      " FROM ",
      TenantReadingsSql(tenant_->id),
      " r JOIN series s ON s.id = r.series_id JOIN devices d ON d.id = "
      "s.device_id WHERE s.tenant_id = ",
      tenant_->id, " AND d.name = 'dev-1' AND s.sensor = 's0' AND r.ts >= ", base_, " AND r.ts < ",
      base_ + 3600 * kNsPerSec, " GROUP BY 1 ORDER BY 1"));
  ASSERT_EQ(expected.size(), 60u);
  ASSERT_EQ(static_cast<size_t>(resp.series(0).buckets_size()), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& b = resp.series(0).buckets(static_cast<int>(i));
    EXPECT_EQ(b.bucket_start_ns(), std::stoll(expected[i][0]));
    ASSERT_EQ(b.values_size(), 2);
    EXPECT_NEAR(b.values(0), std::stod(expected[i][1]), 1e-9) << "bucket " << i;
    EXPECT_NEAR(b.values(1), std::stod(expected[i][2]), 1e-9) << "bucket " << i;
    EXPECT_EQ(b.count(), std::stoll(expected[i][3]));
  }
}

TEST_F(Query, PlaybackReturnsTheWindowAndItsEdges) {
  telemetry::v1::PlaybackRequest req;
  req.set_device_id("dev-1");
  req.set_at_ns(base_ + 600 * kNsPerSec + 5 * kNsPerSec);  // between two readings
  req.set_delta_ns(30 * kNsPerSec);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + tenant_->key);
  telemetry::v1::PlaybackResponse resp;
  ASSERT_TRUE(query_->Playback(&ctx, req, &resp).ok());
  // [575 s, 635 s]: readings at 580..630 = 6 per sensor.
  EXPECT_EQ(resp.readings_size(), 2 * 6);
  ASSERT_EQ(resp.before_size(), 2);
  ASSERT_EQ(resp.after_size(), 2);
  EXPECT_EQ(resp.before(0).timestamp_ns(), base_ + 570 * kNsPerSec);
  EXPECT_EQ(resp.after(0).timestamp_ns(), base_ + 640 * kNsPerSec);
  EXPECT_EQ(resp.metadata().data_source(), "primary");
}

// Faults that need their own query service instance.
// A statement still running at the call's deadline is cancelled on the
// server and its connection is not reused or leaked: more calls than the pool
// has connections block on a lock, all end with DEADLINE_EXCEEDED in time, no
// backend is left waiting, and the service serves normally afterwards.
TEST_F(Query, StatementsPastTheDeadlineAreCancelledAndLeakNoConnection) {
  pqxx::connection admin(RequireEnv("TELEMETRY_PG_ADMIN"));
  auto waiting = [&] {
    pqxx::nontransaction tx(admin);
    return tx
        .exec(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND pid <> pg_backend_pid()")[0][0]
        .as<int>();
  };
  pqxx::connection locker(RequireEnv("TELEMETRY_PG_ADMIN"));
  auto lock = std::make_unique<pqxx::work>(locker);
  lock->exec("LOCK TABLE devices IN ACCESS EXCLUSIVE MODE");
  constexpr int kCalls = 12;  // more than the service's primary connections (4, set above)
  std::vector<std::thread> callers;
  std::vector<grpc::StatusCode> codes(kCalls);
  std::vector<double> seconds(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&, i] {
      auto stub = services_->QueryStub();
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer " + tenant_->key);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
      LatestRequest req;
      req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_STRONG);
      req.add_device_ids("dev-" + std::to_string(i % 3));
      LatestResponse resp;
      auto t0 = std::chrono::steady_clock::now();
      codes[i] = stub->Latest(&ctx, req, &resp).error_code();
      seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    });
  }
  for (auto& t : callers) t.join();
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_EQ(codes[i], grpc::StatusCode::DEADLINE_EXCEEDED) << "call " << i;
    EXPECT_LT(seconds[i], 1.5) << "call " << i;
  }
  // The cancelled statements are gone from the server while the lock is
  // still held (not merely finished once it was released).
  int still_waiting = -1;
  for (int i = 0; i < 20 && still_waiting != 0; ++i) {
    still_waiting = waiting();
    if (still_waiting != 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(still_waiting, 0);
  lock->commit();
  lock.reset();
  for (int i = 0; i < 3 * kCalls; ++i) {
    LatestRequest req;
    req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_STRONG);
    req.add_device_ids("dev-" + std::to_string(i % 3));
    LatestResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(Latest(req, &resp, &ctx).ok()) << "call " << i << " after the lock";
    EXPECT_EQ(resp.readings_size(), 2);
  }
}

// A value the server does not know is refused with the field named, never
// quietly read as another (issue 13, item 2).
TEST_F(Query, UnknownEnumValuesAreRejectedOnEveryRead) {
  auto expect_invalid = [](const grpc::Status& st, const std::string& field) {
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_NE(st.error_message().find(field), std::string::npos) << st.error_message();
  };
  const auto unknown_level = static_cast<telemetry::v1::ConsistencyLevel>(7);
  auto call = [&](auto method, auto req, auto* resp) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + tenant_->key);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return ((*query_).*method)(&ctx, req, resp);
  };
  LatestRequest latest;
  latest.add_device_ids("dev-0");
  latest.mutable_options()->set_consistency(unknown_level);
  LatestResponse latest_resp;
  expect_invalid(call(&telemetry::v1::QueryService::Stub::Latest, latest, &latest_resp),
                 "options.consistency");
  // Of the same class: a list without a bound (found while fixing the above).
  latest.mutable_options()->clear_consistency();
  for (int i = 0; i <= 1000; ++i) latest.add_sensors("s" + std::to_string(i));
  expect_invalid(call(&telemetry::v1::QueryService::Stub::Latest, latest, &latest_resp),
                 "sensors: at most 1000");
  AggregateRequest agg;
  agg.set_device_id("dev-0");
  agg.set_start_ns(base_);
  agg.set_end_ns(base_ + 3600 * kNsPerSec);
  agg.add_functions(telemetry::v1::AGGREGATE_FUNCTION_AVG);
  agg.mutable_options()->set_consistency(unknown_level);
  AggregateResponse agg_resp;
  expect_invalid(call(&telemetry::v1::QueryService::Stub::Aggregate, agg, &agg_resp),
                 "options.consistency");
  agg.mutable_options()->clear_consistency();
  agg.set_gap_fill(static_cast<telemetry::v1::GapFill>(9));
  expect_invalid(call(&telemetry::v1::QueryService::Stub::Aggregate, agg, &agg_resp), "gap_fill");
  telemetry::v1::PlaybackRequest play;
  play.set_device_id("dev-0");
  play.set_at_ns(base_ + 600 * kNsPerSec);
  play.mutable_options()->set_consistency(unknown_level);
  telemetry::v1::PlaybackResponse play_resp;
  expect_invalid(call(&telemetry::v1::QueryService::Stub::Playback, play, &play_resp),
                 "options.consistency");
  telemetry::v1::RangeRequest range;
  range.set_device_id("dev-0");
  range.set_start_ns(base_);
  range.set_end_ns(base_ + 60 * kNsPerSec);
  range.mutable_options()->set_consistency(unknown_level);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + tenant_->key);
  auto reader = query_->Range(&ctx, range);
  telemetry::v1::RangeResponse page;
  EXPECT_FALSE(reader->Read(&page));
  expect_invalid(reader->Finish(), "options.consistency");
}

// Request times at the edge of int64 nanoseconds are refused with the field
// and its bound, never answered with wrapped-around arithmetic (item 3).
TEST_F(Query, TimeArithmeticThatWouldOverflowIsRejected) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  auto call = [&](auto method, auto req, auto* resp) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + tenant_->key);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return ((*query_).*method)(&ctx, req, resp);
  };
  telemetry::v1::PlaybackRequest play;
  play.set_device_id("dev-0");
  telemetry::v1::PlaybackResponse play_resp;
  for (auto [at, delta] : {std::pair<int64_t, int64_t>{kMax, 0},
                           std::pair<int64_t, int64_t>{kMax - 10 * kNsPerSec, 20 * kNsPerSec}}) {
    play.set_at_ns(at);
    play.set_delta_ns(delta);
    grpc::Status st = call(&telemetry::v1::QueryService::Stub::Playback, play, &play_resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_NE(st.error_message().find("at_ns: at most"), std::string::npos) << st.error_message();
  }
  AggregateRequest agg;
  agg.set_device_id("dev-0");
  agg.set_start_ns(base_);
  agg.set_end_ns(base_ + 3600 * kNsPerSec);
  agg.add_functions(telemetry::v1::AGGREGATE_FUNCTION_AVG);
  agg.set_bucket_seconds(kMax / 60 * 60);  // whole minutes, × 1e9 overflows
  AggregateResponse agg_resp;
  grpc::Status st = call(&telemetry::v1::QueryService::Stub::Aggregate, agg, &agg_resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find("bucket_seconds: at most"), std::string::npos)
      << st.error_message();
}

// What a Kubernetes gRPC probe or a load balancer asks: the service's own
// name answers on ingest and query, not only the empty name (item 5).
TEST_F(Query, HealthAnswersForEachServiceName) {
  EXPECT_EQ(GrpcHealth(services_->ingest_port(), "telemetry.v1.IngestService"), 1);
  EXPECT_EQ(GrpcHealth(services_->ingest_port(), ""), 1);
  EXPECT_EQ(GrpcHealth(services_->query_port(), "telemetry.v1.QueryService"), 1);
}

// One tenant's reads waiting for writes that will not come before their
// deadline must not stall another tenant's reads (issue 13, item 4: a plain
// Latest took 4.5 s while 20 such reads waited). Waiting reads are bounded
// per tenant and in all; the rest are refused at once.
TEST_F(Query, ReadsWaitingForFarTokensDoNotStallAnotherTenant) {
  Tenant hog = CreateTenant("token-hog");
  ConsistencyPositions far;
  far.topic = "telemetry.readings.v1";
  far.offsets[0] = 1'000'000'000'000;
  const std::string token = EncodeConsistencyToken(far);
  std::atomic<int> exhausted{0}, timed_out{0}, other{0};
  std::vector<std::thread> hogs;
  for (int i = 0; i < 20; ++i) {
    hogs.emplace_back([&] {
      auto stub = services_->QueryStub();
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer " + hog.key);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      LatestRequest req;
      req.add_device_ids("x");
      req.mutable_options()->set_consistency_token(token);
      LatestResponse resp;
      grpc::Status st = stub->Latest(&ctx, req, &resp);
      if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++exhausted;
      } else if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        ++timed_out;
      } else {
        ++other;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  for (int i = 0; i < 5; ++i) {
    LatestRequest req;
    req.add_device_ids("dev-0");
    LatestResponse resp;
    grpc::ClientContext ctx;
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(Latest(req, &resp, &ctx).ok());
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    EXPECT_LT(ms, 1000) << "another tenant's waiting reads stalled this one";
  }
  for (auto& t : hogs) t.join();
  EXPECT_GT(exhausted.load(), 0);
  EXPECT_EQ(exhausted.load() + timed_out.load(), 20) << other.load() << " other outcomes";
}

TEST(QueryFaults, StoppedReplicaAndRedisDownFallBackToThePrimary) {
  Services s;
  s.StartWriter();
  s.StartIngest();
  s.StartQuery({"--pg_replicas=postgresql://telemetry@127.0.0.1:1/telemetry", "--redis=127.0.0.1:1",
                "--replica_probe_ms=100"});
  Tenant t = CreateTenant("faults");
  auto ingest = s.IngestStub();
  loadgen::FleetOptions f;
  f.devices = 1;
  f.sensors = 1;
  f.start_ns = SystemClock::Get()->NowNs() - 100 * kNsPerSec;
  Written w = WriteFleet(ingest.get(), t.key, f, 10, 10);
  auto query = s.QueryStub();
  ASSERT_TRUE(WaitForToken(query.get(), t.key, w.token, "dev-0").ok());
  for (int i = 0; i < 8; ++i) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + t.key);
    LatestRequest req;
    req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL);
    req.add_device_ids("dev-0");
    LatestResponse resp;
    ASSERT_TRUE(query->Latest(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.metadata().data_source(), "primary");
    EXPECT_EQ(resp.metadata().cache_status(), telemetry::v1::CACHE_STATUS_BYPASS);
    EXPECT_EQ(resp.readings_size(), 1);
  }
  // The deadline is honoured: a read waiting for a write that never comes
  // ends with DEADLINE_EXCEEDED in time, and the service keeps serving.
  ConsistencyPositions never;
  never.topic = "telemetry.readings.v1";
  never.offsets[0] = int64_t{1} << 50;
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + t.key);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  telemetry::v1::RangeRequest rr;
  rr.mutable_options()->set_consistency_token(EncodeConsistencyToken(never));
  rr.set_device_id("dev-0");
  rr.set_start_ns(1);
  rr.set_end_ns(SystemClock::Get()->NowNs());
  auto t0 = std::chrono::steady_clock::now();
  auto reader = query->Range(&ctx, rr);
  telemetry::v1::RangeResponse page;
  while (reader->Read(&page)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  ASSERT_TRUE(WaitForToken(query.get(), t.key, w.token, "dev-0").ok());
}

TEST(QueryFaults, PrimaryDownStrongFailsEventualServesTheReplica) {
  Services s;
  s.StartWriter();
  s.StartIngest();
  // This query service's primary is unreachable; its replica is the real one.
  s.StartQuery({"--pg_primary=postgresql://telemetry@127.0.0.1:1/telemetry",
                "--pg_replicas=" + RequireEnv("TELEMETRY_PG_REPLICA"), "--replica_probe_ms=100",
                "--redis="});  // no cache: the replica must answer
  Tenant t = CreateTenant("primary-down");
  auto ingest = s.IngestStub();
  loadgen::FleetOptions f;
  f.devices = 2;
  f.sensors = 3;
  f.start_ns = SystemClock::Get()->NowNs() - 100 * kNsPerSec;
  Written w = WriteFleet(ingest.get(), t.key, f, 60, 60);
  ASSERT_EQ(w.failed_calls, 0);
  // Wait until the replica holds it all.
  pqxx::connection replica(RequireEnv("TELEMETRY_PG_REPLICA"));
  int64_t on_replica = 0;
  for (int i = 0; i < 300 && on_replica < w.unique; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    pqxx::read_transaction tx(replica);
    on_replica =
        tx.exec(StoredReadingsSql(absl::StrCat("s.tenant_id = ", t.id)))[0][0].as<int64_t>();
  }
  ASSERT_EQ(on_replica, w.unique);
  auto query = s.QueryStub();
  LatestRequest req;
  req.add_device_ids("dev-1");
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + t.key);
    LatestResponse resp;
    EXPECT_EQ(query->Latest(&ctx, req, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + t.key);
  LatestResponse resp;
  grpc::Status st = query->Latest(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.metadata().data_source(), "replica-1");
  EXPECT_EQ(resp.readings_size(), 3);
  EXPECT_EQ(Trailer(ctx, "x-data-source"), "replica-1");
  EXPECT_FALSE(Trailer(ctx, "x-data-lag-seconds").empty());
  // Health says the same per level: the service (and EVENTUAL) serve, STRONG
  // and ANALYTICS do not.
  const int port = s.query_port();
  EXPECT_TRUE(WaitForHealth(port, "telemetry.v1.QueryService/STRONG", 2, 5000));
  EXPECT_EQ(GrpcHealth(port, "telemetry.v1.QueryService/ANALYTICS"), 2);
  EXPECT_EQ(GrpcHealth(port, "telemetry.v1.QueryService/EVENTUAL"), 1);
  EXPECT_EQ(GrpcHealth(port, "telemetry.v1.QueryService"), 1);
  EXPECT_EQ(GrpcHealth(port), 1);
}

TEST(QueryFaults, NoSourceAnsweringIsNotServing) {
  Services s;
  s.StartQuery({"--pg_primary=postgresql://telemetry@127.0.0.1:1/telemetry",
                "--pg_replicas=", "--replica_probe_ms=100", "--redis="});
  const int port = s.query_port();
  EXPECT_TRUE(WaitForHealth(port, "", 2, 5000)) << "see " << s.log_dir();
  EXPECT_EQ(GrpcHealth(port, "telemetry.v1.QueryService/EVENTUAL"), 2);
  EXPECT_EQ(GrpcHealth(port, "telemetry.v1.QueryService/STRONG"), 2);
}

TEST(QueryFaults, HealthyPrimaryServesEveryLevel) {
  Services s;
  s.StartQuery({"--pg_replicas=", "--redis="});
  const int port = s.query_port();
  for (const char* service :
       {"", "telemetry.v1.QueryService", "telemetry.v1.QueryService/STRONG",
        "telemetry.v1.QueryService/EVENTUAL", "telemetry.v1.QueryService/ANALYTICS"}) {
    EXPECT_TRUE(WaitForHealth(port, service, 1, 5000)) << service;
  }
}

}  // namespace
}  // namespace telemetry::testing
