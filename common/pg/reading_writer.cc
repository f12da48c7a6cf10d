// ReadingWriter on Postgres: narrow raw rows in day partitions, minute and
// hour rollups merged in the same transaction (agg_1m, agg_1h,
// agg_1h_sensor), the writer's offsets in writer_offsets, and the compaction
// of closed hours of agg_1m into agg_1m_seg.
#include "common/reading_writer.h"

#include <algorithm>
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
#include "common/pg/pool.h"
#include "common/pg/raw_days.h"
#include "common/pg/stores.h"
#include "common/rollup.h"
#include "common/segment/raw_segment.h"
#include "common/status_macros.h"

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

int64_t HourOf(int64_t ns) { return ns - ((ns % kNsPerHour) + kNsPerHour) % kNsPerHour; }

// A Postgres array literal of integers.
template <typename T>
std::string PgIntArray(const std::vector<T>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out.push_back(',');
    AppendNumber(&out, v[i]);
  }
  out.push_back('}');
  return out;
}

// A raw row as the raw table's columns give it (series_id, ts, value_double,
// value_text, value_bool, status_code).
RawRow RawRowFrom(const pqxx::row& row) {
  RawRow r;
  r.series_id = static_cast<int32_t>(PgInt64(row[0]));
  r.ts_ns = PgInt64(row[1]);
  if (!row[2].is_null()) {
    r.kind = ValueKind::kDouble;
    r.d = PgDouble(row[2]);
  } else if (!row[3].is_null()) {
    r.kind = ValueKind::kString;
    r.s = row[3].as<std::string>();
  } else {
    r.kind = ValueKind::kBool;
    r.b = row[4].as<bool>();
  }
  r.status = row[5].is_null() ? 0 : static_cast<int32_t>(PgInt64(row[5]));
  return r;
}

// A bytea value as a COPY text field ("\\x" then hex: COPY unescapes the
// backslash, bytea's input reads the hex).
void AppendCopyBytea(std::string* out, const std::string& bytes) {
  static const char kHex[] = "0123456789abcdef";
  out->append("\\\\x");
  for (unsigned char c : bytes) {
    out->push_back(kHex[c >> 4]);
    out->push_back(kHex[c & 15]);
  }
}

// Claims of the hours a batch writes to, locked FOR SHARE until the commit
// (see raw_compactions in db/migrations/0008_raw_segments.sql): a packing
// step of one of them waits for this transaction, and this transaction for
// a step under way. Returns the claimed hours; those retention dropped
// (0012_retention.sql) go to `dropped` instead.
std::set<int64_t> LockClaimedHours(pqxx::transaction_base& tx, const std::vector<RawRow>& rows,
                                   std::set<int64_t>* dropped) {
  std::set<int64_t> hours;
  for (const RawRow& r : rows) hours.insert(HourOf(r.ts_ns));
  std::set<int64_t> claimed;
  pqxx::result r = tx.exec_params(
      "SELECT hour, state = 'dropped' FROM raw_compactions WHERE hour = ANY($1::bigint[])"
      " ORDER BY hour FOR SHARE",
      PgIntArray(std::vector<int64_t>(hours.begin(), hours.end())));
  for (const auto& row : r) {
    (row[1].as<bool>() ? dropped : &claimed)->insert(PgInt64(row[0]));
  }
  return claimed;
}

