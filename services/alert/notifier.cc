#include "services/alert/notifier.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/kafka/codec.h"
#include "common/logging.h"

namespace telemetry::alert {
namespace {

using telemetry::v1::AlertEvent;

std::string Rfc3339(int64_t ns) {
  return absl::FormatTime(absl::RFC3339_full, absl::FromUnixNanos(ns), absl::UTCTimeZone());
}

const char* SeverityName(telemetry::v1::Severity s) {
  switch (s) {
    case telemetry::v1::SEVERITY_INFO:
      return "info";
    case telemetry::v1::SEVERITY_CRITICAL:
      return "critical";
    default:
      return "warning";
  }
}

std::string Json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

}  // namespace

NotifierMetrics::NotifierMetrics(MetricsRegistry* r)
    : delivered(r->AddCounter("alert_notifications_delivered_total",
                              "Notifications delivered (Kafka, webhooks, Alertmanager)")),
      retried(r->AddCounter("alert_notification_retries_total",
                            "Failed notification attempts that will be retried")),
      given_up(r->AddCounter("alert_notifications_given_up_total",
                             "Notifications given up after the retry time, or refused for good")),
      store_failures(
          r->AddCounter("alert_outbox_store_failures_total", "Failed outbox reads or updates")),
      resent(r->AddCounter("alert_alertmanager_resent_total",
                           "Alerts posted again to an Alertmanager (firing, recently resolved)")),
      resend_failures(r->AddCounter("alert_alertmanager_resend_failures_total",
                                    "Alerts whose re-send to an Alertmanager failed")) {}

std::string WebhookJson(const AlertEvent& e) { return Json(e); }

namespace {

// One alert of a POST /api/v2/alerts body.
std::string AlertmanagerAlert(const AlertEvent& e, int64_t firing_ends_at_ns) {
  // Alertmanager's labels identify the alert: the rule's labels plus ours.
  google::protobuf::Struct alert;
  auto& f = *alert.mutable_fields();
  google::protobuf::Struct labels;
  auto& l = *labels.mutable_fields();
  for (const auto& [k, v] : e.labels()) l[k].set_string_value(v);
  l["alertname"].set_string_value(e.rule_name());
  l["rule_id"].set_string_value(e.rule_id());
  l["device"].set_string_value(e.device_id());
  l["sensor"].set_string_value(e.sensor());
  l["severity"].set_string_value(SeverityName(e.severity()));
  l["tenant_id"].set_string_value(std::to_string(e.tenant_id()));
  l["fingerprint"].set_string_value(e.fingerprint());
  *f["labels"].mutable_struct_value() = labels;
  google::protobuf::Struct annotations;
  for (const auto& [k, v] : e.annotations()) {
    (*annotations.mutable_fields())[k].set_string_value(v);
  }
  *f["annotations"].mutable_struct_value() = annotations;
  const int64_t starts_at =
      e.state() == telemetry::v1::ALERT_STATE_RESOLVED ? e.window_start_ns() : e.event_time_ns();
  f["startsAt"].set_string_value(Rfc3339(starts_at));
  if (e.state() == telemetry::v1::ALERT_STATE_RESOLVED) {
    f["endsAt"].set_string_value(Rfc3339(e.event_time_ns()));
  } else if (firing_ends_at_ns > 0) {
    // Alertmanager refuses an end before the start (an event time ahead of
    // this clock): such an alert stays active a second past its start.
    f["endsAt"].set_string_value(Rfc3339(std::max(firing_ends_at_ns, starts_at + kNsPerSec)));
  }
  std::string one;
  (void)google::protobuf::util::MessageToJsonString(alert, &one);
  return one;
}

}  // namespace

std::string AlertmanagerJson(const AlertEvent& e, int64_t firing_ends_at_ns) {
  return "[" + AlertmanagerAlert(e, firing_ends_at_ns) + "]";
}

std::string AlertmanagerAlertsUrl(std::string base_url) {
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  return base_url + "/api/v2/alerts";
}

Notifier::Notifier(NotifierOptions options, AlertStateStore* store, EventPublisher* publisher,
                   HttpPoster* http, ThreadPool* pool, const Clock* clock, NotifierMetrics* metrics)
    : options_(std::move(options)),
      store_(store),
      publisher_(publisher),
      http_(http),
      pool_(pool),
      clock_(clock),
      metrics_(metrics),
      rng_(std::random_device{}()) {}

int64_t Notifier::BackoffNs(int attempts) {
  // Exponential with full jitter in its upper half: [d/2, d].
  int64_t d = options_.initial_backoff_ns;
  for (int i = 1; i < attempts && d < options_.max_backoff_ns; ++i) d *= 2;
  d = std::min(d, options_.max_backoff_ns);
  std::uniform_int_distribution<int64_t> jitter(d / 2, d);
  return jitter(rng_);
}

absl::Status Notifier::Deliver(const OutboxItem& item, const AlertEvent& e) {
  if (item.target == "kafka") {
    if (partitions_.load() <= 0) {
      absl::StatusOr<int32_t> n = publisher_->PartitionCount(options_.alerts_topic);
      if (!n.ok()) return n.status();
      partitions_ = *n;
    }
    std::string payload;
    e.SerializeToString(&payload);
    std::promise<absl::Status> done;
    auto f = done.get_future();
    publisher_->Publish(options_.alerts_topic,
                        PartitionFor(e.tenant_id(), e.fingerprint(), partitions_.load()),
                        e.fingerprint(), std::move(payload),
                        [&done](const DeliveryReport& r) { done.set_value(r.status); });
    return f.get();
  }
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"Idempotency-Key", absl::StrCat(e.fingerprint(), "-", e.sequence())},
      {"X-Telemetry-Alert-Fingerprint", e.fingerprint()},
      {"X-Telemetry-Alert-Sequence", std::to_string(e.sequence())}};
  std::string url, body;
  if (item.target.rfind("webhook:", 0) == 0) {
    url = item.target.substr(8);
    body = WebhookJson(e);
  } else if (item.target.rfind("alertmanager:", 0) == 0) {
    url = AlertmanagerAlertsUrl(item.target.substr(13));
    body =
        AlertmanagerJson(e, clock_->NowNs() + kEndsAtIntervals * options_.alertmanager_resend_ns);
  } else {
    return absl::InvalidArgumentError("unknown notification target " + item.target);
  }
  absl::StatusOr<int> code = http_->Post(url, body, headers, options_.http_timeout_ms);
  if (!code.ok()) return code.status();
  if (*code >= 200 && *code < 300) return absl::OkStatus();
  const std::string why = absl::StrCat(url, " answered HTTP ", *code);
  // A request the receiver refuses as such will be refused again; a busy or
  // failing receiver may take it later.
  if (*code >= 400 && *code < 500 && *code != 408 && *code != 429) {
    return absl::InvalidArgumentError(why);
  }
  return absl::UnavailableError(why);
}

