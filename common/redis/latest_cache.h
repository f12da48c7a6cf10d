// The latest-value cache on Redis (hiredis 0.14): one hash per (tenant,
// device), a Lua script that moves an entry only forward in time.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/latest_cache.h"

namespace telemetry {

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
