#include "services/bridge/bridge.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace telemetry::bridge {

BridgeMetrics::BridgeMetrics(MetricsRegistry* r)
    : messages(r->AddCounter("bridge_messages_total", "MQTT messages received")),
      readings(r->AddCounter("bridge_readings_total", "Readings durable in Kafka")),
      bad_messages(r->AddCounter("bridge_bad_messages_total",
                                 "Messages with no usable reading (topic, tenant or payload)")),
      bad_readings(r->AddCounter("bridge_bad_readings_total",
                                 "Readings that did not decode or that the write path refused")),
      write_retries(r->AddCounter("bridge_write_retries_total",
                                  "Batches retried (Kafka, back-pressure, quota)")),
      acks(r->AddCounter("bridge_acks_total", "QoS 1 messages acknowledged to the broker")),
      error_reports(
          r->AddCounter("bridge_error_reports_total", "Reports published on the error topic")),
      unacked(
          r->AddGauge("bridge_unacked_messages", "Messages received and not acknowledged yet")) {}

Bridge::Bridge(BridgeOptions options, ingest::IngestCore* core, MetadataStore* metadata,
               const Clock* clock, BridgeMetrics* metrics)
    : options_(std::move(options)),
      core_(core),
      metadata_(metadata),
      clock_(clock),
      metrics_(metrics) {}

Bridge::~Bridge() {
  Stop();
  // The core calls every Write's callback by its deadline.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &writes_in_flight_));
}

void Bridge::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Bridge::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

size_t Bridge::unacked() const {
  absl::MutexLock lock(&mu_);
  return unacked_;
}

void Bridge::ReportError(Session* session, const std::string& error_topic, const std::string& topic,
                         const std::string& error, size_t count) {
  GetLogger("bridge")->warn("{}: {}{}", topic, error,
                            count > 1 ? absl::StrCat(" (and ", count - 1, " more)") : "");
  if (session == nullptr || error_topic.empty()) return;
  google::protobuf::Struct report;
  auto& f = *report.mutable_fields();
  f["topic"].set_string_value(topic);
  f["error"].set_string_value(error);
  f["errors"].set_number_value(static_cast<double>(count));
  f["time_ns"].set_string_value(std::to_string(clock_->NowNs()));
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(report, &json);
  if (session->Publish(error_topic, json).ok()) metrics_->error_reports->Inc();
}

absl::StatusOr<std::optional<TenantInfo>> Bridge::Tenant(const std::string& name) {
  const int64_t now = clock_->MonotonicNs();
  {
    absl::MutexLock lock(&tenants_mu_);
    auto it = tenants_.find(name);
    if (it != tenants_.end() && it->second.expires_ns > now) return it->second.tenant;
  }
  auto found = metadata_->TenantByName(name);
  if (!found.ok()) return found.status();
  absl::MutexLock lock(&tenants_mu_);
  if (tenants_.size() > 100'000) tenants_.clear();
  tenants_[name] = CachedTenant{*found, now + options_.tenant_cache_ns};
  return *found;
}

void Bridge::OnMessage(const std::shared_ptr<Session>& session, mqtt::Message message) {
  metrics_->messages->Inc();
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &Bridge::HasRoom));
    if (stop_) return;  // not acknowledged: the broker resends it
  }
  auto ack_now = [&] {
    if (message.qos > 0 && session->Ack(message.packet_id).ok()) metrics_->acks->Inc();
  };
  auto where = options_.patterns.Match(message.topic);
  if (!where) {
    metrics_->bad_messages->Inc();
    ReportError(nullptr, "", message.topic, "the topic matches no configured pattern", 1);
    ack_now();
    return;
  }
  const std::string error_topic =
      absl::StrCat(options_.error_topic_prefix, "/", where->tenant, "/", where->device);
  auto decoded = Decode(*where, message.payload, options_.format, clock_->NowNs(), options_.limits);
  if (!decoded.ok()) {
    metrics_->bad_messages->Inc();
    ReportError(session.get(), error_topic, message.topic, std::string(decoded.status().message()),
                1);
    ack_now();
    return;
  }
  if (decoded->error_count > 0) {
    metrics_->bad_readings->Inc(static_cast<int64_t>(decoded->error_count));
    ReportError(session.get(), error_topic, message.topic, decoded->errors.front().ToString(),
                decoded->error_count);
  }
  if (decoded->readings.empty()) {
    metrics_->bad_messages->Inc();
    ack_now();
    return;
  }

  std::shared_ptr<Batch> full;
  {
    absl::MutexLock lock(&mu_);
    auto& batch = open_[where->tenant];
    if (batch == nullptr) {
      batch = std::make_shared<Batch>();
      batch->tenant = where->tenant;
      batch->opened_ns = clock_->MonotonicNs();
    }
    Pending p;
    p.session = session;
    p.packet_id = message.qos > 0 ? message.packet_id : 0;
    p.topic = message.topic;
    p.error_topic = error_topic;
    p.begin = batch->request.readings_size();
    for (auto& r : decoded->readings) *batch->request.add_readings() = std::move(r);
    p.end = batch->request.readings_size();
    batch->messages.push_back(std::move(p));
    ++unacked_;
    metrics_->unacked->Set(static_cast<double>(unacked_));
    if (static_cast<size_t>(batch->request.readings_size()) >= options_.max_batch_readings) {
      full = std::move(batch);
      open_.erase(where->tenant);
    }
  }
  if (full) Flush(std::move(full));
}

