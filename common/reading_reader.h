// The read side of the readings: what the query router needs, and nothing
// else (it never writes). Every read is scoped to one tenant. The storage
// layout (narrow rows in day-partitioned tables with closed hours packed into
// raw_readings_seg, rollups in agg_1m with closed hours packed into
// agg_1m_seg, agg_1h) stays behind it: Postgres
// implementation in common/pg/reading_reader.cc, fake in common/testing/fakes.h.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"

namespace telemetry {

struct RangeQuery {
  int64_t tenant_id = 0;
  std::string device;
  std::vector<std::string> sensors;  // empty = all
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  int64_t limit = 0;  // 0 = none
  int32_t page_size = 1000;
  // Resume after this (sensor, unit, timestamp); empty sensor = from start.
  std::string after_sensor;
  std::string after_unit;
  int64_t after_ts_ns = 0;
};

struct AggregateQuery {
  int64_t tenant_id = 0;
  std::string device;                // "" = every device (of `project`, or of the tenant)
  std::string project;               // "" = any project
  std::vector<std::string> sensors;  // empty = all
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  // A multiple of one minute (served from agg_1m) or of one hour (agg_1h).
  int64_t bucket_ns = 60 * 1'000'000'000LL;
  bool group_by_device = true;
  // Which values the caller needs (the count is always returned); the
  // others may come back as 0, which saves formatting and parsing them.
  bool need_sum = true, need_min = true, need_max = true, need_last = true;
};

// One bucket of one series (or of one sensor over devices).
struct AggregateRow {
  std::string device;  // "" when not grouped by device
  std::string sensor;
  int64_t bucket_ns = 0;
  int64_t count = 0;
  double sum = 0, min = 0, max = 0, last = 0;
};

// A series by its names.
struct SeriesRef {
  std::string device, sensor, unit;
  bool operator<(const SeriesRef& o) const {
    return std::tie(device, sensor, unit) < std::tie(o.device, o.sensor, o.unit);
  }
  bool operator==(const SeriesRef& o) const {
    return device == o.device && sensor == o.sensor && unit == o.unit;
  }
};

struct PlaybackRows {
  std::vector<ReadingRow> before;  // per sensor, the last reading before the window
  std::vector<ReadingRow> inside;  // every reading in the window, by (sensor, time)
  std::vector<ReadingRow> after;   // per sensor, the first reading after it
};

class ReadingReader {
 public:
  virtual ~ReadingReader() = default;
  virtual absl::StatusOr<std::vector<ReadingRow>> Latest(
      int64_t tenant_id, const std::vector<std::string>& devices,
      const std::vector<std::string>& sensors) = 0;
  // Streams pages ordered by (sensor, unit, timestamp). `page` returns false
  // to stop early. Memory is bounded by the page size.
  virtual absl::Status Range(const RangeQuery& query,
                             const std::function<bool(std::vector<ReadingRow>&&)>& page) = 0;
  // Buckets from the rollup tables (never raw rows), ordered by (device,
  // sensor, bucket); empty buckets are absent.
  virtual absl::StatusOr<std::vector<AggregateRow>> Aggregate(const AggregateQuery& query) = 0;
  // The series of `devices` as (device, sensor, unit), of `sensors` (all
  // when empty), in that order: every series a device ever had, also one
  // whose readings are all in the archive now.
  virtual absl::StatusOr<std::vector<SeriesRef>> Series(
      int64_t tenant_id, const std::vector<std::string>& devices,
      const std::vector<std::string>& sensors) = 0;
  // Readings of a device in [from_ns, to_ns] plus each sensor's neighbours.
  virtual absl::StatusOr<PlaybackRows> Playback(int64_t tenant_id, const std::string& device,
                                                const std::vector<std::string>& sensors,
                                                int64_t from_ns, int64_t to_ns) = 0;
};

}  // namespace telemetry