absl::StatusOr<int> Notifier::RunOnce() {
  auto items = store_->ClaimOutbox(options_.batch, options_.lease_ns);
  if (!items.ok()) {
    metrics_->store_failures->Inc();
    return items.status();
  }
  if (items->empty()) return 0;
  std::mutex mu;
  std::condition_variable cv;
  size_t left = items->size();
  auto finish_one = [&] {
    std::lock_guard<std::mutex> lock(mu);
    if (--left == 0) cv.notify_all();
  };
  auto log = GetLogger("alert");
  for (const OutboxItem& item : *items) {
    auto work = [this, &item, &finish_one, log] {
      AlertEvent e;
      absl::Status st;
      if (!e.ParseFromString(item.event)) {
        st = absl::InvalidArgumentError("stored alert event does not parse");
      } else {
        e.set_event_id(item.event_id);
        st = Deliver(item, e);
      }
      const int attempts = item.attempts + 1;
      absl::Status rec;
      if (st.ok()) {
        metrics_->delivered->Inc();
        rec = store_->FinishOutbox(item, "delivered", attempts, "");
      } else if (st.code() == absl::StatusCode::kInvalidArgument ||
                 clock_->NowNs() - item.created_at_ns >= options_.give_up_after_ns) {
        metrics_->given_up->Inc();
        log->warn("alert event {} to {}: giving up after {} attempts: {}", item.event_id,
                  item.target, attempts, st.ToString());
        rec = store_->FinishOutbox(item, "gave_up", attempts, st.ToString());
      } else {
        metrics_->retried->Inc();
        int64_t delay;
        {
          std::lock_guard<std::mutex> lock(rng_mu_);
          delay = BackoffNs(attempts);
        }
        rec = store_->RetryOutbox(item, attempts, delay, st.ToString());
      }
      // A row whose outcome could not be written comes back after its lease:
      // delivered at least once, and receivers dedupe on the Idempotency-Key.
      if (!rec.ok()) metrics_->store_failures->Inc();
      finish_one();
    };
    if (!pool_->Submit(work)) work();
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return left == 0; });
  return static_cast<int>(items->size());
}

