// AlertRuleStore on Postgres: table alert_rules (the telemetry.v1.Rule
// serialized in `spec`, bytea) and the one-row alert_rules_generation, bumped
// in the transaction of every change (db/migrations/0007_alerts.sql).
#include "common/alert_rules.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/status_macros.h"

namespace telemetry {
namespace {

using telemetry::v1::Rule;

// A timestamptz from the nanoseconds in parameter $n (exact to the
// microsecond, timestamptz's resolution): the created_at / updated_at columns.
std::string TimestampParam(int n) {
  return absl::StrCat("'epoch'::timestamptz + ($", n,
                      "::bigint / 1000) * interval '1 microsecond'");
}

pqxx::binarystring SpecOf(const Rule& rule) {
  std::string bytes;
  rule.SerializeToString(&bytes);
  return pqxx::binarystring(bytes);
}

absl::StatusOr<Rule> RuleOf(const pqxx::field& f) {
  pqxx::binarystring bytes(f);
  Rule rule;
  if (!rule.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError("alert_rules.spec does not hold a telemetry.v1.Rule");
  }
  return rule;
}

void BumpGeneration(pqxx::work& tx) {
  tx.exec("UPDATE alert_rules_generation SET generation = generation + 1");
}

class PgAlertRuleStore final : public AlertRuleStore {
 public:
  PgAlertRuleStore(PgPool* pool, const Clock* clock) : pool_(pool), clock_(clock) {}

  absl::StatusOr<Rule> Create(int64_t tenant_id, const Rule& rule) override {
    Rule stored = rule;
    stored.set_rule_id(alert_rules::NewRuleId());
    stored.set_version(1);
    stored.set_created_at_ns(clock_->NowNs());
    stored.set_updated_at_ns(stored.created_at_ns());
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params(
          absl::StrCat("INSERT INTO alert_rules (tenant_id, rule_id, name, version, spec,"
                       " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, ",
                       TimestampParam(6), ", ", TimestampParam(6), ")"),
          tenant_id, stored.rule_id(), stored.name(), stored.version(), SpecOf(stored),
          stored.created_at_ns());
      BumpGeneration(tx);
      tx.commit();
      return absl::OkStatus();
    }));
    return stored;
  }

  absl::StatusOr<Rule> Get(int64_t tenant_id, const std::string& rule_id) override {
    absl::StatusOr<Rule> out = alert_rules::RuleNotFound(rule_id);
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      pqxx::result r = tx.exec_params(
          "SELECT spec FROM alert_rules WHERE tenant_id = $1 AND rule_id = $2", tenant_id, rule_id);
      if (!r.empty()) out = RuleOf(r[0][0]);
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<Rule> Update(int64_t tenant_id, const Rule& rule) override {
    Rule stored = rule;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      pqxx::result r = tx.exec_params(
          "SELECT version, spec FROM alert_rules WHERE tenant_id = $1 AND rule_id = $2"
          " FOR UPDATE",
          tenant_id, rule.rule_id());
      if (r.empty()) return alert_rules::RuleNotFound(rule.rule_id());
      const int64_t current = r[0][0].as<int64_t>();
      if (rule.version() != 0 && rule.version() != current) {
        return alert_rules::VersionMismatch(rule.rule_id(), current, rule.version());
      }
      absl::StatusOr<Rule> before = RuleOf(r[0][1]);
      if (!before.ok()) return before.status();
      stored.set_version(current + 1);
      stored.set_created_at_ns(before->created_at_ns());
      stored.set_updated_at_ns(std::max(clock_->NowNs(), before->updated_at_ns()));
      tx.exec_params(absl::StrCat("UPDATE alert_rules SET name = $3, version = $4, spec = $5,"
                                  " updated_at = ",
                                  TimestampParam(6), " WHERE tenant_id = $1 AND rule_id = $2"),
                     tenant_id, stored.rule_id(), stored.name(), stored.version(), SpecOf(stored),
                     stored.updated_at_ns());
      BumpGeneration(tx);
      tx.commit();
      return absl::OkStatus();
    }));
    return stored;
  }

  absl::Status Delete(int64_t tenant_id, const std::string& rule_id) override {
    return pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      pqxx::result r = tx.exec_params(
          "DELETE FROM alert_rules WHERE tenant_id = $1 AND rule_id = $2 RETURNING 1", tenant_id,
          rule_id);
      if (r.empty()) return alert_rules::RuleNotFound(rule_id);
      BumpGeneration(tx);
      tx.commit();
      return absl::OkStatus();
    });
  }

  absl::StatusOr<RulePage> List(int64_t tenant_id, int page_size,
                                const std::string& page_token) override {
    RETURN_IF_ERROR(alert_rules::CheckPageSize(page_size));
    std::string after;
    if (!page_token.empty()) {
      absl::StatusOr<std::string> decoded = alert_rules::DecodePageToken(page_token);
      if (!decoded.ok()) return decoded.status();
      after = std::move(*decoded);
    }
    RulePage page;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      // One more than asked: whether there is a next page.
      pqxx::result r = tx.exec_params(
          "SELECT spec FROM alert_rules WHERE tenant_id = $1 AND rule_id > $2"
          " ORDER BY rule_id LIMIT $3",
          tenant_id, after, page_size + 1);
      page.rules.clear();
      for (const auto& row : r) {
        if (page.rules.size() == static_cast<size_t>(page_size)) {
          page.next_page_token = alert_rules::EncodePageToken(page.rules.back().rule_id());
          break;
        }
        absl::StatusOr<Rule> rule = RuleOf(row[0]);
        if (!rule.ok()) return rule.status();
        page.rules.push_back(std::move(*rule));
      }
      return absl::OkStatus();
    }));
    return page;
  }

  absl::StatusOr<int64_t> Generation() override {
    int64_t generation = 0;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec("SELECT generation FROM alert_rules_generation");
      if (r.empty()) return absl::FailedPreconditionError("alert_rules_generation has no row");
      generation = r[0][0].as<int64_t>();
      return absl::OkStatus();
    }));
    return generation;
  }

  absl::StatusOr<std::vector<std::pair<int64_t, Rule>>> LoadAll() override {
    std::vector<std::pair<int64_t, Rule>> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      pqxx::result r =
          tx.exec("SELECT tenant_id, spec FROM alert_rules ORDER BY tenant_id, rule_id");
      out.clear();
      out.reserve(r.size());
      for (const auto& row : r) {
        absl::StatusOr<Rule> rule = RuleOf(row[1]);
        if (!rule.ok()) return rule.status();
        out.emplace_back(row[0].as<int64_t>(), std::move(*rule));
      }
      return absl::OkStatus();
    }));
    return out;
  }

 private:
  PgPool* pool_;
  const Clock* clock_;
};

}  // namespace

std::unique_ptr<AlertRuleStore> NewPgAlertRuleStore(PgPool* pool, const Clock* clock) {
  return std::make_unique<PgAlertRuleStore>(pool, clock ? clock : SystemClock::Get());
}

}  // namespace telemetry
