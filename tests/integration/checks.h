// Assertions shared by the e2e and robustness tests: stored data of a tenant
// against what was written, rollups against a recomputation from raw rows,
// the cache against the newest row per series.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "telemetry/v1/ingest.grpc.pb.h"
#include "tools/loadgen/fleet.h"

namespace telemetry::testing {

struct Written {
  int64_t accepted = 0;
  int64_t unique = 0;
  int64_t rejected = 0;
  int failed_calls = 0;
  std::map<int, int> failed_codes;  // gRPC status code -> calls
  int64_t slowest_failure_ms = 0;   // the longest a failed call took
  std::string token;                // merged over every call
};

struct WriteOptions {
  int deadline_ms = 20000;
  // A well-behaved client: a failed call is sent again (the same readings)
  // until it succeeds, instead of being a test failure.
  bool retry_failed = false;
  // When set, the unique readings acknowledged so far (for a test that acts
  // mid-stream).
  std::atomic<int64_t>* progress = nullptr;
};

// Writes `total` unique readings of a fleet (plus its duplicates and late
// readings) in batches of `batch` through Write.
Written WriteFleet(telemetry::v1::IngestService::Stub* stub, const std::string& key,
                   const loadgen::FleetOptions& fleet, int64_t total, int batch,
                   WriteOptions options = {});

// Rollup buckets that differ from a GROUP BY over the tenant's raw readings (rows and
// unpacked segments: TenantReadingsSql).
int64_t RollupMismatches(int64_t tenant_id, const std::string& table, int64_t width_ns);
// Tenant-wide hourly per-sensor rollup rows that differ from a GROUP BY over
// the tenant's raw rows.
int64_t SensorRollupMismatches(int64_t tenant_id);
// Series whose cached latest value differs from the newest raw row.
int64_t CacheMismatches(int64_t tenant_id);

}  // namespace telemetry::testing
