// ArchiveStore on Postgres (common/archive_store.h; migration 0011): the
// due hours from raw_compactions / raw_late_hours / archive_hours, a tenant's
// hour from raw_readings_seg decoded here, the manifest in archive_exports
// and archive_files.
#include "common/archive_store.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/pg/pool.h"
#include "common/pg/raw_days.h"
#include "common/pg/stores.h"
#include "common/segment/raw_segment.h"
#include "common/status_macros.h"

namespace telemetry {
namespace {

// Series per statement of ReadTenantHour: bounds the memory of one page
// (a packed 1 Hz hour is ~18 KB a series, twice that as hex on the wire).
constexpr int kSeriesPerPage = 256;

// (device, sensor, unit) in byte order, the archive files' sort order: the
// database's collation may order names differently.
constexpr char kTenantHourSql[] = R"sql(
  SELECT d.name, s.sensor, s.unit, p.name, s.labels::text, g.data, g.series_id
  FROM series s
  JOIN devices d ON d.id = s.device_id
  JOIN projects p ON p.id = s.project_id
  JOIN raw_readings_seg g ON g.series_id = s.id AND g.hour = $2
  WHERE s.tenant_id = $1
    AND ($3 OR (d.name COLLATE "C", s.sensor COLLATE "C", s.unit COLLATE "C")
               > ($4::text COLLATE "C", $5::text COLLATE "C", $6::text COLLATE "C"))
  ORDER BY d.name COLLATE "C", s.sensor COLLATE "C", s.unit COLLATE "C"
  LIMIT $7)sql";

constexpr char kExportColumns[] =
    "tenant_id, hour, version, source_packs, state, readings, bytes,"
    " (extract(epoch FROM started_at) * 1e9)::bigint,"
    " coalesce((extract(epoch FROM finished_at) * 1e9)::bigint, 0)";

ArchiveExport ExportFrom(const pqxx::row& r) {
  ArchiveExport e;
  e.tenant_id = PgInt64(r[0]);
  e.hour_ns = PgInt64(r[1]);
  e.version = static_cast<int32_t>(PgInt64(r[2]));
  e.source_packs = static_cast<int32_t>(PgInt64(r[3]));
  e.state = r[4].as<std::string>();
  e.readings = PgInt64(r[5]);
  e.bytes = PgInt64(r[6]);
  e.started_at_ns = PgInt64(r[7]);
  e.finished_at_ns = PgInt64(r[8]);
  return e;
}

constexpr int64_t kHourNs = 3'600'000'000'000LL;

// What retention decides on for one day, read in `tx` (under the drop's
// locks, or in a plain read).
RetentionDay ReadRetentionDay(pqxx::transaction_base& tx, int64_t day_ns) {
  RetentionDay d;
  d.day_ns = day_ns;
  const int64_t end = day_ns + kRawDayNs;
  std::map<int64_t, RetentionHour> hours;
  pqxx::result claims = tx.exec_params(
      "SELECT c.hour, c.state, c.packs,"
      "       EXISTS (SELECT 1 FROM raw_late_hours l WHERE l.hour = c.hour)"
      " FROM raw_compactions c WHERE c.hour >= $1 AND c.hour < $2",
      day_ns, end);
  for (const auto& row : claims) {
    RetentionHour& h = hours[PgInt64(row[0])];
    h.hour_ns = PgInt64(row[0]);
    h.state = row[1].as<std::string>();
    h.packs = static_cast<int32_t>(PgInt64(row[2]));
    h.late_pending = row[3].as<bool>();
  }
  // Rows not packed: one probe per hour.
  pqxx::result rows = tx.exec_params(
      "SELECT h FROM generate_series($1::bigint, $2::bigint - 1, 3600000000000::bigint) h"
      " WHERE EXISTS (SELECT 1 FROM raw_readings r WHERE r.ts >= h AND r.ts < h + 3600000000000)",
      day_ns, end);
  for (const auto& row : rows) {
    RetentionHour& h = hours[PgInt64(row[0])];
    h.hour_ns = PgInt64(row[0]);
    h.raw_rows = true;
  }
  for (auto& [hour, h] : hours) d.hours.push_back(h);
  pqxx::result th = tx.exec_params(
      "SELECT s.tenant_id, g.hour, count(*), sum(g.n), coalesce(max(e.source_packs), -1)"
      " FROM raw_readings_seg g JOIN series s ON s.id = g.series_id"
      " LEFT JOIN archive_exports e ON e.tenant_id = s.tenant_id AND e.hour = g.hour"
      "   AND e.state = 'current'"
      " WHERE g.hour >= $1 AND g.hour < $2"
      " GROUP BY s.tenant_id, g.hour ORDER BY g.hour, s.tenant_id",
      day_ns, end);
  for (const auto& row : th) {
    d.tenant_hours.push_back(
        {PgInt64(row[0]), PgInt64(row[1]), static_cast<int32_t>(PgInt64(row[4]))});
    d.segments += PgInt64(row[2]);
    d.readings += PgInt64(row[3]);
  }
  return d;
}

class PgArchiveStore final : public ArchiveStore {
 public:
  explicit PgArchiveStore(PgPool* pool) : pool_(pool) {}

