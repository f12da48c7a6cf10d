#include "tests/integration/checks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/redis/latest_cache.h"
#include "common/token.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {

Written WriteFleet(telemetry::v1::IngestService::Stub* stub, const std::string& key,
                   const loadgen::FleetOptions& fleet, int64_t total, int batch,
                   WriteOptions options) {
  loadgen::FleetGenerator gen(fleet, 0, fleet.devices);
  Written w;
  ConsistencyPositions merged;
  bool last = false;
  while (!last) {
    telemetry::v1::WriteRequest req;
    int64_t want = std::min<int64_t>(batch, total - gen.unique());
    if (want <= 0) {
      gen.Drain(&req);
      last = true;
      if (req.readings_size() == 0) break;
    } else {
      gen.Next(static_cast<int>(want), &req);
    }
    telemetry::v1::WriteResponse resp;
    grpc::Status st;
    while (true) {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer " + key);
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(options.deadline_ms));
      const auto t0 = std::chrono::steady_clock::now();
      st = stub->Write(&ctx, req, &resp);
      if (st.ok()) break;
      ++w.failed_calls;
      ++w.failed_codes[st.error_code()];
      w.slowest_failure_ms = std::max<int64_t>(
          w.slowest_failure_ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - t0)
                                    .count());
      if (!options.retry_failed) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (!st.ok()) {
      ADD_FAILURE() << "write failed: " << st.error_code() << " " << st.error_message();
      continue;
    }
    w.accepted += resp.accepted();
    if (options.progress != nullptr) options.progress->store(gen.unique());
    w.rejected += resp.rejected_size();
    auto pos = DecodeConsistencyToken(resp.consistency_token());
    if (pos.ok()) {
      merged.topic = pos->topic;
      for (const auto& [p, o] : pos->offsets) merged.offsets[p] = std::max(merged.offsets[p], o);
    }
  }
  w.unique = gen.unique();
  w.token = EncodeConsistencyToken(merged);
  return w;
}

int64_t RollupMismatches(int64_t tenant_id, const std::string& table, int64_t width_ns) {
  return SqlInt(absl::StrCat(
      "WITH v AS (SELECT r.series_id, r.ts, coalesce(r.value_double, r.value_bool::int) AS v"
      "   FROM ",
      TenantReadingsSql(tenant_id),
      " r JOIN series s ON s.id = r.series_id WHERE s.tenant_id = ", tenant_id,
      "   AND (r.value_double IS NOT NULL OR r.value_bool IS NOT NULL)),"
      " r AS (SELECT series_id, ts - ts % ",
      width_ns,
      " AS bucket, count(*) AS c, sum(v) AS s,"
      "   min(v) AS mn, max(v) AS mx, max(ts) AS lt, (array_agg(v ORDER BY ts DESC))[1] AS lv"
      "   FROM v GROUP BY 1, 2),"
      " a AS (SELECT a.* FROM ",
      table,
      " a JOIN series s ON s.id = a.series_id"
      "   WHERE s.tenant_id = ",
      tenant_id,
      ")"
      " SELECT count(*) FROM r FULL JOIN a USING (series_id, bucket)"
      " WHERE r.c IS NULL OR a.cnt IS NULL OR a.cnt <> r.c"
      "   OR abs(a.sum - r.s) > 1e-6 * greatest(1, abs(r.s)) OR a.min <> r.mn OR a.max <> r.mx"
      "   OR a.last_ts <> r.lt OR a.last_value <> r.lv"));
}

int64_t SensorRollupMismatches(int64_t tenant_id) {
  return SqlInt(absl::StrCat(
      "WITH v AS (SELECT s.project_id, s.sensor, r.ts,"
      "   coalesce(r.value_double, r.value_bool::int) AS v"
      "   FROM ",
      TenantReadingsSql(tenant_id),
      " r JOIN series s ON s.id = r.series_id WHERE s.tenant_id = ", tenant_id,
      "   AND (r.value_double IS NOT NULL OR r.value_bool IS NOT NULL)),"
      " r AS (SELECT project_id, sensor, ts - ts % 3600000000000 AS bucket, count(*) AS c,"
      "   sum(v) AS s, min(v) AS mn, max(v) AS mx, max(ts) AS lt FROM v GROUP BY 1, 2, 3),"
      " a AS (SELECT * FROM agg_1h_sensor WHERE tenant_id = ",
      tenant_id,
      ")"
      " SELECT count(*) FROM r FULL JOIN a USING (project_id, sensor, bucket)"
      " WHERE r.c IS NULL OR a.cnt IS NULL OR a.cnt <> r.c"
      "   OR abs(a.sum - r.s) > 1e-6 * greatest(1, abs(r.s)) OR a.min <> r.mn OR a.max <> r.mx"
      "   OR a.last_ts <> r.lt"));
}

int64_t CacheMismatches(int64_t tenant_id) {
  auto rows = Sql(absl::StrCat(
      "SELECT d.name, s.sensor, r.ts FROM series s JOIN devices d ON d.id = s.device_id"
      " CROSS JOIN LATERAL (SELECT ts FROM raw_readings_merged r WHERE r.series_id = s.id"
      "   ORDER BY ts DESC LIMIT 1) r WHERE s.tenant_id = ",
      tenant_id));
  std::vector<std::string> devices;
  std::map<std::pair<std::string, std::string>, int64_t> newest;
  for (const auto& r : rows) {
    if (newest.count({r[0], r[1]}) == 0 &&
        std::find(devices.begin(), devices.end(), r[0]) == devices.end()) {
      devices.push_back(r[0]);
    }
    newest[{r[0], r[1]}] = std::stoll(r[2]);
  }
  auto opts = ParseRedisAddress(RequireEnv("TELEMETRY_REDIS"));
  auto cache = NewRedisLatestCache(*opts);
  auto cached = cache->Get(tenant_id, devices, {});
  EXPECT_TRUE(cached.ok()) << cached.status();
  if (!cached.ok()) return -1;
  int64_t mismatches = static_cast<int64_t>(newest.size()) - static_cast<int64_t>(cached->size());
  for (const auto& c : *cached) {
    auto it = newest.find({c.device, c.sensor});
    if (it == newest.end() || it->second != c.ts_ns) ++mismatches;
  }
  return mismatches < 0 ? -mismatches : mismatches;
}

}  // namespace telemetry::testing