AlertmanagerResender::AlertmanagerResender(ResendOptions options, AlertStateStore* store,
                                           AlertRuleStore* rules, HttpPoster* http,
                                           const Clock* clock, NotifierMetrics* metrics)
    : options_(std::move(options)),
      store_(store),
      rules_(rules),
      http_(http),
      clock_(clock),
      metrics_(metrics) {}

absl::Status AlertmanagerResender::LoadRules() {
  absl::StatusOr<int64_t> gen = rules_->Generation();
  if (!gen.ok()) return gen.status();
  if (*gen == generation_) return absl::OkStatus();
  auto all = rules_->LoadAll();
  if (!all.ok()) return all.status();
  targets_.clear();
  for (const auto& [tenant, rule] : *all) {
    if (rule.alertmanager_urls().empty()) continue;
    targets_[rule.rule_id()] = {tenant, std::vector<std::string>(rule.alertmanager_urls().begin(),
                                                                 rule.alertmanager_urls().end())};
  }
  generation_ = *gen;
  return absl::OkStatus();
}

absl::StatusOr<int> AlertmanagerResender::RunOnce() {
  auto log = GetLogger("alert");
  if (absl::Status st = LoadRules(); !st.ok()) {
    metrics_->store_failures->Inc();
    if (generation_ < 0) return st;  // no rules yet: nothing to send to
    log->warn("alertmanager re-send: cannot reload rules ({}); using the previous ones",
              st.ToString());
  }
  const int64_t horizon_ns = kEndsAtIntervals * options_.interval_ns;
  const int64_t ends_at = clock_->NowNs() + horizon_ns;
  // Per Alertmanager: the alerts of the POST being filled. An Alertmanager
  // that failed once this round is not tried again before the next.
  absl::flat_hash_map<std::string, std::vector<std::string>> pending;
  absl::flat_hash_map<std::string, bool> failed;
  int posted = 0;
  auto flush = [&](const std::string& base) {
    std::vector<std::string>& alerts = pending[base];
    if (alerts.empty()) return;
    const int n = static_cast<int>(alerts.size());
    if (failed[base]) {
      metrics_->resend_failures->Inc(n);
      alerts.clear();
      return;
    }
    std::string body = "[";
    for (size_t i = 0; i < alerts.size(); ++i) {
      if (i > 0) body += ",";
      body += alerts[i];
    }
    body += "]";
    alerts.clear();
    const std::string url = AlertmanagerAlertsUrl(base);
    absl::StatusOr<int> code = http_->Post(url, body, {}, options_.http_timeout_ms);
    if (code.ok() && *code >= 200 && *code < 300) {
      metrics_->resent->Inc(n);
      posted += n;
      return;
    }
    failed[base] = true;
    metrics_->resend_failures->Inc(n);
    log->warn("alertmanager re-send of {} alerts to {} failed: {}", n, url,
              code.ok() ? absl::StrCat("HTTP ", *code) : code.status().ToString());
  };
  std::string after;
  while (true) {
    auto page = store_->ListAlertsToResend(after, options_.page, horizon_ns);
    if (!page.ok()) {
      metrics_->store_failures->Inc();
      return page.status();
    }
    for (const ResendAlert& a : *page) {
      if (a.muted) continue;  // never posted: a silence muted it
      auto t = targets_.find(a.rule_id);
      if (t == targets_.end() || t->second.first != a.tenant_id) continue;
      AlertEvent e;
      if (!e.ParseFromString(a.event)) {
        log->warn("alertmanager re-send: the stored event {} does not parse", a.event_id);
        continue;
      }
      e.set_event_id(a.event_id);
      const std::string alert = AlertmanagerAlert(e, ends_at);
      for (const std::string& base : t->second.second) {
        pending[base].push_back(alert);
        if (static_cast<int>(pending[base].size()) >= options_.batch) flush(base);
      }
    }
    if (static_cast<int>(page->size()) < options_.page) break;
    after = page->back().fingerprint;
  }
  std::vector<std::string> bases;
  for (const auto& [base, alerts] : pending) bases.push_back(base);
  for (const std::string& base : bases) flush(base);
  return posted;
}

}  // namespace telemetry::alert
