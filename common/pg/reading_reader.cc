// ReadingReader on Postgres: Latest, Range and Playback from the raw
// partitions merged with the packed hours of raw_readings_seg (a reading is
// a row or in one segment, never both); Aggregate from the rollups (agg_1m
// rows merged with the packed segments of agg_1m_seg, agg_1h, agg_1h_sensor).
#include "common/reading_reader.h"

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/rollup.h"
#include "common/segment/raw_segment.h"
#include "common/status_macros.h"

namespace telemetry {
namespace {

// The statement shapes of an Aggregate read over hours (minutes: below).
enum class AggregateShape {
  kPerSensor = 0,    // hours over a tenant's or project's devices: agg_1h_sensor
  kHourRows = 1,     // per device, 1-hour buckets: agg_1h rows as stored
  kHourGrouped = 2,  // per device or merged, wider buckets from agg_1h
};

// The value columns of a rollup in `need` (bits: 1 sum, 2 min, 4 max,
// 8 last_ts + last), after the count.
std::string NeededValues(int need, const char* cnt, const char* sum, const char* min,
                         const char* max, const char* last_ts, const char* last) {
  return absl::StrCat(cnt, (need & 1) ? absl::StrCat(", ", sum) : "",
                      (need & 2) ? absl::StrCat(", ", min) : "",
                      (need & 4) ? absl::StrCat(", ", max) : "",
                      (need & 8) ? absl::StrCat(", ", last_ts, ", ", last) : "");
}

// Parameters: $1 tenant, $2 device ('' = all), $3 project ('' = all),
// $4 sensors (empty = all), $5 bucket width, $6 group by device, $7/$8 the
// bucket range. Columns: device ('' when merged), sensor, bucket, count, then
// the values in `need`.
const std::string& AggregateSql(AggregateShape shape, int need) {
  static const auto* all = [] {
    auto* t = new std::array<std::array<std::string, 16>, 3>();
    for (int n = 0; n < 16; ++n) {
      const std::string grouped_values =
          NeededValues(n, "sum(a.cnt)", "sum(a.sum)", "min(a.min)", "max(a.max)", "max(a.last_ts)",
                       "(array_agg(a.last_value ORDER BY a.last_ts DESC))[1]");
      // ($2 and $6 keep the parameter list the same as the per-series
      // statements.)
      (*t)[static_cast<int>(AggregateShape::kPerSensor)][n] = absl::StrCat(
          "SELECT '', a.sensor, a.bucket - a.bucket % $5, ", grouped_values,
          " FROM agg_1h_sensor a"
          " WHERE a.tenant_id = $1 AND a.bucket >= $7 AND a.bucket < $8 AND $2 = '' AND NOT $6"
          "   AND ($3 = '' OR a.project_id = (SELECT id FROM projects"
          "                                   WHERE tenant_id = $1 AND name = $3))"
          "   AND (cardinality($4::text[]) = 0 OR a.sensor = ANY($4::text[]))"
          " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
      // Per series. Buckets as wide as the rollup's, per device: the rollup
      // rows as they are (index order, no grouping; two units of one sensor
      // are merged by the reader). Otherwise grouped in SQL.
      auto series_sql = [&](const char* table, bool grouped) {
        return absl::StrCat(
            "SELECT CASE WHEN $6 THEN d.name ELSE '' END, s.sensor, ",
            grouped ? absl::StrCat("a.bucket - a.bucket % $5, ", grouped_values)
                    : absl::StrCat("a.bucket + 0 * $5::bigint, ",
                                   NeededValues(n, "a.cnt", "a.sum", "a.min", "a.max", "a.last_ts",
                                                "a.last_value")),
            " FROM devices d JOIN series s ON s.device_id = d.id"
            " JOIN projects p ON p.id = s.project_id JOIN ",
            table,
            " a ON a.series_id = s.id AND a.bucket >= $7 AND a.bucket < $8"
            " WHERE d.tenant_id = $1 AND s.tenant_id = $1 AND ($2 = '' OR d.name = $2)"
            "   AND ($3 = '' OR p.name = $3)"
            "   AND (cardinality($4::text[]) = 0 OR s.sensor = ANY($4::text[]))",
            grouped ? " GROUP BY 1, 2, 3" : "", " ORDER BY 1, 2, 3");
      };
      (*t)[static_cast<int>(AggregateShape::kHourRows)][n] = series_sql("agg_1h", false);
      (*t)[static_cast<int>(AggregateShape::kHourGrouped)][n] = series_sql("agg_1h", true);
    }
    return t;
  }();
  return (*all)[static_cast<int>(shape)][need];
}

// Series per statement of a minute Aggregate: bounds the segments one
// result holds (a day of a series is ~100 KB of segment text).
constexpr int kMinuteSeriesPerRead = 256;

// Minute buckets come from agg_1m rows (open hours, late data) and agg_1m_seg
// segments (closed hours, packed by the compactor); the reader decodes,
// merges and buckets them. Parameters: $1 tenant, $2 device ('' = all),
// $3 project ('' = all), $4 sensors (empty = all), $5 group by device,
// $6/$7 the minute range, $8/$9 the chunk: series with id > $8, at most $9.
// Columns: kind (0 row, 1 segment, 2 the chunk's last series id and size),
// series id, device ('' when merged), sensor, minute or hour, count, the
// values in `need`, segment text.
const std::string& MinuteAggregateSql(int need) {
  static const auto* all = [] {
    auto* t = new std::array<std::string, 16>();
    for (int n = 0; n < 16; ++n) {
      const std::string nulls = absl::StrJoin(
          std::vector<std::string>(1 + __builtin_popcount(n) + ((n & 8) ? 1 : 0), "NULL"), ", ");
      (*t)[n] = absl::StrCat(
          "WITH s AS MATERIALIZED ("
          "  SELECT s.id, CASE WHEN $5 THEN d.name ELSE '' END AS device, s.sensor"
          "  FROM devices d JOIN series s ON s.device_id = d.id"
          "  JOIN projects p ON p.id = s.project_id"
          "  WHERE d.tenant_id = $1 AND s.tenant_id = $1 AND ($2 = '' OR d.name = $2)"
          "    AND ($3 = '' OR p.name = $3)"
          "    AND (cardinality($4::text[]) = 0 OR s.sensor = ANY($4::text[])) AND s.id > $8"
          "  ORDER BY s.id LIMIT $9)"
          " SELECT 0, s.id, s.device, s.sensor, a.bucket, ",
          NeededValues(n, "a.cnt", "a.sum", "a.min", "a.max", "a.last_ts", "a.last_value"),
          ", NULL"
          " FROM s JOIN agg_1m a ON a.series_id = s.id AND a.bucket >= $6 AND a.bucket < $7"
          " UNION ALL"
          " SELECT 1, s.id, s.device, s.sensor, g.hour, ",
          nulls,
          ", g.data FROM s JOIN agg_1m_seg g ON g.series_id = s.id"
          "   AND g.hour > $6 - 3600000000000 AND g.hour < $7"
          " UNION ALL"
          " SELECT 2, max(s.id), '', '', count(*), ",
          nulls, ", NULL FROM s");
    }
    return t;
  }();
  return (*all)[need];
}

ReadingRow RowFrom(const pqxx::row& r, int first_value_col) {
  ReadingRow out;
  int c = first_value_col;
  out.ts_ns = PgInt64(r[c]);
  if (!r[c + 1].is_null()) {
    out.kind = ValueKind::kDouble;
    out.d = PgDouble(r[c + 1]);
  } else if (!r[c + 2].is_null()) {
    out.kind = ValueKind::kString;
    out.s = r[c + 2].as<std::string>();
  } else {
    out.kind = ValueKind::kBool;
    out.b = r[c + 3].as<bool>();
  }
  out.status = r[c + 4].is_null() ? 0 : static_cast<int32_t>(PgInt64(r[c + 4]));
  return out;
}

ReadingRow FromRaw(const RawRow& r) {
  ReadingRow out;
  out.ts_ns = r.ts_ns;
  out.kind = r.kind;
  out.d = r.d;
  out.s = r.s;
  out.b = r.b;
  out.status = r.status;
  return out;
}

// The readings of a raw segment (a bytea field of raw_readings_seg).
absl::Status DecodeRawSegmentField(const pqxx::field& data, int64_t hour_ns,
                                   std::vector<RawRow>* out) {
  absl::Status st = segment::DecodeRawSegment(0, hour_ns, PgBytea(data), out);
  if (!st.ok()) return absl::DataLossError(absl::StrCat("hour ", hour_ns, ": ", st.message()));
  return absl::OkStatus();
}

// The segments of one series a read over [from, ...) needs to fill `want`
// readings: those holding readings in the range (first_ts / last_ts,
// migration 0010), in hour order, while the readings of the segments before
// (not counting the first, which may begin before `from`) are fewer than
// `want`. {S} is the series id expression, {FROM} and {END} the range,
// {WANT} the limit.
constexpr char kSegmentsForRangeTemplate[] = R"sql(
  SELECT hour, data FROM (
    SELECT hour, data, sum(n) OVER w - n - first_value(n) OVER w AS before_n,
           row_number() OVER w AS k
    FROM raw_readings_seg
    WHERE series_id = {S} AND hour > {FROM} - 3600000000000 AND hour < {END}
      AND last_ts >= {FROM} AND first_ts < {END}
    WINDOW w AS (ORDER BY hour)) seg
  WHERE k = 1 OR before_n < {WANT})sql";

std::string SegmentsForRange(const std::string& series, const std::string& from,
                             const std::string& end, const std::string& want) {
  return absl::StrReplaceAll(kSegmentsForRangeTemplate,
                             {{"{S}", series}, {"{FROM}", from}, {"{END}", end}, {"{WANT}", want}});
}

// One statement's rows of a minute Aggregate (MinuteAggregateSql): rows and
// decoded segment minutes inside [from, q.end_ns) into `decoded`, each with
// its (device, sensor) group's index as series_id (new groups are added to
// `groups` / `group_of`); the chunk row sets `more` and `after_id`.
absl::Status ParseMinuteChunk(const pqxx::result& r, const AggregateQuery& q, int64_t from,
                              int need, std::vector<std::pair<std::string, std::string>>* groups,
                              std::map<std::pair<std::string, std::string>, int32_t>* group_of,
                              std::vector<MinuteRollup>* decoded, bool* more, int64_t* after_id) {
  *more = false;
  // The group of each series: looked up once per series, not per row.
  std::map<int64_t, int32_t> series_group;
  auto group = [&](const pqxx::row& row) {
    const int64_t id = PgInt64(row[1]);
    auto it = series_group.find(id);
    if (it != series_group.end()) return it->second;
    std::pair<std::string, std::string> key(row[2].c_str(), row[3].c_str());
    auto [g, added] = group_of->emplace(key, static_cast<int32_t>(groups->size()));
    if (added) groups->push_back(std::move(key));
    series_group.emplace(id, g->second);
    return g->second;
  };
  for (const auto& row : r) {
    const int64_t kind = PgInt64(row[0]);
    if (kind == 2) {
      *more = PgInt64(row[4]) == kMinuteSeriesPerRead;
      if (*more) *after_id = PgInt64(row[1]);
      continue;
    }
    const int32_t g = group(row);
    if (kind == 1) {
      const size_t first = decoded->size();
      const pqxx::field data = row[row.size() - 1];
      RETURN_IF_ERROR(DecodeMinuteSegment(g, PgInt64(row[4]),
                                          absl::string_view(data.c_str(), data.size()), decoded));
      // The segment's hour may begin before the range or end after it.
      decoded->erase(
          std::remove_if(
              decoded->begin() + static_cast<std::ptrdiff_t>(first), decoded->end(),
              [&](const MinuteRollup& m) { return m.bucket_ns < from || m.bucket_ns >= q.end_ns; }),
          decoded->end());
      continue;
    }
    MinuteRollup m;
    m.series_id = g;
    m.bucket_ns = PgInt64(row[4]);
    m.cnt = PgInt64(row[5]);
    pqxx::row::size_type col = 6;
    if (need & 1) m.sum = PgDouble(row[col++]);
    if (need & 2) m.min = PgDouble(row[col++]);
    if (need & 4) m.max = PgDouble(row[col++]);
    if (need & 8) {
      m.last_ts = PgInt64(row[col++]);
      m.last_value = PgDouble(row[col++]);
    }
    decoded->push_back(m);
  }
  return absl::OkStatus();
}

class PgReadingReader final : public ReadingReader {
 public:
  explicit PgReadingReader(PgPool* pool) : pool_(pool) {}

