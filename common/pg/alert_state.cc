// AlertStateStore on Postgres: alert_history, alert_current, alert_outbox,
// alert_deliveries and alert_checkpoints (db/migrations/0007_alerts.sql).
#include "common/alert_state.h"

#include "absl/strings/str_cat.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/status_macros.h"

namespace telemetry {
namespace {

std::string BytesOf(const pqxx::field& f) {
  pqxx::binarystring b(f);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// A history row (event_id, event, detected_at in ns) as the AlertEvent readers
// see: event_id from the row, detected_at_ns too when the event has none.
telemetry::v1::AlertEvent EventOf(const pqxx::row& row) {
  telemetry::v1::AlertEvent e;
  const std::string bytes = BytesOf(row[1]);
  if (!e.ParseFromString(bytes)) {
    throw pqxx::conversion_error("alert_history.event: not an AlertEvent");
  }
  e.set_event_id(row[0].as<int64_t>());
  if (e.detected_at_ns() == 0) e.set_detected_at_ns(row[2].as<int64_t>());
  return e;
}

class PgAlertStateStore final : public AlertStateStore {
 public:
  explicit PgAlertStateStore(PgPool* pool) : pool_(pool) {}

  absl::StatusOr<CommitResult> Commit(const std::string& group,
                                      const std::vector<AlertRecord>& records,
                                      const std::vector<AlertCheckpoint>& checkpoints) override {
    CommitResult result;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      result = CommitResult();
      c.prepare("alert_history_insert",
                "INSERT INTO alert_history (tenant_id, fingerprint, sequence, rule_id,"
                " rule_version, device, sensor, from_state, to_state, value, window_start,"
                " window_end, event_time, severity, muted, event)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $10 THEN $11::float8 END,"
                " CASE WHEN $12 THEN $13::bigint END, CASE WHEN $12 THEN $14::bigint END, $15,"
                " $16, $17, $18)"
                " ON CONFLICT (fingerprint, sequence) DO NOTHING RETURNING event_id");
      c.prepare("alert_current_upsert",
                "INSERT INTO alert_current (fingerprint, tenant_id, rule_id, device, sensor, state,"
                " sequence, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (fingerprint) DO UPDATE SET state = EXCLUDED.state,"
                " sequence = EXCLUDED.sequence, event_id = EXCLUDED.event_id"
                " WHERE alert_current.sequence < EXCLUDED.sequence");
      c.prepare("alert_outbox_insert",
                "INSERT INTO alert_outbox (event_id, target) VALUES ($1, $2)");
      c.prepare("alert_checkpoint_upsert",
                "INSERT INTO alert_checkpoints (consumer_group, partition, next_offset, state)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (consumer_group, partition) DO UPDATE"
                " SET next_offset = EXCLUDED.next_offset, state = EXCLUDED.state,"
                " updated_at = now()");
      pqxx::work tx(c);
      // One recorder at a time (across processes): event_ids then become
      // visible in their order, so a Subscribe reader that resumes after the
      // last event_id it saw skips none (HistoryAfter).
      if (!records.empty()) tx.exec("SELECT pg_advisory_xact_lock(7007001)");
      for (const AlertRecord& r : records) {
        const bool has_window = r.window_start_ns.has_value() && r.window_end_ns.has_value();
        pqxx::result ins =
            tx.exec_prepared("alert_history_insert", r.tenant_id, r.fingerprint, r.sequence,
                             r.rule_id, r.rule_version, r.device, r.sensor, r.from_state,
                             r.to_state, r.value.has_value(), r.value.value_or(0), has_window,
                             r.window_start_ns.value_or(0), r.window_end_ns.value_or(0),
                             r.event_time_ns, r.severity, r.muted, pqxx::binarystring(r.event));
        if (ins.empty()) {
          ++result.duplicates;
          continue;
        }
        ++result.recorded;
        const int64_t event_id = ins[0][0].as<int64_t>();
        tx.exec_prepared("alert_current_upsert", r.fingerprint, r.tenant_id, r.rule_id, r.device,
                         r.sensor, r.to_state, r.sequence, event_id);
        for (const std::string& target : r.targets) {
          tx.exec_prepared("alert_outbox_insert", event_id, target);
        }
      }
      for (const AlertCheckpoint& cp : checkpoints) {
        tx.exec_prepared("alert_checkpoint_upsert", group, cp.partition, cp.next_offset,
                         pqxx::binarystring(cp.state));
      }
      // Subscribers poll; a NOTIFY lets a waiting one answer at once.
      if (result.recorded > 0) tx.exec("NOTIFY alert_history");
      tx.commit();
      return absl::OkStatus();
    }));
    return result;
  }

