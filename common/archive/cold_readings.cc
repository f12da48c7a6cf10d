#include "common/archive/cold_readings.h"

#include <algorithm>
#include <climits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/archive/parquet_readings.h"

namespace telemetry::archive {
namespace {

int64_t BytesOf(const std::vector<ReadingRow>& rows) {
  int64_t n = static_cast<int64_t>(sizeof(std::vector<ReadingRow>));
  for (const ReadingRow& r : rows) {
    n += static_cast<int64_t>(sizeof(ReadingRow));
    // Strings past the small-string buffer live on the heap.
    for (const std::string* s : {&r.device, &r.sensor, &r.unit, &r.s}) {
      if (s->size() > 15) n += static_cast<int64_t>(s->capacity());
    }
  }
  return n;
}

}  // namespace

ColdReadingsMetrics::ColdReadingsMetrics(MetricsRegistry* r)
    : cache_hits(r->AddCounter("query_archive_cache_hits_total",
                               "Cold reads of a device's archived hour answered by the cache")),
      cache_misses(r->AddCounter("query_archive_cache_misses_total",
                                 "Cold reads of a device's archived hour read from the archive")),
      files_read(r->AddCounter("query_archive_files_read_total",
                               "Archive Parquet files opened by cold reads")),
      row_groups_read(r->AddCounter("query_archive_row_groups_read_total",
                                    "Parquet row groups decoded by cold reads")),
      row_groups_skipped(r->AddCounter(
          "query_archive_row_groups_skipped_total",
          "Parquet row groups skipped by cold reads (device statistics exclude the device)")),
      cache_bytes(r->AddGauge("query_archive_cache_bytes",
                              "Bytes of archived readings held by the cold read cache")) {}

ArchiveColdReadings::ArchiveColdReadings(ArchiveStore* store, ArchiveFs* fs, const Clock* clock,
                                         ColdReadingsOptions options, ColdReadingsMetrics* metrics)
    : store_(store), fs_(fs), clock_(clock), options_(options), metrics_(metrics) {}

absl::StatusOr<std::vector<int64_t>> ArchiveColdReadings::DroppedHours(int64_t tenant_id,
                                                                       int64_t from_ns,
                                                                       int64_t to_ns) {
  std::shared_ptr<const std::vector<int64_t>> all;
  const int64_t now = clock_->MonotonicNs();
  {
    absl::MutexLock l(&mu_);
    auto it = dropped_.find(tenant_id);
    if (it != dropped_.end() && now - it->second.at_ns < options_.refresh_ns) {
      all = it->second.hours;
    }
  }
  if (!all) {
    auto hours = store_->DroppedHours(tenant_id, INT64_MIN, INT64_MAX);
    if (!hours.ok()) return hours.status();
    all = std::make_shared<const std::vector<int64_t>>(std::move(*hours));
    absl::MutexLock l(&mu_);
    dropped_[tenant_id] = {all, now};
  }
  // Hours h with h < to and h + 1 h > from.
  const int64_t first = from_ns < INT64_MIN + kColdHourNs ? INT64_MIN : from_ns - kColdHourNs + 1;
  auto lo = std::lower_bound(all->begin(), all->end(), first);
  auto hi = std::lower_bound(lo, all->end(), to_ns);
  return std::vector<int64_t>(lo, hi);
}

absl::StatusOr<std::shared_ptr<const std::vector<ReadingRow>>> ArchiveColdReadings::DeviceHour(
    int64_t tenant_id, int64_t hour_ns, const std::string& device) {
  Key key(tenant_id, hour_ns, device);
  {
    absl::MutexLock l(&mu_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      if (metrics_) metrics_->cache_hits->Inc();
      return it->second->rows;
    }
  }
  if (metrics_) metrics_->cache_misses->Inc();
  auto rows = Load(tenant_id, hour_ns, device);
  if (!rows.ok()) return rows.status();
  const int64_t bytes = BytesOf(**rows);
  absl::MutexLock l(&mu_);
  if (bytes > options_.cache_bytes || index_.contains(key)) return *rows;
  lru_.push_front(Entry{key, *rows, bytes});
  index_[key] = lru_.begin();
  bytes_ += bytes;
  while (bytes_ > options_.cache_bytes && !lru_.empty()) {
    bytes_ -= lru_.back().bytes;
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  if (metrics_) metrics_->cache_bytes->Set(static_cast<double>(bytes_));
  return *rows;
}

absl::StatusOr<std::shared_ptr<const std::vector<ReadingRow>>> ArchiveColdReadings::Load(
    int64_t tenant_id, int64_t hour_ns, const std::string& device) {
  auto out = std::make_shared<std::vector<ReadingRow>>();
  auto exp = store_->CurrentExport(tenant_id, hour_ns);
  // No export: the tenant had no readings in the hour (retention drops a day
  // only when every tenant with readings in it is archived).
  if (absl::IsNotFound(exp.status())) return out;
  if (!exp.ok()) return exp.status();
  int files = 0;
  for (const ArchiveFile& f : exp->files) {
    if (f.kind != "readings") continue;
    DeviceReadStats stats;
    auto rows = ReadDeviceReadings(*fs_, f.path, device, &stats);
    // (A local file that cannot be opened is an IOError to Arrow: asked again.)
    if (!rows.ok() && absl::IsNotFound(fs_->FileSize(f.path).status())) {
      return absl::DataLossError(absl::StrCat("archive file ", f.path, " of tenant ", tenant_id,
                                              " (hour ", hour_ns,
                                              ") is missing: ", rows.status().message()));
    }
    if (!rows.ok()) return rows.status();
    ++files;
    if (metrics_) {
      metrics_->files_read->Inc();
      metrics_->row_groups_read->Inc(stats.row_groups_read);
      metrics_->row_groups_skipped->Inc(stats.row_groups_skipped);
    }
    out->insert(out->end(), std::make_move_iterator(rows->begin()),
                std::make_move_iterator(rows->end()));
  }
  if (files > 1) {
    std::stable_sort(out->begin(), out->end(), [](const ReadingRow& a, const ReadingRow& b) {
      return std::tie(a.sensor, a.unit, a.ts_ns) < std::tie(b.sensor, b.unit, b.ts_ns);
    });
  }
  return out;
}

}  // namespace telemetry::archive
