// The write path's logic, free of gRPC: validate, check registration and
// quota, encode per partition, publish, and report when Kafka acknowledged.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/kafka/kafka.h"
#include "common/metadata_store.h"
#include "common/metrics.h"
#include "common/timer.h"
#include "services/ingest/quota.h"
#include "services/ingest/validation.h"
#include "telemetry/v1/ingest.pb.h"

namespace telemetry::ingest {

// The largest Write request (and WriteStream message) ingest takes: 16 MiB,
// as ingest.proto documents.
inline constexpr int kMaxRequestBytes = 16 << 20;

struct IngestOptions {
  std::string topic = "telemetry.readings.v1";
  ValidationLimits limits;
  // Longest wait for Kafka's acknowledgement when the call has no deadline.
  int64_t max_ack_wait_ns = 10 * kNsPerSec;
  // Back-pressure: refuse writes while the writer is this many messages
  // behind on any partition (0 disables). See docs/write-path.md.
  int64_t max_writer_lag_messages = 20'000;
  // The same in bytes (lag in messages × the average message this service
  // produced): bounds how stale stored data gets, and how much a consumer
  // could lose to a size-based retention (retention.bytes) while it lags.
  int64_t max_writer_lag_bytes = 2 << 20;
};

struct IngestMetrics {
  explicit IngestMetrics(MetricsRegistry* r);
  Counter* accepted;
  Counter* rejected;
  Counter* quota_refusals;
  Counter* backpressure_refusals;
  Counter* kafka_failures;
  Counter* messages;
  Counter* devices_registered;
  Histogram* ack_latency;
  Gauge* writer_lag_messages;
};

class IngestCore {
 public:
  using Done = std::function<void(absl::StatusOr<telemetry::v1::WriteResponse>)>;

  IngestCore(IngestOptions options, EventPublisher* publisher, MetadataStore* metadata,
             const Clock* clock, IngestMetrics* metrics);
  ~IngestCore();

  // Learns the topic's partition count. Call before Write.
  absl::Status Start();

  // Blocking part on the caller's (pool) thread; `done` runs exactly once,
  // possibly on another thread, when every accepted reading is durable in
  // Kafka or the deadline (monotonic ns) passed. `index_base` is added to
  // rejected indexes (streams).
  void Write(const TenantInfo& tenant, const telemetry::v1::WriteRequest& request,
             int64_t index_base, int64_t deadline_monotonic_ns, Done done);

  // Refreshes the writer-lag gauge used for back-pressure; `applied` is the
  // store's next offset per partition. Called periodically by main, on a
  // thread of its own. Stops at the first partition whose watermarks Kafka
  // does not give (the gauge keeps its last value) and returns that error:
  // one failing query per partition would take minutes.
  absl::Status UpdateWriterLag(const std::map<int32_t, int64_t>& applied);
  int64_t writer_lag_messages() const { return writer_lag_.load(); }
  int64_t writer_lag_bytes() const { return writer_lag_bytes_.load(); }
  int64_t MaxLagBytes() const;
  // The topic keeps at most `bytes` a partition (retention.bytes; <= 0: no
  // size limit). Back-pressure then comes at half of it at the latest, so a
  // lagging writer never has acknowledged messages dropped by size before it
  // read them. Returns the byte limit in force.
  int64_t LimitLagToRetention(int64_t bytes);

  int32_t partitions() const { return partitions_; }

 private:
  // Returns the device names of `names` the tenant may write to, registering
  // unknown ones unless the tenant requires registration.
  absl::StatusOr<absl::flat_hash_set<std::string>> AllowedDevices(
      const TenantInfo& tenant, const std::vector<std::string>& names);

  IngestOptions options_;
  EventPublisher* publisher_;
  MetadataStore* metadata_;
  const Clock* clock_;
  IngestMetrics* metrics_;
  QuotaLimiter quota_;
  Timer timer_;
  int32_t partitions_ = 0;
  std::atomic<int64_t> writer_lag_{0};
  std::atomic<int64_t> writer_lag_bytes_{0};
  std::atomic<int64_t> max_lag_bytes_{-1};  // -1: options_.max_writer_lag_bytes
  std::atomic<int64_t> produced_bytes_{0}, produced_messages_{0};
  absl::Mutex mu_;
  // Devices known to exist, per tenant (bounded; cleared when too large).
  absl::flat_hash_map<int64_t, absl::flat_hash_set<std::string>> known_devices_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace telemetry::ingest