  absl::StatusOr<std::vector<ReadingRow>> Latest(int64_t tenant_id,
                                                 const std::vector<std::string>& devices,
                                                 const std::vector<std::string>& sensors) override {
    // Per series the newest segment and the newest row after its last
    // reading (late rows of a packed hour stay rows until repacked, so either
    // may hold the newest): the row if there is one (the segment is then not
    // decoded), else the segment's last reading. The row search is bounded by
    // the segment: without the bound, a series whose rows were all packed
    // would probe every day partition of raw_readings, newest to oldest, for a
    // row that is not there.
    static const std::string kSql =
        "SELECT d.name, s.sensor, s.unit, r.part, r.ts, r.value_double, r.value_text,"
        " r.value_bool, r.status_code, r.data"
        " FROM devices d JOIN series s ON s.device_id = d.id LEFT JOIN LATERAL ("
        "  SELECT hour, last_ts, data FROM raw_readings_seg"
        "  WHERE series_id = s.id ORDER BY hour DESC LIMIT 1) g ON true"
        " CROSS JOIN LATERAL ("
        "  (SELECT 0 AS part, ts, value_double, value_text, value_bool, status_code,"
        "          NULL::bytea AS data"
        "   FROM raw_readings r WHERE r.series_id = s.id"
        "     AND r.ts > coalesce(g.last_ts, '-9223372036854775808'::bigint)"
        "   ORDER BY r.ts DESC LIMIT 1)"
        "  UNION ALL"
        "  SELECT 1, g.hour, NULL, NULL, NULL, NULL, g.data WHERE g.hour IS NOT NULL) r"
        " WHERE d.tenant_id = $1 AND d.name = ANY($2::text[])"
        "   AND (cardinality($3::text[]) = 0 OR s.sensor = ANY($3::text[]))"
        " ORDER BY d.name, s.sensor, s.unit, r.part";
    std::vector<ReadingRow> out;
    RETURN_IF_ERROR(Read(
        "latest", kSql,
        [&](const pqxx::result& r) -> absl::Status {
          out.reserve(r.size());
          std::vector<RawRow> decoded;
          for (const auto& row : r) {
            const bool same_series = !out.empty() && out.back().device == row[0].c_str() &&
                                     out.back().sensor == row[1].c_str() &&
                                     out.back().unit == row[2].c_str();
            ReadingRow rr;
            if (PgInt64(row[3]) == 0) {
              rr = RowFrom(row, 4);
            } else {
              // The series' row (listed first) is newer than the segment's last reading
              // (the statement looks for rows after it): no need to decode the segment.
              if (same_series) continue;
              decoded.clear();
              RETURN_IF_ERROR(DecodeRawSegmentField(row[9], PgInt64(row[4]), &decoded));
              if (decoded.empty()) continue;
              rr = FromRaw(decoded.back());
            }
            rr.device = row[0].as<std::string>();
            rr.sensor = row[1].as<std::string>();
            rr.unit = row[2].as<std::string>();
            out.push_back(std::move(rr));
          }
          return absl::OkStatus();
        },
        tenant_id, PgTextArray(devices), PgTextArray(sensors)));
    return out;
  }

