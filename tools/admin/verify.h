// `telemetry-admin verify`: a parity report between a source (a line-protocol
// file, or an InfluxDB over its HTTP query API) and what the platform stores,
// per series and hour. Both sides name series with the line-protocol mapping
// (services/ingest/line_protocol.h), the platform is read through
// ReadingReader. docs/ingress.md "Import and verify (migration)".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/reading_reader.h"
#include "services/ingest/line_protocol.h"

namespace telemetry::admin {

inline constexpr int64_t kNsPerHour = 3'600'000'000'000;

// The figures of one series in one hour. min/max/sum are over numeric
// readings only (`numeric` of them); strings and booleans count in `count`
// and the timestamps.
struct HourFigures {
  int64_t count = 0;
  int64_t numeric = 0;
  double min = 0, max = 0, sum = 0;
  int64_t first_ns = 0, last_ns = 0;
};

struct SeriesKey {
  std::string device, sensor, unit;
  bool operator<(const SeriesKey& o) const {
    return std::tie(device, sensor, unit) < std::tie(o.device, o.sensor, o.unit);
  }
  bool operator==(const SeriesKey& o) const {
    return device == o.device && sensor == o.sensor && unit == o.unit;
  }
};

// One side: hour start (ns) → figures, per series.
class SideTable {
 public:
  // Adds one reading (at most once per series and timestamp).
  void Add(const SeriesKey& series, int64_t ts_ns, bool numeric, double value);
  const std::map<SeriesKey, std::map<int64_t, HourFigures>>& series() const { return series_; }
  int64_t readings() const { return readings_; }
  int64_t min_ns() const { return min_ns_; }
  int64_t max_ns() const { return max_ns_; }

 private:
  std::map<SeriesKey, std::map<int64_t, HourFigures>> series_;
  int64_t readings_ = 0;
  int64_t min_ns_ = INT64_MAX, max_ns_ = INT64_MIN;
};

// The readings of a source, collected so that a (series, timestamp) written
// twice counts once with its last value (what InfluxDB keeps), then turned
// into a SideTable. About 24 bytes per reading while collecting.
class SourceCollector {
 public:
  void Add(const v1::Reading& reading);
  SideTable Finish();
  int64_t points_without_timestamp = 0;
  int64_t malformed_lines = 0;
  int64_t duplicates = 0;  // set by Finish

 private:
  struct Entry {
    int64_t ts_ns;
    uint32_t series;
    uint32_t order;
    double value;
    bool numeric;
  };
  std::map<SeriesKey, uint32_t> ids_;
  std::vector<const SeriesKey*> keys_;
  std::vector<Entry> entries_;
};

// A time window [from_ns, to_ns); from_ns == to_ns == 0 is "everything".
struct Window {
  int64_t from_ns = 0, to_ns = 0;
  bool all() const { return from_ns == 0 && to_ns == 0; }
  bool contains(int64_t ts) const { return all() || (ts >= from_ns && ts < to_ns); }
};

// A line-protocol body (an `influx_inspect export` file too) through the
// mapping, readings inside `window` only. Points without a timestamp are
// counted, not compared (the import stamped them with its own time).
void CollectLineProtocol(absl::string_view body, const lineproto::MappingOptions& mapping,
                         const Window& window, SourceCollector* out);

// An InfluxDB 1.x over HTTP: `url` is http://[user:password@]host:port/DB[/RP].
// Every measurement (SHOW MEASUREMENTS) is read with
// `SELECT * FROM m [WHERE time window] GROUP BY *` (epoch=ns, chunked), each
// row turned back into a point and through the mapping.
absl::Status CollectInflux(const std::string& url, const lineproto::MappingOptions& mapping,
                           const Window& window, SourceCollector* out);

// The platform's readings of `tenant_id` in `window` through the reader:
// Range over every device of `devices` and every device the rollups know in
// the window (Aggregate), so a series only the platform has shows too.
absl::Status CollectPlatform(ReadingReader* reader, int64_t tenant_id,
                             const std::vector<std::string>& devices, const Window& window,
                             SideTable* out);

struct ParityOptions {
  double sum_relative_tolerance = 1e-9;
  size_t max_listed = 50;  // mismatches and one-sided series listed in the report
};

struct Mismatch {
  SeriesKey series;
  int64_t hour_ns = 0;
  std::vector<std::string> differs;  // "count", "numeric", "min", "max", "sum", "first", "last"
  bool in_source = false, in_platform = false;
  HourFigures source, platform;
};

struct ParityReport {
  std::string source_name;
  int64_t tenant_id = 0;
  Window window;
  double sum_relative_tolerance = 0;
  int64_t source_readings = 0, platform_readings = 0;
  int64_t source_series = 0, platform_series = 0;
  int64_t source_points_without_timestamp = 0, source_malformed_lines = 0, source_duplicates = 0;
  int64_t series_hours = 0;  // in either side
  int64_t matching = 0;
  int64_t mismatched = 0;            // differing figures, or present on one side only
  std::vector<Mismatch> mismatches;  // the first max_listed
  std::vector<SeriesKey> only_in_source, only_in_platform;  // the first max_listed
  int64_t only_in_source_total = 0, only_in_platform_total = 0;
  double diff_rate() const {
    return series_hours == 0 ? 0
                             : static_cast<double>(mismatched) / static_cast<double>(series_hours);
  }
};

ParityReport Compare(const SideTable& source, const SideTable& platform,
                     const ParityOptions& options);

std::string RenderMarkdown(const ParityReport& report);
std::string RenderJson(const ParityReport& report);

struct VerifyConfig {
  std::string source;  // file:PATH or influx:http://host:port/DB[/RP]
  lineproto::MappingOptions mapping;
  int64_t tenant_id = 0;
  Window window;                       // all(): the source's hours
  std::string report_path, json_path;  // "" = Markdown on stdout, no JSON
  ParityOptions parity;
};

// The command: both sides, the report. Exit status 0 with no mismatch, 1
// with any, 2 when it could not compare (flags, source, platform).
int VerifyCommand(const VerifyConfig& config, ReadingReader* reader);

}  // namespace telemetry::admin
