// The InfluxDB-compatible HTTP write endpoint of the ingest service: what
// Telegraf, the influx 1.x CLI and the InfluxDB client libraries send,
// through the same write path as gRPC (IngestCore: validation, quotas, dedup,
// back-pressure). docs/ingress.md "Line protocol" is the contract:
//
//   GET|HEAD /ping                 204, X-Influxdb-Version
//   GET /health                    200 {"status":"pass"} while serving
//   POST /write?db=&rp=&precision=&u=&p=          (v1)
//   POST /api/v2/write?org=&bucket=&precision=     (v2)
//   POST /query  CREATE DATABASE / CREATE RETENTION POLICY only (what
//                `influx -import` sends before its data; nothing else)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/auth.h"
#include "common/clock.h"
#include "common/grpc/tls.h"
#include "common/metrics.h"
#include "services/ingest/ingest_core.h"

namespace httplib {
class Server;
}

namespace telemetry::ingest {

struct InfluxHttpOptions {
  // The tag whose value names the device (lineproto::MappingOptions).
  std::string device_tag;
  // The largest body, compressed and after decompression: 413 beyond it.
  size_t max_body_bytes = 32 << 20;
  // Readings per IngestCore::Write call; a body's chunks are in flight together.
  int chunk_readings = 5'000;
  // The longest a write waits for Kafka's acknowledgement: 503 after it.
  int64_t max_wait_ns = 10 * kNsPerSec;
  int threads = 8;
  // What /ping reports as X-Influxdb-Version (clients read it to pick the API).
  std::string version = "1.8.10";
};

struct InfluxHttpMetrics {
  explicit InfluxHttpMetrics(MetricsRegistry* r);
  Counter* requests;
  Counter* lines;
  Counter* bad_lines;
  Counter* refused;  // 4xx other than bad lines, and 5xx
};

// One HTTP request as the handler sees it (so tests need no socket).
struct HttpWrite {
  bool v2 = false;
  std::string authorization;   // the Authorization header
  std::string user, password;  // v1 `u` and `p` parameters
  std::string database;        // v1 db / v2 bucket
  std::string precision;
  std::string body;  // decompressed
};

struct HttpReply {
  int status = 204;
  std::string body;  // JSON when not empty
  std::vector<std::pair<std::string, std::string>> headers;
};

class InfluxHttpServer {
 public:
  // `core`, `auth`, `clock` and `metrics` outlive the server.
  InfluxHttpServer(IngestCore* core, Authenticator* auth, const Clock* clock,
                   InfluxHttpMetrics* metrics, InfluxHttpOptions options, TlsServerFiles tls = {});
  ~InfluxHttpServer();

  // Listens on host:port (port 0 picks one) on a thread of its own.
  absl::Status Start(const std::string& host, int port);
  int port() const { return port_; }
  // Stops taking requests; requests in progress finish first.
  void Stop();
  // While `ready` says no (with its reason), writes get 503 and /health
  // fails: main passes the service's health (Kafka reachable, topic known).
  // Call before Start; without it the endpoint is always ready.
  void SetReadiness(std::function<bool(std::string*)> ready) { ready_ = std::move(ready); }

  // Parses, authenticates, writes and answers one write request. Blocks
  // until every accepted reading is durable in Kafka or the wait expired.
  HttpReply HandleWrite(const HttpWrite& request);

 private:
  absl::StatusOr<std::shared_ptr<const TenantInfo>> Authenticate(const HttpWrite& request);

  IngestCore* core_;
  Authenticator* auth_;
  const Clock* clock_;
  InfluxHttpMetrics* metrics_;
  InfluxHttpOptions options_;
  TlsServerFiles tls_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::function<bool(std::string*)> ready_;
  int port_ = 0;
};

}  // namespace telemetry::ingest
