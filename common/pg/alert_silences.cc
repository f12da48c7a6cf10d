// AlertSilenceStore on Postgres: table alert_silences (the telemetry.v1.Silence
// serialized in `spec`, db/migrations/0007_alerts.sql).
#include "common/alert_silences.h"

#include "common/alert_rules.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/status_macros.h"

namespace telemetry {
namespace {

using telemetry::v1::Silence;

absl::StatusOr<Silence> SilenceOf(const pqxx::field& f) {
  pqxx::binarystring bytes(f);
  Silence s;
  if (!s.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError("alert_silences.spec does not hold a telemetry.v1.Silence");
  }
  return s;
}

pqxx::binarystring SpecOf(const Silence& s) {
  std::string bytes;
  s.SerializeToString(&bytes);
  return pqxx::binarystring(bytes);
}

class PgAlertSilenceStore final : public AlertSilenceStore {
 public:
  explicit PgAlertSilenceStore(PgPool* pool) : pool_(pool) {}

  absl::StatusOr<Silence> Create(int64_t tenant_id, const Silence& silence,
                                 int64_t now_ns) override {
    Silence stored = silence;
    stored.set_silence_id(alert_rules::NewRuleId());
    stored.set_created_at_ns(now_ns);
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params(
          "INSERT INTO alert_silences (tenant_id, silence_id, starts_at, ends_at, spec)"
          " VALUES ($1, $2, $3, $4, $5)",
          tenant_id, stored.silence_id(), stored.starts_at_ns(), stored.ends_at_ns(),
          SpecOf(stored));
      tx.commit();
      return absl::OkStatus();
    }));
    return stored;
  }

  absl::StatusOr<std::vector<Silence>> List(int64_t tenant_id, bool include_expired,
                                            int64_t now_ns) override {
    std::vector<Silence> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      out.clear();
      pqxx::read_transaction tx(c);
      pqxx::result r = tx.exec_params(
          "SELECT spec FROM alert_silences WHERE tenant_id = $1 AND ($2 OR ends_at > $3)"
          " ORDER BY starts_at, silence_id",
          tenant_id, include_expired, now_ns);
      for (const auto& row : r) {
        absl::StatusOr<Silence> s = SilenceOf(row[0]);
        if (!s.ok()) return s.status();
        out.push_back(*std::move(s));
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::Status End(int64_t tenant_id, const std::string& silence_id, int64_t now_ns) override {
    return pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      pqxx::result r = tx.exec_params(
          "SELECT spec FROM alert_silences WHERE tenant_id = $1 AND silence_id = $2 FOR UPDATE",
          tenant_id, silence_id);
      if (r.empty()) return absl::NotFoundError("silence " + silence_id + " not found");
      absl::StatusOr<Silence> s = SilenceOf(r[0][0]);
      if (!s.ok()) return s.status();
      if (s->ends_at_ns() > now_ns) {
        s->set_ends_at_ns(std::max(now_ns, s->starts_at_ns()));
        tx.exec_params(
            "UPDATE alert_silences SET ends_at = $3, spec = $4 WHERE tenant_id = $1 AND"
            " silence_id = $2",
            tenant_id, silence_id, s->ends_at_ns(), SpecOf(*s));
      }
      tx.commit();
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<std::pair<int64_t, Silence>>> Active(int64_t now_ns) override {
    std::vector<std::pair<int64_t, Silence>> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      out.clear();
      pqxx::result r =
          PgReadPrepared(c, "alert_silences_active",
                         "SELECT tenant_id, spec FROM alert_silences WHERE ends_at > $1", now_ns);
      for (const auto& row : r) {
        absl::StatusOr<Silence> s = SilenceOf(row[1]);
        if (!s.ok()) return s.status();
        out.emplace_back(row[0].as<int64_t>(), *std::move(s));
      }
      return absl::OkStatus();
    }));
    return out;
  }

 private:
  PgPool* pool_;
};

}  // namespace

std::unique_ptr<AlertSilenceStore> NewPgAlertSilenceStore(PgPool* pool) {
  return std::make_unique<PgAlertSilenceStore>(pool);
}

}  // namespace telemetry
