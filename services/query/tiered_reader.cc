#include "services/query/tiered_reader.h"

#include <algorithm>
#include <climits>
#include <iterator>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace telemetry::query {
namespace {

int64_t FloorHour(int64_t ts) {
  int64_t h = ts / kColdHourNs * kColdHourNs;
  if (h > ts) h -= kColdHourNs;
  return h;
}

// A part of a Range's time span answered by one tier.
struct Piece {
  int64_t from = 0, to = 0;  // [from, to)
  bool cold = false;
};

// [from, to) cut at the dropped hours (ascending starts), in time order.
std::vector<Piece> Pieces(int64_t from, int64_t to, const std::vector<int64_t>& hours) {
  std::vector<Piece> out;
  int64_t at = from;
  for (int64_t h : hours) {
    const int64_t a = std::max(h, from);
    const int64_t b = h > INT64_MAX - kColdHourNs ? to : std::min(h + kColdHourNs, to);
    if (a >= b) continue;
    if (at < a) out.push_back({at, a, false});
    if (!out.empty() && out.back().cold && out.back().to == a) {
      out.back().to = b;
    } else {
      out.push_back({a, b, true});
    }
    at = b;
  }
  if (at < to) out.push_back({at, to, false});
  return out;
}

// The readings of one series in a device's hour (sorted by sensor, unit, ts).
std::pair<std::vector<ReadingRow>::const_iterator, std::vector<ReadingRow>::const_iterator>
SeriesRows(const std::vector<ReadingRow>& rows, const SeriesRef& s) {
  auto lo =
      std::lower_bound(rows.begin(), rows.end(), s, [](const ReadingRow& r, const SeriesRef& k) {
        return std::tie(r.sensor, r.unit) < std::tie(k.sensor, k.unit);
      });
  auto hi = std::upper_bound(lo, rows.end(), s, [](const SeriesRef& k, const ReadingRow& r) {
    return std::tie(k.sensor, k.unit) < std::tie(r.sensor, r.unit);
  });
  return {lo, hi};
}

SeriesRef RefOf(const ReadingRow& r) { return {r.device, r.sensor, r.unit}; }

}  // namespace

absl::StatusOr<std::vector<ReadingRow>> TieredReader::Latest(
    int64_t tenant_id, const std::vector<std::string>& devices,
    const std::vector<std::string>& sensors) {
  auto hot = hot_->Latest(tenant_id, devices, sensors);
  tiers_ |= kHotTier;
  if (!hot.ok() || cold_ == nullptr) return hot;
  auto dropped = cold_->DroppedHours(tenant_id, INT64_MIN, INT64_MAX);
  if (!dropped.ok()) return dropped.status();
  if (dropped->empty()) return hot;
  // Per series the newest reading: the database's, unless a dropped hour
  // after it holds a newer one (a series silent since, or a day dropped
  // after one that was kept); dropped hours newest first, per device, while
  // one could.
  auto series = hot_->Series(tenant_id, devices, sensors);
  if (!series.ok()) return series.status();
  std::map<SeriesRef, ReadingRow> newest;
  for (ReadingRow& r : *hot) newest[RefOf(r)] = std::move(r);
  std::map<std::string, std::vector<SeriesRef>> by_device;
  for (const SeriesRef& s : *series) by_device[s.device].push_back(s);
  for (const auto& [device, device_series] : by_device) {
    for (auto it = dropped->rbegin(); it != dropped->rend(); ++it) {
      const int64_t h = *it;
      std::vector<const SeriesRef*> need;
      for (const SeriesRef& s : device_series) {
        auto n = newest.find(s);
        if (n == newest.end() || n->second.ts_ns < h) need.push_back(&s);
      }
      if (need.empty()) break;
      tiers_ |= kColdTier;
      auto rows = cold_->DeviceHour(tenant_id, h, device);
      if (!rows.ok()) return rows.status();
      for (const SeriesRef* s : need) {
        auto [lo, hi] = SeriesRows(**rows, *s);
        if (lo != hi) newest[*s] = *std::prev(hi);
      }
    }
  }
  std::vector<ReadingRow> out;
  out.reserve(newest.size());
  for (auto& [key, r] : newest) out.push_back(std::move(r));
  return out;
}

absl::StatusOr<std::vector<AggregateRow>> TieredReader::Aggregate(const AggregateQuery& query) {
  tiers_ |= kHotTier;
  return hot_->Aggregate(query);
}