void Bridge::Loop() {
  const auto tick =
      std::chrono::nanoseconds(std::max<int64_t>(options_.max_batch_delay_ns / 2, kNsPerMs));
  while (true) {
    std::vector<std::shared_ptr<Batch>> due;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      const int64_t now = clock_->MonotonicNs();
      for (auto it = open_.begin(); it != open_.end();) {
        if (now - it->second->opened_ns >= options_.max_batch_delay_ns) {
          due.push_back(std::move(it->second));
          open_.erase(it++);
        } else {
          ++it;
        }
      }
      for (auto it = retries_.begin(); it != retries_.end();) {
        if ((*it)->due_ns <= now) {
          due.push_back(std::move(*it));
          it = retries_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& batch : due) Flush(std::move(batch));
    std::this_thread::sleep_for(tick);
  }
}

void Bridge::Finish(const Batch& batch) {
  int64_t acked = 0;
  for (const auto& m : batch.messages) {
    if (m.packet_id != 0 && m.session->Ack(m.packet_id).ok()) ++acked;
  }
  metrics_->acks->Inc(acked);
  absl::MutexLock lock(&mu_);
  unacked_ -= batch.messages.size();
  metrics_->unacked->Set(static_cast<double>(unacked_));
}

void Bridge::Retry(std::shared_ptr<Batch> batch, const absl::Status& why) {
  metrics_->write_retries->Inc();
  const int64_t backoff = std::min<int64_t>(options_.max_retry_backoff_ns,
                                            (100 * kNsPerMs) << std::min(batch->attempts, 10));
  if (batch->attempts == 0 || batch->attempts % 10 == 0) {
    GetLogger("bridge")->warn("{} readings of tenant {} not written ({}); retrying in {} ms",
                              batch->request.readings_size(), batch->tenant, why.ToString(),
                              backoff / kNsPerMs);
  }
  ++batch->attempts;
  batch->due_ns = clock_->MonotonicNs() + backoff;
  absl::MutexLock lock(&mu_);
  retries_.push_back(std::move(batch));
}

void Bridge::Flush(std::shared_ptr<Batch> batch) {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;  // left unacknowledged: resent by the broker
  }
  auto tenant = Tenant(batch->tenant);
  if (!tenant.ok()) {
    Retry(std::move(batch), tenant.status());
    return;
  }
  if (!tenant->has_value()) {
    metrics_->bad_messages->Inc(static_cast<int64_t>(batch->messages.size()));
    for (const auto& m : batch->messages) {
      ReportError(m.session.get(), m.error_topic, m.topic,
                  "tenant '" + batch->tenant + "' does not exist", 1);
    }
    Finish(*batch);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    ++writes_in_flight_;
  }
  const TenantInfo info = **tenant;
  core_->Write(info, batch->request, 0, clock_->MonotonicNs() + options_.max_ack_wait_ns,
               [this, batch](absl::StatusOr<telemetry::v1::WriteResponse> result) {
                 if (!result.ok()) {
                   const absl::StatusCode code = result.status().code();
                   if (code == absl::StatusCode::kInvalidArgument ||
                       code == absl::StatusCode::kPermissionDenied) {
                     // Refused for good (e.g. a request over the core's limits).
                     metrics_->bad_readings->Inc(batch->request.readings_size());
                     for (const auto& m : batch->messages) {
                       ReportError(m.session.get(), m.error_topic, m.topic,
                                   std::string(result.status().message()), 1);
                     }
                     Finish(*batch);
                   } else {
                     Retry(batch, result.status());
                   }
                 } else {
                   metrics_->readings->Inc(result->accepted());
                   // Refused readings, reported per message.
                   std::vector<telemetry::v1::RejectedReading> rejected(result->rejected().begin(),
                                                                        result->rejected().end());
                   std::sort(rejected.begin(), rejected.end(),
                             [](const auto& a, const auto& b) { return a.index() < b.index(); });
                   metrics_->bad_readings->Inc(static_cast<int64_t>(rejected.size()));
                   size_t i = 0;
                   for (const auto& m : batch->messages) {
                     const telemetry::v1::RejectedReading* first = nullptr;
                     size_t count = 0;
                     while (i < rejected.size() && rejected[i].index() < m.end) {
                       if (rejected[i].index() >= m.begin) {
                         if (first == nullptr) first = &rejected[i];
                         ++count;
                       }
                       ++i;
                     }
                     if (first != nullptr) {
                       ReportError(m.session.get(), m.error_topic, m.topic,
                                   absl::StrCat(first->field(), ": ", first->reason()), count);
                     }
                   }
                   Finish(*batch);
                 }
                 absl::MutexLock lock(&mu_);
                 --writes_in_flight_;
               });
}

}  // namespace telemetry::bridge
