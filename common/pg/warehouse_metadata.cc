// The warehouse loader's metadata (docs/warehouse.md): series ids are the
// primary's, so the warehouse's rows mean the same series as the primary's;
// the dimension rows a series needs (its tenant, project, device and itself)
// are copied into the warehouse before the first batch that uses it.
#include <set>

#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/status_macros.h"

namespace telemetry {
namespace {

// Every column of the rows, copied as JSON: the two schemas come from the
// same migrations.
struct DimensionCopy {
  const char* table;
  const char* select;  // on the primary: $1 the series ids
  const char* conflict;
};

constexpr DimensionCopy kCopies[] = {
    {"tenants",
     "SELECT coalesce(json_agg(t), '[]') FROM tenants t WHERE t.id IN"
     " (SELECT tenant_id FROM series WHERE id = ANY($1::int[]))",
     "DO NOTHING"},
    {"projects",
     "SELECT coalesce(json_agg(p), '[]') FROM projects p WHERE p.id IN"
     " (SELECT project_id FROM series WHERE id = ANY($1::int[]))",
     "DO NOTHING"},
    {"devices",
     "SELECT coalesce(json_agg(d), '[]') FROM devices d WHERE d.id IN"
     " (SELECT device_id FROM series WHERE id = ANY($1::int[]))",
     "DO UPDATE SET labels = EXCLUDED.labels, model = EXCLUDED.model,"
     " location = EXCLUDED.location, time_zone = EXCLUDED.time_zone"},
    {"series", "SELECT coalesce(json_agg(s), '[]') FROM series s WHERE s.id = ANY($1::int[])",
     "DO UPDATE SET labels = EXCLUDED.labels"},
};

class WarehouseMetadataStore : public MetadataStore {
 public:
  WarehouseMetadataStore(MetadataStore* primary, PgPool* primary_pool, PgPool* warehouse)
      : primary_(primary), primary_pool_(primary_pool), warehouse_(warehouse) {}

  absl::StatusOr<std::optional<TenantInfo>> TenantByKeyHash(const std::string& key_hash) override {
    return primary_->TenantByKeyHash(key_hash);
  }
  absl::StatusOr<std::optional<TenantInfo>> TenantByName(const std::string& name) override {
    return primary_->TenantByName(name);
  }
  absl::StatusOr<bool> TenantExists(int64_t tenant_id) override {
    return primary_->TenantExists(tenant_id);
  }
  absl::StatusOr<int64_t> CreateTenant(const NewTenant& tenant) override {
    return primary_->CreateTenant(tenant);
  }
  absl::Status AddApiKey(int64_t tenant_id, const std::string& key_hash) override {
    return primary_->AddApiKey(tenant_id, key_hash);
  }
  absl::StatusOr<int64_t> UpsertDevice(int64_t tenant_id, const DeviceInfo& device) override {
    return primary_->UpsertDevice(tenant_id, device);
  }
  absl::StatusOr<std::map<std::string, int64_t>> ResolveDevices(
      int64_t tenant_id, const std::vector<std::string>& names, bool create_missing) override {
    return primary_->ResolveDevices(tenant_id, names, create_missing);
  }

  absl::StatusOr<std::vector<int32_t>> ResolveSeries(
      int64_t tenant_id, const std::vector<SeriesSpec>& specs) override {
    auto ids = primary_->ResolveSeries(tenant_id, specs);
    if (!ids.ok()) return ids.status();
    std::vector<int32_t> missing;
    {
      absl::MutexLock l(&mu_);
      for (int32_t id : *ids) {
        if (!copied_.count(id)) missing.push_back(id);
      }
    }
    if (missing.empty()) return ids;
    const std::string array = "{" + absl::StrJoin(missing, ",") + "}";
    std::vector<std::string> rows;
    RETURN_IF_ERROR(primary_pool_->Run([&](pqxx::connection& c) {
      rows.clear();
      pqxx::read_transaction tx(c);  // one snapshot for the four tables
      for (const DimensionCopy& copy : kCopies) {
        rows.push_back(tx.exec_params(copy.select, array)[0][0].as<std::string>());
      }
      return absl::OkStatus();
    }));
    RETURN_IF_ERROR(warehouse_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      for (size_t i = 0; i < rows.size(); ++i) {
        const std::string table = kCopies[i].table;
        tx.exec_params("INSERT INTO " + table + " SELECT * FROM json_populate_recordset(NULL::" +
                           table + ", $1::json) ON CONFLICT (id) " + kCopies[i].conflict,
                       rows[i]);
      }
      tx.commit();
      return absl::OkStatus();
    }));
    absl::MutexLock l(&mu_);
    if (copied_.size() > 4'000'000) copied_.clear();
    copied_.insert(missing.begin(), missing.end());
    return ids;
  }

 private:
  MetadataStore* primary_;
  PgPool* primary_pool_;
  PgPool* warehouse_;
  absl::Mutex mu_;
  std::set<int32_t> copied_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<MetadataStore> NewWarehouseMetadataStore(MetadataStore* primary,
                                                         PgPool* primary_pool, PgPool* warehouse) {
  return std::make_unique<WarehouseMetadataStore>(primary, primary_pool, warehouse);
}

}  // namespace telemetry
