#include "services/ingest/ingest_core.h"

#include <atomic>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/kafka/codec.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/status_payload.h"
#include "common/token.h"

namespace telemetry::ingest {

using telemetry::v1::Reading;
using telemetry::v1::RejectedReading;
using telemetry::v1::WriteRequest;
using telemetry::v1::WriteResponse;

IngestMetrics::IngestMetrics(MetricsRegistry* r)
    : accepted(r->AddCounter("ingest_readings_accepted_total", "Readings durable in Kafka")),
      rejected(r->AddCounter("ingest_readings_rejected_total", "Readings rejected by validation")),
      quota_refusals(r->AddCounter("ingest_quota_refusals_total",
                                   "Requests refused by a tenant's rate quota")),
      backpressure_refusals(r->AddCounter("ingest_backpressure_refusals_total",
                                          "Requests refused because the writer lags")),
      kafka_failures(r->AddCounter("ingest_kafka_failures_total",
                                   "Requests failed because Kafka did not acknowledge")),
      messages(r->AddCounter("ingest_kafka_messages_total", "Kafka messages produced")),
      devices_registered(
          r->AddCounter("ingest_devices_registered_total", "Devices registered on first reading")),
      ack_latency(r->AddHistogram("ingest_ack_latency_seconds",
                                  "Time from request to Kafka acknowledgement", LatencyBuckets())),
      writer_lag_messages(r->AddGauge("ingest_writer_lag_messages",
                                      "Largest writer lag over partitions, in messages")) {}

IngestCore::IngestCore(IngestOptions options, EventPublisher* publisher, MetadataStore* metadata,
                       const Clock* clock, IngestMetrics* metrics)
    : options_(std::move(options)),
      publisher_(publisher),
      metadata_(metadata),
      clock_(clock),
      metrics_(metrics),
      quota_(clock),
      timer_(clock) {}

IngestCore::~IngestCore() = default;

absl::Status IngestCore::Start() {
  auto n = publisher_->PartitionCount(options_.topic);
  if (!n.ok()) return n.status();
  partitions_ = *n;
  return absl::OkStatus();
}

int64_t IngestCore::MaxLagBytes() const {
  const int64_t capped = max_lag_bytes_.load();
  return capped >= 0 ? capped : options_.max_writer_lag_bytes;
}

int64_t IngestCore::LimitLagToRetention(int64_t bytes) {
  int64_t limit = options_.max_writer_lag_bytes;
  if (bytes > 0 && (limit <= 0 || limit > bytes / 2)) limit = std::max<int64_t>(1, bytes / 2);
  max_lag_bytes_ = limit;
  return limit;
}

absl::Status IngestCore::UpdateWriterLag(const std::map<int32_t, int64_t>& applied) {
  int64_t worst = 0;
  for (int32_t p = 0; p < partitions_; ++p) {
    int64_t low = 0, high = 0;
    RETURN_IF_ERROR(publisher_->Watermarks(options_.topic, p, &low, &high, 1000));
    auto it = applied.find(p);
    int64_t next = it == applied.end() ? low : std::max(it->second, low);
    worst = std::max(worst, high - next);
  }
  writer_lag_ = worst;
  const int64_t messages = produced_messages_.load();
  writer_lag_bytes_ = messages > 0 ? worst * (produced_bytes_.load() / messages) : 0;
  metrics_->writer_lag_messages->Set(static_cast<double>(worst));
  return absl::OkStatus();
}

absl::StatusOr<absl::flat_hash_set<std::string>> IngestCore::AllowedDevices(
    const TenantInfo& tenant, const std::vector<std::string>& names) {
  absl::flat_hash_set<std::string> allowed;
  std::vector<std::string> unknown;
  {
    absl::MutexLock lock(&mu_);
    auto& known = known_devices_[tenant.id];
    for (const auto& n : names) {
      if (known.contains(n)) {
        allowed.insert(n);
      } else {
        unknown.push_back(n);
      }
    }
  }
  if (unknown.empty()) return allowed;
  auto resolved = metadata_->ResolveDevices(tenant.id, unknown, !tenant.require_registered_devices);
  if (!resolved.ok()) return resolved.status();
  absl::MutexLock lock(&mu_);
  auto& known = known_devices_[tenant.id];
  if (known.size() > 1'000'000) known.clear();
  for (const auto& [name, id] : *resolved) {
    allowed.insert(name);
    known.insert(name);
  }
  return allowed;
}

namespace {

absl::Status Exhausted(const std::string& msg, int64_t retry_after_ns) {
  absl::Status st = absl::ResourceExhaustedError(msg);
  if (retry_after_ns <= 0) return st;
  return WithRetryAfter(std::move(st), (retry_after_ns + kNsPerMs - 1) / kNsPerMs);
}

// Shared by the delivery callbacks of one request and its deadline.
struct Pending {
  IngestCore::Done done;
  std::atomic<int> outstanding{0};
  std::atomic<bool> finished{false};
  absl::Mutex mu;
  absl::Status error ABSL_GUARDED_BY(mu);
  ConsistencyPositions positions ABSL_GUARDED_BY(mu);
  WriteResponse response;  // accepted + rejected, filled before publishing
  int64_t start_ns = 0;