  absl::StatusOr<std::vector<AggregateRow>> Aggregate(const AggregateQuery& q) override {
    const int64_t hour = 3'600'000'000'000;
    const int64_t minute = 60'000'000'000;
    if (q.bucket_ns <= 0 || q.bucket_ns % minute != 0) {
      return absl::InvalidArgumentError("bucket must be a whole number of minutes");
    }
    const bool hours = q.bucket_ns % hour == 0;
    const int64_t from = q.start_ns - ((q.start_ns % q.bucket_ns) + q.bucket_ns) % q.bucket_ns;
    // Only the values the caller needs are selected (count always): per
    // 1,440-row read, each further column costs Postgres about as much as
    // the scan (formatting, sending) and the query service its parsing.
    const int need =
        (q.need_sum ? 1 : 0) | (q.need_min ? 2 : 0) | (q.need_max ? 4 : 0) | (q.need_last ? 8 : 0);
    if (!hours) return MinuteAggregate(q, from, need);
    const bool per_sensor = q.device.empty() && !q.group_by_device;
    const bool native = q.group_by_device && q.bucket_ns == hour;
    const AggregateShape shape = per_sensor ? AggregateShape::kPerSensor
                                 : native   ? AggregateShape::kHourRows
                                            : AggregateShape::kHourGrouped;
    const std::string name = absl::StrCat("agg", static_cast<int>(shape), "_", need);
    const std::string& sql = AggregateSql(shape, need);
    auto num = [](const pqxx::field& f) { return f.is_null() ? 0.0 : PgDouble(f); };
    std::vector<AggregateRow> out;
    RETURN_IF_ERROR(Read(
        name.c_str(), sql,
        [&](const pqxx::result& r) {
          out.reserve(r.size());
          int64_t last_ts = 0;
          for (const auto& row : r) {
            // device, sensor, bucket, count, then the needed values in the
            // order sum, min, max, (last_ts, last).
            pqxx::row::size_type col = 4;
            AggregateRow v;
            v.bucket_ns = PgInt64(row[2]);
            v.count = PgInt64(row[3]);
            if (q.need_sum) v.sum = num(row[col++]);
            if (q.need_min) v.min = num(row[col++]);
            if (q.need_max) v.max = num(row[col++]);
            int64_t row_last_ts = 0;
            if (q.need_last) {
              row_last_ts = row[col].is_null() ? 0 : PgInt64(row[col]);
              v.last = num(row[col + 1]);
            }
            if (!out.empty() && out.back().bucket_ns == v.bucket_ns &&
                out.back().sensor == row[1].c_str() && out.back().device == row[0].c_str()) {
              AggregateRow& a = out.back();
              a.count += v.count;
              a.sum += v.sum;
              a.min = std::min(a.min, v.min);
              a.max = std::max(a.max, v.max);
              if (row_last_ts > last_ts) {
                last_ts = row_last_ts;
                a.last = v.last;
              }
              continue;
            }
            v.device = row[0].as<std::string>();
            v.sensor = row[1].as<std::string>();
            last_ts = row_last_ts;
            out.push_back(std::move(v));
          }
          return absl::OkStatus();
        },
        q.tenant_id, q.device, q.project, PgTextArray(q.sensors), q.bucket_ns, q.group_by_device,
        from, q.end_ns));
    return out;
  }