// Keys of `rows` in claimed hours that their segments already hold.
absl::StatusOr<std::set<std::pair<int32_t, int64_t>>> KeysInSegments(
    pqxx::transaction_base& tx, const std::vector<RawRow>& rows, const std::set<int64_t>& claimed) {
  std::set<std::pair<int32_t, int64_t>> keys;
  std::vector<int32_t> series;
  std::vector<int64_t> hours;
  for (const RawRow& r : rows) {
    const int64_t h = HourOf(r.ts_ns);
    if (!claimed.count(h)) continue;
    if (!series.empty() && series.back() == r.series_id && hours.back() == h) continue;
    series.push_back(r.series_id);
    hours.push_back(h);
  }
  if (series.empty()) return keys;
  pqxx::result segs = tx.exec_params(
      "SELECT g.series_id, g.hour, g.data FROM unnest($1::int[], $2::bigint[]) AS k(series_id, "
      "hour)"
      " JOIN raw_readings_seg g ON g.series_id = k.series_id AND g.hour = k.hour",
      PgIntArray(series), PgIntArray(hours));
  std::vector<int64_t> ts;
  for (const auto& row : segs) {
    const auto id = static_cast<int32_t>(PgInt64(row[0]));
    const int64_t hour = PgInt64(row[1]);
    ts.clear();
    absl::Status st = segment::DecodeRawSegmentTimestamps(hour, PgBytea(row[2]), &ts);
    if (!st.ok()) {
      return absl::DataLossError(
          absl::StrCat("segment of series ", id, " hour ", hour, ": ", st.message()));
    }
    for (int64_t t : ts) keys.emplace(id, t);
  }
  return keys;
}

class PgReadingWriter final : public ReadingWriter {
 public:
  explicit PgReadingWriter(PgPool* pool) : pool_(pool) {}

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
    ProbeRuns runs = RunsOf(*batch);
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
        // Readings of packed hours are looked up in their segments too.
        std::set<int64_t> dropped;
        const std::set<int64_t> claimed = LockClaimedHours(tx, *batch, &dropped);
        // Readings of hours retention dropped: older than their tenant's
        // retention (ingest refuses those; these were accepted before the
        // drop and reached the store after it). Not stored, counted.
        std::vector<RawRow> kept;
        if (!dropped.empty()) {
          for (const RawRow& r : *batch) {
            if (dropped.count(HourOf(r.ts_ns))) {
              ++result.expired;
            } else {
              kept.push_back(r);
            }
          }
          batch = &kept;
          runs = RunsOf(*batch);
        }
        std::vector<RawRow> fresh_rows;
        const std::vector<RawRow>* fresh = batch;
        pqxx::result stored = tx.exec_params(kStoredKeysSql, runs.series, runs.lo, runs.hi);
        std::set<std::pair<int32_t, int64_t>> keys;
        if (!claimed.empty()) {
          auto in_segments = KeysInSegments(tx, *batch, claimed);
          if (!in_segments.ok()) return in_segments.status();
          keys = std::move(*in_segments);
        }
        if (!stored.empty() || !keys.empty()) {
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
        if (!result.bulk && !fresh->empty()) {
          // (Only the readings the probe did not find: those in segments
          // have no row to conflict with.)
          CopyRawText(tx, "stage_raw", RawCopyText(*fresh));
          result.inserted = PgInt64(tx.exec(kUpsertRawSql)[0][0]);
        }
        tx.exec(MergeRollupsSql());
        // New rows in packed hours (late data): the compactor packs them.
        std::set<int64_t> late;
        for (const RawRow& r : *fresh) {
          const int64_t h = HourOf(r.ts_ns);
          if (claimed.count(h)) late.insert(h);
        }
        if (result.inserted > 0 && !late.empty()) {
          tx.exec_params(
              "INSERT INTO raw_late_hours (hour) SELECT unnest($1::bigint[])"
              " ON CONFLICT (hour) DO NOTHING",
              PgIntArray(std::vector<int64_t>(late.begin(), late.end())));
        }
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
    result.duplicates = static_cast<int64_t>(rows.size()) - result.inserted - result.expired;
    return result;
  }

