// Each service's gRPC handlers in-process on port 0, over fakes, called
// through the generated stubs: the kit's health state as gRPC health sees it,
// authentication, deadline and saturation mapping. A new service copies one
// fixture below to get the same coverage.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <future>

#include "common/auth.h"
#include "common/grpc/handler.h"
#include "common/grpc/server.h"
#include "common/service/health.h"
#include "common/testing/fakes.h"
#include "common/testing/grpc_health.h"
#include "common/testing/kafka_fake.h"
#include "common/thread_pool.h"
#include "services/ingest/ingest_service.h"
#include "services/query/query_service.h"

namespace telemetry {
namespace {

constexpr int kServing = 1;
constexpr int kNotServing = 2;

// What every service's handlers share in a test: a tenant with an API key in
// a fake metadata store, the authenticator, a pool and a server on port 0.
class HandlerFixture : public ::testing::Test {
 protected:
  HandlerFixture() : auth_(&metadata_, SystemClock::Get()) {
    NewTenant t;
    t.name = "tenant-a";
    tenant_id_ = *metadata_.CreateTenant(t);
    key_ = GenerateApiKey();
    EXPECT_TRUE(metadata_.AddApiKey(tenant_id_, Sha256Hex(key_)).ok());
  }
  ~HandlerFixture() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  void Serve(grpc::Service* service, HealthState* health) {
    auto server = StartGrpcServer("127.0.0.1:0", {service}, &port_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    health->Attach(server_.get());
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
  }

  // A client context with the tenant's key (or `key`) and a deadline.
  std::unique_ptr<grpc::ClientContext> Context(int64_t deadline_ms = 5000,
                                               const std::string* key = nullptr) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + (key ? *key : key_));
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    return ctx;
  }

  // 1 SERVING, 2 NOT_SERVING (common/testing/grpc_health.h).
  int HealthOf(const std::string& name) const { return testing::GrpcHealth(port_, name); }

  // Occupies the pool's only thread and fills its queue until the returned
  // promise is set, so that the next call finds no room.
  std::promise<void> FillPool(ThreadPool* pool) {
    std::promise<void> release;
    auto released = release.get_future().share();
    std::promise<void> running;
    auto started = running.get_future();
    EXPECT_TRUE(pool->Submit([released, &running] {
      running.set_value();
      released.wait();
    }));
    started.wait();
    for (int i = 0; i < 1000 && pool->Submit([] {}); ++i) {
    }
    return release;
  }

  static std::string Trailer(const grpc::ClientContext& ctx, const std::string& name) {
    auto it = ctx.GetServerTrailingMetadata().find(name);
    if (it == ctx.GetServerTrailingMetadata().end()) return "";
    return std::string(it->second.data(), it->second.size());
  }

  testing::FakeMetadataStore metadata_;
  Authenticator auth_;
  int64_t tenant_id_ = 0;
  std::string key_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
};

class IngestHandlers : public HandlerFixture {
 protected:
  IngestHandlers()
      : kafka_({{"telemetry.readings.v1", 4}}),
        publisher_(&kafka_),
        metrics_(&registry_),
        health_({v1::IngestService::service_full_name()}, "Kafka topic not reachable yet") {}

  void Start(int queue = 100, int64_t max_ack_wait_ns = 2 * kNsPerSec) {
    ingest::IngestOptions o;
    o.max_ack_wait_ns = max_ack_wait_ns;
    core_ = std::make_unique<ingest::IngestCore>(o, &publisher_, &metadata_, SystemClock::Get(),
                                                 &metrics_);
    ASSERT_TRUE(core_->Start().ok());
    pool_ = std::make_unique<ThreadPool>(1, static_cast<size_t>(queue));
    kit_ = std::make_unique<HandlerKit>(ingest::IngestServiceImpl::KitOptions(max_ack_wait_ns),
                                        &auth_, pool_.get(), SystemClock::Get());
    impl_ = std::make_unique<ingest::IngestServiceImpl>(core_.get(), kit_.get());
    Serve(impl_.get(), &health_);
    stub_ = v1::IngestService::NewStub(channel_);
  }

