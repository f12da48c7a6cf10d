#include "services/query/query_core.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/token.h"
#include "services/query/tiered_reader.h"

namespace telemetry::query {

using telemetry::v1::AggregateRequest;
using telemetry::v1::AggregateResponse;
using telemetry::v1::LatestRequest;
using telemetry::v1::LatestResponse;
using telemetry::v1::PlaybackRequest;
using telemetry::v1::PlaybackResponse;
using telemetry::v1::RangeRequest;
using telemetry::v1::RangeResponse;

QueryMetrics::QueryMetrics(MetricsRegistry* r)
    : token_waits(
          r->AddCounter("query_token_waits_total", "Reads that waited for a consistency token")),
      token_timeouts(r->AddCounter("query_token_timeouts_total",
                                   "Reads whose token was not applied before the deadline")),
      token_refusals(r->AddCounter("query_token_refusals_total",
                                   "Reads refused because too many were waiting for tokens")),
      cache_hits(
          r->AddCounter("query_cache_total", "Latest lookups in the cache", "result=\"hit\"")),
      cache_misses(
          r->AddCounter("query_cache_total", "Latest lookups in the cache", "result=\"miss\"")),
      cache_failures(
          r->AddCounter("query_cache_total", "Latest lookups in the cache", "result=\"error\"")),
      latest_seconds(r->AddHistogram("query_latest_seconds", "Latest latency", LatencyBuckets())),
      range_seconds(r->AddHistogram("query_range_seconds", "Range latency", LatencyBuckets())),
      aggregate_seconds(
          r->AddHistogram("query_aggregate_seconds", "Aggregate latency", LatencyBuckets())),
      playback_seconds(
          r->AddHistogram("query_playback_seconds", "Playback latency", LatencyBuckets())) {}

QueryCore::QueryCore(QueryOptions options, WriterProgress* progress, Router* router,
                     LatestCache* cache, const Clock* clock, QueryMetrics* metrics,
                     ColdReadings* cold)
    : options_(std::move(options)),
      progress_(progress),
      router_(router),
      cache_(cache),
      clock_(clock),
      metrics_(metrics),
      cold_(cold) {}

telemetry::v1::ConsistencyLevel QueryCore::LevelOf(const telemetry::v1::ReadOptions& o) {
  if (!o.consistency_token().empty()) return telemetry::v1::CONSISTENCY_LEVEL_STRONG;
  if (o.consistency() == telemetry::v1::CONSISTENCY_LEVEL_UNSPECIFIED) {
    return telemetry::v1::CONSISTENCY_LEVEL_STRONG;
  }
  return o.consistency();
}

absl::Status QueryCore::CheckSensors(
    const google::protobuf::RepeatedPtrField<std::string>& s) const {
  if (static_cast<size_t>(s.size()) > options_.max_sensors_per_read) {
    return absl::InvalidArgumentError(
        absl::StrCat("sensors: at most ", options_.max_sensors_per_read, ", got ", s.size()));
  }
  return absl::OkStatus();
}

absl::Status QueryCore::CheckOptions(const telemetry::v1::ReadOptions& o) const {
  // An unknown level must not quietly become another (possibly weaker) one.
  if (!telemetry::v1::ConsistencyLevel_IsValid(o.consistency())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.consistency: unknown value ", o.consistency(),
        " (CONSISTENCY_LEVEL_STRONG, CONSISTENCY_LEVEL_EVENTUAL or CONSISTENCY_LEVEL_ANALYTICS)"));
  }
  if (o.max_staleness_ms() < 0) {
    return absl::InvalidArgumentError("options.max_staleness_ms: must be >= 0");
  }
  // A token asks for read-your-writes, which only the primary gives (without
  // a warehouse ANALYTICS reads the primary, and a token makes it STRONG).
  if (o.consistency() == telemetry::v1::CONSISTENCY_LEVEL_ANALYTICS &&
      !o.consistency_token().empty() && router_->has_warehouse()) {
    return absl::InvalidArgumentError(
        "options.consistency_token: read-your-writes is STRONG's (the primary); ANALYTICS reads "
        "the warehouse, whose freshness is the response's lag: drop the token or ask for "
        "CONSISTENCY_LEVEL_STRONG");
  }
  return absl::OkStatus();
}

