// The MQTT bridge's core: messages from the broker become readings in the
// same write path as gRPC (ingest::IngestCore), and a QoS 1 message is
// acknowledged to the broker only once Kafka acknowledged its readings (or
// they were refused for good). docs/ingress.md "MQTT" is the contract.
//
// Messages are batched per tenant (up to max_batch_readings readings or
// max_batch_delay_ns) into one IngestCore::Write. A batch the write path
// cannot take now (Kafka down, back-pressure, quota, the device registry
// unreachable) is retried with backoff and its messages stay unacknowledged;
// when max_unacked_messages are waiting, OnMessage blocks, the client stops
// reading, and the broker keeps the rest (back-pressure to the broker, which
// is configured never to drop what it acknowledged to a device).
//
// A message that cannot be used (no matching topic, an unknown tenant, a
// payload that does not decode) is acknowledged (retrying cannot help),
// counted, logged and reported on `<error_topic_prefix>/<tenant>/<device>`;
// so are readings the write path refused.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/metadata_store.h"
#include "common/metrics.h"
#include "common/mqtt/client.h"
#include "services/bridge/payload.h"
#include "services/ingest/ingest_core.h"

namespace telemetry::bridge {

// The connection a message came on: where its acknowledgement and error
// reports go. Wraps an mqtt::Client; tests fake it.
class Session {
 public:
  virtual ~Session() = default;
  // QoS 1: the broker may forget the message. An error (the connection
  // ended) is not the bridge's concern: the broker resends the message.
  virtual absl::Status Ack(uint16_t packet_id) = 0;
  // QoS 0, fire and forget.
  virtual absl::Status Publish(const std::string& topic, const std::string& payload) = 0;
};

struct BridgeOptions {
  TopicPatterns patterns = TopicPatterns::Default();
  PayloadFormat format = PayloadFormat::kAuto;
  DecodeLimits limits;
  std::string error_topic_prefix = "telemetry-errors";
  size_t max_batch_readings = 5'000;
  int64_t max_batch_delay_ns = 5 * kNsPerMs;
  // Messages received and not acknowledged yet before OnMessage blocks.
  size_t max_unacked_messages = 20'000;
  // The longest a write waits for Kafka before it is retried.
  int64_t max_ack_wait_ns = 10 * kNsPerSec;
  int64_t tenant_cache_ns = 30 * kNsPerSec;
  int64_t max_retry_backoff_ns = 5 * kNsPerSec;
};

struct BridgeMetrics {
  explicit BridgeMetrics(MetricsRegistry* r);
  Counter* messages;
  Counter* readings;
  Counter* bad_messages;   // no usable readings: topic, tenant or payload
  Counter* bad_readings;   // decoded but refused (decode errors, validation)
  Counter* write_retries;  // batches retried (Kafka, back-pressure, quota)
  Counter* acks;           // QoS 1 messages acknowledged
  Counter* error_reports;  // messages published to the error topic
  Gauge* unacked;          // messages waiting for their acknowledgement
};

class Bridge {
 public:
  Bridge(BridgeOptions options, ingest::IngestCore* core, MetadataStore* metadata,
         const Clock* clock, BridgeMetrics* metrics);
  // Stop(), then waits for the writes in flight.
  ~Bridge();

  // Starts the thread that writes batches when they are due.
  void Start();
  // One message from `session` (the MQTT client's callback). Blocks while
  // max_unacked_messages are waiting, until Stop().
  void OnMessage(const std::shared_ptr<Session>& session, mqtt::Message message);
  // No more writes start; messages not written stay unacknowledged (the
  // broker resends them to the persistent session).
  void Stop();

  size_t unacked() const;

 private:
  struct Pending {
    std::shared_ptr<Session> session;
    uint16_t packet_id = 0;  // 0: QoS 0
    std::string topic, error_topic;
    int begin = 0, end = 0;  // its readings in the batch's request
  };
  struct Batch {
    std::string tenant;
    telemetry::v1::WriteRequest request;
    std::vector<Pending> messages;
    int64_t opened_ns = 0;
    int attempts = 0;
    int64_t due_ns = 0;
  };

  bool HasRoom() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stop_ || unacked_ < options_.max_unacked_messages;
  }
  void Loop();
  void Flush(std::shared_ptr<Batch> batch);
  void Retry(std::shared_ptr<Batch> batch, const absl::Status& why);
  // Acknowledges every message of `batch` and releases them.
  void Finish(const Batch& batch);
  void ReportError(Session* session, const std::string& error_topic, const std::string& topic,
                   const std::string& error, size_t count);
  absl::StatusOr<std::optional<TenantInfo>> Tenant(const std::string& name);

  const BridgeOptions options_;
  ingest::IngestCore* core_;
  MetadataStore* metadata_;
  const Clock* clock_;
  BridgeMetrics* metrics_;

  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  size_t unacked_ ABSL_GUARDED_BY(mu_) = 0;
  int writes_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, std::shared_ptr<Batch>> open_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Batch>> retries_ ABSL_GUARDED_BY(mu_);
  struct CachedTenant {
    std::optional<TenantInfo> tenant;
    int64_t expires_ns;
  };
  absl::Mutex tenants_mu_;
  absl::flat_hash_map<std::string, CachedTenant> tenants_ ABSL_GUARDED_BY(tenants_mu_);
  std::thread thread_;
};

}  // namespace telemetry::bridge
