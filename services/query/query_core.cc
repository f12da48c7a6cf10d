#include "services/query/query_core.h"

#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/token.h"

namespace telemetry::query {

using telemetry::v1::LatestRequest;
using telemetry::v1::LatestResponse;
using telemetry::v1::RangeRequest;
using telemetry::v1::RangeResponse;

QueryMetrics::QueryMetrics(MetricsRegistry* r)
    : token_waits(
          r->AddCounter("query_token_waits_total", "Reads that waited for a consistency token")),
      token_timeouts(r->AddCounter("query_token_timeouts_total",
                                   "Reads whose token was not applied before the deadline")),
      latest_seconds(r->AddHistogram("query_latest_seconds", "Latest latency", LatencyBuckets())),
      range_seconds(r->AddHistogram("query_range_seconds", "Range latency", LatencyBuckets())) {}

QueryCore::QueryCore(QueryOptions options, ReadingStore* primary, const Clock* clock,
                     QueryMetrics* metrics)
    : options_(std::move(options)), primary_(primary), clock_(clock), metrics_(metrics) {}

telemetry::v1::ReadMetadata QueryCore::PrimaryMetadata() {
  telemetry::v1::ReadMetadata md;
  md.set_data_source("primary");
  md.set_lag_seconds(0);
  md.set_consistency_level(telemetry::v1::CONSISTENCY_LEVEL_STRONG);
  md.set_cache_status(telemetry::v1::CACHE_STATUS_BYPASS);
  return md;
}

void ToStoredReading(const ReadingRow& row, telemetry::v1::StoredReading* out) {
  out->set_device_id(row.device);
  out->set_sensor(row.sensor);
  out->set_unit(row.unit);
  out->set_timestamp_ns(row.ts_ns);
  out->set_status_code(row.status);
  switch (row.kind) {
    case ValueKind::kDouble:
      out->set_double_value(row.d);
      break;
    case ValueKind::kString:
      out->set_string_value(row.s);
      break;
    case ValueKind::kBool:
      out->set_bool_value(row.b);
      break;
  }
}

std::string EncodeRangeCursor(const std::string& sensor, const std::string& unit, int64_t ts) {
  return absl::WebSafeBase64Escape(absl::StrCat(sensor, "\x1f", unit, "\x1f", ts));
}

absl::Status DecodeRangeCursor(const std::string& cursor, RangeQuery* q) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(cursor, &raw)) {
    return absl::InvalidArgumentError("cursor: not a cursor returned by Range");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, '\x1f');
  if (parts.size() != 3 || parts[0].empty() || !absl::SimpleAtoi(parts[2], &q->after_ts_ns)) {
    return absl::InvalidArgumentError("cursor: not a cursor returned by Range");
  }
  q->after_sensor = parts[0];
  q->after_unit = parts[1];
  return absl::OkStatus();
}

absl::Status QueryCore::WaitForToken(const std::string& token, int64_t deadline) {
  if (token.empty()) return absl::OkStatus();
  auto positions = DecodeConsistencyToken(token);
  if (!positions.ok()) return positions.status();
  if (positions->topic != options_.topic) {
    return absl::InvalidArgumentError("consistency_token: issued for another topic (" +
                                      positions->topic + ")");
  }
  metrics_->token_waits->Inc();
  while (true) {
    auto applied = primary_->AppliedOffsets(options_.topic);
    if (!applied.ok()) return applied.status();
    if (TokenSatisfied(*positions, *applied)) return absl::OkStatus();
    if (clock_->MonotonicNs() + options_.token_poll_interval_ns >= deadline) {
      metrics_->token_timeouts->Inc();
      return absl::DeadlineExceededError(
          "consistency_token: the write is not applied yet; retry with a longer deadline");
    }
    std::this_thread::sleep_for(std::chrono::nanoseconds(options_.token_poll_interval_ns));
  }
}

