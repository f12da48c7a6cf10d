// The analytics warehouse end to end (issue 17, docs/warehouse.md): the
// writer, ingest, query and telemetry-export --pg_warehouse as processes on a
// topic of the test's own, the warehouse a PostgreSQL cluster of its own
// (deploy/local). After a run with duplicates and late readings the warehouse
// holds what the primary holds; kill -9 of the loader and a replay of the
// whole topic change nothing; ANALYTICS reads come from the warehouse with
// its freshness as their lag and answer what STRONG reads answer; with the
// warehouse down they fail with UNAVAILABLE, or read a replica with
// allow_fallback, and the loader catches up once it is back.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "tests/integration/checks.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

namespace fs = std::filesystem;
using telemetry::v1::CONSISTENCY_LEVEL_ANALYTICS;
using telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL;
using telemetry::v1::CONSISTENCY_LEVEL_STRONG;
using telemetry::v1::ConsistencyLevel;

constexpr char kAnalyticsHealth[] = "telemetry.v1.QueryService/ANALYTICS";

// Every column of every row, as text, from the database at `url`.
std::vector<std::vector<std::string>> SqlAt(const std::string& url, const std::string& query) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  std::vector<std::vector<std::string>> out;
  for (const auto& row : tx.exec(query)) {
    std::vector<std::string> r;
    for (const auto& f : row) r.push_back(f.is_null() ? "NULL" : f.c_str());
    out.push_back(std::move(r));
  }
  return out;
}

// What a tenant's data adds up to in one database: its series (ids and
// names), raw readings (rows and segments) and the rollups' exact columns.
// (The rollups' sums are doubles added in batch order, which differs
// between the writer's and the loader's batches: compared apart, with a
// tolerance.)
std::string Fingerprint(const std::string& url, int64_t tenant) {
  const std::string of_tenant =
      absl::StrCat(" JOIN series s ON s.id = x.series_id WHERE s.tenant_id = ", tenant);
  std::string out;
  for (const std::string& q : {
           absl::StrCat("SELECT count(*), sum(s.id::bigint * 7919 + hashtext(d.name || '/' ||"
                        " s.sensor || '/' || s.unit)) FROM series s JOIN devices d"
                        " ON d.id = s.device_id WHERE s.tenant_id = ",
                        tenant),
           "SELECT count(*), sum(x.ts % 1000003), sum(coalesce(x.value_double, 0)::numeric),"
           " sum(hashtext(coalesce(x.value_text, ''))), count(x.value_bool),"
           " sum(coalesce(x.status_code, 0)) FROM " +
               TenantReadingsSql(tenant) + " x" + of_tenant,
           "SELECT count(*), sum(x.cnt), sum(x.min::numeric), sum(x.max::numeric),"
           " sum(x.last_ts % 1000003), sum(x.last_value::numeric) FROM agg_1m_merged x" +
               of_tenant,
           "SELECT count(*), sum(x.cnt), sum(x.min::numeric), sum(x.max::numeric) FROM agg_1h x" +
               of_tenant,
       }) {
    for (const auto& row : SqlAt(url, q)) {
      for (const auto& f : row) absl::StrAppend(&out, f, "|");
    }
  }
  return out;
}

// The largest relative difference between the two databases' 1-minute sums.
double RollupSumDifference(const std::string& primary, const std::string& warehouse,
                           int64_t tenant) {
  const std::string q = absl::StrCat(
      "SELECT x.series_id, x.bucket, x.sum FROM agg_1m_merged x JOIN series s"
      " ON s.id = x.series_id WHERE s.tenant_id = ",
      tenant, " ORDER BY 1, 2");
  auto a = SqlAt(primary, q);
  auto b = SqlAt(warehouse, q);
  if (a.size() != b.size()) return 1e9;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i][0] != b[i][0] || a[i][1] != b[i][1]) return 1e9;
    const double x = std::stod(a[i][2]), y = std::stod(b[i][2]);
    worst = std::max(worst, std::abs(x - y) / std::max(1.0, std::abs(x)));
  }
  return worst;
}

int64_t OffsetSum(const std::string& url, const std::string& topic) {
  return std::stoll(SqlAt(url,
                          "SELECT coalesce(sum(next_offset), 0) FROM writer_offsets"
                          " WHERE topic = '" +
                              topic + "'")[0][0]);
}

class Warehouse : public ::testing::Test {
 protected:
  Warehouse()
      : primary_(RequireEnv("TELEMETRY_PG_PRIMARY")),
        warehouse_(RequireEnv("TELEMETRY_WAREHOUSE")),
        topic_(CreateTopic("test.warehouse", 4)) {
    root_ = fs::temp_directory_path() / absl::StrCat("warehouse_e2e_", getpid());
    fs::create_directories(root_);
  }
  ~Warehouse() override {
    export_.reset();
    DeleteTopic(topic_);
    fs::remove_all(root_);
  }

