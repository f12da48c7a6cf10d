// The latest value of every (tenant, device, sensor), kept in Redis
// (latest_cache_redis.cc). Updates only move a value forward in time, so
// out-of-order data never moves it backwards.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"

namespace telemetry {

class LatestCache {
 public:
  virtual ~LatestCache() = default;
  // Sets each row's (device, sensor) entry unless the cache already holds a
  // reading at the same or a later timestamp.
  virtual absl::Status UpdateIfNewer(int64_t tenant_id, const std::vector<ReadingRow>& rows) = 0;
  // Entries present for the devices (all sensors when `sensors` is empty).
  virtual absl::StatusOr<std::vector<ReadingRow>> Get(int64_t tenant_id,
                                                      const std::vector<std::string>& devices,
                                                      const std::vector<std::string>& sensors) = 0;
};

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  int timeout_ms = 500;
  // Connections opened at most (one per concurrent call, kept for reuse).
  int connections = 8;
};

// Parses "host:port".
absl::StatusOr<RedisOptions> ParseRedisAddress(const std::string& address);
std::unique_ptr<LatestCache> NewRedisLatestCache(const RedisOptions& options);
// The cache at "host:port", or null for "" (no cache configured).
absl::StatusOr<std::unique_ptr<LatestCache>> NewLatestCacheAt(const std::string& address);

// The cache's value encoding (exposed for tests).
std::string EncodeLatest(const ReadingRow& row);
absl::StatusOr<ReadingRow> DecodeLatest(const std::string& encoded);

}  // namespace telemetry
