// In-memory fakes of the stores, the alert rules and the cache, for unit
// tests (the Kafka fakes are in kafka_fake.h). They follow
// the interfaces' contracts (dedup on (series, ts), rollups of new rows only,
// offsets never moving backwards, cache newer-only) without Postgres/Redis.
#pragma once

#include <algorithm>
#include <climits>
#include <map>
#include <set>
#include <tuple>

#include "absl/synchronization/mutex.h"
#include "common/alert_rules.h"
#include "common/alert_silences.h"
#include "common/alert_state.h"
#include "common/clock.h"
#include "common/latest_cache.h"
#include "common/metadata_store.h"
#include "common/reading_reader.h"
#include "common/reading_writer.h"

namespace telemetry::testing {

class FakeMetadataStore final : public MetadataStore {
 public:
  absl::StatusOr<std::optional<TenantInfo>> TenantByKeyHash(const std::string& hash) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake metadata down");
    auto it = keys_.find(hash);
    if (it == keys_.end()) return std::optional<TenantInfo>();
    return std::optional<TenantInfo>(tenants_.at(it->second));
  }
  absl::StatusOr<std::optional<TenantInfo>> TenantByName(const std::string& name) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake metadata down");
    for (const auto& [id, t] : tenants_) {
      if (t.name == name) return std::optional<TenantInfo>(t);
    }
    return std::optional<TenantInfo>();
  }
  absl::StatusOr<bool> TenantExists(int64_t id) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake metadata down");
    return tenants_.count(id) > 0;
  }
  absl::StatusOr<int64_t> CreateTenant(const NewTenant& t) override {
    absl::MutexLock l(&mu_);
    TenantInfo info;
    info.id = static_cast<int64_t>(tenants_.size()) + 1;
    info.name = t.name;
    info.default_project_id = info.id * 100;
    info.require_registered_devices = t.require_registered_devices;
    info.sensor_whitelist = t.sensor_whitelist;
    info.rate_per_sec = t.rate_per_sec;
    info.burst = t.burst;
    info.raw_retention_days = t.raw_retention_days;
    tenants_[info.id] = info;
    return info.id;
  }
  absl::Status AddApiKey(int64_t tenant_id, const std::string& hash) override {
    absl::MutexLock l(&mu_);
    keys_[hash] = tenant_id;
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> UpsertDevice(int64_t tenant_id, const DeviceInfo& d) override {
    absl::MutexLock l(&mu_);
    return DeviceLocked(tenant_id, d.name);
  }
  absl::StatusOr<std::map<std::string, int64_t>> ResolveDevices(
      int64_t tenant_id, const std::vector<std::string>& names, bool create) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake metadata down");
    std::map<std::string, int64_t> out;
    for (const auto& n : names) {
      auto it = devices_.find({tenant_id, n});
      if (it != devices_.end()) {
        out[n] = it->second;
      } else if (create) {
        out[n] = DeviceLocked(tenant_id, n);
      }
    }
    return out;
  }
  absl::StatusOr<std::vector<int32_t>> ResolveSeries(
      int64_t tenant_id, const std::vector<SeriesSpec>& specs) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake metadata down");
    std::vector<int32_t> out;
    for (const auto& s : specs) {
      int64_t dev = DeviceLocked(tenant_id, s.device);
      auto key = std::make_tuple(dev, s.sensor, s.unit);
      auto it = series_.find(key);
      if (it == series_.end()) {
        it = series_.emplace(key, static_cast<int32_t>(series_.size()) + 1).first;
        series_info_[it->second] = {tenant_id, s.device, s.sensor, s.unit};
      }
      if (!s.labels_json.empty()) labels_[it->second] = s.labels_json;
      out.push_back(it->second);
    }
    return out;
  }
  void SetUp(bool up) {
    absl::MutexLock l(&mu_);
    up_ = up;
  }
  struct SeriesInfo {
    int64_t tenant;
    std::string device, sensor, unit;
  };
  SeriesInfo Series(int32_t id) {
    absl::MutexLock l(&mu_);
    return series_info_.at(id);
  }
  int64_t device_count() {
    absl::MutexLock l(&mu_);
    return static_cast<int64_t>(devices_.size());
  }

 private:
  int64_t DeviceLocked(int64_t tenant, const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto [it, fresh] = devices_.emplace(std::make_pair(tenant, name), 0);
    if (fresh) it->second = static_cast<int64_t>(devices_.size());
    return it->second;
  }
  absl::Mutex mu_;
  bool up_ ABSL_GUARDED_BY(mu_) = true;
  std::map<int64_t, TenantInfo> tenants_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> keys_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<int64_t, std::string>, int64_t> devices_ ABSL_GUARDED_BY(mu_);
  std::map<std::tuple<int64_t, std::string, std::string>, int32_t> series_ ABSL_GUARDED_BY(mu_);
  std::map<int32_t, SeriesInfo> series_info_ ABSL_GUARDED_BY(mu_);
  std::map<int32_t, std::string> labels_ ABSL_GUARDED_BY(mu_);
};