  absl::StatusOr<std::vector<DueHour>> DueHours(int64_t from_ns, int64_t before_ns,
                                                int limit) override {
    std::vector<DueHour> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      out.clear();
      pqxx::result r =
          PgReadPrepared(c, "archive_due_hours",
                         "SELECT c.hour, c.packs FROM raw_compactions c"
                         " WHERE c.state = 'packed' AND c.hour >= $3 AND c.hour < $1"
                         "   AND NOT EXISTS (SELECT 1 FROM raw_late_hours l WHERE l.hour = c.hour)"
                         "   AND NOT EXISTS (SELECT 1 FROM archive_hours a"
                         "                   WHERE a.hour = c.hour AND a.packs >= c.packs)"
                         " ORDER BY c.hour LIMIT $2",
                         before_ns, limit, from_ns);
      for (const auto& row : r) {
        out.push_back({PgInt64(row[0]), static_cast<int32_t>(PgInt64(row[1]))});
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<int32_t> PackedVersion(int64_t hour_ns) override {
    int32_t packs = -1;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::result r = PgReadPrepared(
          c, "archive_packed_version",
          "SELECT c.packs FROM raw_compactions c WHERE c.hour = $1 AND c.state = 'packed'"
          " AND NOT EXISTS (SELECT 1 FROM raw_late_hours l WHERE l.hour = c.hour)",
          hour_ns);
      packs = r.empty() ? -1 : static_cast<int32_t>(PgInt64(r[0][0]));
      return absl::OkStatus();
    }));
    if (packs < 0) {
      return absl::NotFoundError(
          absl::StrCat("hour ", hour_ns,
                       " is not packed (still open, within the packing grace, or with late "
                       "readings waiting to be packed): nothing to archive yet"));
    }
    return packs;
  }

