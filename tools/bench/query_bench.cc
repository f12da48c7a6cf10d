// telemetry-bench-query: read latency and throughput of the query service on
// a realistic data set, beside the same aggregates computed from raw rows by
// Postgres in the same run.
//
//   telemetry-bench-query --pg $TELEMETRY_PG_PRIMARY --redis $TELEMETRY_REDIS
//       --query 127.0.0.1:50052 --api_keys K1,K2,K3,K4 --tenant_ids 1,2,3,4 --load
//
// --load fills 250 devices × 8 sensors per tenant, one reading per 30 s over
// the last 24 h, the way the writer lays rows out (time-major batches sorted
// by series), with rollups and cached latest values. Prints one JSON line.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/redis/latest_cache.h"
#include "telemetry/v1/query.grpc.pb.h"

ABSL_FLAG(std::string, pg, "", "Postgres primary");
ABSL_FLAG(std::string, redis, "", "Redis host:port (latest values are loaded there too)");
ABSL_FLAG(std::string, query, "127.0.0.1:50052", "QueryService address");
ABSL_FLAG(std::string, api_keys, "", "One API key per tenant");
ABSL_FLAG(std::string, tenant_ids, "", "The tenants' ids, same order");
ABSL_FLAG(int, devices, 250, "Devices per tenant");
ABSL_FLAG(int, sensors, 8, "Sensors per device");
ABSL_FLAG(int64_t, interval_s, 30, "Seconds between a series' readings");
ABSL_FLAG(int64_t, hours, 24, "Hours of data");
ABSL_FLAG(bool, load, false, "Load the data set first");
ABSL_FLAG(int, concurrency, 4, "Concurrent clients");
ABSL_FLAG(int, requests, 2000, "Requests per fast read kind (a tenth for the tenant aggregate)");
ABSL_FLAG(std::string, only, "", "Run only the reads whose name contains this");
ABSL_FLAG(int64_t, end_ns, 0,
          "End of the data set (0 = now rounded down to the hour; set it to reuse a loaded set)");

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  std::string name;
  double p50 = 0, p99 = 0, qps = 0;
  int errors = 0;
};

double Pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

