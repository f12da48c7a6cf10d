// The read path's logic, free of gRPC. First slice of the router: every
// level is served from the primary (STRONG, the strongest; the response says
// so), and a consistency token makes the read wait until the writer applied
// the write (read-your-writes). Replicas, cache and the warehouse: see
// docs/ROADMAP.md.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/reading_store.h"
#include "telemetry/v1/query.pb.h"

namespace telemetry::query {

struct QueryOptions {
  std::string topic = "telemetry.readings.v1";
  int64_t token_poll_interval_ns = 5 * kNsPerMs;
  size_t max_devices_per_latest = 1000;
  int32_t max_page_size = 10'000;
};

struct QueryMetrics {
  explicit QueryMetrics(MetricsRegistry* r);
  Counter* token_waits;
  Counter* token_timeouts;
  Histogram* latest_seconds;
  Histogram* range_seconds;
};

class QueryCore {
 public:
  QueryCore(QueryOptions options, ReadingStore* primary, const Clock* clock, QueryMetrics* metrics);

  absl::StatusOr<telemetry::v1::LatestResponse> Latest(int64_t tenant_id,
                                                       const telemetry::v1::LatestRequest& req,
                                                       int64_t deadline_monotonic_ns);
  // Sends pages through `send` (returns false when the client went away).
  absl::Status Range(int64_t tenant_id, const telemetry::v1::RangeRequest& req,
                     int64_t deadline_monotonic_ns,
                     const std::function<bool(telemetry::v1::RangeResponse&&)>& send);

  // Waits until the writer applied the token's offsets; DEADLINE_EXCEEDED
  // when the deadline passes first.
  absl::Status WaitForToken(const std::string& token, int64_t deadline_monotonic_ns);

  static telemetry::v1::ReadMetadata PrimaryMetadata();

 private:
  QueryOptions options_;
  ReadingStore* primary_;
  const Clock* clock_;
  QueryMetrics* metrics_;
};

std::string EncodeRangeCursor(const std::string& sensor, const std::string& unit, int64_t ts_ns);
absl::Status DecodeRangeCursor(const std::string& cursor, RangeQuery* q);
void ToStoredReading(const ReadingRow& row, telemetry::v1::StoredReading* out);

}  // namespace telemetry::query