  void StartAll() {
    services_.StartWriter({"--topic=" + topic_, "--group=g-" + topic_});
    services_.StartIngest({"--topic=" + topic_});
    services_.StartQuery({"--topic=" + topic_, "--pg_warehouse=" + warehouse_,
                          "--pg_replicas=" + RequireEnv("TELEMETRY_PG_REPLICA"),
                          "--replica_probe_ms=200"});
    StartExport();
  }

  void StartExport() {
    export_http_ = FreePort();
    export_ = std::make_unique<Process>(
        BuildDir() + "/services/export/telemetry-export",
        std::vector<std::string>{
            "--archive_root=" + (root_ / "archive").string(), "--pg_primary=" + primary_,
            absl::StrCat("--listen=127.0.0.1:", FreePort()),
            absl::StrCat("--http_port=", export_http_), "--archive_interval_s=3600",
            "--pg_warehouse=" + warehouse_, "--topic=" + topic_, "--warehouse_group=wh-" + topic_,
            "--warehouse_batch_delay_ms=200", "--warehouse_freshness_ms=200",
            "--warehouse_compact_interval_s=0"},
        absl::StrCat(services_.log_dir(), "/export.", ++export_runs_, ".log"));
  }

  // A fleet with duplicates and late readings, three hours back.
  Written WriteSome(const std::string& key, int64_t total, uint64_t seed) {
    loadgen::FleetOptions f;
    f.devices = 12;
    f.sensors = 4;
    f.string_sensors = 1;
    f.duplicate_fraction = 0.05;
    f.late_fraction = 0.05;
    f.interval_ns = 500 * kNsPerMs;
    f.seed = seed;
    f.start_ns = SystemClock::Get()->NowNs() - 3 * 3600 * kNsPerSec +
                 static_cast<int64_t>(seed) * 600 * kNsPerSec;
    auto ingest = services_.IngestStub();
    return WriteFleet(ingest.get(), key, f, total, 500);
  }

  // Waits until the warehouse holds `n` readings of the tenant.
  bool WaitLoaded(int64_t tenant, int64_t n, int ms) {
    const std::string q = "SELECT count(*) FROM " + TenantReadingsSql(tenant) + " x";
    return Eventually([&] { return std::stoll(SqlAt(warehouse_, q)[0][0]) == n; }, ms);
  }

  telemetry::v1::ReadOptions Options(ConsistencyLevel level, bool fallback = false) {
    telemetry::v1::ReadOptions o;
    o.set_consistency(level);
    o.set_allow_fallback(fallback);
    return o;
  }