absl::StatusOr<LatestResponse> QueryCore::Latest(int64_t tenant_id, const LatestRequest& req,
                                                 int64_t deadline) {
  const int64_t t0 = clock_->MonotonicNs();
  if (req.device_ids().empty())
    return absl::InvalidArgumentError("device_ids: at least one device");
  if (static_cast<size_t>(req.device_ids_size()) > options_.max_devices_per_latest) {
    return absl::InvalidArgumentError(
        absl::StrCat("device_ids: at most ", options_.max_devices_per_latest, " devices"));
  }
  absl::Status st = WaitForToken(req.options().consistency_token(), deadline);
  if (!st.ok()) return st;
  std::vector<std::string> devices(req.device_ids().begin(), req.device_ids().end());
  std::vector<std::string> sensors(req.sensors().begin(), req.sensors().end());
  auto rows = primary_->Latest(tenant_id, devices, sensors);
  if (!rows.ok()) return rows.status();
  LatestResponse resp;
  for (const auto& r : *rows) ToStoredReading(r, resp.add_readings());
  *resp.mutable_metadata() = PrimaryMetadata();
  metrics_->latest_seconds->Observe(static_cast<double>(clock_->MonotonicNs() - t0) / 1e9);
  return resp;
}

absl::Status QueryCore::Range(int64_t tenant_id, const RangeRequest& req, int64_t deadline,
                              const std::function<bool(RangeResponse&&)>& send) {
  const int64_t t0 = clock_->MonotonicNs();
  if (req.device_id().empty()) return absl::InvalidArgumentError("device_id: required");
  if (req.start_ns() <= 0 || req.end_ns() <= 0) {
    return absl::InvalidArgumentError("start_ns, end_ns: both required (> 0)");
  }
  if (req.end_ns() <= req.start_ns()) {
    return absl::InvalidArgumentError("end_ns: must be after start_ns");
  }
  if (req.limit() < 0) return absl::InvalidArgumentError("limit: must be >= 0");
  if (req.page_size() < 0 || req.page_size() > options_.max_page_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be between 0 and ", options_.max_page_size));
  }
  RangeQuery q;
  q.tenant_id = tenant_id;
  q.device = req.device_id();
  q.sensors.assign(req.sensors().begin(), req.sensors().end());
  q.start_ns = req.start_ns();
  q.end_ns = req.end_ns();
  q.limit = req.limit();
  q.page_size = req.page_size() > 0 ? req.page_size() : 1000;
  if (!req.cursor().empty()) {
    absl::Status st = DecodeRangeCursor(req.cursor(), &q);
    if (!st.ok()) return st;
  }
  absl::Status st = WaitForToken(req.options().consistency_token(), deadline);
  if (!st.ok()) return st;

  // Pages are forwarded one behind, so the last one can carry the cursor.
  RangeResponse held;
  bool have_held = false, first = true, client_gone = false;
  int64_t sent = 0;
  const ReadingRow* last = nullptr;
  ReadingRow last_row;
  st = primary_->Range(q, [&](std::vector<ReadingRow>&& rows) {
    if (have_held) {
      if (!send(std::move(held))) {
        client_gone = true;
        return false;
      }
      held = RangeResponse();
    }
    for (const auto& r : rows) ToStoredReading(r, held.add_readings());
    if (first) {
      *held.mutable_metadata() = PrimaryMetadata();
      first = false;
    }
    sent += static_cast<int64_t>(rows.size());
    if (!rows.empty()) {
      last_row = rows.back();
      last = &last_row;
    }
    have_held = true;
    return clock_->MonotonicNs() < deadline;
  });
  if (!st.ok()) return st;
  if (client_gone) return absl::CancelledError("client went away");
  if (clock_->MonotonicNs() >= deadline)
    return absl::DeadlineExceededError("Range: deadline exceeded");
  if (!have_held) {
    held = RangeResponse();
    *held.mutable_metadata() = PrimaryMetadata();
  }
  if (q.limit > 0 && sent >= q.limit && last != nullptr) {
    held.set_next_cursor(EncodeRangeCursor(last->sensor, last->unit, last->ts_ns));
  }
  send(std::move(held));
  metrics_->range_seconds->Observe(static_cast<double>(clock_->MonotonicNs() - t0) / 1e9);
  return absl::OkStatus();
}

}  // namespace telemetry::query