absl::StatusOr<std::vector<SeriesRef>> TieredReader::Series(
    int64_t tenant_id, const std::vector<std::string>& devices,
    const std::vector<std::string>& sensors) {
  tiers_ |= kHotTier;
  return hot_->Series(tenant_id, devices, sensors);
}

absl::Status TieredReader::Range(const RangeQuery& q,
                                 const std::function<bool(std::vector<ReadingRow>&&)>& page) {
  std::vector<int64_t> dropped;
  if (cold_ != nullptr && q.start_ns < q.end_ns) {
    auto d = cold_->DroppedHours(q.tenant_id, q.start_ns, q.end_ns);
    if (!d.ok()) return d.status();
    dropped = std::move(*d);
  }
  if (dropped.empty()) {
    tiers_ |= kHotTier;
    return hot_->Range(q, page);
  }
  const std::vector<Piece> pieces = Pieces(q.start_ns, q.end_ns, dropped);
  tiers_ |= kColdTier;
  for (const Piece& p : pieces) {
    if (!p.cold) tiers_ |= kHotTier;
  }
  // Series by series in (sensor, unit) order, each through its pieces in time
  // order: the order of ReadingReader::Range, whichever tier holds a reading.
  auto series = hot_->Series(q.tenant_id, {q.device}, q.sensors);
  if (!series.ok()) return series.status();
  const int64_t page_size = q.page_size > 0 ? q.page_size : 1000;
  int64_t remaining = q.limit > 0 ? q.limit : INT64_MAX;
  std::vector<ReadingRow> buf;
  bool stopped = false;
  // Adds a reading to the page; false when the read is over (the caller
  // stopped it, or the limit is reached).
  auto emit = [&](ReadingRow&& r) {
    buf.push_back(std::move(r));
    --remaining;
    if (static_cast<int64_t>(buf.size()) >= page_size || remaining == 0) {
      if (!page(std::move(buf))) stopped = true;
      buf.clear();
    }
    return !stopped && remaining > 0;
  };
  const SeriesRef cursor{q.device, q.after_sensor, q.after_unit};
  for (const SeriesRef& s : *series) {
    // Only readings after this time (the cursor's own series).
    int64_t after = INT64_MIN;
    if (!q.after_sensor.empty()) {
      if (s < cursor) continue;
      if (s == cursor) after = q.after_ts_ns;
    }
    for (const Piece& p : pieces) {
      if (after != INT64_MIN && p.to - 1 <= after) continue;
      bool more = true;
      if (p.cold) {
        for (int64_t h = FloorHour(p.from); more && h < p.to; h += kColdHourNs) {
          auto rows = cold_->DeviceHour(q.tenant_id, h, q.device);
          if (!rows.ok()) return rows.status();
          auto [lo, hi] = SeriesRows(**rows, s);
          for (auto it = lo; more && it != hi; ++it) {
            if (it->ts_ns < p.from || it->ts_ns >= p.to || it->ts_ns <= after) continue;
            more = emit(ReadingRow(*it));
          }
        }
      } else {
        // The database's readings of this series in the piece: a Range of its
        // sensor resumed just before the piece (the cursor (sensor, unit,
        // from - 1) skips the sensor's series ordered before this one), cut
        // at the next series.
        RangeQuery sub;
        sub.tenant_id = q.tenant_id;
        sub.device = q.device;
        sub.sensors = {s.sensor};
        sub.start_ns = p.from;
        sub.end_ns = p.to;
        sub.limit = remaining;
        sub.page_size = static_cast<int32_t>(page_size);
        sub.after_sensor = s.sensor;
        sub.after_unit = s.unit;
        sub.after_ts_ns = std::max(after, p.from == INT64_MIN ? INT64_MIN : p.from - 1);
        RETURN_IF_ERROR(hot_->Range(sub, [&](std::vector<ReadingRow>&& rows) {
          for (auto& r : rows) {
            if (r.sensor != s.sensor || r.unit != s.unit) return false;
            if (!(more = emit(std::move(r)))) return false;
          }
          return true;
        }));
      }
      if (!more) return absl::OkStatus();
    }
  }
  if (!buf.empty()) page(std::move(buf));
  return absl::OkStatus();
}

