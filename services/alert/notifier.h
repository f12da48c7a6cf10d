// Delivers the alert outbox: every transition to the Kafka topic
// telemetry.alerts.v1 (keyed by fingerprint), to the rule's webhooks (JSON
// POST with an Idempotency-Key header) and to Prometheus Alertmanager. Runs
// beside evaluation, never in its way: a slow or dead receiver only delays
// its own rows, retried with exponential backoff and jitter until
// `give_up_after_ns`, then recorded as given up (alert_deliveries).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/alert_state.h"
#include "common/clock.h"
#include "common/kafka/kafka.h"
#include "common/metrics.h"
#include "common/service/http_client.h"
#include "common/thread_pool.h"
#include "telemetry/v1/alert.pb.h"

namespace telemetry::alert {

struct NotifierOptions {
  std::string alerts_topic = "telemetry.alerts.v1";
  int batch = 200;
  // A claimed row is left alone by other dispatchers this long.
  int64_t lease_ns = 60 * kNsPerSec;
  int64_t initial_backoff_ns = 1 * kNsPerSec;
  int64_t max_backoff_ns = 60 * kNsPerSec;
  // Counted from the transition: past it, a failing delivery is given up.
  int64_t give_up_after_ns = 3600 * kNsPerSec;
  int http_timeout_ms = 5000;
};

struct NotifierMetrics {
  explicit NotifierMetrics(MetricsRegistry* r);
  Counter* delivered;
  Counter* retried;
  Counter* given_up;
  Counter* store_failures;
};

// The webhook body: the AlertEvent as JSON (proto field names).
std::string WebhookJson(const telemetry::v1::AlertEvent& e);
// The Alertmanager body (a one-alert array for POST /api/v2/alerts).
std::string AlertmanagerJson(const telemetry::v1::AlertEvent& e);

class Notifier {
 public:
  // `pool` runs the deliveries of a round concurrently (its size bounds how
  // many slow receivers are waited on at once).
  Notifier(NotifierOptions options, AlertStateStore* store, EventPublisher* publisher,
           HttpPoster* http, ThreadPool* pool, const Clock* clock, NotifierMetrics* metrics);

  // Claims the due rows and delivers them; returns how many were handled.
  absl::StatusOr<int> RunOnce();

 private:
  absl::Status Deliver(const OutboxItem& item, const telemetry::v1::AlertEvent& e);
  int64_t BackoffNs(int attempts);

  NotifierOptions options_;
  AlertStateStore* store_;
  EventPublisher* publisher_;
  HttpPoster* http_;
  ThreadPool* pool_;
  const Clock* clock_;
  NotifierMetrics* metrics_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
  std::atomic<int32_t> partitions_{0};
};

}  // namespace telemetry::alert