// The write side: dedup on (series, ts), rollups of new rows only, offsets
// that never move backwards, gaps, resets, partitions, compaction.
class FakeReadingWriter final : public ReadingWriter {
 public:
  struct Agg {
    int64_t cnt = 0;
    double sum = 0, min = 0, max = 0, last_value = 0;
    int64_t last_ts = 0;
  };
  absl::StatusOr<ApplyResult> Apply(const std::vector<RawRow>& rows, const std::string& topic,
                                    const std::vector<PartitionOffset>& offsets) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    ApplyResult r;
    for (const auto& row : rows) {
      if (!raw_.emplace(std::make_pair(row.series_id, row.ts_ns), row).second) {
        ++r.duplicates;
        continue;
      }
      ++r.inserted;
      if (row.kind == ValueKind::kString) continue;
      double v = row.kind == ValueKind::kDouble ? row.d : (row.b ? 1.0 : 0.0);
      auto add = [&](std::map<std::pair<int32_t, int64_t>, Agg>& aggs, int64_t width) {
        Agg& a = aggs[{row.series_id, row.ts_ns - row.ts_ns % width}];
        if (a.cnt == 0) a.min = a.max = v;
        ++a.cnt;
        a.sum += v;
        a.min = std::min(a.min, v);
        a.max = std::max(a.max, v);
        if (row.ts_ns > a.last_ts) {
          a.last_ts = row.ts_ns;
          a.last_value = v;
        }
      };
      add(agg_1m_, 60'000'000'000);
      add(agg_1h_, 3'600'000'000'000);
    }
    for (const auto& po : offsets) {
      auto& o = offsets_[topic][po.partition];
      o = std::max(o, po.offset);
    }
    ++applies_;
    return r;
  }
  absl::StatusOr<std::map<int32_t, int64_t>> AppliedOffsets(const std::string& topic) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    return offsets_[topic];
  }
  absl::Status RecordLogGap(const std::string& topic, int32_t partition, int64_t from,
                            int64_t to) override {
    absl::MutexLock l(&mu_);
    gaps_.push_back({partition, from, to});
    return absl::OkStatus();
  }
  absl::StatusOr<std::map<int32_t, std::vector<std::pair<int64_t, int64_t>>>> DroppedOffsets(
      const std::string&) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    std::map<int32_t, std::vector<std::pair<int64_t, int64_t>>> out;
    for (const auto& [p, from, to] : gaps_) out[p].emplace_back(from, to);
    return out;
  }
  absl::StatusOr<std::optional<int64_t>> FreshThrough(const std::string& topic) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    std::optional<int64_t> out;
    for (const auto& [p, t] : fresh_through_[topic]) out = out ? std::min(*out, t) : t;
    return out;
  }
  absl::Status RecordFreshness(const std::string& topic,
                               const std::map<int32_t, int64_t>& fresh_through_ns) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    for (const auto& [p, t] : fresh_through_ns) {
      int64_t& f = fresh_through_[topic][p];
      f = std::max(f, t);
    }
    return absl::OkStatus();
  }
  absl::Status ResetOffset(const std::string& topic, int32_t partition, int64_t applied,
                           int64_t restart_at) override {
    absl::MutexLock l(&mu_);
    offsets_[topic][partition] = restart_at;
    resets_.push_back({partition, applied, restart_at});
    return absl::OkStatus();
  }
  std::vector<std::tuple<int32_t, int64_t, int64_t>> resets() {
    absl::MutexLock l(&mu_);
    return resets_;
  }
  absl::Status EnsurePartitions(int64_t from_ns, int64_t to_ns) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    for (int64_t d = DayOf(from_ns); d <= DayOf(to_ns); ++d) days_.insert(d);
    return absl::OkStatus();
  }
  std::set<int64_t> days() {
    absl::MutexLock l(&mu_);
    return days_;
  }
  absl::StatusOr<std::vector<int64_t>> UncompactedRollupHours(int64_t before_ns,
                                                              int limit) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    std::set<int64_t> hours;
    for (const auto& [key, agg] : agg_1h_) {
      if (key.second < before_ns && !compacted_.count(key.second)) hours.insert(key.second);
    }
    std::vector<int64_t> out(hours.begin(), hours.end());
    if (out.size() > static_cast<size_t>(limit)) out.resize(static_cast<size_t>(limit));
    return out;
  }
  // The fake has no physical layout: it records the hour and counts its rows.
  absl::StatusOr<int64_t> CompactRollupHour(int64_t hour_ns) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    if (!compacted_.insert(hour_ns).second) return 0;
    int64_t rows = 0;
    for (const auto& [key, agg] : agg_1m_) {
      rows += key.second >= hour_ns && key.second < hour_ns + 3'600'000'000'000 ? 1 : 0;
    }
    return rows;
  }
  // The fake has no segments either: packing records the hour and counts
  // its raw rows (late rows are counted again by a later pack).
  absl::StatusOr<std::vector<int64_t>> UnpackedRawHours(int64_t before_ns, int limit) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    std::set<int64_t> hours;
    for (const auto& [key, row] : raw_) {
      const int64_t h = key.second - key.second % 3'600'000'000'000;
      if (h < before_ns && !packed_.count(key)) hours.insert(h);
    }
    std::vector<int64_t> out(hours.begin(), hours.end());
    if (out.size() > static_cast<size_t>(limit)) out.resize(static_cast<size_t>(limit));
    return out;
  }
  absl::StatusOr<RawPackResult> PackRawHour(int64_t hour_ns, int64_t) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    RawPackResult r;
    std::set<int32_t> series;
    for (const auto& [key, row] : raw_) {
      if (key.second >= hour_ns && key.second < hour_ns + 3'600'000'000'000 &&
          packed_.insert(key).second) {
        ++r.readings;
        series.insert(key.first);
      }
    }
    r.segments = static_cast<int64_t>(series.size());
    r.steps = 1;
    packed_hours_.insert(hour_ns);
    return r;
  }
  absl::StatusOr<int64_t> TruncatePackedDays(int64_t) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    return 0;
  }
  std::set<int64_t> packed_hours() {
    absl::MutexLock l(&mu_);
    return packed_hours_;
  }
  absl::StatusOr<int64_t> VacuumRollups() override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake store down");
    ++vacuums_;
    return 0;
  }
  int vacuums() {
    absl::MutexLock l(&mu_);
    return vacuums_;
  }
  std::set<int64_t> compacted() {
    absl::MutexLock l(&mu_);
    return compacted_;
  }
  void SetUp(bool up) {
    absl::MutexLock l(&mu_);
    up_ = up;
  }
  size_t raw_count() {
    absl::MutexLock l(&mu_);
    return raw_.size();
  }
  std::map<std::pair<int32_t, int64_t>, Agg> agg_1m() {
    absl::MutexLock l(&mu_);
    return agg_1m_;
  }
  std::map<std::pair<int32_t, int64_t>, RawRow> raw() {
    absl::MutexLock l(&mu_);
    return raw_;
  }
  std::vector<std::tuple<int32_t, int64_t, int64_t>> gaps() {
    absl::MutexLock l(&mu_);
    return gaps_;
  }
  int applies() {
    absl::MutexLock l(&mu_);
    return applies_;
  }

 private:
  absl::Mutex mu_;
  bool up_ ABSL_GUARDED_BY(mu_) = true;
  std::map<std::pair<int32_t, int64_t>, RawRow> raw_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<int32_t, int64_t>, Agg> agg_1m_ ABSL_GUARDED_BY(mu_), agg_1h_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<int32_t, int64_t>> offsets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<int32_t, int64_t>> fresh_through_ ABSL_GUARDED_BY(mu_);
  std::vector<std::tuple<int32_t, int64_t, int64_t>> gaps_ ABSL_GUARDED_BY(mu_);
  int applies_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<int64_t> days_ ABSL_GUARDED_BY(mu_);
  std::set<int64_t> compacted_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<int32_t, int64_t>> packed_ ABSL_GUARDED_BY(mu_);
  std::set<int64_t> packed_hours_ ABSL_GUARDED_BY(mu_);
  int vacuums_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::tuple<int32_t, int64_t, int64_t>> resets_ ABSL_GUARDED_BY(mu_);
};