  grpc::Status Latest(const std::string& key, ConsistencyLevel level, bool fallback,
                      telemetry::v1::LatestResponse* resp) {
    auto q = services_.QueryStub();
    telemetry::v1::LatestRequest req;
    *req.mutable_options() = Options(level, fallback);
    for (int d = 0; d < 12; ++d) req.add_device_ids("dev-" + std::to_string(d));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + key);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return q->Latest(&ctx, req, resp);
  }

  // Every read kind at `level` (metadata cleared, aggregate values apart),
  // as text; `md` gets the first response's metadata.
  std::string Reads(const std::string& key, ConsistencyLevel level, telemetry::v1::ReadMetadata* md,
                    std::vector<double>* values) {
    auto q = services_.QueryStub();
    std::string out;
    const int64_t now = SystemClock::Get()->NowNs();
    auto ctx_for = [&](grpc::ClientContext* ctx) {
      ctx->AddMetadata("authorization", "Bearer " + key);
      ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    };
    {
      telemetry::v1::LatestResponse resp;
      grpc::Status st = Latest(key, level, false, &resp);
      EXPECT_TRUE(st.ok()) << st.error_message();
      *md = resp.metadata();
      resp.clear_metadata();
      absl::StrAppend(&out, "latest:", resp.ShortDebugString(), "\n");
    }
    {
      telemetry::v1::RangeRequest req;
      *req.mutable_options() = Options(level);
      req.set_device_id("dev-3");
      req.set_start_ns(now - 4 * 3600 * kNsPerSec);
      req.set_end_ns(now);
      req.set_page_size(700);
      grpc::ClientContext ctx;
      ctx_for(&ctx);
      auto reader = q->Range(&ctx, req);
      telemetry::v1::RangeResponse page;
      while (reader->Read(&page)) {
        page.clear_metadata();
        absl::StrAppend(&out, "range:", page.ShortDebugString(), "\n");
      }
      grpc::Status st = reader->Finish();
      EXPECT_TRUE(st.ok()) << st.error_message();
    }
    {
      telemetry::v1::PlaybackRequest req;
      *req.mutable_options() = Options(level);
      req.set_device_id("dev-5");
      // 200 s into the first fleet's 250 s of readings.
      req.set_at_ns(now - 3 * 3600 * kNsPerSec + 800 * kNsPerSec);
      req.set_delta_ns(20 * kNsPerSec);
      telemetry::v1::PlaybackResponse resp;
      grpc::ClientContext ctx;
      ctx_for(&ctx);
      grpc::Status st = q->Playback(&ctx, req, &resp);
      EXPECT_TRUE(st.ok()) << st.error_message();
      resp.clear_metadata();
      absl::StrAppend(&out, "playback:", resp.ShortDebugString(), "\n");
    }
    for (bool per_device : {true, false}) {
      telemetry::v1::AggregateRequest req;
      *req.mutable_options() = Options(level);
      if (per_device) req.set_device_id("dev-2");
      req.set_start_ns(now - 4 * 3600 * kNsPerSec);
      req.set_end_ns(now);
      req.set_bucket_seconds(per_device ? 60 : 3600);
      // (LAST over several devices is left out: the fleet's devices share their timestamps,
      // and among equal newest timestamps the rollup keeps whichever came first in its
      // batches, which differ between the writer and the loader.)
      std::vector<telemetry::v1::AggregateFunction> exact = {
          telemetry::v1::AGGREGATE_FUNCTION_COUNT, telemetry::v1::AGGREGATE_FUNCTION_MIN,
          telemetry::v1::AGGREGATE_FUNCTION_MAX};
      if (per_device) exact.push_back(telemetry::v1::AGGREGATE_FUNCTION_LAST);
      for (auto f : exact) req.add_functions(f);
      req.add_functions(telemetry::v1::AGGREGATE_FUNCTION_AVG);
      req.add_functions(telemetry::v1::AGGREGATE_FUNCTION_SUM);
      telemetry::v1::AggregateResponse resp;
      grpc::ClientContext ctx;
      ctx_for(&ctx);
      grpc::Status st = q->Aggregate(&ctx, req, &resp);
      EXPECT_TRUE(st.ok()) << st.error_message();
      resp.clear_metadata();
      // AVG and SUM (the last two) apart: sums of doubles in batch order.
      for (auto& series : *resp.mutable_series()) {
        for (auto& b : *series.mutable_buckets()) {
          while (b.values_size() > static_cast<int>(exact.size())) {
            values->push_back(b.values(b.values_size() - 1));
            b.mutable_values()->RemoveLast();
          }
        }
      }
      absl::StrAppend(&out, "aggregate:", resp.ShortDebugString(), "\n");
    }
    return out;
  }

  void ExpectAnalyticsAnswersAsStrong(const std::string& key) {
    telemetry::v1::ReadMetadata strong_md, analytics_md;
    std::vector<double> strong_values, analytics_values;
    const std::string strong = Reads(key, CONSISTENCY_LEVEL_STRONG, &strong_md, &strong_values);
    const std::string analytics =
        Reads(key, CONSISTENCY_LEVEL_ANALYTICS, &analytics_md, &analytics_values);
    EXPECT_GT(strong.size(), 10'000u);
    EXPECT_EQ(analytics, strong);
    ASSERT_EQ(analytics_values.size(), strong_values.size());
    for (size_t i = 0; i < strong_values.size(); ++i) {
      EXPECT_NEAR(analytics_values[i], strong_values[i],
                  1e-9 * std::max(1.0, std::abs(strong_values[i])))
          << i;
    }
    EXPECT_EQ(analytics_md.data_source(), "warehouse");
    EXPECT_EQ(analytics_md.consistency_level(), CONSISTENCY_LEVEL_ANALYTICS);
    EXPECT_GE(analytics_md.lag_seconds(), 0);
    EXPECT_LT(analytics_md.lag_seconds(), 10);
    EXPECT_TRUE(analytics_md.fallback().empty());
  }

  Services services_;
  std::unique_ptr<Process> export_;
  int export_http_ = 0, export_runs_ = 0;
  std::string primary_, warehouse_, topic_;
  fs::path root_;
};