  // Buckets that are whole minutes (not hours): agg_1m rows and agg_1m_seg
  // segments of up to kMinuteSeriesPerRead series per statement, decoded
  // and folded into (device, sensor, bucket) cells here. Cells are merged
  // whenever they doubled, so memory holds about twice the answer plus one
  // chunk.
  absl::StatusOr<std::vector<AggregateRow>> MinuteAggregate(const AggregateQuery& q, int64_t from,
                                                            int need) {
    const std::string name = absl::StrCat("aggm_", need);
    const std::string& sql = MinuteAggregateSql(need);
    // A cell: one bucket of one (device, sensor) group; `series_id` holds
    // the group's index.
    std::vector<MinuteRollup> cells;
    std::vector<std::pair<std::string, std::string>> groups;
    std::map<std::pair<std::string, std::string>, int32_t> group_of;
    auto cell_less = [](const MinuteRollup& a, const MinuteRollup& b) {
      return a.series_id != b.series_id ? a.series_id < b.series_id : a.bucket_ns < b.bucket_ns;
    };
    auto fold = [&] {
      std::sort(cells.begin(), cells.end(), cell_less);
      size_t w = 0;
      for (size_t i = 0; i < cells.size(); ++i) {
        if (w > 0 && cells[w - 1].series_id == cells[i].series_id &&
            cells[w - 1].bucket_ns == cells[i].bucket_ns) {
          MergeMinuteRollup(&cells[w - 1], cells[i]);
        } else {
          cells[w++] = cells[i];
        }
      }
      cells.resize(w);
    };
    int64_t after_id = 0;
    size_t folded = 0;
    for (bool more = true; more;) {
      std::vector<MinuteRollup> decoded;
      RETURN_IF_ERROR(Read(
          name.c_str(), sql,
          [&](const pqxx::result& r) {
            return ParseMinuteChunk(r, q, from, need, &groups, &group_of, &decoded, &more,
                                    &after_id);
          },
          q.tenant_id, q.device, q.project, PgTextArray(q.sensors), q.group_by_device, from,
          q.end_ns, after_id, kMinuteSeriesPerRead));
      for (MinuteRollup& m : decoded) {
        m.bucket_ns -= m.bucket_ns % q.bucket_ns;  // as Postgres: towards zero
        cells.push_back(m);
      }
      // Folded whenever the cells doubled since the last fold: a merged read
      // stays small, a grouped one (cells ~ the answer) is sorted O(log n)
      // times rather than once per statement.
      if (cells.size() > 2 * folded + 65536) {
        fold();
        folded = cells.size();
      }
    }
    fold();
    // Output order: (device, sensor, bucket).
    std::vector<int32_t> rank(groups.size());
    {
      int32_t r = 0;
      for (const auto& [key, g] : group_of) rank[static_cast<size_t>(g)] = r++;
    }
    std::sort(cells.begin(), cells.end(), [&](const MinuteRollup& a, const MinuteRollup& b) {
      const int32_t ra = rank[static_cast<size_t>(a.series_id)];
      const int32_t rb = rank[static_cast<size_t>(b.series_id)];
      return ra != rb ? ra < rb : a.bucket_ns < b.bucket_ns;
    });
    std::vector<AggregateRow> out;
    out.reserve(cells.size());
    for (const MinuteRollup& m : cells) {
      AggregateRow v;
      v.device = groups[static_cast<size_t>(m.series_id)].first;
      v.sensor = groups[static_cast<size_t>(m.series_id)].second;
      v.bucket_ns = m.bucket_ns;
      v.count = m.cnt;
      // Values not asked for are 0, whatever a segment held.
      if (need & 1) v.sum = m.sum;
      if (need & 2) v.min = m.min;
      if (need & 4) v.max = m.max;
      if (need & 8) v.last = m.last_value;
      out.push_back(std::move(v));
    }
    return out;
  }