  absl::StatusOr<std::vector<int64_t>> TenantsInHour(int64_t hour_ns) override {
    std::vector<int64_t> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      out.clear();
      pqxx::result r = PgReadPrepared(
          c, "archive_tenants_in_hour",
          "SELECT DISTINCT s.tenant_id FROM raw_readings_seg g JOIN series s ON s.id = g.series_id"
          " WHERE g.hour = $1 ORDER BY 1",
          hour_ns);
      for (const auto& row : r) out.push_back(PgInt64(row[0]));
      return absl::OkStatus();
    }));
    return out;
  }

  absl::Status ReadTenantHour(
      int64_t tenant_id, int64_t hour_ns,
      const std::function<absl::Status(const SeriesNames&, std::vector<RawRow>&&)>& fn) override {
    bool first = true;
    SeriesNames after;
    for (;;) {
      pqxx::result page;
      RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
        page = PgReadPrepared(c, "archive_tenant_hour", kTenantHourSql, tenant_id, hour_ns, first,
                              after.device, after.sensor, after.unit, kSeriesPerPage);
        return absl::OkStatus();
      }));
      for (const auto& row : page) {
        SeriesNames names;
        names.device = row[0].as<std::string>();
        names.sensor = row[1].as<std::string>();
        names.unit = row[2].as<std::string>();
        names.project = row[3].as<std::string>();
        names.labels_json = row[4].as<std::string>();
        std::vector<RawRow> readings;
        const auto series_id = static_cast<int32_t>(PgInt64(row[6]));
        absl::Status st;
        try {
          st = segment::DecodeRawSegment(series_id, hour_ns, PgBytea(row[5]), &readings);
        } catch (const std::exception& e) {
          st = absl::DataLossError(e.what());
        }
        if (!st.ok()) {
          return absl::DataLossError(
              absl::StrCat("segment of series ", series_id, " hour ", hour_ns, ": ", st.message()));
        }
        RETURN_IF_ERROR(fn(names, std::move(readings)));
        after = std::move(names);
      }
      if (static_cast<int>(page.size()) < kSeriesPerPage) return absl::OkStatus();
      first = false;
    }
  }

  absl::StatusOr<ArchiveExport> CurrentExport(int64_t tenant_id, int64_t hour_ns) override {
    std::vector<ArchiveExport> found;
    RETURN_IF_ERROR(Exports(tenant_id, hour_ns, hour_ns + 1, /*current_only=*/true, &found));
    if (found.empty()) {
      return absl::NotFoundError(
          absl::StrCat("tenant ", tenant_id, " has no archived export of hour ", hour_ns));
    }
    return found.front();
  }

  absl::StatusOr<int32_t> BeginExport(int64_t tenant_id, int64_t hour_ns, int32_t packs) override {
    int32_t version = 0;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      // One exporter of a (tenant, hour) at a time; others wait here.
      tx.exec_params("SELECT pg_advisory_xact_lock($1, $2)", static_cast<int32_t>(tenant_id),
                     static_cast<int32_t>(hour_ns / 3'600'000'000'000LL));
      pqxx::result w = tx.exec_params(
          "UPDATE archive_exports SET source_packs = $3, started_at = now()"
          " WHERE tenant_id = $1 AND hour = $2 AND state = 'writing' RETURNING version",
          tenant_id, hour_ns, packs);
      if (!w.empty()) {
        version = static_cast<int32_t>(PgInt64(w[0][0]));
      } else {
        pqxx::result n = tx.exec_params(
            "INSERT INTO archive_exports (tenant_id, hour, version, source_packs, state)"
            " SELECT $1, $2, coalesce(max(version), 0) + 1, $3, 'writing' FROM archive_exports"
            " WHERE tenant_id = $1 AND hour = $2 RETURNING version",
            tenant_id, hour_ns, packs);
        version = static_cast<int32_t>(PgInt64(n[0][0]));
      }
      tx.commit();
      return absl::OkStatus();
    }));
    return version;
  }

  absl::Status CommitExport(int64_t tenant_id, int64_t hour_ns, int32_t version,
                            const std::vector<ArchiveFile>& files) override {
    return pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      pqxx::result w = tx.exec_params(
          "SELECT state FROM archive_exports WHERE tenant_id = $1 AND hour = $2 AND version = $3"
          " FOR UPDATE",
          tenant_id, hour_ns, version);
      if (w.empty()) {
        return absl::NotFoundError(
            absl::StrCat("no export ", tenant_id, "/", hour_ns, "/", version));
      }
      if (w[0][0].as<std::string>() != "writing") {
        return absl::FailedPreconditionError(
            absl::StrCat("export ", tenant_id, "/", hour_ns, "/", version, " is ",
                         w[0][0].as<std::string>(), ", not writing"));
      }
      tx.exec_params(
          "DELETE FROM archive_files WHERE tenant_id = $1 AND hour = $2 AND version = $3",
          tenant_id, hour_ns, version);
      int64_t readings = 0, bytes = 0;
      for (const ArchiveFile& f : files) {
        tx.exec_params(
            "INSERT INTO archive_files (tenant_id, hour, version, path, kind, readings, bytes,"
            " sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            tenant_id, hour_ns, version, f.path, f.kind, f.readings, f.bytes, f.sha256_hex);
        if (f.kind == "readings") readings += f.readings;
        bytes += f.bytes;
      }
      tx.exec_params(
          "UPDATE archive_exports SET state = 'superseded'"
          " WHERE tenant_id = $1 AND hour = $2 AND state = 'current'",
          tenant_id, hour_ns);
      tx.exec_params(
          "UPDATE archive_exports SET state = 'current', readings = $4, bytes = $5,"
          " finished_at = now() WHERE tenant_id = $1 AND hour = $2 AND version = $3",
          tenant_id, hour_ns, version, readings, bytes);
      tx.commit();
      return absl::OkStatus();
    });
  }

  absl::Status MarkHourArchived(int64_t hour_ns, int32_t packs) override {
    return pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params(
          "INSERT INTO archive_hours (hour, packs) VALUES ($1, $2) ON CONFLICT (hour) DO UPDATE"
          " SET packs = GREATEST(archive_hours.packs, EXCLUDED.packs), archived_at = now()",
          hour_ns, packs);
      tx.commit();
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<ArchiveExport>> ListExports(int64_t tenant_id, int64_t from_ns,
                                                         int64_t to_ns) override {
    std::vector<ArchiveExport> out;
    RETURN_IF_ERROR(Exports(tenant_id, from_ns, to_ns, /*current_only=*/false, &out));
    return out;
  }

 private:
  absl::Status Exports(int64_t tenant_id, int64_t from_ns, int64_t to_ns, bool current_only,
                       std::vector<ArchiveExport>* out) {
    return pool_->Run([&](pqxx::connection& c) {
      out->clear();
      pqxx::read_transaction tx(c);
      pqxx::result r = tx.exec_params(
          absl::StrCat("SELECT ", kExportColumns,
                       " FROM archive_exports WHERE tenant_id = $1 AND hour >= $2 AND hour < $3"
                       " AND (NOT $4 OR state = 'current') ORDER BY hour, version"),
          tenant_id, from_ns, to_ns, current_only);
      for (const auto& row : r) out->push_back(ExportFrom(row));
      pqxx::result f = tx.exec_params(
          "SELECT f.hour, f.version, f.path, f.kind, f.readings, f.bytes, f.sha256"
          " FROM archive_files f JOIN archive_exports e USING (tenant_id, hour, version)"
          " WHERE f.tenant_id = $1 AND f.hour >= $2 AND f.hour < $3"
          " AND (NOT $4 OR e.state = 'current') ORDER BY f.hour, f.version, f.path",
          tenant_id, from_ns, to_ns, current_only);
      size_t k = 0;
      for (const auto& row : f) {
        const int64_t hour = PgInt64(row[0]);
        const auto version = static_cast<int32_t>(PgInt64(row[1]));
        while (k < out->size() && std::make_pair((*out)[k].hour_ns, (*out)[k].version) <
                                      std::make_pair(hour, version)) {
          ++k;
        }
        if (k == out->size()) break;
        ArchiveFile file;
        file.path = row[2].as<std::string>();
        file.kind = row[3].as<std::string>();
        file.readings = PgInt64(row[4]);
        file.bytes = PgInt64(row[5]);
        file.sha256_hex = row[6].as<std::string>();
        (*out)[k].files.push_back(std::move(file));
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<RetentionDay>> RetentionDays(int64_t from_ns,
                                                          int64_t before_ns) override {
    std::vector<RetentionDay> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      out.clear();
      pqxx::read_transaction tx(c);
      // (A day already dropped, its partitions awaiting their purge, is not
      // decided on again.)
      pqxx::result days = tx.exec_params(
          std::string(kRawDaysCte) +
              " SELECT lo FROM days WHERE lo >= $1 AND lo < $2"
              " AND NOT EXISTS (SELECT 1 FROM retention_drops r WHERE r.day = lo) ORDER BY lo",
          from_ns, before_ns);
      for (const auto& row : days) out.push_back(ReadRetentionDay(tx, PgInt64(row[0])));
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<std::vector<TenantRetention>> TenantRetentions() override {
    std::vector<TenantRetention> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      out.clear();
      pqxx::read_transaction tx(c);
      for (const auto& row :
           tx.exec("SELECT id, name, raw_retention_days FROM tenants ORDER BY id")) {
        out.push_back(
            {PgInt64(row[0]), row[1].as<std::string>(), static_cast<int32_t>(PgInt64(row[2]))});
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<std::vector<int64_t>> DroppedHours(int64_t tenant_id, int64_t from_ns,
                                                    int64_t to_ns) override {
    std::vector<int64_t> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      out.clear();
      pqxx::read_transaction tx(c);
      for (const auto& row : tx.exec_params(
               "SELECT c.hour FROM raw_compactions c JOIN archive_exports e"
               " ON e.hour = c.hour AND e.tenant_id = $1 AND e.state = 'current'"
               " WHERE c.state = 'dropped' AND c.hour >= $2 AND c.hour < $3 ORDER BY c.hour",
               tenant_id, from_ns, to_ns)) {
        out.push_back(PgInt64(row[0]));
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<bool> DropRawDay(
      int64_t day_ns, const std::function<bool(const RetentionDay&)>& still_drops) override {
    bool dropped = false;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      dropped = false;
      pqxx::work tx(c);
      const int64_t end = day_ns + kRawDayNs;
      // DROP of a partition needs ACCESS EXCLUSIVE on its parent too, which
      // stops every read and write of raw readings while it is held (a few
      // milliseconds: the checks below and the drop). Waiting for it queues
      // them too, so it is waited for briefly and given up (UNAVAILABLE, the
      // day is tried at the next run) behind a long reader.
      tx.exec("SET LOCAL lock_timeout = '200ms'");
      // Locks in the order writers and the packer take them (claims, then the
      // tables; parents before partitions, as every query on the parents
      // does), so none of them can deadlock with a drop:
      // the day's claims: a writer or packing step of a claimed hour waits at
      // its own claim lock ...
      tx.exec_params("SELECT 1 FROM raw_compactions WHERE hour >= $1 AND hour < $2 FOR UPDATE",
                     day_ns, end);
      const std::string raw = RawDayTable(day_ns), seg = RawSegDayTable(day_ns);
      if (!tx.exec_params("SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL", raw,
                          seg)[0][0]
               .as<bool>()) {
        return absl::NotFoundError(absl::StrCat("no partitions ", raw, " / ", seg));
      }
      // ... then the parents and the day's partitions: writers of unclaimed
      // hours and readers under way finish first; what they committed is
      // seen below.
      tx.exec(
          absl::StrCat("LOCK TABLE ONLY raw_readings, raw_readings_seg IN ACCESS EXCLUSIVE MODE;"
                       "LOCK TABLE ",
                       tx.quote_name(raw), ", ", tx.quote_name(seg), " IN ACCESS EXCLUSIVE MODE"));
      const RetentionDay day = ReadRetentionDay(tx, day_ns);
      if (!still_drops(day)) return absl::OkStatus();  // rolled back
      std::vector<int64_t> tenants;
      for (const auto& th : day.tenant_hours) tenants.push_back(th.tenant_id);
      std::sort(tenants.begin(), tenants.end());
      tenants.erase(std::unique(tenants.begin(), tenants.end()), tenants.end());
      // Every hour of the day keeps a claim, 'dropped': a late reading for
      // it is discarded by the writer, never stored into a partition that
      // is gone or made into a new archive version of an incomplete hour.
      tx.exec_params(
          "INSERT INTO raw_compactions (hour, state)"
          " SELECT h, 'dropped' FROM generate_series($1::bigint, $2::bigint - 1,"
          "                                          3600000000000::bigint) h"
          " ON CONFLICT (hour) DO UPDATE SET state = 'dropped'",
          day_ns, end);
      tx.exec_params("DELETE FROM raw_late_hours WHERE hour >= $1 AND hour < $2", day_ns, end);
      const std::string tenant_array = "{" + absl::StrJoin(tenants, ",") + "}";
      tx.exec_params(
          "INSERT INTO retention_drops (day, tenants, segments, readings)"
          " VALUES ($1, $2::bigint[], $3, $4) ON CONFLICT (day) DO UPDATE SET"
          " tenants = EXCLUDED.tenants, segments = retention_drops.segments + EXCLUDED.segments,"
          " readings = retention_drops.readings + EXCLUDED.readings, dropped_at = now(),"
          " purged_at = NULL",
          day_ns, tenant_array, day.segments, day.readings);
      // The partitions stay until PurgeDroppedDays: frozen (no write or pack
      // reaches a dropped hour), for readers that have not seen the mark yet.
      tx.commit();
      dropped = true;
      return absl::OkStatus();
    }));
    return dropped;
  }

  absl::StatusOr<std::vector<int64_t>> PurgeDroppedDays(int64_t min_age_ns) override {
    std::vector<int64_t> due;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      due.clear();
      pqxx::read_transaction tx(c);
      for (const auto& row : tx.exec_params(
               "SELECT day FROM retention_drops WHERE purged_at IS NULL"
               " AND dropped_at <= now() - make_interval(secs => $1::double precision / 1e9)"
               " ORDER BY day",
               min_age_ns)) {
        due.push_back(PgInt64(row[0]));
      }
      return absl::OkStatus();
    }));
    std::vector<int64_t> purged;
    for (int64_t day_ns : due) {
      RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
        pqxx::work tx(c);
        // The drop's lock order and timeout (DropRawDay says why).
        tx.exec("SET LOCAL lock_timeout = '200ms'");
        tx.exec_params("SELECT 1 FROM raw_compactions WHERE hour >= $1 AND hour < $2 FOR UPDATE",
                       day_ns, day_ns + kRawDayNs);
        const std::string raw = RawDayTable(day_ns), seg = RawSegDayTable(day_ns);
        std::vector<std::string> present;
        for (const std::string& t : {seg, raw}) {
          if (tx.exec_params("SELECT to_regclass($1) IS NOT NULL", t)[0][0].as<bool>()) {
            present.push_back(tx.quote_name(t));
          }
        }
        if (!present.empty()) {
          tx.exec("LOCK TABLE ONLY raw_readings, raw_readings_seg IN ACCESS EXCLUSIVE MODE");
          tx.exec(absl::StrCat("DROP TABLE ", absl::StrJoin(present, ", ")));
        }
        tx.exec_params("UPDATE retention_drops SET purged_at = now() WHERE day = $1", day_ns);
        tx.commit();
        purged.push_back(day_ns);
        return absl::OkStatus();
      }));
    }
    return purged;
  }

  PgPool* pool_;
};

}  // namespace

std::unique_ptr<ArchiveStore> NewPgArchiveStore(PgPool* pool) {
  return std::make_unique<PgArchiveStore>(pool);
}

}  // namespace telemetry