absl::StatusOr<PlaybackRows> TieredReader::Playback(int64_t tenant_id, const std::string& device,
                                                    const std::vector<std::string>& sensors,
                                                    int64_t from_ns, int64_t to_ns) {
  auto hot = hot_->Playback(tenant_id, device, sensors, from_ns, to_ns);
  tiers_ |= kHotTier;
  if (!hot.ok() || cold_ == nullptr) return hot;
  // The neighbours may lie in any dropped hour, however far from the window.
  auto dropped = cold_->DroppedHours(tenant_id, INT64_MIN, INT64_MAX);
  if (!dropped.ok()) return dropped.status();
  if (dropped->empty()) return hot;
  auto series = hot_->Series(tenant_id, {device}, sensors);
  if (!series.ok()) return series.status();

  PlaybackRows out;
  // The database's readings of hours it still holds: a day marked dropped
  // keeps its partitions until its purge, and its readings come from the
  // archive below.
  for (ReadingRow& r : hot->inside) {
    if (!std::binary_search(dropped->begin(), dropped->end(), FloorHour(r.ts_ns))) {
      out.inside.push_back(std::move(r));
    }
  }
  std::map<SeriesRef, ReadingRow> before, after;
  for (auto& r : hot->before) before[RefOf(r)] = std::move(r);
  for (auto& r : hot->after) after[RefOf(r)] = std::move(r);
  auto read_hour = [&](int64_t h) {
    tiers_ |= kColdTier;
    return cold_->DeviceHour(tenant_id, h, device);
  };

  // Inside: the dropped hours that overlap [from, to].
  for (int64_t h : *dropped) {
    if (h > to_ns || h + (kColdHourNs - 1) < from_ns) continue;
    auto rows = read_hour(h);
    if (!rows.ok()) return rows.status();
    for (const SeriesRef& s : *series) {
      auto [lo, hi] = SeriesRows(**rows, s);
      for (auto it = lo; it != hi; ++it) {
        if (it->ts_ns >= from_ns && it->ts_ns <= to_ns) out.inside.push_back(*it);
      }
    }
  }
  // Before: per series the newest reading before the window, searched in the
  // dropped hours newest first while one could hold a reading newer than the
  // database's (hours only get older, so once none can, none will).
  auto first_after = std::lower_bound(dropped->begin(), dropped->end(), from_ns);
  for (auto it = std::make_reverse_iterator(first_after); it != dropped->rend(); ++it) {
    const int64_t h = *it;
    std::vector<const SeriesRef*> need;
    for (const SeriesRef& s : *series) {
      auto b = before.find(s);
      if (b == before.end() || b->second.ts_ns < h + (kColdHourNs - 1)) need.push_back(&s);
    }
    if (need.empty()) break;
    auto rows = read_hour(h);
    if (!rows.ok()) return rows.status();
    for (const SeriesRef* s : need) {
      auto [lo, hi] = SeriesRows(**rows, *s);
      for (auto r = hi; r != lo;) {
        --r;
        if (r->ts_ns >= from_ns) continue;
        auto b = before.find(*s);
        if (b == before.end() || r->ts_ns > b->second.ts_ns) before[*s] = *r;
        break;
      }
    }
  }
  // After: per series the oldest reading after the window, oldest hours first.
  for (auto it = std::lower_bound(dropped->begin(), dropped->end(), FloorHour(to_ns));
       it != dropped->end(); ++it) {
    const int64_t h = *it;
    if (h + (kColdHourNs - 1) <= to_ns) continue;
    std::vector<const SeriesRef*> need;
    for (const SeriesRef& s : *series) {
      auto a = after.find(s);
      if (a == after.end() || a->second.ts_ns > h) need.push_back(&s);
    }
    if (need.empty()) break;
    auto rows = read_hour(h);
    if (!rows.ok()) return rows.status();
    for (const SeriesRef* s : need) {
      auto [lo, hi] = SeriesRows(**rows, *s);
      for (auto r = lo; r != hi; ++r) {
        if (r->ts_ns <= to_ns) continue;
        auto a = after.find(*s);
        if (a == after.end() || r->ts_ns < a->second.ts_ns) after[*s] = *r;
        break;
      }
    }
  }
  std::sort(out.inside.begin(), out.inside.end(), [](const ReadingRow& a, const ReadingRow& b) {
    return std::tie(a.sensor, a.unit, a.ts_ns) < std::tie(b.sensor, b.unit, b.ts_ns);
  });
  for (auto& [key, r] : before) out.before.push_back(std::move(r));
  for (auto& [key, r] : after) out.after.push_back(std::move(r));
  return out;
}

std::string TieredSourceName(const std::string& source, int tiers) {
  if ((tiers & kColdTier) == 0) return source;
  if ((tiers & kHotTier) == 0) return "archive";
  return absl::StrCat(source, "+archive");
}

}  // namespace telemetry::query