  static v1::WriteRequest Readings(int n) {
    v1::WriteRequest req;
    const int64_t now = SystemClock::Get()->NowNs();
    for (int i = 0; i < n; ++i) {
      auto* r = req.add_readings();
      r->set_device_id("dev-1");
      r->set_sensor("temp");
      r->set_timestamp_ns(now - (n - i) * kNsPerMs);
      r->set_double_value(i);
    }
    return req;
  }

  FakeKafka kafka_;
  FakePublisher publisher_;
  MetricsRegistry registry_;
  ingest::IngestMetrics metrics_;
  HealthState health_;
  std::unique_ptr<ingest::IngestCore> core_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<HandlerKit> kit_;
  std::unique_ptr<ingest::IngestServiceImpl> impl_;
  std::unique_ptr<v1::IngestService::Stub> stub_;
};

TEST_F(IngestHandlers, HealthFollowsTheStateAndStaysDownAfterShutdown) {
  Start();
  const std::string name = v1::IngestService::service_full_name();
  EXPECT_EQ(HealthOf(""), kNotServing);
  EXPECT_EQ(HealthOf(name), kNotServing);
  std::string reason;
  EXPECT_FALSE(health_.Ready(&reason));
  EXPECT_EQ(reason, "Kafka topic not reachable yet");

  health_.SetAll(true, "");
  EXPECT_EQ(HealthOf(""), kServing);
  EXPECT_EQ(HealthOf(name), kServing);
  EXPECT_TRUE(health_.Ready(&reason));

  health_.SetAll(false, "Kafka does not answer");
  EXPECT_EQ(HealthOf(name), kNotServing);
  EXPECT_FALSE(health_.Ready(&reason));
  EXPECT_EQ(reason, "Kafka does not answer");

  // A probe that reports healthy after shutdown began changes nothing.
  health_.SetAll(true, "");
  health_.ShutDown();
  health_.SetAll(true, "");
  EXPECT_EQ(HealthOf(""), kNotServing);
  EXPECT_EQ(HealthOf(name), kNotServing);
  EXPECT_FALSE(health_.Ready(&reason));
  EXPECT_EQ(reason, "shutting down");
}

TEST_F(IngestHandlers, WriteNeedsAKnownKey) {
  Start();
  v1::WriteResponse resp;
  {
    auto ctx = Context();
    grpc::Status st = stub_->Write(ctx.get(), Readings(3), &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.accepted(), 3);
    EXPECT_FALSE(resp.consistency_token().empty());
  }
  const std::string wrong = GenerateApiKey();
  auto ctx = Context(5000, &wrong);
  EXPECT_EQ(stub_->Write(ctx.get(), Readings(3), &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext bare;
  EXPECT_EQ(stub_->Write(&bare, Readings(3), &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(IngestHandlers, SilentKafkaAnswersUnavailableBeforeTheClientDeadline) {
  Start();
  kafka_.HoldDeliveries(true);
  auto ctx = Context(/*deadline_ms=*/500);
  v1::WriteResponse resp;
  const auto t0 = std::chrono::steady_clock::now();
  grpc::Status st = stub_->Write(ctx.get(), Readings(3), &resp);
  const auto took = std::chrono::steady_clock::now() - t0;
  kafka_.HoldDeliveries(false);
  // Our UNAVAILABLE with its reason, not the client's own DEADLINE_EXCEEDED:
  // the kit answers a little before the client's deadline.
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_NE(st.error_message().find("Kafka did not acknowledge"), std::string::npos);
  EXPECT_GT(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::milliseconds(500));
}

TEST_F(IngestHandlers, ACallWithoutADeadlineWaitsAtMostMaxAckWait) {
  Start(100, /*max_ack_wait_ns=*/300 * kNsPerMs);
  kafka_.HoldDeliveries(true);
  grpc::ClientContext ctx;  // no deadline of its own
  ctx.AddMetadata("authorization", "Bearer " + key_);
  v1::WriteResponse resp;
  const auto t0 = std::chrono::steady_clock::now();
  grpc::Status st = stub_->Write(&ctx, Readings(3), &resp);
  const auto took = std::chrono::steady_clock::now() - t0;
  kafka_.HoldDeliveries(false);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_GE(took, std::chrono::milliseconds(250));
  EXPECT_LT(took, std::chrono::seconds(2));
}

TEST_F(IngestHandlers, FullWorkQueueIsResourceExhaustedWithRetryAdvice) {
  Start(/*queue=*/2);
  std::promise<void> release = FillPool(pool_.get());
  v1::WriteResponse resp;
  auto ctx = Context();
  grpc::Status st = stub_->Write(ctx.get(), Readings(1), &resp);
  release.set_value();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("ingest is saturated"), std::string::npos);
  EXPECT_EQ(Trailer(*ctx, "retry-after-ms"), "100");
}

class QueryHandlers : public HandlerFixture {
 protected:
  QueryHandlers()
      : router_metrics_(&registry_),
        metrics_(&registry_),
        health_({std::string(v1::QueryService::service_full_name()) + "/STRONG"},
                "no source probed yet") {}

  // (A test that made its own router_ keeps it.)
  void Start(int queue = 100, int64_t default_deadline_ns = 5 * kNsPerSec) {
    if (router_ == nullptr) {
      router_ = std::make_unique<query::Router>(query::Source{"primary", &store_, nullptr},
                                                std::vector<query::Source>{}, SystemClock::Get(),
                                                query::RouterOptions(), &router_metrics_);
    }
    query::QueryOptions o;
    core_ = std::make_unique<query::QueryCore>(o, &progress_, router_.get(), nullptr,
                                               SystemClock::Get(), &metrics_);
    pool_ = std::make_unique<ThreadPool>(1, static_cast<size_t>(queue));
    kit_ = std::make_unique<HandlerKit>(query::QueryServiceImpl::KitOptions(default_deadline_ns),
                                        &auth_, pool_.get(), SystemClock::Get());
    impl_ = std::make_unique<query::QueryServiceImpl>(core_.get(), kit_.get());
    Serve(impl_.get(), &health_);
    stub_ = v1::QueryService::NewStub(channel_);
  }

  v1::LatestRequest Latest() {
    v1::LatestRequest req;
    req.add_device_ids("dev-1");
    req.mutable_options()->set_consistency(v1::CONSISTENCY_LEVEL_STRONG);
    return req;
  }

  testing::FakeReadingReader store_;
  testing::FakeReadingWriter progress_;
  MetricsRegistry registry_;
  query::RouterMetrics router_metrics_;
  query::QueryMetrics metrics_;
  HealthState health_;
  std::unique_ptr<query::Router> router_;
  std::unique_ptr<query::QueryCore> core_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<HandlerKit> kit_;
  std::unique_ptr<query::QueryServiceImpl> impl_;
  std::unique_ptr<v1::QueryService::Stub> stub_;
};

TEST_F(QueryHandlers, HealthPerNameAndReadMetadataAsTrailers) {
  Start();
  const std::string strong = std::string(v1::QueryService::service_full_name()) + "/STRONG";
  health_.Set({{"", true}, {strong, false}}, true, "");
  EXPECT_EQ(HealthOf(""), kServing);
  EXPECT_EQ(HealthOf(strong), kNotServing);

  ReadingRow row;
  row.device = "dev-1";
  row.sensor = "temp";
  row.unit = "C";
  row.ts_ns = 1'700'000'000'000'000'000;
  row.d = 21.5;
  store_.Add(tenant_id_, row);
  auto ctx = Context();
  v1::LatestResponse resp;
  grpc::Status st = stub_->Latest(ctx.get(), Latest(), &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.readings_size(), 1);
  EXPECT_EQ(resp.readings(0).double_value(), 21.5);
  EXPECT_EQ(Trailer(*ctx, "x-data-source"), "primary");
  EXPECT_EQ(Trailer(*ctx, "x-consistency-level"), "strong");
}

TEST_F(QueryHandlers, AnalyticsWithAWarehouseStatesItsFallbackAndRefusesATokenByField) {
  testing::FakeReadingReader warehouse, replica;
  bool warehouse_up = true;
  router_ = std::make_unique<query::Router>(
      query::Source{"primary", &store_, nullptr},
      std::vector<query::Source>{
          {"replica-r", &replica, []() -> absl::StatusOr<double> { return 0.5; }}},
      SystemClock::Get(), query::RouterOptions(), &router_metrics_);
  router_->SetWarehouse({"warehouse", &warehouse, [&]() -> absl::StatusOr<double> {
                           if (!warehouse_up) return absl::UnavailableError("refused");
                           return 2.0;
                         }});
  router_->ProbeReplicas();
  Start();

  v1::LatestRequest req = Latest();
  req.mutable_options()->set_consistency(v1::CONSISTENCY_LEVEL_ANALYTICS);
  {
    auto ctx = Context();
    v1::LatestResponse resp;
    ASSERT_TRUE(stub_->Latest(ctx.get(), req, &resp).ok());
    EXPECT_EQ(Trailer(*ctx, "x-data-source"), "warehouse");
    EXPECT_EQ(Trailer(*ctx, "x-consistency-level"), "analytics");
    EXPECT_EQ(Trailer(*ctx, "x-data-lag-seconds"), "2.000000");
    EXPECT_EQ(Trailer(*ctx, "x-data-fallback"), "");
  }
  warehouse_up = false;
  router_->ProbeReplicas();
  req.mutable_options()->set_allow_fallback(true);
  {
    auto ctx = Context();
    v1::LatestResponse resp;
    ASSERT_TRUE(stub_->Latest(ctx.get(), req, &resp).ok());
    EXPECT_EQ(Trailer(*ctx, "x-data-source"), "replica-r");
    EXPECT_EQ(Trailer(*ctx, "x-consistency-level"), "eventual");
    EXPECT_NE(Trailer(*ctx, "x-data-fallback").find("warehouse is unavailable"), std::string::npos);
    EXPECT_EQ(resp.metadata().fallback(), Trailer(*ctx, "x-data-fallback"));
  }
  req.mutable_options()->set_consistency_token("anything");
  auto ctx = Context();
  v1::LatestResponse resp;
  grpc::Status st = stub_->Latest(ctx.get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message().rfind("options.consistency_token:", 0), 0u) << st.error_message();
}

TEST_F(QueryHandlers, ReadsNeedAKnownKeyOnUnaryAndStreamingCalls) {
  Start();
  const std::string wrong = GenerateApiKey();
  {
    auto ctx = Context(5000, &wrong);
    v1::LatestResponse resp;
    EXPECT_EQ(stub_->Latest(ctx.get(), Latest(), &resp).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  auto ctx = Context(5000, &wrong);
  v1::RangeRequest req;
  req.set_device_id("dev-1");
  req.set_end_ns(1);
  auto reader = stub_->Range(ctx.get(), req);
  v1::RangeResponse page;
  while (reader->Read(&page)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(QueryHandlers, ACallWithoutADeadlineGetsTheServiceDefault) {
  // A token the writer never reaches: the read waits for it until the
  // service's default deadline (200 ms here), then answers
  // DEADLINE_EXCEEDED with the reason.
  Start(100, /*default_deadline_ns=*/200 * kNsPerMs);
  ConsistencyPositions ahead;
  ahead.topic = "telemetry.readings.v1";
  ahead.offsets[0] = 1000;
  v1::LatestRequest req = Latest();
  req.mutable_options()->set_consistency_token(EncodeConsistencyToken(ahead));
  grpc::ClientContext ctx;  // no deadline of its own
  ctx.AddMetadata("authorization", "Bearer " + key_);
  v1::LatestResponse resp;
  const auto t0 = std::chrono::steady_clock::now();
  grpc::Status st = stub_->Latest(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_NE(st.error_message().find("consistency_token"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

TEST_F(QueryHandlers, FullWorkQueueIsResourceExhaustedWithRetryAdvice) {
  Start(/*queue=*/2);
  std::promise<void> release = FillPool(pool_.get());
  auto ctx = Context();
  v1::LatestResponse resp;
  grpc::Status st = stub_->Latest(ctx.get(), Latest(), &resp);
  release.set_value();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("query is saturated"), std::string::npos);
  EXPECT_EQ(Trailer(*ctx, "retry-after-ms"), "100");
}

}  // namespace
}  // namespace telemetry
