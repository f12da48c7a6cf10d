// MetadataStore on Postgres.
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/status_macros.h"

namespace telemetry {
namespace {

std::vector<std::string> ParseTextArray(const pqxx::field& f) {
  std::vector<std::string> out;
  if (f.is_null()) return out;
  pqxx::array_parser parser = f.as_array();
  for (auto item = parser.get_next(); item.first != pqxx::array_parser::done;
       item = parser.get_next()) {
    if (item.first == pqxx::array_parser::string_value) out.push_back(item.second);
  }
  return out;
}

std::string JsonOrEmpty(const std::string& json) { return json.empty() ? "{}" : json; }

class PgMetadataStore final : public MetadataStore {
 public:
  explicit PgMetadataStore(PgPool* pool) : pool_(pool) {}

  absl::StatusOr<std::optional<TenantInfo>> TenantByKeyHash(const std::string& key_hash) override {
    return TenantWhere(
        " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
        " JOIN projects p ON p.tenant_id = t.id AND p.is_default"
        " WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        key_hash);
  }

  absl::StatusOr<std::optional<TenantInfo>> TenantByName(const std::string& name) override {
    return TenantWhere(
        " FROM tenants t JOIN projects p ON p.tenant_id = t.id AND p.is_default"
        " WHERE t.name = $1",
        name);
  }

  absl::StatusOr<bool> TenantExists(int64_t tenant_id) override {
    bool exists = false;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      exists = !tx.exec_params("SELECT 1 FROM tenants WHERE id = $1", tenant_id).empty();
      return absl::OkStatus();
    }));
    return exists;
  }