  absl::StatusOr<std::map<int32_t, int64_t>> AppliedOffsets(const std::string& topic) override {
    std::map<int32_t, int64_t> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      pqxx::result r = tx.exec_params(
          "SELECT partition, next_offset FROM writer_offsets WHERE topic = $1", topic);
      for (const auto& row : r) out[row[0].as<int32_t>()] = row[1].as<int64_t>();
      return absl::OkStatus();
    }));
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
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      pqxx::result r = tx.exec_params(
          "SELECT partition, from_offset, to_offset FROM writer_log_gaps"
          " WHERE topic = $1 AND kind = 'dropped'",
          topic);
      for (const auto& row : r) {
        out[row[0].as<int32_t>()].emplace_back(row[1].as<int64_t>(), row[2].as<int64_t>());
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<std::optional<int64_t>> FreshThrough(const std::string& topic) override {
    std::optional<int64_t> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::result r = PgReadPrepared(
          c, "fresh_through", "SELECT min(fresh_through_ns) FROM writer_freshness WHERE topic = $1",
          topic);
      if (!r.empty() && !r[0][0].is_null()) out = PgInt64(r[0][0]);
      return absl::OkStatus();
    }));
    return out;
  }

  absl::Status RecordFreshness(const std::string& topic,
                               const std::map<int32_t, int64_t>& fresh_through_ns) override {
    if (fresh_through_ns.empty()) return absl::OkStatus();
    std::vector<int32_t> parts;
    std::vector<int64_t> times;
    for (const auto& [p, t] : fresh_through_ns) {
      parts.push_back(p);
      times.push_back(t);
    }
    return pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params(
          "INSERT INTO writer_freshness AS f (topic, partition, fresh_through_ns)"
          " SELECT $1, p, t FROM unnest($2::int[], $3::bigint[]) AS x(p, t)"
          " ON CONFLICT (topic, partition) DO UPDATE SET"
          " fresh_through_ns = greatest(f.fresh_through_ns, EXCLUDED.fresh_through_ns),"
          " updated_at = now()",
          topic, PgIntArray(parts), PgIntArray(times));
      tx.commit();
      return absl::OkStatus();
    });
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
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      // agg_1h_sensor has one row per (tenant, sensor, hour): a small table
      // that lists every hour holding rollups.
      pqxx::result r = PgReadPrepared(
          c, "uncompacted_rollup_hours",
          "SELECT DISTINCT a.bucket FROM agg_1h_sensor a WHERE a.bucket < $1"
          " AND NOT EXISTS (SELECT 1 FROM rollup_compactions c WHERE c.hour = a.bucket)"
          " ORDER BY 1 LIMIT $2",
          before_ns, limit);
      for (const auto& row : r) hours.push_back(PgInt64(row[0]));
      return absl::OkStatus();
    }));
    return hours;
  }

  absl::StatusOr<int64_t> CompactRollupHour(int64_t hour_ns) override {
    int64_t moved = 0;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
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
    }));
    return moved;
  }

  absl::StatusOr<std::vector<int64_t>> UnpackedRawHours(int64_t before_ns, int limit) override {
    std::vector<int64_t> hours;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      // Every hour of every day partition (an hour without rows is claimed
      // and done in one step), the interrupted ones, and those with late rows.
      pqxx::result r = PgReadPrepared(
          c, "unpacked_raw_hours",
          std::string(kRawDaysCte) +
              " SELECT h FROM ("
              "  SELECT generate_series(lo, lo + 23 * 3600000000000, 3600000000000) AS h FROM days"
              "  WHERE lo IS NOT NULL) x"
              " WHERE h < $1 AND NOT EXISTS (SELECT 1 FROM raw_compactions c WHERE c.hour = x.h)"
              " UNION SELECT hour FROM raw_compactions WHERE state = 'packing' AND hour < $1"
              " UNION SELECT hour FROM raw_late_hours WHERE hour < $1"
              " ORDER BY 1 LIMIT $2",
          before_ns, limit);
      for (const auto& row : r) hours.push_back(PgInt64(row[0]));
      return absl::OkStatus();
    }));
    return hours;
  }

  absl::StatusOr<RawPackResult> PackRawHour(int64_t hour_ns, int64_t step_readings) override {
    RawPackResult result;
    const int64_t end_ns = hour_ns + kNsPerHour;
    RETURN_IF_ERROR(EnsurePartitions(hour_ns, hour_ns));
    // 1. The claim. A new one is committed first; then the packer waits for
    // the writer transactions that began before it (they took their locks
    // without seeing it), so from the first step on every writer of the hour
    // holds its claim FOR SHARE.
    bool fresh_claim = false;
    std::string claimed_at;  // a moment after the claim's commit
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      fresh_claim = !tx.exec_params(
                           "INSERT INTO raw_compactions (hour, state) VALUES ($1, 'packing')"
                           " ON CONFLICT (hour) DO NOTHING RETURNING 1",
                           hour_ns)
                         .empty();
      if (!fresh_claim &&
          tx.exec_params("SELECT state = 'dropped' FROM raw_compactions WHERE hour = $1",
                         hour_ns)[0][0]
              .as<bool>()) {
        return absl::FailedPreconditionError(
            absl::StrCat("raw hour ", hour_ns, " was dropped by retention: nothing to pack"));
      }
      tx.commit();
      pqxx::nontransaction after(c);
      claimed_at = after.exec("SELECT clock_timestamp()::text")[0][0].as<std::string>();
      return absl::OkStatus();
    }));
    if (fresh_claim) {
      const absl::Time start = absl::Now();
      bool clear = false;
      while (!clear) {
        RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
          pqxx::nontransaction tx(c);
          clear = PgInt64(tx.exec_params(
                      "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                      " WHERE l.relation = 'raw_compactions'::regclass AND l.granted"
                      "   AND a.pid <> pg_backend_pid()"
                      "   AND a.xact_start < $1::timestamptz",
                      claimed_at)[0][0]) == 0;
          return absl::OkStatus();
        }));
        if (clear) break;
        if (absl::Now() - start > absl::Seconds(60)) {
          return absl::UnavailableError(absl::StrCat(
              "raw hour ", hour_ns, ": writers from before its claim still run after 60 s"));
        }
        absl::SleepFor(absl::Milliseconds(5));
      }
      result.claim_wait_ns = absl::ToInt64Nanoseconds(absl::Now() - start);
    }
    // 2. The series with rows in the hour: one index probe per series.
    std::vector<int32_t> series;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::result r = PgReadPrepared(
          c, "raw_hour_series",
          "SELECT s.id FROM series s CROSS JOIN LATERAL (SELECT 1 FROM raw_readings r"
          "  WHERE r.series_id = s.id AND r.ts >= $1 AND r.ts < $2 LIMIT 1) x ORDER BY s.id",
          hour_ns, end_ns);
      for (const auto& row : r) series.push_back(static_cast<int32_t>(PgInt64(row[0])));
      return absl::OkStatus();
    }));
    // 3. Steps of a few series each, sized from the readings per series seen.
    size_t next = 0;
    double per_series = 3600;
    bool first = true;
    do {
      const auto take = static_cast<size_t>(std::clamp<double>(
          static_cast<double>(step_readings) / std::max(per_series, 1.0), 1.0, 4096.0));
      const std::vector<int32_t> ids(
          series.begin() + static_cast<std::ptrdiff_t>(next),
          series.begin() + static_cast<std::ptrdiff_t>(std::min(series.size(), next + take)));
      next += ids.size();
      const bool last = next >= series.size();
      int64_t moved = 0, written = 0;
      RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
        moved = written = 0;
        pqxx::work tx(c);
        tx.exec(
            "SET LOCAL synchronous_commit = off;"
            "SET LOCAL client_min_messages = warning;"
            "CREATE TEMP TABLE IF NOT EXISTS stage_raw_seg (series_id integer, hour bigint,"
            " n integer, first_ts bigint, last_ts bigint, data bytea) ON COMMIT DELETE ROWS");
        // Waits for the writers of the hour; they wait for this step.
        tx.exec_params("SELECT 1 FROM raw_compactions WHERE hour = $1 FOR UPDATE", hour_ns);
        if (first) {
          // A repack: 'packing' again until its last step, so that a packer
          // killed in between leaves the hour listed (the late mark goes now).
          tx.exec_params("UPDATE raw_compactions SET state = 'packing' WHERE hour = $1", hour_ns);
          tx.exec_params("DELETE FROM raw_late_hours WHERE hour = $1", hour_ns);
        }
        std::map<int32_t, std::vector<RawRow>> by_series;
        if (!ids.empty()) {
          const std::string id_array = PgIntArray(ids);
          pqxx::result rows = tx.exec_params(
              "DELETE FROM raw_readings WHERE series_id = ANY($1::int[]) AND ts >= $2 AND ts < $3"
              " RETURNING series_id, ts, value_double, value_text, value_bool, status_code",
              id_array, hour_ns, end_ns);
          for (const auto& row : rows) {
            RawRow r = RawRowFrom(row);
            by_series[r.series_id].push_back(std::move(r));
          }
          moved = static_cast<int64_t>(rows.size());
          pqxx::result segs = tx.exec_params(
              "SELECT series_id, data FROM raw_readings_seg"
              " WHERE series_id = ANY($1::int[]) AND hour = $2",
              id_array, hour_ns);
          for (const auto& row : segs) {
            const auto id = static_cast<int32_t>(PgInt64(row[0]));
            std::vector<RawRow>& v = by_series[id];
            absl::Status st = segment::DecodeRawSegment(id, hour_ns, PgBytea(row[1]), &v);
            if (!st.ok()) {
              return absl::DataLossError(
                  absl::StrCat("segment of series ", id, " hour ", hour_ns, ": ", st.message()));
            }
          }
          std::string copy;
          for (auto& [id, v] : by_series) {
            std::stable_sort(v.begin(), v.end(),
                             [](const RawRow& a, const RawRow& b) { return a.ts_ns < b.ts_ns; });
            // A reading both a row and in the segment cannot happen (writers
            // look in the segments); if it did, one copy is kept.
            v.erase(
                std::unique(v.begin(), v.end(),
                            [](const RawRow& a, const RawRow& b) { return a.ts_ns == b.ts_ns; }),
                v.end());
            auto data = segment::EncodeRawSegment(hour_ns, v);
            if (!data.ok()) return data.status();
            if (!copy.empty()) copy.push_back('\n');
            AppendNumber(&copy, id);
            copy.push_back('\t');
            AppendNumber(&copy, hour_ns);
            copy.push_back('\t');
            AppendNumber(&copy, v.size());
            copy.push_back('\t');
            AppendNumber(&copy, v.front().ts_ns);
            copy.push_back('\t');
            AppendNumber(&copy, v.back().ts_ns);
            copy.push_back('\t');
            AppendCopyBytea(&copy, *data);
            ++written;
          }
          if (!copy.empty()) {
            CopyRawText(tx, "stage_raw_seg", copy);
            tx.exec(
                "INSERT INTO raw_readings_seg (series_id, hour, n, first_ts, last_ts, data)"
                " SELECT series_id, hour, n, first_ts, last_ts, data FROM stage_raw_seg"
                " ON CONFLICT (series_id, hour) DO UPDATE SET n = EXCLUDED.n,"
                " first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts, data = EXCLUDED.data");
          }
        }
        tx.exec_params(
            "UPDATE raw_compactions SET readings = readings + $2,"
            " state = CASE WHEN $3 THEN 'packed' ELSE state END,"
            " packs = packs + CASE WHEN $3 THEN 1 ELSE 0 END,"
            " packed_at = CASE WHEN $3 THEN now() ELSE packed_at END WHERE hour = $1",
            hour_ns, moved, last);
        tx.commit();
        return absl::OkStatus();
      }));
      first = false;
      result.readings += moved;
      result.segments += written;
      ++result.steps;
      if (!ids.empty() && moved > 0) {
        per_series = static_cast<double>(moved) / static_cast<double>(ids.size());
      }
    } while (next < series.size());
    return result;
  }

  absl::StatusOr<int64_t> TruncatePackedDays(int64_t before_ns) override {
    std::vector<std::pair<std::string, int64_t>> days;  // partition, bytes
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::result r = PgReadPrepared(
          c, "packed_raw_days",
          std::string(kRawDaysCte) +
              " SELECT relname, pg_total_relation_size(oid) FROM days"
              // (An empty partition with its primary key takes 8-16 KB; VACUUM
              // truncates the heap's empty tail but not the index.)
              " WHERE lo IS NOT NULL AND lo + 86400000000000 <= $1"
              "   AND pg_total_relation_size(oid) > 65536"
              "   AND (SELECT count(*) FROM raw_compactions c WHERE c.state = 'packed'"
              "        AND c.hour >= lo AND c.hour < lo + 86400000000000) = 24"
              "   AND NOT EXISTS (SELECT 1 FROM raw_late_hours l"
              "                   WHERE l.hour >= lo AND l.hour < lo + 86400000000000)"
              " ORDER BY lo",
          before_ns);
      for (const auto& row : r) days.emplace_back(row[0].as<std::string>(), PgInt64(row[1]));
      return absl::OkStatus();
    }));
    int64_t freed = 0;
    for (const auto& [table, bytes] : days) {
      bool truncated = false;
      absl::Status st = pool_->Run([&](pqxx::connection& c) {
        pqxx::work tx(c);
        // Writers of a late reading and readers wait for this lock; it is
        // given up rather than queued behind a long reader.
        tx.exec("SET LOCAL lock_timeout = '50ms'");
        tx.exec(absl::StrCat("LOCK TABLE ", tx.quote_name(table), " IN ACCESS EXCLUSIVE MODE"));
        // Under the lock: no row arrived since the listing.
        if (tx.exec(absl::StrCat("SELECT 1 FROM ", tx.quote_name(table), " LIMIT 1")).empty()) {
          tx.exec(absl::StrCat("TRUNCATE ", tx.quote_name(table)));
          truncated = true;
        }
        tx.commit();
        return absl::OkStatus();
      });
      if (!st.ok()) {
        // 55P03 (lock_not_available) maps to UNAVAILABLE: try next time.
        if (st.code() == absl::StatusCode::kUnavailable) continue;
        return st;
      }
      if (truncated) freed += bytes;
    }
    return freed;
  }

  absl::StatusOr<int64_t> VacuumRollups() override {
    int64_t dead = 0;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);  // VACUUM cannot run in a transaction block
      tx.exec("VACUUM agg_1m");
      dead =
          PgInt64(tx.exec("SELECT coalesce(n_dead_tup, 0) FROM pg_stat_user_tables"
                          " WHERE relid = 'agg_1m'::regclass")[0][0]);
      return absl::OkStatus();
    }));
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
      // The day of raw rows and the day of their segments.
      const std::string name = RawDayTable(day * kNsPerDay);
      const std::string seg_name = RawSegDayTable(day * kNsPerDay);
      absl::Status st = pool_->Run([&](pqxx::connection& c) {
        pqxx::work tx(c);
        // A day retention dropped is not made again for a late reading (which
        // Apply discards): its 24 hours are claimed 'dropped'.
        if (PgInt64(tx.exec_params("SELECT count(*) FROM raw_compactions WHERE state = 'dropped'"
                                   " AND hour >= $1 AND hour < $2",
                                   day * kNsPerDay, (day + 1) * kNsPerDay)[0][0]) == 24) {
          return absl::OkStatus();
        }
        for (const auto& [table, parent] :
             {std::make_pair(name, "raw_readings"), std::make_pair(seg_name, "raw_readings_seg")}) {
          pqxx::result exists = tx.exec_params("SELECT to_regclass($1) IS NOT NULL", table);
          if (!exists[0][0].as<bool>()) {
            tx.exec(absl::StrCat("CREATE TABLE IF NOT EXISTS ", table, " PARTITION OF ", parent,
                                 " FOR VALUES FROM (", day * kNsPerDay, ") TO (",
                                 (day + 1) * kNsPerDay, ")"));
          }
        }
        tx.commit();
        return absl::OkStatus();
      });
      if (!st.ok() && st.code() != absl::StatusCode::kAlreadyExists) {
        // Another writer may have created it concurrently: check again.
        bool now_exists = false;
        absl::Status again = pool_->Run([&](pqxx::connection& c) {
          pqxx::read_transaction tx(c);
          now_exists = tx.exec_params(
                             "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2)"
                             " IS NOT NULL",
                             name, seg_name)[0][0]
                           .as<bool>();
          return absl::OkStatus();
        });
        if (!again.ok() || !now_exists) return st;
      }
      absl::MutexLock lock(&mu_);
      known_days_.insert(day);
    }
    return absl::OkStatus();
  }

 private:
  PgPool* pool_;
  absl::Mutex mu_;
  std::set<int64_t> known_days_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<ReadingWriter> NewPgReadingWriter(PgPool* pool) {
  return std::make_unique<PgReadingWriter>(pool);
}

}  // namespace telemetry
