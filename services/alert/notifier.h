// Delivers the alert outbox: every transition to the Kafka topic
// telemetry.alerts.v1 (keyed by fingerprint), to the rule's webhooks (JSON
// POST with an Idempotency-Key header) and to Prometheus Alertmanager. Runs
// beside evaluation, never in its way: a slow or dead receiver only delays
// its own rows, retried with exponential backoff and jitter until
// `give_up_after_ns`, then recorded as given up (alert_deliveries).
//
// Alertmanager resolves an alert by itself once its endsAt passed, so, as
// Prometheus does, a FIRING alert is posted with endsAt kEndsAtIntervals
// re-send intervals ahead and posted again every interval while it fires
// (AlertmanagerResender); a RESOLVED one carries its resolve time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/alert_rules.h"
#include "common/alert_state.h"
#include "common/clock.h"
#include "common/kafka/kafka.h"
#include "common/metrics.h"
#include "common/service/http_client.h"
#include "common/thread_pool.h"
#include "telemetry/v1/alert.pb.h"

namespace telemetry::alert {

// A FIRING alert's endsAt is this many re-send intervals after the post:
// Alertmanager keeps it active through a few failed re-sends, and resolves it
// by itself when they stop (the alert service is gone).
inline constexpr int kEndsAtIntervals = 4;

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
  // AlertmanagerResender's interval (a FIRING post's endsAt depends on it).
  int64_t alertmanager_resend_ns = 60 * kNsPerSec;
};

struct NotifierMetrics {
  explicit NotifierMetrics(MetricsRegistry* r);
  Counter* delivered;
  Counter* retried;
  Counter* given_up;
  Counter* store_failures;
  Counter* resent;           // alerts posted again to an Alertmanager
  Counter* resend_failures;  // ... in a post that failed (logged, not retried)
};

// The webhook body: the AlertEvent as JSON (proto field names).
std::string WebhookJson(const telemetry::v1::AlertEvent& e);
// The Alertmanager body (a one-alert array for POST /api/v2/alerts). A
// FIRING alert's endsAt is `firing_ends_at_ns` (0: none, Alertmanager's
// resolve_timeout applies); a RESOLVED one's is its event time.
std::string AlertmanagerJson(const telemetry::v1::AlertEvent& e, int64_t firing_ends_at_ns = 0);
// Where alerts are posted on the Alertmanager at `base_url`.
std::string AlertmanagerAlertsUrl(std::string base_url);

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

struct ResendOptions {
  int64_t interval_ns = 60 * kNsPerSec;
  int page = 500;   // alerts read per store call
  int batch = 100;  // alerts per POST
  int http_timeout_ms = 5000;
};

// Posts every FIRING alert again, every interval, to the Alertmanagers its
// rule names now (a rule deleted or without alertmanager_urls: none), with
// endsAt kEndsAtIntervals intervals ahead. Alerts RESOLVED within that time
// are posted again too, with their resolve time, as Prometheus does: a
// re-send racing the resolution (read FIRING, posted after the RESOLVED
// post) is undone by the next round. Transitions whose notifications a
// silence muted are not posted. Re-sends are not transitions: nothing is
// recorded; a failed post is logged and counted, and the next round posts
// again.
class AlertmanagerResender {
 public:
  AlertmanagerResender(ResendOptions options, AlertStateStore* store, AlertRuleStore* rules,
                       HttpPoster* http, const Clock* clock, NotifierMetrics* metrics);

  // One round; returns how many alerts were posted (per Alertmanager).
  absl::StatusOr<int> RunOnce();

 private:
  absl::Status LoadRules();

  ResendOptions options_;
  AlertStateStore* store_;
  AlertRuleStore* rules_;
  HttpPoster* http_;
  const Clock* clock_;
  NotifierMetrics* metrics_;
  int64_t generation_ = -1;
  // rule_id -> (tenant, alertmanager_urls), of the rules that have some.
  absl::flat_hash_map<std::string, std::pair<int64_t, std::vector<std::string>>> targets_;
};

}  // namespace telemetry::alert