  absl::StatusOr<PlaybackRows> Playback(int64_t tenant_id, const std::string& device,
                                        const std::vector<std::string>& sensors, int64_t from_ns,
                                        int64_t to_ns) override {
    // Per series: the last row before, the rows inside, the first after;
    // each part an index range scan on (series_id, ts). Then the segments
    // that hold any of them, by their first and last timestamps (migration
    // 0010): the newest that starts before the window (the last reading
    // before it, if a segment has one, is there: every newer segment starts
    // inside or after the window), those overlapping it, and the oldest that
    // ends after it. For a window inside one hour that is one segment, listed
    // up to three times (in hour order: the copies are adjacent and skipped).
    // The edge rows are searched only where they can beat the edge segments
    // (no older than the segment before, no newer than the last reading of
    // the one after): unbounded, a window over packed hours would probe every
    // day partition of raw_readings on each side for rows that are not there.
    static const std::string kSql =
        "SELECT s.sensor, s.unit, x.part, x.ts, x.value_double, x.value_text, x.value_bool,"
        " x.status_code, x.data"
        " FROM devices d JOIN series s ON s.device_id = d.id"
        " LEFT JOIN LATERAL (SELECT hour, data FROM raw_readings_seg"
        "   WHERE series_id = s.id AND hour < $4 AND first_ts < $4"
        "   ORDER BY hour DESC LIMIT 1) bs ON true"
        " LEFT JOIN LATERAL (SELECT hour, last_ts, data FROM raw_readings_seg"
        "   WHERE series_id = s.id AND hour > $5 - 3600000000000 AND last_ts > $5"
        "   ORDER BY hour LIMIT 1) af ON true"
        " CROSS JOIN LATERAL ("
        "  (SELECT 0 AS part, ts, value_double, value_text, value_bool, status_code,"
        "          NULL::bytea AS data"
        "   FROM raw_readings WHERE series_id = s.id AND ts < $4"
        "     AND ts >= coalesce(bs.hour, '-9223372036854775808'::bigint)"
        "   ORDER BY ts DESC LIMIT 1)"
        "  UNION ALL"
        "  (SELECT 1, ts, value_double, value_text, value_bool, status_code, NULL"
        "   FROM raw_readings WHERE series_id = s.id AND ts >= $4 AND ts <= $5 ORDER BY ts)"
        "  UNION ALL"
        "  (SELECT 2, ts, value_double, value_text, value_bool, status_code, NULL"
        "   FROM raw_readings WHERE series_id = s.id AND ts > $5"
        "     AND ts <= coalesce(af.last_ts, '9223372036854775807'::bigint)"
        "   ORDER BY ts LIMIT 1)"
        "  UNION ALL"
        "  SELECT 3, bs.hour, NULL, NULL, NULL, NULL, bs.data WHERE bs.hour IS NOT NULL"
        "  UNION ALL"
        "  (SELECT 3, hour, NULL, NULL, NULL, NULL, data FROM raw_readings_seg"
        "   WHERE series_id = s.id AND hour > $4 - 3600000000000 AND hour <= $5"
        "     AND last_ts >= $4 AND first_ts <= $5)"
        "  UNION ALL"
        "  SELECT 3, af.hour, NULL, NULL, NULL, NULL, af.data WHERE af.hour IS NOT NULL) x"
        " WHERE d.tenant_id = $1 AND d.name = $2"
        "   AND (cardinality($3::text[]) = 0 OR s.sensor = ANY($3::text[]))"
        " ORDER BY s.sensor, s.unit, x.part, x.ts";
    // One series' parts, rows and segments merged.
    struct Parts {
      std::optional<ReadingRow> before, after;
      std::vector<ReadingRow> inside;
    };
    PlaybackRows out;
    RETURN_IF_ERROR(Read(
        "playback", kSql,
        [&](const pqxx::result& r) -> absl::Status {
          std::string sensor, unit;
          Parts parts;
          bool open = false;
          auto flush = [&] {
            if (!open) return;
            std::sort(parts.inside.begin(), parts.inside.end(),
                      [](const ReadingRow& a, const ReadingRow& b) { return a.ts_ns < b.ts_ns; });
            for (auto* p : {&parts.before, &parts.after}) {
              if (!*p) continue;
              (*p)->device = device;
              (*p)->sensor = sensor;
              (*p)->unit = unit;
            }
            if (parts.before) out.before.push_back(std::move(*parts.before));
            for (ReadingRow& rr : parts.inside) {
              rr.device = device;
              rr.sensor = sensor;
              rr.unit = unit;
              out.inside.push_back(std::move(rr));
            }
            if (parts.after) out.after.push_back(std::move(*parts.after));
            parts = Parts();
          };
          auto place = [&](ReadingRow rr) {
            if (rr.ts_ns < from_ns) {
              if (!parts.before || rr.ts_ns > parts.before->ts_ns) parts.before = std::move(rr);
            } else if (rr.ts_ns > to_ns) {
              if (!parts.after || rr.ts_ns < parts.after->ts_ns) parts.after = std::move(rr);
            } else {
              parts.inside.push_back(std::move(rr));
            }
          };
          std::vector<RawRow> decoded;
          // The series' previous segment (a bool beside it: GCC 12 sees
          // std::optional<int64_t> here as maybe uninitialized).
          bool have_decoded = false;
          int64_t decoded_hour = 0;
          for (const auto& row : r) {
            if (!open || sensor != row[0].c_str() || unit != row[1].c_str()) {
              flush();
              sensor = row[0].as<std::string>();
              unit = row[1].as<std::string>();
              open = true;
              have_decoded = false;
            }
            if (PgInt64(row[2]) < 3) {
              place(RowFrom(row, 3));
              continue;
            }
            const int64_t hour = PgInt64(row[3]);
            if (have_decoded && decoded_hour == hour) continue;  // listed again
            decoded.clear();
            have_decoded = true;
            decoded_hour = hour;
            RETURN_IF_ERROR(DecodeRawSegmentField(row[8], hour, &decoded));
            // Only the readings next to the window and inside it matter.
            for (const RawRow& raw : decoded) {
              if ((raw.ts_ns < from_ns && parts.before && raw.ts_ns <= parts.before->ts_ns) ||
                  (raw.ts_ns > to_ns && parts.after && raw.ts_ns >= parts.after->ts_ns)) {
                continue;
              }
              place(FromRaw(raw));
            }
          }
          flush();
          return absl::OkStatus();
        },
        tenant_id, device, PgTextArray(sensors), from_ns, to_ns));
    return out;
  }