// The read side over readings a test adds by name (Add), with the contracts
// of ReadingReader: Latest per (device, sensor, unit), Range in (sensor,
// unit, time) order in pages with a resume cursor, Playback with the
// neighbours, Aggregate bucketed from the readings (numbers and booleans).
class FakeReadingReader final : public ReadingReader {
 public:
  void Add(int64_t tenant_id, ReadingRow row) {
    absl::MutexLock l(&mu_);
    rows_[tenant_id].push_back(std::move(row));
  }
  void SetUp(bool up) {
    absl::MutexLock l(&mu_);
    up_ = up;
  }
  int reads() {
    absl::MutexLock l(&mu_);
    return reads_;
  }
  // Removes the readings in [from_ns, to_ns) as retention drops a day from
  // Postgres: their series stay known (Series lists them).
  void Forget(int64_t from_ns, int64_t to_ns) {
    absl::MutexLock l(&mu_);
    for (auto& [tenant, rows] : rows_) {
      for (const auto& r : rows) forgotten_series_.insert({tenant, r.device, r.sensor, r.unit});
      rows.erase(std::remove_if(
                     rows.begin(), rows.end(),
                     [&](const ReadingRow& r) { return r.ts_ns >= from_ns && r.ts_ns < to_ns; }),
                 rows.end());
    }
  }