  absl::StatusOr<int64_t> CreateTenant(const NewTenant& t) override {
    int64_t id = 0;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      pqxx::result r = tx.exec_params(
          "INSERT INTO tenants (name, require_registered_devices, sensor_whitelist, rate_per_sec,"
          " burst, raw_retention_days) VALUES ($1, $2, $3::text[], $4, $5, $6) RETURNING id",
          t.name, t.require_registered_devices, PgTextArray(t.sensor_whitelist), t.rate_per_sec,
          t.burst, t.raw_retention_days);
      id = r[0][0].as<int64_t>();
      tx.exec_params(
          "INSERT INTO projects (tenant_id, name, is_default) VALUES ($1, 'default', true)", id);
      tx.commit();
      return absl::OkStatus();
    }));
    return id;
  }

  absl::Status AddApiKey(int64_t tenant_id, const std::string& key_hash) override {
    return pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params("INSERT INTO api_keys (key_hash, tenant_id) VALUES ($1, $2)", key_hash,
                     tenant_id);
      tx.commit();
      return absl::OkStatus();
    });
  }

  absl::StatusOr<int64_t> UpsertDevice(int64_t tenant_id, const DeviceInfo& d) override {
    int64_t id = 0;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      std::string project = d.project;
      pqxx::result p;
      if (project.empty()) {
        p = tx.exec_params("SELECT id FROM projects WHERE tenant_id = $1 AND is_default",
                           tenant_id);
      } else {
        p = tx.exec_params(
            "INSERT INTO projects (tenant_id, name) VALUES ($1, $2) ON CONFLICT (tenant_id, name)"
            " DO UPDATE SET name = EXCLUDED.name RETURNING id",
            tenant_id, project);
      }
      if (p.empty()) return absl::NotFoundError("tenant has no default project");
      pqxx::result r = tx.exec_params(
          "INSERT INTO devices (tenant_id, project_id, name, model, location, time_zone, labels)"
          " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)"
          " ON CONFLICT (tenant_id, name) DO UPDATE SET project_id = EXCLUDED.project_id,"
          " model = EXCLUDED.model, location = EXCLUDED.location, time_zone = EXCLUDED.time_zone,"
          " labels = EXCLUDED.labels RETURNING id",
          tenant_id, p[0][0].as<int64_t>(), d.name, d.model, d.location,
          d.time_zone.empty() ? "UTC" : d.time_zone, JsonOrEmpty(d.labels_json));
      id = r[0][0].as<int64_t>();
      tx.exec_params("UPDATE series SET project_id = $2 WHERE device_id = $1", id,
                     p[0][0].as<int64_t>());
      tx.commit();
      return absl::OkStatus();
    }));
    return id;
  }

  absl::StatusOr<std::map<std::string, int64_t>> ResolveDevices(
      int64_t tenant_id, const std::vector<std::string>& names, bool create_missing) override {
    std::map<std::string, int64_t> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      std::string arr = PgTextArray(names);
      if (create_missing) {
        tx.exec_params(
            "INSERT INTO devices (tenant_id, project_id, name)"
            " SELECT $1, p.id, n FROM unnest($2::text[]) AS n"
            " JOIN projects p ON p.tenant_id = $1 AND p.is_default"
            " ON CONFLICT (tenant_id, name) DO NOTHING",
            tenant_id, arr);
      }
      pqxx::result r = tx.exec_params(
          "SELECT name, id FROM devices WHERE tenant_id = $1 AND name = ANY($2::text[])", tenant_id,
          arr);
      for (const auto& row : r) out[row[0].as<std::string>()] = row[1].as<int64_t>();
      tx.commit();
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<std::vector<int32_t>> ResolveSeries(
      int64_t tenant_id, const std::vector<SeriesSpec>& specs) override {
    std::vector<std::string> device_names;
    {
      std::set<std::string> seen;
      for (const auto& s : specs) {
        if (seen.insert(s.device).second) device_names.push_back(s.device);
      }
    }
    auto devices = ResolveDevices(tenant_id, device_names, /*create_missing=*/true);
    if (!devices.ok()) return devices.status();

    // Unique (device, sensor, unit) → position in the statement's arrays.
    std::map<std::tuple<int64_t, std::string, std::string>, size_t> unique;
    std::vector<std::string> dev_ids, sensors, units, labels;
    std::vector<size_t> slot_of(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      auto it = devices->find(specs[i].device);
      if (it == devices->end()) {
        return absl::InternalError("device " + specs[i].device + " could not be registered");
      }
      auto key = std::make_tuple(it->second, specs[i].sensor, specs[i].unit);
      auto [pos, fresh] = unique.emplace(key, dev_ids.size());
      if (fresh) {
        dev_ids.push_back(std::to_string(it->second));
        sensors.push_back(specs[i].sensor);
        units.push_back(specs[i].unit);
        labels.push_back(JsonOrEmpty(specs[i].labels_json));
      }
      slot_of[i] = pos->second;
    }
    std::vector<int32_t> ids(dev_ids.size(), 0);
    for (int attempt = 0; attempt < 3; ++attempt) {
      RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
        pqxx::work tx(c);
        pqxx::result r = tx.exec_params(
            "WITH x AS (SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[])"
            "   WITH ORDINALITY AS x(device_id, sensor, unit, labels, ord)),"
            " ins AS (INSERT INTO series (tenant_id, project_id, device_id, sensor, unit, labels)"
            "   SELECT $1, d.project_id, d.id, x.sensor, x.unit, x.labels::jsonb"
            "   FROM x JOIN devices d ON d.id = x.device_id AND d.tenant_id = $1"
            "   ON CONFLICT (device_id, sensor, unit) DO UPDATE SET labels = EXCLUDED.labels"
            "   WHERE EXCLUDED.labels <> '{}'::jsonb AND series.labels IS DISTINCT FROM "
            "EXCLUDED.labels"
            "   RETURNING id, device_id, sensor, unit)"
            " SELECT x.ord, coalesce(ins.id, s.id) FROM x"
            " LEFT JOIN ins ON ins.device_id = x.device_id AND ins.sensor = x.sensor"
            "   AND ins.unit = x.unit"
            " LEFT JOIN series s ON s.device_id = x.device_id AND s.sensor = x.sensor"
            "   AND s.unit = x.unit",
            tenant_id, "{" + absl::StrJoin(dev_ids, ",") + "}", PgTextArray(sensors),
            PgTextArray(units), PgTextArray(labels));
        for (const auto& row : r) {
          if (!row[1].is_null()) ids[row[0].as<size_t>() - 1] = row[1].as<int32_t>();
        }
        tx.commit();
        return absl::OkStatus();
      }));
      bool complete = true;
      for (int32_t id : ids) complete = complete && id != 0;
      if (complete) break;
    }
    std::vector<int32_t> out(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      out[i] = ids[slot_of[i]];
      if (out[i] == 0) return absl::AbortedError("series could not be resolved; retry");
    }
    return out;
  }

 private:
  // The tenant (with its default project) that `from_where` (on tenants t
  // and projects p, one parameter) selects.
  absl::StatusOr<std::optional<TenantInfo>> TenantWhere(const char* from_where,
                                                        const std::string& param) {
    std::optional<TenantInfo> out;
    RETURN_IF_ERROR(pool_->Run([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      pqxx::result r = tx.exec_params(
          std::string("SELECT t.id, t.name, t.require_registered_devices, t.sensor_whitelist,"
                      " t.rate_per_sec, t.burst, t.raw_retention_days, p.id") +
              from_where,
          param);
      if (r.empty()) return absl::OkStatus();
      TenantInfo t;
      t.id = r[0][0].as<int64_t>();
      t.name = r[0][1].as<std::string>();
      t.require_registered_devices = r[0][2].as<bool>();
      t.sensor_whitelist = ParseTextArray(r[0][3]);
      t.rate_per_sec = r[0][4].as<double>();
      t.burst = r[0][5].as<double>();
      t.raw_retention_days = r[0][6].as<int32_t>();
      t.default_project_id = r[0][7].as<int64_t>();
      out = std::move(t);
      return absl::OkStatus();
    }));
    return out;
  }

  PgPool* pool_;
};

}  // namespace

std::unique_ptr<MetadataStore> NewPgMetadataStore(PgPool* pool) {
  return std::make_unique<PgMetadataStore>(pool);
}

}  // namespace telemetry