  absl::StatusOr<std::vector<SeriesRef>> Series(int64_t tenant_id,
                                                const std::vector<std::string>& devices,
                                                const std::vector<std::string>& sensors) override {
    static const std::string kSql =
        "SELECT d.name, s.sensor, s.unit FROM devices d JOIN series s ON s.device_id = d.id"
        " WHERE d.tenant_id = $1 AND d.name = ANY($2::text[])"
        "   AND (cardinality($3::text[]) = 0 OR s.sensor = ANY($3::text[]))"
        " ORDER BY d.name, s.sensor, s.unit";
    std::vector<SeriesRef> out;
    RETURN_IF_ERROR(Read(
        "series", kSql,
        [&](const pqxx::result& r) {
          for (const auto& row : r) {
            out.push_back(
                {row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>()});
          }
          return absl::OkStatus();
        },
        tenant_id, PgTextArray(devices), PgTextArray(sensors)));
    return out;
  }

  absl::Status Range(const RangeQuery& query,
                     const std::function<bool(std::vector<ReadingRow>&&)>& page) override {
    // The first page in one statement over all the device's series: the
    // first rows overall (each series limited to the page) and the segments
    // each series needs to fill a page (SegmentsForRange), merged here; a
    // short range (the common case) is one round trip. Only when it fills
    // the page does the rest go series by series, resumed after its last
    // reading. $6/$7/$8: the cursor (sensor, unit, timestamp).
    static const std::string kFirstPageSql = absl::StrCat(
        "SELECT * FROM ("
        " SELECT s.sensor, s.unit, 0 AS part, r.ts, r.value_double, r.value_text, r.value_bool,"
        "  r.status_code, NULL::bytea AS data"
        " FROM devices d JOIN series s ON s.device_id = d.id CROSS JOIN LATERAL ("
        "   SELECT ts, value_double, value_text, value_bool, status_code FROM raw_readings"
        "   WHERE series_id = s.id AND ts >= $4 AND ts < $5"
        "     AND ((s.sensor, s.unit) > ($6, $7) OR ts > $8)"
        "   ORDER BY ts LIMIT $9) r"
        " WHERE d.tenant_id = $1 AND d.name = $2"
        "   AND (cardinality($3::text[]) = 0 OR s.sensor = ANY($3::text[]))"
        "   AND (s.sensor, s.unit) >= ($6, $7)"
        " ORDER BY s.sensor, s.unit, r.ts LIMIT $9) first_rows"
        " UNION ALL"
        " SELECT s.sensor, s.unit, 1, g.hour, NULL, NULL, NULL, NULL, g.data"
        " FROM devices d JOIN series s ON s.device_id = d.id CROSS JOIN LATERAL (",
        SegmentsForRange(
            "s.id", "CASE WHEN (s.sensor, s.unit) = ($6, $7) THEN greatest($4, $8) ELSE $4 END",
            "$5", "$9"),
        ") g"
        " WHERE d.tenant_id = $1 AND d.name = $2"
        "   AND (cardinality($3::text[]) = 0 OR s.sensor = ANY($3::text[]))"
        "   AND (s.sensor, s.unit) >= ($6, $7)");
    RangeQuery q = query;
    int64_t remaining = q.limit > 0 ? q.limit : INT64_MAX;
    const int64_t page_size = q.page_size > 0 ? q.page_size : 1000;
    {
      const int64_t want = std::min(page_size, remaining);
      std::vector<ReadingRow> rows;
      RETURN_IF_ERROR(Read(
          "range_first", kFirstPageSql,
          [&](const pqxx::result& r) -> absl::Status {
            rows.reserve(r.size());
            std::vector<RawRow> decoded;
            const auto cursor = std::make_pair(q.after_sensor, q.after_unit);
            for (const auto& row : r) {
              auto name = [&](ReadingRow rr) {
                rr.device = q.device;
                rr.sensor = row[0].as<std::string>();
                rr.unit = row[1].as<std::string>();
                return rr;
              };
              if (PgInt64(row[2]) == 0) {
                rows.push_back(name(RowFrom(row, 3)));
                continue;
              }
              decoded.clear();
              RETURN_IF_ERROR(DecodeRawSegmentField(row[8], PgInt64(row[3]), &decoded));
              const bool at_cursor = std::make_pair(std::string(row[0].c_str()),
                                                    std::string(row[1].c_str())) == cursor;
              for (const RawRow& raw : decoded) {
                if (raw.ts_ns < q.start_ns || raw.ts_ns >= q.end_ns) continue;
                if (at_cursor && raw.ts_ns <= q.after_ts_ns) continue;
                rows.push_back(name(FromRaw(raw)));
              }
            }
            std::sort(rows.begin(), rows.end(), [](const ReadingRow& a, const ReadingRow& b) {
              return std::tie(a.sensor, a.unit, a.ts_ns) < std::tie(b.sensor, b.unit, b.ts_ns);
            });
            if (static_cast<int64_t>(rows.size()) > want) rows.resize(static_cast<size_t>(want));
            return absl::OkStatus();
          },
          q.tenant_id, q.device, PgTextArray(q.sensors), q.start_ns, q.end_ns, q.after_sensor,
          q.after_unit, q.after_ts_ns, want));
      if (rows.empty()) return absl::OkStatus();
      const bool full = static_cast<int64_t>(rows.size()) == want;
      q.after_sensor = rows.back().sensor;
      q.after_unit = rows.back().unit;
      q.after_ts_ns = rows.back().ts_ns;
      remaining -= static_cast<int64_t>(rows.size());
      if (!page(std::move(rows)) || !full || remaining <= 0) return absl::OkStatus();
    }
    static const std::string kSeriesSql =
        "SELECT s.id, s.sensor, s.unit FROM devices d JOIN series s ON s.device_id = d.id"
        " WHERE d.tenant_id = $1 AND d.name = $2"
        "   AND (cardinality($3::text[]) = 0 OR s.sensor = ANY($3::text[]))"
        " ORDER BY s.sensor, s.unit";
    // One series from $2 to $3, at most $4 readings: rows and the segments
    // needed. $5: the first page starts at $2 inclusive, a resumed one after it.
    static const std::string kPageSql = absl::StrCat(
        "(SELECT 0 AS part, ts, value_double, value_text, value_bool, status_code,"
        "  NULL::bytea AS data"
        " FROM raw_readings WHERE series_id = $1 AND ts >= $2 AND ts < $3"
        "   AND (NOT $5 OR ts > $2)"
        " ORDER BY ts LIMIT $4)"
        " UNION ALL"
        " SELECT 1, hour, NULL, NULL, NULL, NULL, data FROM (",
        SegmentsForRange("$1", "$2", "$3", "$4"), ") g");
    struct Series {
      int32_t id;
      std::string sensor, unit;
    };
    std::vector<Series> series;
    RETURN_IF_ERROR(Read(
        "range_series", kSeriesSql,
        [&](const pqxx::result& r) {
          for (const auto& row : r) {
            series.push_back(
                {row[0].as<int32_t>(), row[1].as<std::string>(), row[2].as<std::string>()});
          }
          return absl::OkStatus();
        },
        q.tenant_id, q.device, PgTextArray(q.sensors)));
    for (const Series& s : series) {
      int64_t from = q.start_ns;
      bool exclusive = false;
      if (!q.after_sensor.empty()) {
        auto key = std::make_pair(s.sensor, s.unit);
        auto cursor = std::make_pair(q.after_sensor, q.after_unit);
        if (key < cursor) continue;
        if (key == cursor) {
          from = std::max(from, q.after_ts_ns);
          exclusive = true;
        }
      }
      while (remaining > 0) {
        int64_t want = std::min(page_size, remaining);
        std::vector<ReadingRow> rows;
        RETURN_IF_ERROR(Read(
            "range_page", kPageSql,
            [&](const pqxx::result& r) -> absl::Status {
              rows.reserve(r.size());
              std::vector<RawRow> decoded;
              auto name = [&](ReadingRow rr) {
                rr.device = q.device;
                rr.sensor = s.sensor;
                rr.unit = s.unit;
                return rr;
              };
              for (const auto& row : r) {
                if (PgInt64(row[0]) == 0) {
                  rows.push_back(name(RowFrom(row, 1)));
                  continue;
                }
                decoded.clear();
                RETURN_IF_ERROR(DecodeRawSegmentField(row[6], PgInt64(row[1]), &decoded));
                for (const RawRow& raw : decoded) {
                  if (raw.ts_ns < from || raw.ts_ns >= q.end_ns) continue;
                  if (exclusive && raw.ts_ns <= from) continue;
                  rows.push_back(name(FromRaw(raw)));
                }
              }
              std::sort(rows.begin(), rows.end(),
                        [](const ReadingRow& a, const ReadingRow& b) { return a.ts_ns < b.ts_ns; });
              if (static_cast<int64_t>(rows.size()) > want) rows.resize(static_cast<size_t>(want));
              return absl::OkStatus();
            },
            s.id, from, q.end_ns, want, exclusive));
        if (rows.empty()) break;
        bool full = static_cast<int64_t>(rows.size()) == want;
        from = rows.back().ts_ns;
        exclusive = true;
        remaining -= static_cast<int64_t>(rows.size());
        if (!page(std::move(rows))) return absl::OkStatus();
        if (!full) break;
      }
      if (remaining <= 0) break;
    }
    return absl::OkStatus();
  }

 private:
  // One prepared read: the statement runs on a pooled connection, which goes
  // back to the pool before `parse` reads the rows (a pqxx::result does not
  // need its connection), so the pool is held only while Postgres works.
  // Conversion errors in `parse` become statuses, as inside PgPool::Run.
  template <typename Parse, typename... Args>
  absl::Status Read(const char* name, const std::string& sql, Parse&& parse, const Args&... args) {
    pqxx::result r;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      r = PgReadPrepared(c, name, sql, args...);
      return absl::OkStatus();
    }));
    try {
      return parse(r);
    } catch (const std::exception& e) {
      return StatusFromPgException(e);
    }
  }

  PgPool* pool_;
  absl::Mutex mu_;
};

}  // namespace

std::unique_ptr<ReadingReader> NewPgReadingReader(PgPool* pool) {
  return std::make_unique<PgReadingReader>(pool);
}

}  // namespace telemetry
