// ReadingStore on Postgres: narrow raw rows in day partitions, rollups in
// agg_1m (closed hours packed into agg_1m_seg) / agg_1h, the writer's
// offsets in writer_offsets.
#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/pg_pool.h"
#include "common/reading_store.h"
#include "common/rollup.h"

namespace telemetry {
namespace {

constexpr int64_t kNsPerDay = 86'400'000'000'000;
constexpr int64_t kNsPerHour = 3'600'000'000'000;

template <typename T>
void AppendNumber(std::string* out, T v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, res.ptr);
}

// The rollup merge: only rows this statement inserted reach the rollups, so
// a replayed or duplicated reading never counts twice.
// How a rollup row absorbs the new rows' partial aggregate (the same rule for
// every rollup table): counts and sums add up, the last value is the newer.
constexpr char kMergeRollup[] = R"sql(DO UPDATE SET
    cnt = a.cnt + EXCLUDED.cnt, sum = a.sum + EXCLUDED.sum,
    min = LEAST(a.min, EXCLUDED.min), max = GREATEST(a.max, EXCLUDED.max),
    last_value = CASE WHEN EXCLUDED.last_ts > a.last_ts THEN EXCLUDED.last_value ELSE a.last_value END,
    last_ts = GREATEST(a.last_ts, EXCLUDED.last_ts))sql";

// The rollup merge, from the batch's per-minute partial aggregates in
// stage_agg (new rows only, one row per series and minute); {M} stands for
// kMergeRollup. Data-modifying CTEs run to completion without RETURNING.
constexpr char kMergeRollupsTemplate[] = R"sql(
WITH m AS (
  INSERT INTO agg_1m AS a (series_id, bucket, cnt, sum, min, max, last_ts, last_value)
  SELECT * FROM stage_agg
  ON CONFLICT (series_id, bucket) {M}
), h AS (
  -- Hours from the new minutes: fewer rows than from the raw ones.
  INSERT INTO agg_1h AS a (series_id, bucket, cnt, sum, min, max, last_ts, last_value)
  SELECT series_id, bucket - bucket % 3600000000000, sum(cnt), sum(sum), min(min), max(max),
         max(last_ts), (array_agg(last_value ORDER BY last_ts DESC))[1]
  FROM stage_agg GROUP BY 1, 2
  ON CONFLICT (series_id, bucket) {M}
)
-- Tenant/project-wide hours per sensor; key order fixed so that two
-- writers lock shared rows in the same order.
INSERT INTO agg_1h_sensor AS a (tenant_id, project_id, sensor, bucket, cnt, sum, min, max,
                                last_ts, last_value)
SELECT s.tenant_id, s.project_id, s.sensor, mi.bucket - mi.bucket % 3600000000000, sum(mi.cnt),
       sum(mi.sum), min(mi.min), max(mi.max), max(mi.last_ts),
       (array_agg(mi.last_value ORDER BY mi.last_ts DESC))[1]
FROM stage_agg mi JOIN series s ON s.id = mi.series_id
GROUP BY 1, 2, 3, 4 ORDER BY 1, 3, 4, 2
ON CONFLICT (tenant_id, sensor, bucket, project_id) {M}
)sql";

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

const std::string& MergeRollupsSql() {
  static const std::string sql =
      absl::StrReplaceAll(kMergeRollupsTemplate, {{"{M}", kMergeRollup}});
  return sql;
}

// The upsert path: the batch (in stage_raw) may hold readings already
// stored. Inserts the new ones and puts their per-minute aggregates into
// stage_agg: only rows this statement inserted reach the rollups, so a
// replayed or duplicated reading never counts twice.
constexpr char kUpsertRawSql[] = R"sql(
WITH ins AS (
  INSERT INTO raw_readings (series_id, ts, value_double, value_text, value_bool, status_code)
  SELECT series_id, ts, value_double, value_text, value_bool, status_code FROM stage_raw
  ON CONFLICT (series_id, ts) DO NOTHING
  RETURNING series_id, ts, coalesce(value_double, value_bool::int::double precision) AS v
), mi AS (
  INSERT INTO stage_agg (series_id, bucket, cnt, sum, min, max, last_ts, last_value)
  SELECT series_id, ts - ts % 60000000000, count(*), sum(v), min(v), max(v), max(ts),
         (array_agg(v ORDER BY ts DESC))[1]
  FROM ins WHERE v IS NOT NULL GROUP BY 1, 2
)
SELECT count(*) FROM ins
)sql";