  absl::StatusOr<std::vector<SeriesRef>> Series(int64_t tenant_id,
                                                const std::vector<std::string>& devices,
                                                const std::vector<std::string>& sensors) override {
    auto rows = Select(tenant_id, devices, sensors, INT64_MIN, INT64_MAX);
    if (!rows.ok()) return rows.status();
    std::set<SeriesRef> series;
    for (const auto& r : *rows) series.insert({r.device, r.sensor, r.unit});
    absl::MutexLock l(&mu_);
    auto wanted = [](const std::vector<std::string>& names, const std::string& name) {
      return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
    };
    for (const auto& [tenant, device, sensor, unit] : forgotten_series_) {
      if (tenant == tenant_id && wanted(devices, device) && wanted(sensors, sensor)) {
        series.insert({device, sensor, unit});
      }
    }
    return std::vector<SeriesRef>(series.begin(), series.end());
  }

  absl::StatusOr<std::vector<ReadingRow>> Latest(int64_t tenant_id,
                                                 const std::vector<std::string>& devices,
                                                 const std::vector<std::string>& sensors) override {
    auto rows = Select(tenant_id, devices, sensors, INT64_MIN, INT64_MAX);
    if (!rows.ok()) return rows.status();
    std::map<std::tuple<std::string, std::string, std::string>, ReadingRow> newest;
    for (auto& r : *rows) {
      auto& slot = newest[{r.device, r.sensor, r.unit}];
      if (slot.device.empty() || r.ts_ns > slot.ts_ns) slot = r;
    }
    std::vector<ReadingRow> out;
    for (auto& [key, r] : newest) out.push_back(std::move(r));
    return out;
  }