  absl::StatusOr<std::map<int32_t, AlertCheckpoint>> LoadCheckpoints(
      const std::string& group, const std::vector<int32_t>& partitions) override {
    std::map<int32_t, AlertCheckpoint> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      out.clear();
      pqxx::read_transaction tx(c);
      pqxx::result r = tx.exec_params(
          "SELECT partition, next_offset, state FROM alert_checkpoints"
          " WHERE consumer_group = $1 AND partition = ANY($2::int[])",
          group, PgTextArray([&] {
            std::vector<std::string> v;
            for (int32_t p : partitions) v.push_back(std::to_string(p));
            return v;
          }()));
      for (const auto& row : r) {
        AlertCheckpoint cp;
        cp.partition = row[0].as<int32_t>();
        cp.next_offset = row[1].as<int64_t>();
        cp.state = BytesOf(row[2]);
        out[cp.partition] = std::move(cp);
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<std::vector<OutboxItem>> ClaimOutbox(int limit, int64_t lease_ns) override {
    std::vector<OutboxItem> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      out.clear();
      pqxx::work tx(c);
      pqxx::result r = tx.exec_params(
          "WITH due AS (SELECT id FROM alert_outbox WHERE next_attempt_at <= now()"
          "  ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)"
          " UPDATE alert_outbox o SET next_attempt_at = now() + ($2::bigint / 1000)"
          "  * interval '1 microsecond' FROM due, alert_history h"
          " WHERE o.id = due.id AND h.event_id = o.event_id"
          " RETURNING o.id, o.event_id, o.target, o.attempts,"
          "  (extract(epoch FROM o.created_at) * 1e9)::bigint, h.event",
          limit, lease_ns);
      tx.commit();
      for (const auto& row : r) {
        OutboxItem item;
        item.id = row[0].as<int64_t>();
        item.event_id = row[1].as<int64_t>();
        item.target = row[2].as<std::string>();
        item.attempts = row[3].as<int>();
        item.created_at_ns = row[4].as<int64_t>();
        item.event = BytesOf(row[5]);
        out.push_back(std::move(item));
      }
      std::sort(out.begin(), out.end(),
                [](const OutboxItem& a, const OutboxItem& b) { return a.id < b.id; });
      return absl::OkStatus();
    }));
    return out;
  }

  absl::Status FinishOutbox(const OutboxItem& item, const std::string& outcome, int attempts,
                            const std::string& last_error) override {
    return pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params("DELETE FROM alert_outbox WHERE id = $1", item.id);
      tx.exec_params(
          "INSERT INTO alert_deliveries (event_id, target, outcome, attempts, last_error)"
          " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id, target) DO NOTHING",
          item.event_id, item.target, outcome, attempts, last_error);
      tx.commit();
      return absl::OkStatus();
    });
  }

  absl::Status RetryOutbox(const OutboxItem& item, int attempts, int64_t delay_ns,
                           const std::string& last_error) override {
    return pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params(
          "UPDATE alert_outbox SET attempts = $2, last_error = $3,"
          " next_attempt_at = now() + ($4::bigint / 1000) * interval '1 microsecond'"
          " WHERE id = $1",
          item.id, attempts, last_error, delay_ns);
      tx.commit();
      return absl::OkStatus();
    });
  }

  absl::StatusOr<int64_t> OutboxBacklog() override {
    int64_t n = 0;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      n = tx.exec("SELECT count(*) FROM alert_outbox")[0][0].as<int64_t>();
      return absl::OkStatus();
    }));
    return n;
  }

  absl::StatusOr<AlertPage> ListAlerts(int64_t tenant_id, const AlertListFilter& filter, int limit,
                                       const std::string& page_token) override {
    RETURN_IF_ERROR(alert_state::CheckLimit(limit));
    int64_t before = 0;  // 0: the first page
    if (!page_token.empty()) {
      absl::StatusOr<int64_t> last = alert_state::DecodePageToken(filter.history, page_token);
      if (!last.ok()) return last.status();
      before = *last;
    }
    std::vector<std::string> severities;
    for (int s : filter.severities) severities.push_back(std::to_string(s));
    AlertPage page;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      page = AlertPage();
      // States: 1 FIRING (telemetry.v1.AlertState). One row more than the
      // page tells whether another page follows.
      pqxx::result r =
          filter.history
              ? PgReadPrepared(
                    c, "alert_list_history",
                    "SELECT h.event_id, h.event,"
                    "  (extract(epoch FROM h.detected_at) * 1e6)::bigint * 1000"
                    " FROM alert_history h WHERE h.tenant_id = $1"
                    " AND ($2 = '' OR h.rule_id = $2) AND ($3 = '' OR h.device = $3)"
                    " AND (cardinality($4::smallint[]) = 0 OR h.severity = ANY($4::smallint[]))"
                    " AND (NOT $5 OR h.fingerprint IN (SELECT fingerprint FROM alert_current"
                    "  WHERE tenant_id = $1 AND state = 1))"
                    " AND ($6::bigint = 0 OR h.event_id < $6::bigint)"
                    " ORDER BY h.event_id DESC LIMIT $7",
                    tenant_id, filter.rule_id, filter.device_id, PgTextArray(severities),
                    filter.firing_only, before, limit + 1)
              : PgReadPrepared(
                    c, "alert_list_current",
                    "SELECT h.event_id, h.event,"
                    "  (extract(epoch FROM h.detected_at) * 1e6)::bigint * 1000"
                    " FROM alert_current a JOIN alert_history h ON h.event_id = a.event_id"
                    " WHERE a.tenant_id = $1 AND h.tenant_id = $1"
                    " AND ($2 = '' OR a.rule_id = $2) AND ($3 = '' OR a.device = $3)"
                    " AND (cardinality($4::smallint[]) = 0 OR h.severity = ANY($4::smallint[]))"
                    " AND (NOT $5 OR a.state = 1)"
                    " AND ($6::bigint = 0 OR a.event_id < $6::bigint)"
                    " ORDER BY a.event_id DESC LIMIT $7",
                    tenant_id, filter.rule_id, filter.device_id, PgTextArray(severities),
                    filter.firing_only, before, limit + 1);
      for (const auto& row : r) {
        if (page.alerts.size() == static_cast<size_t>(limit)) {
          page.next_page_token =
              alert_state::EncodePageToken(filter.history, page.alerts.back().event_id());
          break;
        }
        page.alerts.push_back(EventOf(row));
      }
      return absl::OkStatus();
    }));
    return page;
  }

  absl::StatusOr<std::vector<telemetry::v1::AlertEvent>> HistoryAfter(int64_t tenant_id,
                                                                      int64_t after_event_id,
                                                                      int64_t since_ns,
                                                                      int limit) override {
    RETURN_IF_ERROR(alert_state::CheckLimit(limit));
    std::vector<telemetry::v1::AlertEvent> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      out.clear();
      // detected_at has microseconds: "at or after since_ns" is at or after
      // since_ns rounded up to the microsecond.
      pqxx::result r = PgReadPrepared(
          c, "alert_history_after",
          "SELECT event_id, event, (extract(epoch FROM detected_at) * 1e6)::bigint * 1000"
          " FROM alert_history WHERE tenant_id = $1 AND event_id > $2"
          " AND ($3::bigint <= 0 OR detected_at >= 'epoch'::timestamptz"
          "  + (($3::bigint + 999) / 1000) * interval '1 microsecond')"
          " ORDER BY event_id LIMIT $4",
          tenant_id, after_event_id, since_ns, limit);
      for (const auto& row : r) out.push_back(EventOf(row));
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<int64_t> LastEventId(int64_t tenant_id) override {
    int64_t last = 0;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::result r = PgReadPrepared(
          c, "alert_last_event_id",
          "SELECT coalesce(max(event_id), 0) FROM alert_history WHERE tenant_id = $1", tenant_id);
      last = r[0][0].as<int64_t>();
      return absl::OkStatus();
    }));
    return last;
  }

  absl::StatusOr<std::string> DeviceProject(int64_t tenant_id, const std::string& device) override {
    std::string project;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::result r =
          PgReadPrepared(c, "alert_device_project",
                         "SELECT p.name FROM devices d JOIN projects p ON p.id = d.project_id"
                         " WHERE d.tenant_id = $1 AND d.name = $2",
                         tenant_id, device);
      project = r.empty() ? std::string() : r[0][0].as<std::string>();
      return absl::OkStatus();
    }));
    return project;
  }

  absl::StatusOr<std::vector<ResendAlert>> ListAlertsToResend(const std::string& after_fingerprint,
                                                              int limit,
                                                              int64_t resolved_within_ns) override {
    std::vector<ResendAlert> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      out.clear();
      // States: 1 FIRING, 2 RESOLVED (telemetry.v1.AlertState).
      pqxx::result r = PgReadPrepared(
          c, "alert_list_to_resend",
          "SELECT c.tenant_id, c.fingerprint, c.rule_id, c.state, c.event_id, h.muted, h.event"
          " FROM alert_current c JOIN alert_history h ON h.event_id = c.event_id"
          " WHERE c.fingerprint > $1 AND (c.state = 1 OR (c.state = 2 AND h.detected_at >"
          "  now() - ($3::bigint / 1000) * interval '1 microsecond'))"
          " ORDER BY c.fingerprint LIMIT $2",
          after_fingerprint, limit, resolved_within_ns);
      for (const auto& row : r) {
        ResendAlert a;
        a.tenant_id = row[0].as<int64_t>();
        a.fingerprint = row[1].as<std::string>();
        a.rule_id = row[2].as<std::string>();
        a.state = row[3].as<int>();
        a.event_id = row[4].as<int64_t>();
        a.muted = row[5].as<bool>();
        a.event = BytesOf(row[6]);
        out.push_back(std::move(a));
      }
      return absl::OkStatus();
    }));
    return out;
  }

 private:
  PgPool* pool_;
};

}  // namespace

std::unique_ptr<AlertStateStore> NewPgAlertStateStore(PgPool* pool) {
  return std::make_unique<PgAlertStateStore>(pool);
}

}  // namespace telemetry