// The stored readings among a batch's, found by runs: each run is a span
// [lo, hi] of one series' readings in the batch. OFFSET 0 keeps the probe a
// nested loop of index range scans (one per run, pruned to the partitions
// the span touches); a run of new, in-order readings finds nothing after
// one index descent.
constexpr char kStoredKeysSql[] = R"sql(
SELECT r.series_id, r.ts
FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS b(series_id, lo, hi)
CROSS JOIN LATERAL (
  SELECT series_id, ts FROM raw_readings r
  WHERE r.series_id = b.series_id AND r.ts >= b.lo AND r.ts <= b.hi OFFSET 0) r
)sql";

// Runs of a sorted batch as Postgres array texts. A run ends at a new series
// or at a gap of more than a minute, so that a late reading is probed on its
// own instead of spanning (and returning) the hour of rows before it.
struct ProbeRuns {
  std::string series = "{", lo = "{", hi = "{";
};

ProbeRuns RunsOf(const std::vector<RawRow>& rows) {
  ProbeRuns runs;
  auto close = [&](int32_t series, int64_t lo, int64_t hi) {
    if (runs.series.size() > 1) {
      runs.series.push_back(',');
      runs.lo.push_back(',');
      runs.hi.push_back(',');
    }
    AppendNumber(&runs.series, series);
    AppendNumber(&runs.lo, lo);
    AppendNumber(&runs.hi, hi);
  };
  for (size_t i = 0; i < rows.size();) {
    size_t j = i + 1;
    while (j < rows.size() && rows[j].series_id == rows[i].series_id &&
           rows[j].ts_ns - rows[j - 1].ts_ns <= kNsPerMinute)
      ++j;
    close(rows[i].series_id, rows[i].ts_ns, rows[j - 1].ts_ns);
    i = j;
  }
  runs.series.push_back('}');
  runs.lo.push_back('}');
  runs.hi.push_back('}');
  return runs;
}

// Both staging tables live for the connection and empty at every commit.
constexpr char kPrepareApplySql[] =
    "SET LOCAL synchronous_commit = off;"
    "SET LOCAL client_min_messages = warning;"
    "CREATE TEMP TABLE IF NOT EXISTS stage_raw (series_id integer, ts bigint,"
    " value_double double precision, value_text text, value_bool boolean,"
    " status_code integer) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS stage_agg (series_id integer, bucket bigint, cnt bigint,"
    " sum double precision, min double precision, max double precision, last_ts bigint,"
    " last_value double precision) ON COMMIT DELETE ROWS";

// COPY text of raw rows, in raw_readings' column order.
std::string RawCopyText(const std::vector<RawRow>& rows) {
  std::string buf;
  buf.reserve(rows.size() * 48);
  for (const RawRow& r : rows) {
    AppendNumber(&buf, r.series_id);
    buf.push_back('\t');
    AppendNumber(&buf, r.ts_ns);
    buf.push_back('\t');
    if (r.kind == ValueKind::kDouble) {
      AppendNumber(&buf, r.d);
      buf.append("\t\\N\t\\N\t");
    } else if (r.kind == ValueKind::kString) {
      buf.append("\\N\t");
      AppendCopyText(&buf, r.s);
      buf.append("\t\\N\t");
    } else {
      buf.append(r.b ? "\\N\t\\N\tt\t" : "\\N\t\\N\tf\t");
    }
    if (r.status != 0) {
      AppendNumber(&buf, r.status);
    } else {
      buf.append("\\N");
    }
    buf.push_back('\n');
  }
  if (!buf.empty()) buf.pop_back();  // write_raw_line adds the last newline
  return buf;
}