  absl::Status Range(const RangeQuery& q,
                     const std::function<bool(std::vector<ReadingRow>&&)>& page) override {
    auto rows = Select(q.tenant_id, {q.device}, q.sensors, q.start_ns, q.end_ns - 1);
    if (!rows.ok()) return rows.status();
    std::vector<ReadingRow> out;
    for (auto& r : *rows) {
      if (!q.after_sensor.empty() &&
          std::make_tuple(r.sensor, r.unit, r.ts_ns) <=
              std::make_tuple(q.after_sensor, q.after_unit, q.after_ts_ns)) {
        continue;
      }
      out.push_back(std::move(r));
    }
    if (q.limit > 0 && static_cast<int64_t>(out.size()) > q.limit) {
      out.resize(static_cast<size_t>(q.limit));
    }
    const size_t size = static_cast<size_t>(std::max(1, q.page_size));
    for (size_t at = 0; at < out.size(); at += size) {
      std::vector<ReadingRow> p(
          out.begin() + static_cast<std::ptrdiff_t>(at),
          out.begin() + static_cast<std::ptrdiff_t>(std::min(out.size(), at + size)));
      if (!page(std::move(p))) break;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<AggregateRow>> Aggregate(const AggregateQuery& q) override {
    if (q.bucket_ns <= 0) return absl::InvalidArgumentError("bucket must be positive");
    std::vector<std::string> devices;
    if (!q.device.empty()) devices.push_back(q.device);
    auto rows = Select(q.tenant_id, devices, q.sensors, q.start_ns, q.end_ns - 1);
    if (!rows.ok()) return rows.status();
    std::map<std::tuple<std::string, std::string, int64_t>, AggregateRow> buckets;
    std::map<std::tuple<std::string, std::string, int64_t>, int64_t> last_ts;
    for (const auto& r : *rows) {
      if (r.kind == ValueKind::kString) continue;
      const double v = r.kind == ValueKind::kDouble ? r.d : (r.b ? 1.0 : 0.0);
      const int64_t bucket = r.ts_ns - ((r.ts_ns % q.bucket_ns) + q.bucket_ns) % q.bucket_ns;
      const std::string device = q.group_by_device ? r.device : "";
      auto key = std::make_tuple(device, r.sensor, bucket);
      AggregateRow& a = buckets[key];
      if (a.count == 0) {
        a.device = device;
        a.sensor = r.sensor;
        a.bucket_ns = bucket;
        a.min = a.max = v;
      }
      ++a.count;
      a.sum += v;
      a.min = std::min(a.min, v);
      a.max = std::max(a.max, v);
      if (a.count == 1 || r.ts_ns >= last_ts[key]) {
        last_ts[key] = r.ts_ns;
        a.last = v;
      }
    }
    std::vector<AggregateRow> out;
    for (auto& [key, a] : buckets) out.push_back(std::move(a));
    return out;
  }

  absl::StatusOr<PlaybackRows> Playback(int64_t tenant_id, const std::string& device,
                                        const std::vector<std::string>& sensors, int64_t from_ns,
                                        int64_t to_ns) override {
    auto rows = Select(tenant_id, {device}, sensors, INT64_MIN, INT64_MAX);
    if (!rows.ok()) return rows.status();
    PlaybackRows out;
    std::map<std::pair<std::string, std::string>, ReadingRow> before, after;
    for (auto& r : *rows) {
      const auto key = std::make_pair(r.sensor, r.unit);
      if (r.ts_ns < from_ns) {
        before[key] = r;  // rows are in time order: the last one wins
      } else if (r.ts_ns > to_ns) {
        if (!after.count(key)) after[key] = r;
      } else {
        out.inside.push_back(r);
      }
    }
    for (auto& [key, r] : before) out.before.push_back(std::move(r));
    for (auto& [key, r] : after) out.after.push_back(std::move(r));
    return out;
  }

 private:
  // The tenant's readings of `devices` (all when empty) and `sensors` (all
  // when empty) in [from, to], in (device, sensor, unit, time) order.
  absl::StatusOr<std::vector<ReadingRow>> Select(int64_t tenant_id,
                                                 const std::vector<std::string>& devices,
                                                 const std::vector<std::string>& sensors,
                                                 int64_t from, int64_t to) {
    absl::MutexLock l(&mu_);
    ++reads_;
    if (!up_) return absl::UnavailableError("fake reader down");
    std::vector<ReadingRow> out;
    auto it = rows_.find(tenant_id);
    if (it == rows_.end()) return out;
    auto wanted = [](const std::vector<std::string>& names, const std::string& name) {
      return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
    };
    for (const auto& r : it->second) {
      if (wanted(devices, r.device) && wanted(sensors, r.sensor) && r.ts_ns >= from &&
          r.ts_ns <= to) {
        out.push_back(r);
      }
    }
    std::sort(out.begin(), out.end(), [](const ReadingRow& a, const ReadingRow& b) {
      return std::tie(a.device, a.sensor, a.unit, a.ts_ns) <
             std::tie(b.device, b.sensor, b.unit, b.ts_ns);
    });
    return out;
  }

  absl::Mutex mu_;
  bool up_ ABSL_GUARDED_BY(mu_) = true;
  int reads_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int64_t, std::vector<ReadingRow>> rows_ ABSL_GUARDED_BY(mu_);
  std::set<std::tuple<int64_t, std::string, std::string, std::string>> forgotten_series_
      ABSL_GUARDED_BY(mu_);
};

class FakeLatestCache final : public LatestCache {
 public:
  absl::Status UpdateIfNewer(int64_t tenant, const std::vector<ReadingRow>& rows) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake cache down");
    for (const auto& r : rows) {
      auto& cur = entries_[{tenant, r.device, r.sensor}];
      if (cur.ts_ns < r.ts_ns) cur = r;
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<ReadingRow>> Get(int64_t tenant,
                                              const std::vector<std::string>& devices,
                                              const std::vector<std::string>& sensors) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake cache down");
    std::vector<ReadingRow> out;
    for (const auto& [key, row] : entries_) {
      if (std::get<0>(key) != tenant) continue;
      if (std::find(devices.begin(), devices.end(), std::get<1>(key)) == devices.end()) continue;
      if (!sensors.empty() &&
          std::find(sensors.begin(), sensors.end(), std::get<2>(key)) == sensors.end()) {
        continue;
      }
      out.push_back(row);
    }
    return out;
  }
  void SetUp(bool up) {
    absl::MutexLock l(&mu_);
    up_ = up;
  }

 private:
  absl::Mutex mu_;
  bool up_ ABSL_GUARDED_BY(mu_) = true;
  std::map<std::tuple<int64_t, std::string, std::string>, ReadingRow> entries_ ABSL_GUARDED_BY(mu_);
};

// Alert rules per (tenant, rule_id), with AlertRuleStore's contract: server
// ids and versions, ABORTED on a stale version, NOT_FOUND across tenants,
// keyset pages by rule_id, a generation bumped by every change.
class FakeAlertRuleStore final : public AlertRuleStore {
 public:
  explicit FakeAlertRuleStore(const Clock* clock = SystemClock::Get()) : clock_(clock) {}

  absl::StatusOr<telemetry::v1::Rule> Create(int64_t tenant_id,
                                             const telemetry::v1::Rule& rule) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake rule store down");
    telemetry::v1::Rule stored = rule;
    stored.set_rule_id(alert_rules::NewRuleId());
    stored.set_version(1);
    stored.set_created_at_ns(clock_->NowNs());
    stored.set_updated_at_ns(stored.created_at_ns());
    rules_[{tenant_id, stored.rule_id()}] = stored;
    ++generation_;
    return stored;
  }
  absl::StatusOr<telemetry::v1::Rule> Get(int64_t tenant_id, const std::string& rule_id) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake rule store down");
    auto it = rules_.find({tenant_id, rule_id});
    if (it == rules_.end()) return alert_rules::RuleNotFound(rule_id);
    return it->second;
  }
  absl::StatusOr<telemetry::v1::Rule> Update(int64_t tenant_id,
                                             const telemetry::v1::Rule& rule) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake rule store down");
    auto it = rules_.find({tenant_id, rule.rule_id()});
    if (it == rules_.end()) return alert_rules::RuleNotFound(rule.rule_id());
    const int64_t current = it->second.version();
    if (rule.version() != 0 && rule.version() != current) {
      return alert_rules::VersionMismatch(rule.rule_id(), current, rule.version());
    }
    telemetry::v1::Rule stored = rule;
    stored.set_version(current + 1);
    stored.set_created_at_ns(it->second.created_at_ns());
    stored.set_updated_at_ns(std::max(clock_->NowNs(), it->second.updated_at_ns()));
    it->second = stored;
    ++generation_;
    return stored;
  }
  absl::Status Delete(int64_t tenant_id, const std::string& rule_id) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake rule store down");
    if (rules_.erase({tenant_id, rule_id}) == 0) return alert_rules::RuleNotFound(rule_id);
    ++generation_;
    return absl::OkStatus();
  }
  absl::StatusOr<RulePage> List(int64_t tenant_id, int page_size,
                                const std::string& page_token) override {
    absl::Status st = alert_rules::CheckPageSize(page_size);
    if (!st.ok()) return st;
    std::string after;
    if (!page_token.empty()) {
      auto decoded = alert_rules::DecodePageToken(page_token);
      if (!decoded.ok()) return decoded.status();
      after = *decoded;
    }
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake rule store down");
    RulePage page;
    for (auto it = rules_.upper_bound({tenant_id, after});
         it != rules_.end() && it->first.first == tenant_id; ++it) {
      if (page.rules.size() == static_cast<size_t>(page_size)) {
        page.next_page_token = alert_rules::EncodePageToken(page.rules.back().rule_id());
        break;
      }
      page.rules.push_back(it->second);
    }
    return page;
  }
  absl::StatusOr<int64_t> Generation() override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake rule store down");
    return generation_;
  }
  absl::StatusOr<std::vector<std::pair<int64_t, telemetry::v1::Rule>>> LoadAll() override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake rule store down");
    std::vector<std::pair<int64_t, telemetry::v1::Rule>> out;
    for (const auto& [key, rule] : rules_) out.emplace_back(key.first, rule);
    return out;
  }
  void SetUp(bool up) {
    absl::MutexLock l(&mu_);
    up_ = up;
  }

 private:
  const Clock* clock_;
  absl::Mutex mu_;
  bool up_ ABSL_GUARDED_BY(mu_) = true;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::pair<int64_t, std::string>, telemetry::v1::Rule> rules_ ABSL_GUARDED_BY(mu_);
};

