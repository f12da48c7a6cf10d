// ColdReadings over the archive (common/cold_readings.h): a tenant's dropped
// hours from the primary (raw_compactions 'dropped' with the tenant's
// current export), a tenant's files of an hour
// from the manifest (its current export), and the readings from those Parquet
// files under the archive root, pruned by row-group statistics. Both are
// cached: a tenant's dropped hours for `refresh_ns`, a device's readings of an hour
// in an LRU bounded by `cache_bytes` (an archived hour never changes: its
// content is fixed when its day is dropped).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/archive/archive_fs.h"
#include "common/archive_store.h"
#include "common/clock.h"
#include "common/cold_readings.h"
#include "common/metrics.h"

namespace telemetry::archive {

struct ColdReadingsOptions {
  int64_t cache_bytes = 256LL << 20;
  // How long the list of dropped hours is trusted (docs/archive.md says what
  // a read in that time after a drop may miss).
  int64_t refresh_ns = 1'000'000'000;
};

struct ColdReadingsMetrics {
  explicit ColdReadingsMetrics(MetricsRegistry* r);
  Counter* cache_hits;
  Counter* cache_misses;
  Counter* files_read;
  Counter* row_groups_read;
  Counter* row_groups_skipped;
  Gauge* cache_bytes;
};

class ArchiveColdReadings final : public ColdReadings {
 public:
  // None is owned. `metrics` may be null.
  ArchiveColdReadings(ArchiveStore* store, ArchiveFs* fs, const Clock* clock,
                      ColdReadingsOptions options, ColdReadingsMetrics* metrics);

  absl::StatusOr<std::vector<int64_t>> DroppedHours(int64_t tenant_id, int64_t from_ns,
                                                    int64_t to_ns) override;
  absl::StatusOr<std::shared_ptr<const std::vector<ReadingRow>>> DeviceHour(
      int64_t tenant_id, int64_t hour_ns, const std::string& device) override;

 private:
  using Key = std::tuple<int64_t, int64_t, std::string>;  // (tenant, hour, device)
  struct Entry {
    Key key;
    std::shared_ptr<const std::vector<ReadingRow>> rows;
    int64_t bytes = 0;
  };
  absl::StatusOr<std::shared_ptr<const std::vector<ReadingRow>>> Load(int64_t tenant_id,
                                                                      int64_t hour_ns,
                                                                      const std::string& device);

  ArchiveStore* store_;
  ArchiveFs* fs_;
  const Clock* clock_;
  ColdReadingsOptions options_;
  ColdReadingsMetrics* metrics_;

  absl::Mutex mu_;
  struct Dropped {
    std::shared_ptr<const std::vector<int64_t>> hours;
    int64_t at_ns = 0;  // when read (monotonic)
  };
  absl::flat_hash_map<int64_t, Dropped> dropped_ ABSL_GUARDED_BY(mu_);  // by tenant
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);                           // most recently used first
  absl::flat_hash_map<Key, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace telemetry::archive