TEST_F(Warehouse, HoldsWhatThePrimaryHoldsThroughKillNineAndAReplayFromZero) {
  StartAll();
  Tenant t = CreateTenant("warehouse");
  Written w = WriteSome(t.key, 24'000, 1);
  ASSERT_EQ(w.failed_calls, 0);
  auto query = services_.QueryStub();
  ASSERT_TRUE(WaitForToken(query.get(), t.key, w.token, "dev-0").ok());
  ASSERT_EQ(StoredReadings(t.id), w.unique);
  ASSERT_TRUE(WaitLoaded(t.id, w.unique, 60'000))
      << "the warehouse did not load the tenant's readings; see " << services_.log_dir();
  const std::string before = Fingerprint(primary_, t.id);
  EXPECT_EQ(Fingerprint(warehouse_, t.id), before);
  EXPECT_LT(RollupSumDifference(primary_, warehouse_, t.id), 1e-9);
  EXPECT_TRUE(WaitForHealth(services_.query_port(), kAnalyticsHealth, 1, 10'000));
  ExpectAnalyticsAnswersAsStrong(t.key);

  // kill -9 of the loader mid-stream, then a restart: nothing lost or doubled.
  Written more;
  std::thread writer([&] { more = WriteSome(t.key, 12'000, 2); });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  export_->Signal(SIGKILL);
  export_->Wait();
  writer.join();
  ASSERT_EQ(more.failed_calls, 0);
  StartExport();
  ASSERT_TRUE(WaitForToken(query.get(), t.key, more.token, "dev-0").ok());
  const int64_t total = w.unique + more.unique;
  ASSERT_EQ(StoredReadings(t.id), total);
  ASSERT_TRUE(WaitLoaded(t.id, total, 60'000));
  const std::string after = Fingerprint(primary_, t.id);
  EXPECT_EQ(Fingerprint(warehouse_, t.id), after);
  EXPECT_LT(RollupSumDifference(primary_, warehouse_, t.id), 1e-9);

  // The whole topic again from offset 0 (the warehouse's offsets lost).
  const int64_t offsets = OffsetSum(warehouse_, topic_);
  ASSERT_GT(offsets, 0);
  export_->Signal(SIGTERM);
  ASSERT_EQ(export_->Wait(), 0);
  SqlAt(warehouse_, "UPDATE writer_offsets SET next_offset = 0 WHERE topic = '" + topic_ + "'");
  StartExport();
  EXPECT_TRUE(Eventually([&] { return OffsetSum(warehouse_, topic_) == offsets; }, 60'000));
  EXPECT_EQ(MetricValue(export_http_, "writer_readings_applied_total"), 0);
  EXPECT_GT(MetricValue(export_http_, "writer_readings_duplicate_total"), 0);
  EXPECT_EQ(Fingerprint(warehouse_, t.id), after);
  ExpectAnalyticsAnswersAsStrong(t.key);
}

TEST_F(Warehouse, DownMeansUnavailableOrAStatedFallbackThenItCatchesUp) {
  StartAll();
  Tenant t = CreateTenant("warehouse-down");
  Written w = WriteSome(t.key, 6'000, 3);
  ASSERT_EQ(w.failed_calls, 0);
  ASSERT_TRUE(WaitLoaded(t.id, w.unique, 60'000)) << "see " << services_.log_dir();
  EXPECT_TRUE(WaitForHealth(services_.query_port(), kAnalyticsHealth, 1, 10'000));

  ASSERT_EQ(Shell(SourceDir() + "/deploy/local/warehouse.sh stop").second, 0);
  // Ingest and the primary go on: writes while the warehouse is down.
  Written more = WriteSome(t.key, 6'000, 4);
  ASSERT_EQ(more.failed_calls, 0);
  EXPECT_TRUE(WaitForHealth(services_.query_port(), kAnalyticsHealth, 2, 10'000));
  telemetry::v1::LatestResponse resp;
  grpc::Status st = Latest(t.key, CONSISTENCY_LEVEL_ANALYTICS, false, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_NE(st.error_message().find("warehouse"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("allow_fallback"), std::string::npos) << st.error_message();
  st = Latest(t.key, CONSISTENCY_LEVEL_ANALYTICS, true, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.metadata().data_source().rfind("replica", 0), 0u) << resp.metadata().data_source();
  EXPECT_EQ(resp.metadata().consistency_level(), CONSISTENCY_LEVEL_EVENTUAL);
  EXPECT_NE(resp.metadata().fallback().find("warehouse"), std::string::npos);
  EXPECT_EQ(resp.readings_size(), 12 * 4);
  // STRONG and EVENTUAL never depended on it.
  EXPECT_TRUE(Latest(t.key, CONSISTENCY_LEVEL_STRONG, false, &resp).ok());

  ASSERT_EQ(Shell(SourceDir() + "/deploy/local/warehouse.sh start").second, 0);
  auto query = services_.QueryStub();
  ASSERT_TRUE(WaitForToken(query.get(), t.key, more.token, "dev-0").ok());
  const int64_t total = w.unique + more.unique;
  ASSERT_TRUE(WaitLoaded(t.id, total, 60'000))
      << "the loader did not catch up after the outage; see " << services_.log_dir();
  EXPECT_EQ(Fingerprint(warehouse_, t.id), Fingerprint(primary_, t.id));
  EXPECT_TRUE(WaitForHealth(services_.query_port(), kAnalyticsHealth, 1, 10'000));
  ExpectAnalyticsAnswersAsStrong(t.key);
}

}  // namespace
}  // namespace telemetry::testing