// AlertStateStore in memory, with its contract: (fingerprint, sequence)
// recorded once (a replay counts as duplicates), outbox rows only for new
// rows, alert_current moving only forward in sequence, checkpoints per
// (group, partition), outbox leases; reads per tenant with event_ids from
// the history and the same paging tokens as Postgres. `clock` stamps
// detected_at and outbox times.
class FakeAlertStateStore final : public AlertStateStore {
 public:
  explicit FakeAlertStateStore(const Clock* clock = SystemClock::Get()) : clock_(clock) {}

  absl::StatusOr<CommitResult> Commit(const std::string& group,
                                      const std::vector<AlertRecord>& records,
                                      const std::vector<AlertCheckpoint>& checkpoints) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake alert state store down");
    CommitResult result;
    for (const AlertRecord& r : records) {
      if (!recorded_.insert({r.fingerprint, r.sequence}).second) {
        ++result.duplicates;
        continue;
      }
      ++result.recorded;
      const int64_t event_id = ++last_event_id_;
      history_.push_back({event_id, r, clock_->NowNs()});
      auto cur = current_.find(r.fingerprint);
      if (cur == current_.end() || cur->second.sequence < r.sequence) {
        current_[r.fingerprint] = {r.tenant_id, r.sequence, event_id};
      }
      for (const std::string& target : r.targets) {
        Outbox o;
        o.item.id = ++last_outbox_id_;
        o.item.event_id = event_id;
        o.item.target = target;
        o.item.created_at_ns = clock_->NowNs();
        o.item.event = r.event;
        o.next_attempt_ns = o.item.created_at_ns;
        outbox_[o.item.id] = std::move(o);
      }
    }
    for (const AlertCheckpoint& cp : checkpoints) checkpoints_[{group, cp.partition}] = cp;
    return result;
  }
  absl::StatusOr<std::map<int32_t, AlertCheckpoint>> LoadCheckpoints(
      const std::string& group, const std::vector<int32_t>& partitions) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake alert state store down");
    std::map<int32_t, AlertCheckpoint> out;
    for (int32_t p : partitions) {
      auto it = checkpoints_.find({group, p});
      if (it != checkpoints_.end()) out[p] = it->second;
    }
    return out;
  }

  absl::StatusOr<std::vector<OutboxItem>> ClaimOutbox(int limit, int64_t lease_ns) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake alert state store down");
    std::vector<OutboxItem> out;
    const int64_t now = clock_->NowNs();
    for (auto& [id, o] : outbox_) {
      if (out.size() == static_cast<size_t>(std::max(limit, 0))) break;
      if (o.next_attempt_ns > now) continue;
      o.next_attempt_ns = now + lease_ns;
      out.push_back(o.item);
    }
    return out;
  }
  absl::Status FinishOutbox(const OutboxItem& item, const std::string& outcome, int attempts,
                            const std::string& last_error) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake alert state store down");
    outbox_.erase(item.id);
    deliveries_.insert({{item.event_id, item.target}, {outcome, attempts, last_error}});
    return absl::OkStatus();
  }
  absl::Status RetryOutbox(const OutboxItem& item, int attempts, int64_t delay_ns,
                           const std::string& last_error) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake alert state store down");
    auto it = outbox_.find(item.id);
    if (it != outbox_.end()) {
      it->second.item.attempts = attempts;
      it->second.last_error = last_error;
      it->second.next_attempt_ns = clock_->NowNs() + delay_ns;
    }
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> OutboxBacklog() override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake alert state store down");
    return static_cast<int64_t>(outbox_.size());
  }

  absl::StatusOr<AlertPage> ListAlerts(int64_t tenant_id, const AlertListFilter& filter, int limit,
                                       const std::string& page_token) override {
    absl::Status st = alert_state::CheckLimit(limit);
    if (!st.ok()) return st;
    int64_t before = 0;
    if (!page_token.empty()) {
      auto last = alert_state::DecodePageToken(filter.history, page_token);
      if (!last.ok()) return last.status();
      before = *last;
    }
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake alert state store down");
    // Current mode: the rows alert_current points at.
    std::set<int64_t> current_ids;
    for (const auto& [fp, c] : current_) current_ids.insert(c.event_id);
    AlertPage page;
    for (auto it = history_.rbegin(); it != history_.rend(); ++it) {
      const AlertRecord& r = it->record;
      if (r.tenant_id != tenant_id) continue;
      if (before != 0 && it->event_id >= before) continue;
      if (!filter.history && current_ids.count(it->event_id) == 0) continue;
      if (!filter.rule_id.empty() && r.rule_id != filter.rule_id) continue;
      if (!filter.device_id.empty() && r.device != filter.device_id) continue;
      if (!filter.severities.empty() &&
          std::find(filter.severities.begin(), filter.severities.end(), r.severity) ==
              filter.severities.end()) {
        continue;
      }
      if (filter.firing_only) {
        auto cur = current_.find(r.fingerprint);
        if (cur == current_.end() || StateOf(cur->second.event_id) != 1) continue;  // FIRING
      }
      if (page.alerts.size() == static_cast<size_t>(limit)) {
        page.next_page_token =
            alert_state::EncodePageToken(filter.history, page.alerts.back().event_id());
        break;
      }
      page.alerts.push_back(EventOf(*it));
    }
    return page;
  }
  absl::StatusOr<std::vector<telemetry::v1::AlertEvent>> HistoryAfter(int64_t tenant_id,
                                                                      int64_t after_event_id,
                                                                      int64_t since_ns,
                                                                      int limit) override {
    absl::Status st = alert_state::CheckLimit(limit);
    if (!st.ok()) return st;
    absl::MutexLock l(&mu_);
    ++history_reads_;
    if (!up_) return absl::UnavailableError("fake alert state store down");
    std::vector<telemetry::v1::AlertEvent> out;
    for (const Row& row : history_) {
      if (out.size() == static_cast<size_t>(limit)) break;
      if (row.event_id <= after_event_id || row.record.tenant_id != tenant_id) continue;
      if (since_ns > 0 && row.detected_at_ns < since_ns) continue;
      out.push_back(EventOf(row));
    }
    return out;
  }
  absl::StatusOr<int64_t> LastEventId(int64_t tenant_id) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake alert state store down");
    int64_t last = 0;
    for (const Row& row : history_) {
      if (row.record.tenant_id == tenant_id) last = row.event_id;
    }
    return last;
  }

  absl::StatusOr<std::string> DeviceProject(int64_t tenant_id, const std::string& device) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake alert state store down");
    auto it = projects_.find({tenant_id, device});
    return it == projects_.end() ? std::string() : it->second;
  }

  absl::StatusOr<std::vector<ResendAlert>> ListAlertsToResend(const std::string& after_fingerprint,
                                                              int limit,
                                                              int64_t resolved_within_ns) override {
    absl::MutexLock l(&mu_);
    if (!up_) return absl::UnavailableError("fake alert state store down");
    std::vector<ResendAlert> out;
    const int64_t now = clock_->NowNs();
    for (auto it = current_.upper_bound(after_fingerprint); it != current_.end(); ++it) {
      if (out.size() == static_cast<size_t>(std::max(limit, 0))) break;
      const Row& row = RowOf(it->second.event_id);
      const int state = row.record.to_state;
      // 1 FIRING, 2 RESOLVED (telemetry.v1.AlertState).
      if (!(state == 1 || (state == 2 && row.detected_at_ns > now - resolved_within_ns))) continue;
      ResendAlert a;
      a.tenant_id = row.record.tenant_id;
      a.fingerprint = it->first;
      a.rule_id = row.record.rule_id;
      a.state = state;
      a.event_id = row.event_id;
      a.muted = row.record.muted;
      a.event = row.record.event;
      out.push_back(std::move(a));
    }
    return out;
  }

  // Test controls and views.
  void SetUp(bool up) {
    absl::MutexLock l(&mu_);
    up_ = up;
  }
  void SetDeviceProject(int64_t tenant_id, const std::string& device, const std::string& project) {
    absl::MutexLock l(&mu_);
    projects_[{tenant_id, device}] = project;
  }
  struct Delivery {
    std::string outcome;
    int attempts = 0;
    std::string last_error;
  };
  std::map<std::pair<int64_t, std::string>, Delivery> deliveries() {
    absl::MutexLock l(&mu_);
    return deliveries_;
  }
  size_t history_size() {
    absl::MutexLock l(&mu_);
    return history_.size();
  }
  // HistoryAfter calls so far (a subscriber's polls).
  int64_t history_reads() {
    absl::MutexLock l(&mu_);
    return history_reads_;
  }

 private:
  struct Row {
    int64_t event_id = 0;
    AlertRecord record;
    int64_t detected_at_ns = 0;
  };
  struct Current {
    int64_t tenant_id = 0;
    int64_t sequence = 0;
    int64_t event_id = 0;
  };
  struct Outbox {
    OutboxItem item;
    int64_t next_attempt_ns = 0;
    std::string last_error;
  };

  // history_ is in event_id order, ids from 1 without gaps.
  const Row& RowOf(int64_t event_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return history_[static_cast<size_t>(event_id - 1)];
  }
  int StateOf(int64_t event_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return RowOf(event_id).record.to_state;
  }
  static telemetry::v1::AlertEvent EventOf(const Row& row) {
    telemetry::v1::AlertEvent e;
    e.ParseFromString(row.record.event);
    e.set_event_id(row.event_id);
    if (e.detected_at_ns() == 0) e.set_detected_at_ns(row.detected_at_ns);
    return e;
  }

  const Clock* clock_;
  absl::Mutex mu_;
  bool up_ ABSL_GUARDED_BY(mu_) = true;
  int64_t last_event_id_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_outbox_id_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t history_reads_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Row> history_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<std::string, int64_t>> recorded_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Current> current_ ABSL_GUARDED_BY(mu_);  // by fingerprint
  std::map<int64_t, Outbox> outbox_ ABSL_GUARDED_BY(mu_);        // by id
  std::map<std::pair<int64_t, std::string>, Delivery> deliveries_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int32_t>, AlertCheckpoint> checkpoints_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<int64_t, std::string>, std::string> projects_ ABSL_GUARDED_BY(mu_);
};

