// telemetry-bench-pg: the storage step's own ceiling. Generates the same
// narrow rows the writer stores (series id, ns timestamp, double) with a
// fraction of exact duplicates, and loads them straight into Postgres the way
// the writer does at its core — COPY into a temporary stage, then
// INSERT … ON CONFLICT DO NOTHING into a day-partitioned table keyed
// (series_id, ts) — without Kafka, gRPC, rollups or the cache.
//
//   telemetry-bench-pg --pg $TELEMETRY_PG_PRIMARY --series 8000 --rows 2000000 --batch 10000
#include <charconv>
#include <chrono>
#include <cstdio>
#include <pqxx/pqxx>
#include <random>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/pg/pool.h"

ABSL_FLAG(std::string, pg, "", "Postgres connection string");
ABSL_FLAG(int, series, 8000, "Distinct series");
ABSL_FLAG(int64_t, rows, 2'000'000, "Unique rows");
ABSL_FLAG(double, duplicates, 0.01, "Fraction of exact duplicates added");
ABSL_FLAG(int, batch, 10'000, "Rows per transaction");

int main(int argc, char** argv) {
  telemetry::InitFlags(argc, argv, "telemetry-bench-pg: bare COPY + INSERT ON CONFLICT ceiling");
  pqxx::connection c(absl::GetFlag(FLAGS_pg));
  // The same commit mode as the writer (see reading_store_pg.cc).
  c.set_variable("synchronous_commit", "off");
  const int64_t day = 86'400'000'000'000;
  const int64_t start = (std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                                 .count() /
                             day -
                         1) *
                        day;
  {
    pqxx::work tx(c);
    tx.exec("DROP TABLE IF EXISTS bench_raw");
    tx.exec(
        "CREATE TABLE bench_raw (series_id integer NOT NULL, ts bigint NOT NULL,"
        " value_double double precision, value_text text, value_bool boolean,"
        " status_code integer, PRIMARY KEY (series_id, ts)) PARTITION BY RANGE (ts)");
    for (int d = 0; d < 3; ++d) {
      tx.exec(absl::StrCat("CREATE TABLE bench_raw_", d,
                           " PARTITION OF bench_raw FOR VALUES FROM (", start + d * day, ") TO (",
                           start + (d + 1) * day, ")"));
    }
    tx.exec(
        "CREATE TEMP TABLE stage_raw (series_id integer, ts bigint, value_double double precision,"
        " value_text text, value_bool boolean, status_code integer) ON COMMIT DELETE ROWS");
    tx.commit();
  }
  const int series = absl::GetFlag(FLAGS_series);
  const int64_t rows = absl::GetFlag(FLAGS_rows);
  const int batch = absl::GetFlag(FLAGS_batch);
  const double dup = absl::GetFlag(FLAGS_duplicates);
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> coin(0, 1);
  int64_t produced = 0, sent = 0, inserted = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (produced < rows) {
    std::string buf;
    int n = 0;
    for (; n < batch && produced < rows; ++n) {
      int64_t k = produced;
      if (produced > 0 && coin(rng) < dup)
        k = static_cast<int64_t>(rng() % static_cast<uint64_t>(produced));
      else
        ++produced;
      int32_t sid = static_cast<int32_t>(k % series) + 1;
      int64_t ts = start + (k / series) * 1'000'000'000;
      char num[64];
      buf += std::to_string(sid);
      buf += '\t';
      buf += std::to_string(ts);
      buf += '\t';
      auto r = std::to_chars(num, num + sizeof(num), 20.0 + static_cast<double>(k % 97) / 7.0);
      buf.append(num, r.ptr);
      buf += "\t\\N\t\\N\t\\N\n";
    }
    buf.pop_back();
    sent += n;
    pqxx::work tx(c);
    telemetry::CopyRawText(tx, "stage_raw", buf);
    inserted += tx.exec(
                      "INSERT INTO bench_raw SELECT * FROM stage_raw"
                      " ON CONFLICT (series_id, ts) DO NOTHING")
                    .affected_rows();
    tx.commit();
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"rows_sent\":%lld,\"rows_inserted\":%lld,\"seconds\":%.3f,\"rows_per_s\":%.0f}\n",
              static_cast<long long>(sent), static_cast<long long>(inserted), s,
              static_cast<double>(sent) / s);
  pqxx::work tx(c);
  tx.exec("DROP TABLE bench_raw");
  tx.commit();
  return 0;
}
