// The read path's logic, free of gRPC: validation, read-your-writes tokens,
// the cache for latest values, and the Router for the database choice.
#pragma once

#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/cold_readings.h"
#include "common/latest_cache.h"
#include "common/metrics.h"
#include "common/reading_reader.h"
#include "common/reading_writer.h"
#include "common/token.h"
#include "services/query/router.h"
#include "telemetry/v1/query.pb.h"

namespace telemetry::query {

struct QueryOptions {
  std::string topic = "telemetry.readings.v1";
  int64_t token_poll_interval_ns = 5 * kNsPerMs;
  size_t max_devices_per_latest = 1000;
  size_t max_sensors_per_read = 1000;
  int32_t max_page_size = 10'000;
  int64_t max_aggregate_buckets = 100'000;
  int64_t default_playback_delta_ns = 30 * kNsPerSec;
  int64_t max_playback_delta_ns = 24 * 3600 * kNsPerSec;
  // Reads waiting for a consistency token hold a worker thread while they
  // poll: at most this many at once over all tenants, and per tenant, so
  // that waiting reads can never take every worker (others get
  // RESOURCE_EXHAUSTED with a retry advice). 0: no bound.
  int max_token_waits = 4;
  int max_token_waits_per_tenant = 2;
};

struct QueryMetrics {
  explicit QueryMetrics(MetricsRegistry* r);
  Counter* token_waits;
  Counter* token_timeouts;
  Counter* token_refusals;
  Counter* cache_hits;
  Counter* cache_misses;
  Counter* cache_failures;
  Histogram* latest_seconds;
  Histogram* range_seconds;
  Histogram* aggregate_seconds;
  Histogram* playback_seconds;
};

class QueryCore {
 public:
  // `progress` (the primary's) answers token waits; `cache` may be null (no Redis);
  // `cold` may be null (no archive: hours retention dropped read as empty).
  QueryCore(QueryOptions options, WriterProgress* progress, Router* router, LatestCache* cache,
            const Clock* clock, QueryMetrics* metrics, ColdReadings* cold = nullptr);

  absl::StatusOr<telemetry::v1::LatestResponse> Latest(int64_t tenant_id,
                                                       const telemetry::v1::LatestRequest& req,
                                                       int64_t deadline_monotonic_ns);
  // Sends pages through `send` (returns false when the client went away);
  // `last` is true for the final page of a successful call (it carries the
  // cursor), which the caller may send together with the status.
  absl::Status Range(int64_t tenant_id, const telemetry::v1::RangeRequest& req,
                     int64_t deadline_monotonic_ns,
                     const std::function<bool(telemetry::v1::RangeResponse&&, bool last)>& send);
  absl::StatusOr<telemetry::v1::AggregateResponse> Aggregate(
      int64_t tenant_id, const telemetry::v1::AggregateRequest& req, int64_t deadline_monotonic_ns);
  absl::StatusOr<telemetry::v1::PlaybackResponse> Playback(
      int64_t tenant_id, const telemetry::v1::PlaybackRequest& req, int64_t deadline_monotonic_ns);

  // Waits until the writer applied the token's offsets; DEADLINE_EXCEEDED
  // when the deadline passes first.
  absl::Status WaitForToken(int64_t tenant_id, const std::string& token,
                            int64_t deadline_monotonic_ns);
  // DATA_LOSS when a write the token stands for lies in a range the writer
  // recorded as dropped by Kafka before it was applied: a read must not look
  // complete when the write it waits for will never be there.
  absl::Status CheckNotDropped(const ConsistencyPositions& positions);

 private:
  // The level to route by: a token forces STRONG (read-your-writes).
  static telemetry::v1::ConsistencyLevel LevelOf(const telemetry::v1::ReadOptions& o);
  static double StalenessOf(const telemetry::v1::ReadOptions& o);
  // INVALID_ARGUMENT naming the field for options a read cannot honour
  // (an unknown consistency level, a negative staleness).
  absl::Status CheckOptions(const telemetry::v1::ReadOptions& o) const;
  // INVALID_ARGUMENT past max_sensors_per_read.
  absl::Status CheckSensors(const google::protobuf::RepeatedPtrField<std::string>& sensors) const;

  // Takes a token-wait slot for the tenant (false: over a bound).
  bool AdmitTokenWait(int64_t tenant_id);
  void EndTokenWait(int64_t tenant_id);

  QueryOptions options_;
  absl::Mutex waits_mu_;
  int token_waits_ ABSL_GUARDED_BY(waits_mu_) = 0;
  absl::flat_hash_map<int64_t, int> token_waits_by_tenant_ ABSL_GUARDED_BY(waits_mu_);
  WriterProgress* progress_;
  Router* router_;
  LatestCache* cache_;
  const Clock* clock_;
  QueryMetrics* metrics_;
  ColdReadings* cold_;
};

std::string EncodeRangeCursor(const std::string& sensor, const std::string& unit, int64_t ts_ns);
absl::Status DecodeRangeCursor(const std::string& cursor, RangeQuery* q);
void ToStoredReading(const ReadingRow& row, telemetry::v1::StoredReading* out);

// Bucket width for an Aggregate request: explicit (a whole number of
// minutes), or "auto": the coarsest rollup giving at least max_points.
absl::StatusOr<int64_t> ChooseBucket(const telemetry::v1::AggregateRequest& req);
// Gap filling over [start, end) for one series' sorted buckets.
void FillGaps(telemetry::v1::GapFill mode, int64_t start_ns, int64_t end_ns, int64_t bucket_ns,
              size_t functions, telemetry::v1::AggregateSeries* series);

}  // namespace telemetry::query