// COPY text of minute aggregates, in stage_agg's column order.
std::string RollupCopyText(const std::vector<MinuteRollup>& rollups) {
  std::string buf;
  buf.reserve(rollups.size() * 100);
  for (const MinuteRollup& m : rollups) {
    AppendNumber(&buf, m.series_id);
    buf.push_back('\t');
    AppendNumber(&buf, m.bucket_ns);
    buf.push_back('\t');
    AppendNumber(&buf, m.cnt);
    for (double v : {m.sum, m.min, m.max}) {
      buf.push_back('\t');
      AppendNumber(&buf, v);
    }
    buf.push_back('\t');
    AppendNumber(&buf, m.last_ts);
    buf.push_back('\t');
    AppendNumber(&buf, m.last_value);
    buf.push_back('\n');
  }
  if (!buf.empty()) buf.pop_back();
  return buf;
}

// A read: one statement outside a transaction block (no BEGIN/COMMIT round
// trips), prepared once per connection so its plan is cached.
template <typename... Args>
pqxx::result ReadPrepared(pqxx::connection& c, const char* name, const std::string& sql,
                          Args&&... args) {
  c.prepare(name, sql);
  pqxx::nontransaction tx(c);
  return tx.exec_prepared(name, std::forward<Args>(args)...);
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
      absl::Status d = DecodeMinuteSegment(g, PgInt64(row[4]),
                                           absl::string_view(data.c_str(), data.size()), decoded);
      if (!d.ok()) return d;
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

class PgReadingStore final : public ReadingStore {
 public:
  explicit PgReadingStore(PgPool* pool) : pool_(pool) {}

  absl::StatusOr<ApplyResult> Apply(const std::vector<RawRow>& rows, const std::string& topic,
                                    const std::vector<PartitionOffset>& next_offsets) override {
    // The writer hands over batches in (series, time) order without repeated
    // keys; anything else is brought into that form first.
    std::vector<RawRow> sorted;
    const std::vector<RawRow>* batch = &rows;
    if (!SortedWithoutRepeatedKeys(rows)) {
      sorted = rows;
      SortAndDropRepeatedKeys(&sorted);
      batch = &sorted;
    }
    const ProbeRuns runs = RunsOf(*batch);
    std::vector<std::string> parts, offs;
    for (const auto& po : next_offsets) {
      parts.push_back(std::to_string(po.partition));
      offs.push_back(std::to_string(po.offset));
    }
    ApplyResult result;
    absl::Status st = pool_->Run([&](pqxx::connection& c) {
      result = ApplyResult();
      pqxx::work tx(c);
      // Asynchronous commit is safe here: the applied offsets commit in the
      // same transaction, so a crash that loses the last commits loses their
      // offsets too, and the writer re-applies those messages from Kafka.
      tx.exec(kPrepareApplySql);
      if (!batch->empty()) {
        // The bulk path. Readings already stored (a replay, a device sending
        // again) are found first, one index probe per run of a series'
        // readings rather than per reading; the others are COPYed straight
        // into the raw table (multi-row inserts, no speculative insertion),
        // and their minute aggregates, computed here, into stage_agg.
        std::vector<RawRow> fresh_rows;
        const std::vector<RawRow>* fresh = batch;
        pqxx::result stored = tx.exec_params(kStoredKeysSql, runs.series, runs.lo, runs.hi);
        if (!stored.empty()) {
          std::set<std::pair<int32_t, int64_t>> keys;
          for (const auto& row : stored)
            keys.emplace(static_cast<int32_t>(PgInt64(row[0])), PgInt64(row[1]));
          for (const RawRow& r : *batch)
            if (!keys.count({r.series_id, r.ts_ns})) fresh_rows.push_back(r);
          fresh = &fresh_rows;
        }
        try {
          pqxx::subtransaction sub(tx, "bulk");
          if (!fresh->empty()) {
            CopyRawText(sub, "raw_readings", RawCopyText(*fresh));
            const std::string agg = RollupCopyText(MinuteRollups(*fresh));
            if (!agg.empty()) CopyRawText(sub, "stage_agg", agg);
          }
          sub.commit();
          result.bulk = true;
          result.inserted = static_cast<int64_t>(fresh->size());
        } catch (const pqxx::sql_error& e) {
          // Another writer (a rebalance) stored one of them since the probe:
          // undo the COPYs and take the upsert path.
          if (e.sqlstate() != "23505") throw;
        }
        if (!result.bulk) {
          CopyRawText(tx, "stage_raw", RawCopyText(*batch));
          result.inserted = PgInt64(tx.exec(kUpsertRawSql)[0][0]);
        }
        tx.exec(MergeRollupsSql());
      }
      if (!parts.empty()) {
        tx.exec_params(
            "INSERT INTO writer_offsets (topic, partition, next_offset)"
            " SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS x(p, o)"
            " ON CONFLICT (topic, partition) DO UPDATE SET"
            " next_offset = GREATEST(writer_offsets.next_offset, EXCLUDED.next_offset),"
            " updated_at = now()",
            topic, "{" + absl::StrJoin(parts, ",") + "}", "{" + absl::StrJoin(offs, ",") + "}");
      }
      tx.commit();
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    result.duplicates = static_cast<int64_t>(rows.size()) - result.inserted;
    return result;
  }

  absl::StatusOr<std::map<int32_t, int64_t>> AppliedOffsets(const std::string& topic) override {
    std::map<int32_t, int64_t> out;
    absl::Status st = pool_->Run([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      pqxx::result r = tx.exec_params(
          "SELECT partition, next_offset FROM writer_offsets WHERE topic = $1", topic);
      for (const auto& row : r) out[row[0].as<int32_t>()] = row[1].as<int64_t>();
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return out;
  }

  absl::Status RecordLogGap(const std::string& topic, int32_t partition, int64_t from_offset,
                            int64_t to_offset) override {
    return pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params(
          "INSERT INTO writer_log_gaps (topic, partition, from_offset, to_offset)"
          " VALUES ($1, $2, $3, $4)",
          topic, partition, from_offset, to_offset);
      tx.commit();
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::map<int32_t, std::vector<std::pair<int64_t, int64_t>>>> DroppedOffsets(
      const std::string& topic) override {
    std::map<int32_t, std::vector<std::pair<int64_t, int64_t>>> out;
    absl::Status st = pool_->Run([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      pqxx::result r = tx.exec_params(
          "SELECT partition, from_offset, to_offset FROM writer_log_gaps"
          " WHERE topic = $1 AND kind = 'dropped'",
          topic);
      for (const auto& row : r) {
        out[row[0].as<int32_t>()].emplace_back(row[1].as<int64_t>(), row[2].as<int64_t>());
      }
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return out;
  }

  absl::Status ResetOffset(const std::string& topic, int32_t partition, int64_t applied,
                           int64_t restart_at) override {
    return pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params(
          "UPDATE writer_offsets SET next_offset = $3, updated_at = now()"
          " WHERE topic = $1 AND partition = $2",
          topic, partition, restart_at);
      tx.exec_params(
          "INSERT INTO writer_log_gaps (topic, partition, from_offset, to_offset, kind)"
          " VALUES ($1, $2, $3, $4, 'reset')",
          topic, partition, applied, restart_at);
      tx.commit();
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<int64_t>> UncompactedRollupHours(int64_t before_ns,
                                                              int limit) override {
    std::vector<int64_t> hours;
    absl::Status st = pool_->Run([&](pqxx::connection& c) {
      // agg_1h_sensor has one row per (tenant, sensor, hour): a small table
      // that lists every hour holding rollups.
      pqxx::result r = ReadPrepared(
          c, "uncompacted_rollup_hours",
          "SELECT DISTINCT a.bucket FROM agg_1h_sensor a WHERE a.bucket < $1"
          " AND NOT EXISTS (SELECT 1 FROM rollup_compactions c WHERE c.hour = a.bucket)"
          " ORDER BY 1 LIMIT $2",
          before_ns, limit);
      for (const auto& row : r) hours.push_back(PgInt64(row[0]));
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return hours;
  }

  absl::StatusOr<int64_t> CompactRollupHour(int64_t hour_ns) override {
    int64_t moved = 0;
    absl::Status st = pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      // The claim: a second compactor of the same hour waits here for the
      // first to commit, then finds the row and leaves.
      if (tx.exec_params("INSERT INTO rollup_compactions (hour, rows) VALUES ($1, 0)"
                         " ON CONFLICT (hour) DO NOTHING RETURNING 1",
                         hour_ns)
              .empty()) {
        tx.commit();
        return absl::OkStatus();
      }
      // Moved into one segment per series in one statement (format 1,
      // db/migrations/0006_rollup_segments.sql): readers see either the rows
      // or the segments. A concurrent late upsert of one of these rows waits
      // for the commit, then inserts a new row, which reads merge with the
      // segment. A second segment for a series and hour is an error, never a
      // silent overwrite.
      moved = PgInt64(tx.exec_params(
          "WITH moved AS (DELETE FROM agg_1m WHERE bucket >= $1 AND bucket < $2 RETURNING *),"
          " packed AS (INSERT INTO agg_1m_seg (series_id, hour, data)"
          "   SELECT series_id, $1, translate(encode('\\x01'::bytea || string_agg("
          "     substring(int2send(((bucket - $1) / 60000000000)::int2) FROM 2)"
          "     || int8send(cnt) || float8send(sum) || float8send(min) || float8send(max)"
          "     || int8send(last_ts) || float8send(last_value), ''::bytea ORDER BY bucket),"
          "     'base64'), E'\\n', '')"
          "   FROM moved GROUP BY series_id ORDER BY series_id RETURNING 1)"
          " SELECT count(*) FROM moved",
          hour_ns, hour_ns + kNsPerHour)[0][0]);
      tx.exec_params("UPDATE rollup_compactions SET rows = $2 WHERE hour = $1", hour_ns, moved);
      tx.commit();
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return moved;
  }

  absl::StatusOr<int64_t> VacuumRollups() override {
    int64_t dead = 0;
    absl::Status st = pool_->Run([&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);  // VACUUM cannot run in a transaction block
      tx.exec("VACUUM agg_1m");
      dead =
          PgInt64(tx.exec("SELECT coalesce(n_dead_tup, 0) FROM pg_stat_user_tables"
                          " WHERE relid = 'agg_1m'::regclass")[0][0]);
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return dead;
  }

  absl::Status EnsurePartitions(int64_t from_ns, int64_t to_ns) override {
    std::vector<int64_t> missing;
    {
      absl::MutexLock lock(&mu_);
      for (int64_t day = DayOf(from_ns); day <= DayOf(to_ns); ++day) {
        if (!known_days_.count(day)) missing.push_back(day);
      }
    }
    if (missing.empty()) return absl::OkStatus();
    for (int64_t day : missing) {
      std::string name = absl::StrCat(
          "raw_readings_d",
          absl::FormatTime("%Y%m%d", absl::FromUnixSeconds(day * 86400), absl::UTCTimeZone()));
      absl::Status st = pool_->Run([&](pqxx::connection& c) {
        pqxx::work tx(c);
        pqxx::result exists = tx.exec_params("SELECT to_regclass($1) IS NOT NULL", name);
        if (!exists[0][0].as<bool>()) {
          tx.exec(absl::StrCat("CREATE TABLE IF NOT EXISTS ", name,
                               " PARTITION OF raw_readings FOR VALUES FROM (", day * kNsPerDay,
                               ") TO (", (day + 1) * kNsPerDay, ")"));
        }
        tx.commit();
        return absl::OkStatus();
      });
      if (!st.ok() && st.code() != absl::StatusCode::kAlreadyExists) {
        // Another writer may have created it concurrently: check again.
        bool now_exists = false;
        absl::Status again = pool_->Run([&](pqxx::connection& c) {
          pqxx::read_transaction tx(c);
          now_exists = tx.exec_params("SELECT to_regclass($1) IS NOT NULL", name)[0][0].as<bool>();
          return absl::OkStatus();
        });
        if (!again.ok() || !now_exists) return st;
      }
      absl::MutexLock lock(&mu_);
      known_days_.insert(day);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<ReadingRow>> Latest(int64_t tenant_id,
                                                 const std::vector<std::string>& devices,
                                                 const std::vector<std::string>& sensors) override {
    static const std::string kSql =
        "SELECT d.name, s.sensor, s.unit, r.ts, r.value_double, r.value_text, r.value_bool,"
        " r.status_code"
        " FROM devices d JOIN series s ON s.device_id = d.id"
        " CROSS JOIN LATERAL (SELECT * FROM raw_readings r WHERE r.series_id = s.id"
        "   ORDER BY r.ts DESC LIMIT 1) r"
        " WHERE d.tenant_id = $1 AND d.name = ANY($2::text[])"
        "   AND (cardinality($3::text[]) = 0 OR s.sensor = ANY($3::text[]))"
        " ORDER BY d.name, s.sensor, s.unit";
    std::vector<ReadingRow> out;
    absl::Status st = Read(
        "latest", kSql,
        [&](const pqxx::result& r) {
          out.reserve(r.size());
          for (const auto& row : r) {
            ReadingRow rr = RowFrom(row, 3);
            rr.device = row[0].as<std::string>();
            rr.sensor = row[1].as<std::string>();
            rr.unit = row[2].as<std::string>();
            out.push_back(std::move(rr));
          }
          return absl::OkStatus();
        },
        tenant_id, PgTextArray(devices), PgTextArray(sensors));
    if (!st.ok()) return st;
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
    absl::Status st = Read(
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
        from, q.end_ns);
    if (!st.ok()) return st;
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
      absl::Status st = Read(
          name.c_str(), sql,
          [&](const pqxx::result& r) {
            return ParseMinuteChunk(r, q, from, need, &groups, &group_of, &decoded, &more,
                                    &after_id);
          },
          q.tenant_id, q.device, q.project, PgTextArray(q.sensors), q.group_by_device, from,
          q.end_ns, after_id, kMinuteSeriesPerRead);
      if (!st.ok()) return st;
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
    // each part an index range scan on (series_id, ts).
    static const std::string kSql =
        "SELECT s.sensor, s.unit, x.part, x.ts, x.value_double, x.value_text, x.value_bool,"
        " x.status_code"
        " FROM devices d JOIN series s ON s.device_id = d.id CROSS JOIN LATERAL ("
        "  (SELECT 0 AS part, ts, value_double, value_text, value_bool, status_code"
        "   FROM raw_readings WHERE series_id = s.id AND ts < $4 ORDER BY ts DESC LIMIT 1)"
        "  UNION ALL"
        "  (SELECT 1, ts, value_double, value_text, value_bool, status_code"
        "   FROM raw_readings WHERE series_id = s.id AND ts >= $4 AND ts <= $5 ORDER BY ts)"
        "  UNION ALL"
        "  (SELECT 2, ts, value_double, value_text, value_bool, status_code"
        "   FROM raw_readings WHERE series_id = s.id AND ts > $5 ORDER BY ts LIMIT 1)) x"
        " WHERE d.tenant_id = $1 AND d.name = $2"
        "   AND (cardinality($3::text[]) = 0 OR s.sensor = ANY($3::text[]))"
        " ORDER BY s.sensor, s.unit, x.part, x.ts";
    PlaybackRows out;
    absl::Status st = Read(
        "playback", kSql,
        [&](const pqxx::result& r) {
          for (const auto& row : r) {
            ReadingRow rr = RowFrom(row, 3);
            rr.device = device;
            rr.sensor = row[0].as<std::string>();
            rr.unit = row[1].as<std::string>();
            int part = row[2].as<int>();
            (part == 0 ? out.before : part == 1 ? out.inside : out.after).push_back(std::move(rr));
          }
          return absl::OkStatus();
        },
        tenant_id, device, PgTextArray(sensors), from_ns, to_ns);
    if (!st.ok()) return st;
    return out;
  }

  absl::Status Range(const RangeQuery& query,
                     const std::function<bool(std::vector<ReadingRow>&&)>& page) override {
    // The first page in one statement over all the device's series, each
    // series limited to the page: a short range (the common case) is one
    // round trip. Only when it fills the page does the rest go series by
    // series, resumed after its last row.
    static const std::string kFirstPageSql =
        "SELECT s.sensor, s.unit, r.ts, r.value_double, r.value_text, r.value_bool,"
        " r.status_code"
        " FROM devices d JOIN series s ON s.device_id = d.id CROSS JOIN LATERAL ("
        "   SELECT ts, value_double, value_text, value_bool, status_code FROM raw_readings"
        "   WHERE series_id = s.id AND ts >= $4 AND ts < $5"
        "     AND ((s.sensor, s.unit) > ($6, $7) OR ts > $8)"
        "   ORDER BY ts LIMIT $9) r"
        " WHERE d.tenant_id = $1 AND d.name = $2"
        "   AND (cardinality($3::text[]) = 0 OR s.sensor = ANY($3::text[]))"
        "   AND (s.sensor, s.unit) >= ($6, $7)"
        " ORDER BY s.sensor, s.unit, r.ts LIMIT $9";
    RangeQuery q = query;
    int64_t remaining = q.limit > 0 ? q.limit : INT64_MAX;
    const int64_t page_size = q.page_size > 0 ? q.page_size : 1000;
    {
      const int64_t want = std::min(page_size, remaining);
      std::vector<ReadingRow> rows;
      absl::Status st = Read(
          "range_first", kFirstPageSql,
          [&](const pqxx::result& r) {
            rows.reserve(r.size());
            for (const auto& row : r) {
              ReadingRow rr = RowFrom(row, 2);
              rr.device = q.device;
              rr.sensor = row[0].as<std::string>();
              rr.unit = row[1].as<std::string>();
              rows.push_back(std::move(rr));
            }
            return absl::OkStatus();
          },
          q.tenant_id, q.device, PgTextArray(q.sensors), q.start_ns, q.end_ns, q.after_sensor,
          q.after_unit, q.after_ts_ns, want);
      if (!st.ok()) return st;
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
    // $5: the first page starts at $2 inclusive, a resumed one after it.
    static const std::string kPageSql =
        "SELECT ts, value_double, value_text, value_bool, status_code"
        " FROM raw_readings WHERE series_id = $1 AND ts >= $2 AND ts < $3"
        "   AND (NOT $5 OR ts > $2)"
        " ORDER BY ts LIMIT $4";
    struct Series {
      int32_t id;
      std::string sensor, unit;
    };
    std::vector<Series> series;
    absl::Status st = Read(
        "range_series", kSeriesSql,
        [&](const pqxx::result& r) {
          for (const auto& row : r) {
            series.push_back(
                {row[0].as<int32_t>(), row[1].as<std::string>(), row[2].as<std::string>()});
          }
          return absl::OkStatus();
        },
        q.tenant_id, q.device, PgTextArray(q.sensors));
    if (!st.ok()) return st;
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
        st = Read(
            "range_page", kPageSql,
            [&](const pqxx::result& r) {
              rows.reserve(r.size());
              for (const auto& row : r) {
                ReadingRow rr = RowFrom(row, 0);
                rr.device = q.device;
                rr.sensor = s.sensor;
                rr.unit = s.unit;
                rows.push_back(std::move(rr));
              }
              return absl::OkStatus();
            },
            s.id, from, q.end_ns, want, exclusive);
        if (!st.ok()) return st;
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
    absl::Status st = pool_->Run([&](pqxx::connection& c) {
      r = ReadPrepared(c, name, sql, args...);
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    try {
      return parse(r);
    } catch (const std::exception& e) {
      return StatusFromPgException(e);
    }
  }

  PgPool* pool_;
  absl::Mutex mu_;
  std::set<int64_t> known_days_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<ReadingStore> NewPgReadingStore(PgPool* pool) {
  return std::make_unique<PgReadingStore>(pool);
}

}  // namespace telemetry