// In memory, the semantics of common/pg/alert_silences.cc.
class FakeAlertSilenceStore final : public AlertSilenceStore {
 public:
  absl::StatusOr<telemetry::v1::Silence> Create(int64_t tenant_id,
                                                const telemetry::v1::Silence& silence,
                                                int64_t now_ns) override {
    absl::MutexLock lock(&mu_);
    telemetry::v1::Silence stored = silence;
    stored.set_silence_id(alert_rules::NewRuleId());
    stored.set_created_at_ns(now_ns);
    silences_[{tenant_id, stored.silence_id()}] = stored;
    return stored;
  }
  absl::StatusOr<std::vector<telemetry::v1::Silence>> List(int64_t tenant_id, bool include_expired,
                                                           int64_t now_ns) override {
    absl::MutexLock lock(&mu_);
    std::vector<telemetry::v1::Silence> out;
    for (const auto& [key, s] : silences_) {
      if (key.first == tenant_id && (include_expired || s.ends_at_ns() > now_ns)) out.push_back(s);
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return std::make_tuple(a.starts_at_ns(), a.silence_id()) <
             std::make_tuple(b.starts_at_ns(), b.silence_id());
    });
    return out;
  }
  absl::Status End(int64_t tenant_id, const std::string& silence_id, int64_t now_ns) override {
    absl::MutexLock lock(&mu_);
    auto it = silences_.find({tenant_id, silence_id});
    if (it == silences_.end()) return absl::NotFoundError("silence " + silence_id + " not found");
    if (it->second.ends_at_ns() > now_ns) {
      it->second.set_ends_at_ns(std::max(now_ns, it->second.starts_at_ns()));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::pair<int64_t, telemetry::v1::Silence>>> Active(
      int64_t now_ns) override {
    absl::MutexLock lock(&mu_);
    std::vector<std::pair<int64_t, telemetry::v1::Silence>> out;
    for (const auto& [key, s] : silences_) {
      if (s.ends_at_ns() > now_ns) out.emplace_back(key.first, s);
    }
    return out;
  }

 private:
  absl::Mutex mu_;
  std::map<std::pair<int64_t, std::string>, telemetry::v1::Silence> silences_ ABSL_GUARDED_BY(mu_);
};

}  // namespace telemetry::testing