  // Runs `done` once.
  bool Claim() { return !finished.exchange(true); }
};

}  // namespace

void IngestCore::Write(const TenantInfo& tenant, const WriteRequest& request, int64_t index_base,
                       int64_t deadline_ns, Done done) {
  const int64_t start = clock_->MonotonicNs();
  if (partitions_ <= 0) {
    done(absl::FailedPreconditionError("ingest is not started"));
    return;
  }
  if (static_cast<size_t>(request.readings_size()) > options_.limits.max_readings_per_request) {
    done(absl::InvalidArgumentError(
        absl::StrCat("readings: at most ", options_.limits.max_readings_per_request,
                     " readings per request, got ", request.readings_size())));
    return;
  }
  if ((options_.max_writer_lag_messages > 0 &&
       writer_lag_.load() > options_.max_writer_lag_messages) ||
      (MaxLagBytes() > 0 && writer_lag_bytes_.load() > MaxLagBytes())) {
    metrics_->backpressure_refusals->Inc();
    done(Exhausted(absl::StrCat("the storage writer is ", writer_lag_.load(), " messages (about ",
                                writer_lag_bytes_.load() >> 10, " KiB) behind; retry later"),
                   kNsPerSec / 4));
    return;
  }

  auto pending = std::make_shared<Pending>();
  pending->done = std::move(done);
  pending->start_ns = start;
  WriteResponse& resp = pending->response;

  // 1. Per-reading validation.
  const int64_t now = clock_->NowNs();
  std::vector<int> valid;
  valid.reserve(static_cast<size_t>(request.readings_size()));
  std::vector<std::string> device_names;
  absl::flat_hash_set<absl::string_view> seen_devices;
  for (int i = 0; i < request.readings_size(); ++i) {
    const Reading& r = request.readings(i);
    if (auto rej = ValidateReading(r, tenant, now, options_.limits)) {
      rej->set_index(static_cast<int32_t>(index_base + i));
      *resp.add_rejected() = std::move(*rej);
      continue;
    }
    valid.push_back(i);
    if (seen_devices.insert(r.device_id()).second) device_names.push_back(r.device_id());
  }

  // 2. Device registration.
  std::vector<const Reading*> accepted;
  accepted.reserve(valid.size());
  if (!valid.empty()) {
    auto allowed = AllowedDevices(tenant, device_names);
    if (!allowed.ok()) {
      pending->done(absl::UnavailableError("device registry unavailable: " +
                                           std::string(allowed.status().message())));
      return;
    }
    for (int i : valid) {
      const Reading& r = request.readings(i);
      if (!allowed->contains(r.device_id())) {
        RejectedReading* rej = resp.add_rejected();
        rej->set_index(static_cast<int32_t>(index_base + i));
        rej->set_field("device_id");
        rej->set_reason("device '" + r.device_id() +
                        "' is not registered and the tenant requires registration");
        continue;
      }
      accepted.push_back(&r);
    }
  }
  metrics_->rejected->Inc(resp.rejected_size());

  // 3. Quota, all or nothing.
  int64_t retry_ns = 0;
  if (!accepted.empty() && !quota_.TryTake(tenant.id, tenant.rate_per_sec, tenant.burst,
                                           static_cast<int64_t>(accepted.size()), &retry_ns)) {
    metrics_->quota_refusals->Inc();
    pending->done(Exhausted(
        retry_ns < 0
            ? absl::StrCat("request of ", accepted.size(),
                           " readings exceeds the tenant's burst of ", tenant.burst, "; split it")
            : absl::StrCat("tenant rate quota of ", tenant.rate_per_sec, " readings/s exceeded"),
        retry_ns));
    return;
  }
  resp.set_accepted(static_cast<int64_t>(accepted.size()));
  if (accepted.empty()) {
    pending->done(std::move(resp));
    return;
  }

  // 4. Encode and publish; finish on the last acknowledgement or the deadline.
  auto batches = EncodeReadings(tenant.id, accepted, partitions_, now);
  pending->outstanding = static_cast<int>(batches.size());
  {
    absl::MutexLock lock(&pending->mu);
    pending->positions.topic = options_.topic;
  }
  const int64_t accepted_count = static_cast<int64_t>(accepted.size());
  timer_.Schedule(deadline_ns, [pending, this] {
    if (!pending->Claim()) return;
    metrics_->kafka_failures->Inc();
    pending->done(absl::UnavailableError(
        "Kafka did not acknowledge the write before the deadline; nothing is reported as stored "
        "(retrying is safe: readings are de-duplicated)"));
  });
  for (auto& [partition, batch] : batches) {
    std::string payload = batch.SerializeAsString();
    metrics_->messages->Inc();
    produced_bytes_ += static_cast<int64_t>(payload.size());
    ++produced_messages_;
    publisher_->Publish(
        options_.topic, partition, BatchKey(tenant.id, partition), std::move(payload),
        [pending, this, accepted_count](const DeliveryReport& report) {
          {
            absl::MutexLock lock(&pending->mu);
            if (!report.status.ok()) {
              if (pending->error.ok()) pending->error = report.status;
            } else {
              auto& off = pending->positions.offsets[report.partition];
              off = std::max(off, report.offset);
            }
          }
          if (pending->outstanding.fetch_sub(1) != 1) return;
          if (!pending->Claim()) return;
          absl::Status error;
          ConsistencyPositions positions;
          {
            absl::MutexLock lock(&pending->mu);
            error = pending->error;
            positions = pending->positions;
          }
          if (!error.ok()) {
            metrics_->kafka_failures->Inc();
            if (absl::IsInvalidArgument(error)) {
              // Not a transient state a retry would get past (e.g. the
              // topic's max.message.bytes below kTargetMessageBytes).
              pending->done(absl::FailedPreconditionError(
                  "Kafka refused the write: " + std::string(error.message()) +
                  " (check the readings topic's max.message.bytes, docs/kafka.md)"));
              return;
            }
            pending->done(absl::UnavailableError("Kafka did not store the write: " +
                                                 std::string(error.message())));
            return;
          }
          metrics_->accepted->Inc(accepted_count);
          metrics_->ack_latency->Observe(
              static_cast<double>(clock_->MonotonicNs() - pending->start_ns) / 1e9);
          pending->response.set_consistency_token(EncodeConsistencyToken(positions));
          pending->done(std::move(pending->response));
        });
  }
}

}  // namespace telemetry::ingest