double QueryCore::StalenessOf(const telemetry::v1::ReadOptions& o) {
  return static_cast<double>(o.max_staleness_ms()) / 1000.0;
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

absl::Status QueryCore::CheckNotDropped(const ConsistencyPositions& positions) {
  auto dropped = progress_->DroppedOffsets(options_.topic);
  if (!dropped.ok()) return dropped.status();
  for (const auto& [p, offset] : positions.offsets) {
    auto it = dropped->find(p);
    if (it == dropped->end()) continue;
    for (const auto& [from, to] : it->second) {
      if (offset >= from && offset < to) {
        return absl::DataLossError(absl::StrCat(
            "consistency_token: the write at partition ", p, " offset ", offset,
            " was dropped by Kafka (retention) before it was stored (offsets ", from, " to ",
            to - 1, ", writer_log_gaps); it will never be readable: write it again"));
      }
    }
  }
  return absl::OkStatus();
}

bool QueryCore::AdmitTokenWait(int64_t tenant_id) {
  absl::MutexLock lock(&waits_mu_);
  int& mine = token_waits_by_tenant_[tenant_id];
  if ((options_.max_token_waits > 0 && token_waits_ >= options_.max_token_waits) ||
      (options_.max_token_waits_per_tenant > 0 && mine >= options_.max_token_waits_per_tenant)) {
    if (mine == 0) token_waits_by_tenant_.erase(tenant_id);
    return false;
  }
  ++mine;
  ++token_waits_;
  return true;
}

void QueryCore::EndTokenWait(int64_t tenant_id) {
  absl::MutexLock lock(&waits_mu_);
  --token_waits_;
  if (--token_waits_by_tenant_[tenant_id] <= 0) token_waits_by_tenant_.erase(tenant_id);
}

absl::Status QueryCore::WaitForToken(int64_t tenant_id, const std::string& token,
                                     int64_t deadline) {
  if (token.empty()) return absl::OkStatus();
  auto positions = DecodeConsistencyToken(token);
  if (!positions.ok()) return positions.status();
  if (positions->topic != options_.topic) {
    return absl::InvalidArgumentError("consistency_token: issued for another topic (" +
                                      positions->topic + ")");
  }
  metrics_->token_waits->Inc();
  // Satisfied already (the common case): no slot needed.
  {
    auto applied = progress_->AppliedOffsets(options_.topic);
    if (!applied.ok()) return applied.status();
    if (TokenSatisfied(*positions, *applied)) return CheckNotDropped(*positions);
  }
  if (!AdmitTokenWait(tenant_id)) {
    metrics_->token_refusals->Inc();
    return absl::ResourceExhaustedError(
        "consistency_token: too many reads are waiting for their writes (this tenant's or in "
        "all); retry shortly");
  }
  struct Release {
    QueryCore* core;
    int64_t tenant;
    ~Release() { core->EndTokenWait(tenant); }
  } release{this, tenant_id};
  // Checked just above: wait a poll interval before each next look.
  while (true) {
    if (clock_->MonotonicNs() + options_.token_poll_interval_ns >= deadline) {
      metrics_->token_timeouts->Inc();
      return absl::DeadlineExceededError(
          "consistency_token: the write is not applied yet; retry with a longer deadline");
    }
    std::this_thread::sleep_for(std::chrono::nanoseconds(options_.token_poll_interval_ns));
    auto applied = progress_->AppliedOffsets(options_.topic);
    if (!applied.ok()) return applied.status();
    if (TokenSatisfied(*positions, *applied)) return CheckNotDropped(*positions);
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
  if (absl::Status o = CheckOptions(req.options()); !o.ok()) return o;
  if (absl::Status o = CheckSensors(req.sensors()); !o.ok()) return o;
  RETURN_IF_ERROR(WaitForToken(tenant_id, req.options().consistency_token(), deadline));
  std::vector<std::string> devices(req.device_ids().begin(), req.device_ids().end());
  std::vector<std::string> sensors(req.sensors().begin(), req.sensors().end());
  const auto level = LevelOf(req.options());
  LatestResponse resp;
  auto cache_status = telemetry::v1::CACHE_STATUS_BYPASS;
  if (level == telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL && cache_ != nullptr) {
    auto cached = cache_->Get(tenant_id, devices, sensors);
    if (!cached.ok()) {
      metrics_->cache_failures->Inc();
      GetLogger("query")->warn("latest-value cache unavailable, reading the database: {}",
                               cached.status().ToString());
    } else {
      // A hit needs every asked (device, sensor), or, for "all sensors",
      // something for every device.
      std::set<std::string> seen_devices;
      for (const auto& r : *cached) seen_devices.insert(r.device);
      bool complete =
          sensors.empty()
              ? seen_devices.size() == std::set<std::string>(devices.begin(), devices.end()).size()
              : cached->size() == devices.size() * sensors.size();
      if (complete) {
        metrics_->cache_hits->Inc();
        std::vector<ReadingRow> rows = std::move(*cached);
        std::sort(rows.begin(), rows.end(), [](const ReadingRow& a, const ReadingRow& b) {
          return std::tie(a.device, a.sensor) < std::tie(b.device, b.sensor);
        });
        for (const auto& r : rows) ToStoredReading(r, resp.add_readings());
        auto* md = resp.mutable_metadata();
        md->set_data_source("cache");
        md->set_lag_seconds(0);
        md->set_consistency_level(telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL);
        md->set_cache_status(telemetry::v1::CACHE_STATUS_HIT);
        metrics_->latest_seconds->Observe(static_cast<double>(clock_->MonotonicNs() - t0) / 1e9);
        return resp;
      }
      metrics_->cache_misses->Inc();
      cache_status = telemetry::v1::CACHE_STATUS_MISS;
    }
  }
  std::vector<ReadingRow> rows;
  RETURN_IF_ERROR(router_->Read(
      level, StalenessOf(req.options()),
      [&](ReadingReader* store) {
        TieredReader tiered(store, cold_);
        auto r = tiered.Latest(tenant_id, devices, sensors);
        resp.mutable_metadata()->set_data_source(
            TieredSourceName(resp.metadata().data_source(), tiered.tiers()));
        if (!r.ok()) return r.status();
        rows = std::move(*r);
        return absl::OkStatus();
      },
      resp.mutable_metadata(), req.options().allow_fallback()));
  for (const auto& r : rows) ToStoredReading(r, resp.add_readings());
  resp.mutable_metadata()->set_cache_status(cache_status);
  metrics_->latest_seconds->Observe(static_cast<double>(clock_->MonotonicNs() - t0) / 1e9);
  return resp;
}

absl::Status QueryCore::Range(int64_t tenant_id, const RangeRequest& req, int64_t deadline,
                              const std::function<bool(RangeResponse&&, bool last)>& send) {
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
  if (absl::Status o = CheckOptions(req.options()); !o.ok()) return o;
  if (absl::Status o = CheckSensors(req.sensors()); !o.ok()) return o;
  RangeQuery q;
  q.tenant_id = tenant_id;
  q.device = req.device_id();
  q.sensors.assign(req.sensors().begin(), req.sensors().end());
  q.start_ns = req.start_ns();
  q.end_ns = req.end_ns();
  q.limit = req.limit();
  q.page_size = req.page_size() > 0 ? req.page_size() : 1000;
  if (!req.cursor().empty()) {
    RETURN_IF_ERROR(DecodeRangeCursor(req.cursor(), &q));
  }
  RETURN_IF_ERROR(WaitForToken(tenant_id, req.options().consistency_token(), deadline));

  // Pages are forwarded one behind, so the last one can carry the cursor.
  RangeResponse held;
  bool have_held = false, client_gone = false, sent_any = false;
  int64_t sent = 0;
  ReadingRow last_row;
  bool have_last = false;
  telemetry::v1::ReadMetadata md;
  md.set_cache_status(telemetry::v1::CACHE_STATUS_BYPASS);
  absl::Status first_failure;
  RETURN_IF_ERROR(router_->Read(
      LevelOf(req.options()), StalenessOf(req.options()),
      [&](ReadingReader* store) {
        // Once pages went out, a failure is final: a retry elsewhere would
        // repeat them.
        if (sent_any) return first_failure;
        TieredReader tiered(store, cold_);
        const std::string source = md.data_source();
        absl::Status rs = tiered.Range(q, [&](std::vector<ReadingRow>&& rows) {
          md.set_data_source(TieredSourceName(source, tiered.tiers()));
          if (have_held) {
            if (!sent_any) *held.mutable_metadata() = md;
            if (!send(std::move(held), false)) {
              client_gone = true;
              return false;
            }
            sent_any = true;
            held = RangeResponse();
          }
          for (const auto& r : rows) ToStoredReading(r, held.add_readings());
          sent += static_cast<int64_t>(rows.size());
          if (!rows.empty()) {
            last_row = rows.back();
            have_last = true;
          }
          have_held = true;
          return clock_->MonotonicNs() < deadline;
        });
        md.set_data_source(TieredSourceName(source, tiered.tiers()));
        if (!rs.ok() && first_failure.ok()) first_failure = rs;
        return rs;
      },
      &md, req.options().allow_fallback()));
  if (client_gone) return absl::CancelledError("client went away");
  if (clock_->MonotonicNs() >= deadline)
    return absl::DeadlineExceededError("Range: deadline exceeded");
  // The metadata rides on the first page; with one page, that is this one.
  if (!sent_any) *held.mutable_metadata() = md;
  if (q.limit > 0 && sent >= q.limit && have_last) {
    held.set_next_cursor(EncodeRangeCursor(last_row.sensor, last_row.unit, last_row.ts_ns));
  }
  send(std::move(held), true);
  metrics_->range_seconds->Observe(static_cast<double>(clock_->MonotonicNs() - t0) / 1e9);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ChooseBucket(const AggregateRequest& req) {
  constexpr int64_t kMinute = 60 * kNsPerSec, kHour = 3600 * kNsPerSec;
  // 366 days: wider buckets have no use, and bucket_seconds × 1e9 must fit
  // an int64.
  constexpr int64_t kMaxBucketSeconds = 366 * 86'400;
  if (req.bucket_seconds() < 0) return absl::InvalidArgumentError("bucket_seconds: must be >= 0");
  if (req.bucket_seconds() > kMaxBucketSeconds) {
    return absl::InvalidArgumentError(
        absl::StrCat("bucket_seconds: at most ", kMaxBucketSeconds, " (366 days)"));
  }
  if (req.bucket_seconds() > 0) {
    if (req.bucket_seconds() % 60 != 0) {
      return absl::InvalidArgumentError(
          "bucket_seconds: a whole number of minutes (60, 300, 3600, ...), or 0 for auto");
    }
    return req.bucket_seconds() * kNsPerSec;
  }
  // Auto: hours when the range still has at least max_points hours (default
  // 100 points), else minutes.
  const int64_t points = req.max_points() > 0 ? req.max_points() : 100;
  return (req.end_ns() - req.start_ns()) / kHour >= points ? kHour : kMinute;
}

namespace {

double Value(telemetry::v1::AggregateFunction f, const AggregateRow& r) {
  switch (f) {
    case telemetry::v1::AGGREGATE_FUNCTION_AVG:
      return r.sum / static_cast<double>(r.count);
    case telemetry::v1::AGGREGATE_FUNCTION_MIN:
      return r.min;
    case telemetry::v1::AGGREGATE_FUNCTION_MAX:
      return r.max;
    case telemetry::v1::AGGREGATE_FUNCTION_COUNT:
      return static_cast<double>(r.count);
    case telemetry::v1::AGGREGATE_FUNCTION_SUM:
      return r.sum;
    case telemetry::v1::AGGREGATE_FUNCTION_LAST:
      return r.last;
    default:
      return 0;
  }
}

}  // namespace

void FillGaps(telemetry::v1::GapFill mode, int64_t start_ns, int64_t end_ns, int64_t bucket_ns,
              size_t functions, telemetry::v1::AggregateSeries* series) {
  if (mode == telemetry::v1::GAP_FILL_UNSPECIFIED) return;
  std::map<int64_t, telemetry::v1::AggregateBucket> have;
  for (auto& b : *series->mutable_buckets()) have[b.bucket_start_ns()] = std::move(b);
  series->clear_buckets();
  const int64_t first = start_ns - ((start_ns % bucket_ns) + bucket_ns) % bucket_ns;
  for (int64_t t = first; t < end_ns; t += bucket_ns) {
    auto it = have.find(t);
    if (it != have.end()) {
      *series->add_buckets() = it->second;  // copied: later gaps read it
      continue;
    }
    auto* b = series->add_buckets();
    b->set_bucket_start_ns(t);
    b->set_filled(true);
    auto prev = have.lower_bound(t);
    auto next = prev;
    bool has_prev = prev != have.begin();
    if (has_prev) --prev;
    bool has_next = next != have.end();
    if (mode == telemetry::v1::GAP_FILL_PREVIOUS && has_prev) {
      *b->mutable_values() = prev->second.values();
    } else if (mode == telemetry::v1::GAP_FILL_LINEAR && has_prev && has_next) {
      double w =
          static_cast<double>(t - prev->first) / static_cast<double>(next->first - prev->first);
      for (size_t i = 0; i < functions; ++i) {
        double a = prev->second.values(static_cast<int>(i)),
               c = next->second.values(static_cast<int>(i));
        b->add_values(a + (c - a) * w);
      }
    }
  }
}

absl::StatusOr<AggregateResponse> QueryCore::Aggregate(int64_t tenant_id,
                                                       const AggregateRequest& req,
                                                       int64_t deadline) {
  const int64_t t0 = clock_->MonotonicNs();
  if (req.start_ns() <= 0 || req.end_ns() <= req.start_ns()) {
    return absl::InvalidArgumentError("start_ns, end_ns: required, with end_ns after start_ns");
  }
  if (absl::Status o = CheckOptions(req.options()); !o.ok()) return o;
  if (absl::Status o = CheckSensors(req.sensors()); !o.ok()) return o;
  if (!telemetry::v1::GapFill_IsValid(req.gap_fill())) {
    return absl::InvalidArgumentError(
        absl::StrCat("gap_fill: unknown value ", req.gap_fill(),
                     " (GAP_FILL_NULL, GAP_FILL_PREVIOUS or GAP_FILL_LINEAR, or unset)"));
  }
  if (req.functions().empty()) {
    return absl::InvalidArgumentError("functions: at least one of avg, min, max, count, sum, last");
  }
  for (int f : req.functions()) {
    if (f == telemetry::v1::AGGREGATE_FUNCTION_UNSPECIFIED ||
        !telemetry::v1::AggregateFunction_IsValid(f)) {
      return absl::InvalidArgumentError("functions: unknown function");
    }
  }
  auto bucket = ChooseBucket(req);
  if (!bucket.ok()) return bucket.status();
  if (req.gap_fill() != telemetry::v1::GAP_FILL_UNSPECIFIED &&
      (req.end_ns() - req.start_ns()) / *bucket > options_.max_aggregate_buckets) {
    return absl::InvalidArgumentError(absl::StrCat("gap_fill: at most ",
                                                   options_.max_aggregate_buckets,
                                                   " buckets per series; use wider buckets"));
  }
  RETURN_IF_ERROR(WaitForToken(tenant_id, req.options().consistency_token(), deadline));
  AggregateQuery q;
  q.tenant_id = tenant_id;
  q.device = req.device_id();
  q.project = req.project();
  q.sensors.assign(req.sensors().begin(), req.sensors().end());
  q.start_ns = req.start_ns();
  q.end_ns = req.end_ns();
  q.bucket_ns = *bucket;
  q.group_by_device = req.group_by_device() || !req.device_id().empty();
  q.need_sum = q.need_min = q.need_max = q.need_last = false;
  for (int f : req.functions()) {
    switch (f) {
      case telemetry::v1::AGGREGATE_FUNCTION_AVG:
      case telemetry::v1::AGGREGATE_FUNCTION_SUM:
        q.need_sum = true;
        break;
      case telemetry::v1::AGGREGATE_FUNCTION_MIN:
        q.need_min = true;
        break;
      case telemetry::v1::AGGREGATE_FUNCTION_MAX:
        q.need_max = true;
        break;
      case telemetry::v1::AGGREGATE_FUNCTION_LAST:
        q.need_last = true;
        break;
      default:
        break;
    }
  }
  AggregateResponse resp;
  std::vector<AggregateRow> rows;
  RETURN_IF_ERROR(router_->Read(
      LevelOf(req.options()), StalenessOf(req.options()),
      [&](ReadingReader* store) {
        auto r = store->Aggregate(q);
        if (!r.ok()) return r.status();
        rows = std::move(*r);
        return absl::OkStatus();
      },
      resp.mutable_metadata(), req.options().allow_fallback()));
  resp.mutable_metadata()->set_cache_status(telemetry::v1::CACHE_STATUS_BYPASS);
  resp.set_bucket_seconds(*bucket / kNsPerSec);
  telemetry::v1::AggregateSeries* cur = nullptr;
  for (const auto& r : rows) {
    if (cur == nullptr || cur->device_id() != r.device || cur->sensor() != r.sensor) {
      cur = resp.add_series();
      cur->set_device_id(r.device);
      cur->set_sensor(r.sensor);
    }
    auto* b = cur->add_buckets();
    b->set_bucket_start_ns(r.bucket_ns);
    b->set_count(r.count);
    for (int f : req.functions())
      b->add_values(Value(static_cast<telemetry::v1::AggregateFunction>(f), r));
  }
  for (auto& series : *resp.mutable_series()) {
    FillGaps(req.gap_fill(), req.start_ns(), req.end_ns(), *bucket,
             static_cast<size_t>(req.functions_size()), &series);
  }
  metrics_->aggregate_seconds->Observe(static_cast<double>(clock_->MonotonicNs() - t0) / 1e9);
  return resp;
}

absl::StatusOr<PlaybackResponse> QueryCore::Playback(int64_t tenant_id, const PlaybackRequest& req,
                                                     int64_t deadline) {
  const int64_t t0 = clock_->MonotonicNs();
  if (req.device_id().empty()) return absl::InvalidArgumentError("device_id: required");
  if (req.at_ns() <= 0) return absl::InvalidArgumentError("at_ns: required (> 0)");
  if (req.delta_ns() < 0 || req.delta_ns() > options_.max_playback_delta_ns) {
    return absl::InvalidArgumentError(
        absl::StrCat("delta_ns: between 0 and ", options_.max_playback_delta_ns));
  }
  const int64_t delta = req.delta_ns() > 0 ? req.delta_ns() : options_.default_playback_delta_ns;
  // at_ns ± delta must not wrap around (an "after" edge older than at_ns).
  if (req.at_ns() > std::numeric_limits<int64_t>::max() - delta) {
    return absl::InvalidArgumentError(
        absl::StrCat("at_ns: at most ", std::numeric_limits<int64_t>::max() - delta,
                     " (at_ns + delta_ns must fit a signed 64-bit nanosecond timestamp)"));
  }
  if (absl::Status o = CheckOptions(req.options()); !o.ok()) return o;
  if (absl::Status o = CheckSensors(req.sensors()); !o.ok()) return o;
  RETURN_IF_ERROR(WaitForToken(tenant_id, req.options().consistency_token(), deadline));
  std::vector<std::string> sensors(req.sensors().begin(), req.sensors().end());
  PlaybackResponse resp;
  PlaybackRows rows;
  RETURN_IF_ERROR(router_->Read(
      LevelOf(req.options()), StalenessOf(req.options()),
      [&](ReadingReader* store) {
        TieredReader tiered(store, cold_);
        auto r = tiered.Playback(tenant_id, req.device_id(), sensors, req.at_ns() - delta,
                                 req.at_ns() + delta);
        resp.mutable_metadata()->set_data_source(
            TieredSourceName(resp.metadata().data_source(), tiered.tiers()));
        if (!r.ok()) return r.status();
        rows = std::move(*r);
        return absl::OkStatus();
      },
      resp.mutable_metadata(), req.options().allow_fallback()));
  resp.mutable_metadata()->set_cache_status(telemetry::v1::CACHE_STATUS_BYPASS);
  for (const auto& r : rows.inside) ToStoredReading(r, resp.add_readings());
  for (const auto& r : rows.before) ToStoredReading(r, resp.add_before());
  for (const auto& r : rows.after) ToStoredReading(r, resp.add_after());
  metrics_->playback_seconds->Observe(static_cast<double>(clock_->MonotonicNs() - t0) / 1e9);
  return resp;
}

}  // namespace telemetry::query
