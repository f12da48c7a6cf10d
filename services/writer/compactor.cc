#include "services/writer/compactor.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/logging.h"

namespace telemetry::writer {
namespace {

constexpr int64_t kNsPerHour = 3600 * kNsPerSec;
// A batch's time span can reach back to the oldest reading ingest accepts;
// marking more hours than this (40 days) would only cost memory.
constexpr int64_t kMaxMarkedHours = 40 * 24;

int64_t HourOf(int64_t ns) { return ns - ((ns % kNsPerHour) + kNsPerHour) % kNsPerHour; }

}  // namespace

CompactorMetrics::CompactorMetrics(MetricsRegistry* r)
    : hours(r->AddCounter("writer_rollup_hours_compacted_total",
                          "Hours of 1-minute rollups packed into segments")),
      rows(r->AddCounter("writer_rollup_rows_compacted_total", "Rollup rows packed into segments")),
      failures(r->AddCounter("writer_rollup_compaction_failures_total",
                             "Failed rollup compaction rounds")),
      vacuums(r->AddCounter("writer_rollup_vacuums_total", "VACUUMs of agg_1m after compactions")),
      raw_hours(r->AddCounter("writer_raw_hours_packed_total",
                              "Hours of raw rows packed into segments (late rows: again)")),
      raw_readings(
          r->AddCounter("writer_raw_readings_packed_total", "Raw rows moved into segments")),
      raw_segments(r->AddCounter("writer_raw_segments_written_total",
                                 "Raw segments written (new or repacked)")),
      raw_failures(r->AddCounter("writer_raw_pack_failures_total", "Failed raw packing rounds")),
      raw_pack_ms(r->AddCounter("writer_raw_pack_milliseconds_total",
                                "Wall-clock milliseconds spent packing raw hours")),
      raw_bytes_freed(r->AddCounter("writer_raw_bytes_freed_total",
                                    "Bytes of packed days' raw partitions truncated")) {}

Compactor::Compactor(CompactorOptions options, ReadingWriter* store, const Clock* clock,
                     CompactorMetrics* metrics)
    : options_(options), store_(store), clock_(clock), metrics_(metrics) {}

void Compactor::Touched(int64_t from_ns, int64_t to_ns) {
  if (to_ns < from_ns) return;
  const int64_t now = clock_->MonotonicNs();
  const int64_t last = HourOf(to_ns);
  const int64_t first = std::max(HourOf(from_ns), last - (kMaxMarkedHours - 1) * kNsPerHour);
  absl::MutexLock lock(&mu_);
  for (int64_t h = first; h <= last; h += kNsPerHour) last_write_[h] = now;
}

absl::StatusOr<int> Compactor::RunOnce() {
  if (unvacuumed_rows_ > 0) {
    auto dead = store_->VacuumRollups();
    if (!dead.ok()) {
      metrics_->failures->Inc();
      return dead.status();
    }
    metrics_->vacuums->Inc();
    // Most old versions gone (the rest are ordinary update leftovers), or
    // tried long enough: autovacuum has the rest.
    if (*dead < unvacuumed_rows_ / 2 || ++vacuum_tries_ >= 5) {
      unvacuumed_rows_ = 0;
      vacuum_tries_ = 0;
    }
  }
  // Hours that ended at least `grace` ago.
  const int64_t before = HourOf(clock_->NowNs() - options_.grace_ns) - kNsPerHour + 1;
  const std::map<int64_t, int64_t> recent = RecentHours();
  auto hours = store_->UncompactedRollupHours(
      before, options_.max_hours_per_round + static_cast<int>(recent.size()));
  if (!hours.ok()) {
    metrics_->failures->Inc();
    return hours.status();
  }
  int done = 0;
  for (int64_t h : *hours) {
    if (done >= options_.max_hours_per_round) break;
    if (recent.count(h)) continue;  // still being written
    auto rows = store_->CompactRollupHour(h);
    if (!rows.ok()) {
      metrics_->failures->Inc();
      return rows.status();
    }
    metrics_->hours->Inc();
    metrics_->rows->Inc(*rows);
    unvacuumed_rows_ += *rows;
    GetLogger("compactor")->debug("hour {}: {} rollup rows packed into segments", h, *rows);
    ++done;
  }
  if (options_.pack_raw) {
    auto packed = PackRawOnce();
    if (!packed.ok()) return packed.status();
  }
  return done;
}

std::map<int64_t, int64_t> Compactor::RecentHours() {
  const int64_t mono = clock_->MonotonicNs();
  absl::MutexLock lock(&mu_);
  for (auto it = last_write_.begin(); it != last_write_.end();) {
    if (mono - it->second >= options_.quiet_ns) {
      it = last_write_.erase(it);
    } else {
      ++it;
    }
  }
  return last_write_;
}

absl::StatusOr<int> Compactor::PackRawOnce() {
  const int64_t before = HourOf(clock_->NowNs() - options_.grace_ns) - kNsPerHour + 1;
  const std::map<int64_t, int64_t> recent = RecentHours();
  auto hours = store_->UnpackedRawHours(
      before, options_.max_raw_hours_per_round + static_cast<int>(recent.size()));
  if (!hours.ok()) {
    metrics_->raw_failures->Inc();
    return hours.status();
  }
  int done = 0;
  for (int64_t h : *hours) {
    if (done >= options_.max_raw_hours_per_round) break;
    if (recent.count(h)) continue;  // still being written
    const int64_t start = clock_->MonotonicNs();
    auto r = store_->PackRawHour(h, options_.raw_step_readings);
    metrics_->raw_pack_ms->Inc((clock_->MonotonicNs() - start) / 1'000'000);
    if (!r.ok()) {
      metrics_->raw_failures->Inc();
      return r.status();
    }
    metrics_->raw_hours->Inc();
    metrics_->raw_readings->Inc(r->readings);
    metrics_->raw_segments->Inc(r->segments);
    GetLogger("compactor")
        ->debug("hour {}: {} raw rows packed into {} segments in {} steps", h, r->readings,
                r->segments, r->steps);
    ++done;
  }
  auto freed = store_->TruncatePackedDays(before);
  if (!freed.ok()) {
    metrics_->raw_failures->Inc();
    return freed.status();
  }
  metrics_->raw_bytes_freed->Inc(*freed);
  return done;
}

absl::Status Compactor::VacuumNow(int64_t max_wait_ns, int64_t retry_ns) {
  const int64_t until = clock_->MonotonicNs() + max_wait_ns;
  while (true) {
    auto dead = store_->VacuumRollups();
    if (!dead.ok()) return dead.status();
    metrics_->vacuums->Inc();
    if (*dead < unvacuumed_rows_ / 100 || clock_->MonotonicNs() >= until) break;
    std::this_thread::sleep_for(std::chrono::nanoseconds(retry_ns));
  }
  unvacuumed_rows_ = 0;
  vacuum_tries_ = 0;
  return absl::OkStatus();
}

}  // namespace telemetry::writer