// Runs `one(rng)` `n` times over `concurrency` threads; latencies in ms.
Result Measure(const std::string& name, int n, int concurrency,
               const std::function<bool(std::mt19937_64&)>& one) {
  if (name.find(absl::GetFlag(FLAGS_only)) == std::string::npos) return Result{name};
  std::vector<double> lat;
  std::mutex mu;
  std::atomic<int> next{0}, errors{0};
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int c = 0; c < concurrency; ++c) {
    ts.emplace_back([&, c] {
      std::mt19937_64 rng(static_cast<uint64_t>(c) * 7919 + 1);
      std::vector<double> mine;
      while (next++ < n) {
        auto a = Clock::now();
        if (!one(rng)) ++errors;
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
      }
      std::lock_guard<std::mutex> l(mu);
      lat.insert(lat.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : ts) t.join();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  Result r{name, Pct(lat, 0.5), Pct(lat, 0.99), static_cast<double>(lat.size()) / s, errors.load()};
  std::fprintf(stderr, "%-40s p50 %7.2f ms  p99 %7.2f ms  %8.0f q/s  errors %d\n", name.c_str(),
               r.p50, r.p99, r.qps, r.errors);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::InitFlags(argc, argv, "telemetry-bench-query: read benchmark");
  std::vector<std::string> keys =
      absl::StrSplit(absl::GetFlag(FLAGS_api_keys), ',', absl::SkipEmpty());
  std::vector<int64_t> tenants;
  for (absl::string_view t :
       absl::StrSplit(absl::GetFlag(FLAGS_tenant_ids), ',', absl::SkipEmpty())) {
    tenants.push_back(std::stoll(std::string(t)));
  }
  if (keys.empty() || keys.size() != tenants.size()) {
    std::fprintf(stderr, "--api_keys and --tenant_ids: one of each per tenant\n");
    return 2;
  }
  const int devices = absl::GetFlag(FLAGS_devices), sensors = absl::GetFlag(FLAGS_sensors);
  const int64_t step = absl::GetFlag(FLAGS_interval_s) * telemetry::kNsPerSec;
  const int64_t hour = 3600 * telemetry::kNsPerSec;
  int64_t end = absl::GetFlag(FLAGS_end_ns);
  if (end == 0) end = telemetry::SystemClock::Get()->NowNs() / hour * hour;
  const int64_t start = end - absl::GetFlag(FLAGS_hours) * hour;
  const int64_t steps = (end - start) / step;

  if (absl::GetFlag(FLAGS_load)) {
    telemetry::PgPool pool(absl::GetFlag(FLAGS_pg), 1, "bench");
    auto meta = telemetry::NewPgMetadataStore(&pool);
    auto store = telemetry::NewPgReadingWriter(&pool);
    if (!store->EnsurePartitions(start, end).ok()) return 1;
    std::vector<int32_t> all_ids;
    for (int64_t t : tenants) {
      std::vector<telemetry::SeriesSpec> specs;
      for (int d = 0; d < devices; ++d) {
        for (int s = 0; s < sensors; ++s)
          specs.push_back({"dev-" + std::to_string(d), "s" + std::to_string(s), "C", ""});
      }
      auto ids = meta->ResolveSeries(t, specs);
      if (!ids.ok()) {
        std::fprintf(stderr, "series: %s\n", ids.status().ToString().c_str());
        return 1;
      }
      all_ids.insert(all_ids.end(), ids->begin(), ids->end());
    }
    auto t0 = Clock::now();
    pqxx::connection c(absl::GetFlag(FLAGS_pg));
    c.set_variable("synchronous_commit", "off");
    const std::string ids = "{" + absl::StrJoin(all_ids, ",") + "}";
    // One transaction per simulated writer batch of ~6 time steps, rows
    // sorted by series within it: the layout the writer produces.
    const int64_t chunk = 6;
    for (int64_t k = 0; k < steps; k += chunk) {
      pqxx::work tx(c);
      tx.exec_params(
          "INSERT INTO raw_readings (series_id, ts, value_double)"
          " SELECT id, $2::bigint + k * $3::bigint,"
          "   20 + 5 * sin(k / 30.0 + id) + (id % 8)"
          " FROM unnest($1::int[]) AS id, generate_series($4::bigint, $5::bigint) AS k"
          " ORDER BY id, k ON CONFLICT DO NOTHING",
          ids, start, step, k, std::min(k + chunk, steps) - 1);
      tx.commit();
    }
    double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::fprintf(stderr, "loaded %lld raw rows in %.1f s\n",
                 static_cast<long long>(steps) * static_cast<long long>(all_ids.size()), load_s);
    // Rollups as the writer maintains them, then the cache.
    pqxx::work tx(c);
    for (const char* table : {"agg_1m", "agg_1h"}) {
      int64_t w = std::string(table) == "agg_1m" ? 60 * telemetry::kNsPerSec : hour;
      tx.exec_params(
          absl::StrCat("INSERT INTO ", table,
                       " SELECT series_id, ts - ts % $2, count(*),"
                       " sum(value_double), min(value_double), max(value_double), max(ts),"
                       " (array_agg(value_double ORDER BY ts DESC))[1] FROM raw_readings"
                       " WHERE series_id = ANY($1::int[]) GROUP BY 1, 2 ON CONFLICT DO NOTHING"),
          ids, w);
    }
    tx.exec_params(
        "INSERT INTO agg_1h_sensor SELECT s.tenant_id, s.project_id, s.sensor, a.bucket,"
        " sum(a.cnt), sum(a.sum), min(a.min), max(a.max), max(a.last_ts),"
        " (array_agg(a.last_value ORDER BY a.last_ts DESC))[1]"
        " FROM agg_1h a JOIN series s ON s.id = a.series_id WHERE a.series_id = ANY($1::int[])"
        " GROUP BY 1, 2, 3, 4 ON CONFLICT DO NOTHING",
        ids);
    tx.exec("ANALYZE");
    tx.commit();
    auto ro = telemetry::ParseRedisAddress(absl::GetFlag(FLAGS_redis));
    if (ro.ok()) {
      auto cache = telemetry::NewRedisLatestCache(*ro);
      for (size_t i = 0; i < tenants.size(); ++i) {
        std::vector<telemetry::ReadingRow> rows;
        for (int d = 0; d < devices; ++d) {
          for (int s = 0; s < sensors; ++s) {
            telemetry::ReadingRow r;
            r.device = "dev-" + std::to_string(d);
            r.sensor = "s" + std::to_string(s);
            r.unit = "C";
            r.ts_ns = start + (steps - 1) * step;
            r.d = 20;
            rows.push_back(r);
          }
        }
        if (!cache->UpdateIfNewer(tenants[i], rows).ok()) return 1;
      }
    }
    std::fprintf(stderr, "rollups and cache built; %.1f s in all\n",
                 std::chrono::duration<double>(Clock::now() - t0).count());
  }

  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_query), grpc::InsecureChannelCredentials());
  auto stub = telemetry::v1::QueryService::NewStub(channel);
  const int n = absl::GetFlag(FLAGS_requests), conc = absl::GetFlag(FLAGS_concurrency);
  auto pick_tenant = [&](std::mt19937_64& rng) { return rng() % tenants.size(); };
  auto device = [&](std::mt19937_64& rng) {
    return "dev-" + std::to_string(rng() % static_cast<uint64_t>(devices));
  };
  auto t_in = [&](std::mt19937_64& rng, int64_t margin) {
    return start + margin +
           static_cast<int64_t>(rng() % static_cast<uint64_t>(end - start - 2 * margin));
  };
  auto ctx_for = [&](grpc::ClientContext& ctx, size_t t) {
    ctx.AddMetadata("authorization", "Bearer " + keys[t]);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  };
  std::vector<Result> results;
  results.push_back(
      Measure("latest of 8 sensors (EVENTUAL, cache)", n, conc, [&](std::mt19937_64& rng) {
        size_t t = pick_tenant(rng);
        grpc::ClientContext ctx;
        ctx_for(ctx, t);
        telemetry::v1::LatestRequest req;
        req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL);
        req.add_device_ids(device(rng));
        telemetry::v1::LatestResponse resp;
        return stub->Latest(&ctx, req, &resp).ok() && resp.readings_size() == sensors &&
               resp.metadata().data_source() == "cache";
      }));
  results.push_back(
      Measure("latest of 8 sensors (STRONG, primary)", n, conc, [&](std::mt19937_64& rng) {
        size_t t = pick_tenant(rng);
        grpc::ClientContext ctx;
        ctx_for(ctx, t);
        telemetry::v1::LatestRequest req;
        req.add_device_ids(device(rng));
        telemetry::v1::LatestResponse resp;
        return stub->Latest(&ctx, req, &resp).ok() && resp.readings_size() == sensors;
      }));
  results.push_back(Measure("one sensor, 1 h raw (Range)", n, conc, [&](std::mt19937_64& rng) {
    size_t t = pick_tenant(rng);
    grpc::ClientContext ctx;
    ctx_for(ctx, t);
    telemetry::v1::RangeRequest req;
    req.set_device_id(device(rng));
    req.add_sensors("s" + std::to_string(rng() % static_cast<uint64_t>(sensors)));
    req.set_start_ns(t_in(rng, hour));
    req.set_end_ns(req.start_ns() + hour);
    auto reader = stub->Range(&ctx, req);
    telemetry::v1::RangeResponse page;
    int rows = 0;
    while (reader->Read(&page)) rows += page.readings_size();
    return reader->Finish().ok() && rows == 120;
  }));
  results.push_back(Measure("all sensors, t ± 30 s (Playback)", n, conc, [&](std::mt19937_64& rng) {
    size_t t = pick_tenant(rng);
    grpc::ClientContext ctx;
    ctx_for(ctx, t);
    telemetry::v1::PlaybackRequest req;
    req.set_device_id(device(rng));
    req.set_at_ns(t_in(rng, hour));
    req.set_delta_ns(30 * telemetry::kNsPerSec);
    telemetry::v1::PlaybackResponse resp;
    return stub->Playback(&ctx, req, &resp).ok() && resp.before_size() == sensors;
  }));
  auto aggregate = [&](bool tenant_wide, std::mt19937_64& rng) {
    size_t t = pick_tenant(rng);
    grpc::ClientContext ctx;
    ctx_for(ctx, t);
    telemetry::v1::AggregateRequest req;
    if (!tenant_wide) {
      req.set_device_id(device(rng));
      req.add_sensors("s" + std::to_string(rng() % static_cast<uint64_t>(sensors)));
    }
    req.set_start_ns(start);
    req.set_end_ns(end);
    req.set_bucket_seconds(tenant_wide ? 3600 : 60);
    req.add_functions(telemetry::v1::AGGREGATE_FUNCTION_AVG);
    req.add_functions(telemetry::v1::AGGREGATE_FUNCTION_MAX);
    telemetry::v1::AggregateResponse resp;
    grpc::Status gs = stub->Aggregate(&ctx, req, &resp);
    bool ok = gs.ok();
    static std::atomic<bool> told{false};
    if (!ok && !told.exchange(true))
      std::fprintf(stderr, "Aggregate failed: %s\n", gs.error_message().c_str());
    if (ok && resp.series_size() > 0 &&
        resp.series(0).buckets_size() != (tenant_wide ? 24 : 1440) && !told.exchange(true))
      std::fprintf(stderr, "Aggregate: %d series, %d buckets\n", resp.series_size(),
                   resp.series(0).buckets_size());
    return ok && resp.series_size() == (tenant_wide ? sensors : 1) &&
           resp.series(0).buckets_size() == (tenant_wide ? 24 : 1440);
  };
  results.push_back(Measure("one sensor, 24 h, 1-min buckets (Aggregate)", n, conc,
                            [&](std::mt19937_64& rng) { return aggregate(false, rng); }));
  results.push_back(Measure("a tenant's devices, 24 h, 1-h buckets (Aggregate)", n / 10, conc,
                            [&](std::mt19937_64& rng) { return aggregate(true, rng); }));
  // Baselines: the two aggregates straight from raw rows, same parameters.
  {
    std::vector<std::unique_ptr<pqxx::connection>> conns;
    std::mutex cm;
    auto sql = [&](const std::string& q) {
      std::unique_ptr<pqxx::connection> c;
      {
        std::lock_guard<std::mutex> l(cm);
        if (!conns.empty()) {
          c = std::move(conns.back());
          conns.pop_back();
        }
      }
      if (!c) c = std::make_unique<pqxx::connection>(absl::GetFlag(FLAGS_pg));
      bool ok = true;
      try {
        pqxx::read_transaction tx(*c);
        ok = !tx.exec(q).empty();
      } catch (const std::exception&) {
        ok = false;
      }
      std::lock_guard<std::mutex> l(cm);
      conns.push_back(std::move(c));
      return ok;
    };
    results.push_back(Measure(
        "baseline: one sensor 24 h 1-min from raw (SQL)", n / 4, conc, [&](std::mt19937_64& rng) {
          int64_t t = tenants[pick_tenant(rng)];
          return sql(absl::StrCat(
              "SELECT r.ts - r.ts % 60000000000 AS b, avg(value_double), max(value_double)"
              " FROM raw_readings r JOIN series s ON s.id = r.series_id JOIN devices d ON d.id = "
              "s.device_id"
              " WHERE s.tenant_id = ",
              t, " AND d.name = '", device(rng), "' AND s.sensor = 's",
              rng() % static_cast<uint64_t>(sensors), "' AND r.ts >= ", start, " AND r.ts < ", end,
              " GROUP BY 1 ORDER BY 1"));
        }));
    results.push_back(Measure("baseline: tenant 24 h 1-h from raw (SQL)", std::max(8, n / 100),
                              conc, [&](std::mt19937_64& rng) {
                                int64_t t = tenants[pick_tenant(rng)];
                                return sql(absl::StrCat(
                                    "SELECT s.sensor, r.ts - r.ts % 3600000000000 AS b, "
                                    "avg(value_double), max(value_double)"
                                    " FROM raw_readings r JOIN series s ON s.id = r.series_id"
                                    " WHERE s.tenant_id = ",
                                    t, " AND r.ts >= ", start, " AND r.ts < ", end,
                                    " GROUP BY 1, 2 ORDER BY 1, 2"));
                              }));
  }
  std::printf(
      "{\"devices_per_tenant\":%d,\"tenants\":%zu,\"sensors\":%d,\"rows\":%lld,\"concurrency\":%d,"
      "\"results\":[",
      devices, tenants.size(), sensors,
      static_cast<long long>(steps) * devices * sensors * static_cast<long long>(tenants.size()),
      conc);
  for (size_t i = 0; i < results.size(); ++i) {
    std::printf("%s{\"read\":\"%s\",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"qps\":%.1f,\"errors\":%d}",
                i ? "," : "", results[i].name.c_str(), results[i].p50, results[i].p99,
                results[i].qps, results[i].errors);
  }
  std::printf("]}\n");
  return 0;
}
