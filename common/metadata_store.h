// Tenants, API keys, projects, devices and series: the platform's metadata,
// kept in Postgres (common/pg/metadata_store.cc) with an in-memory fake for tests.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"

namespace telemetry {

struct NewTenant {
  std::string name;
  bool require_registered_devices = false;
  std::vector<std::string> sensor_whitelist;
  double rate_per_sec = 1'000'000;
  double burst = 2'000'000;
  int32_t raw_retention_days = 30;
};

struct DeviceInfo {
  std::string name;
  std::string project;  // "" = the tenant's default project
  std::string model;
  std::string location;
  std::string time_zone;
  std::string labels_json;  // JSON object text, "" = none
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;
  // The tenant an API key (SHA-256 hex of the key) belongs to; nullopt when
  // the key is unknown or revoked.
  virtual absl::StatusOr<std::optional<TenantInfo>> TenantByKeyHash(
      const std::string& key_hash) = 0;
  // The tenant of this name (tenant names are unique); nullopt when none.
  // The MQTT bridge names tenants by the topic's tenant level.
  virtual absl::StatusOr<std::optional<TenantInfo>> TenantByName(const std::string& name) = 0;
  // Whether a tenant with this id exists.
  virtual absl::StatusOr<bool> TenantExists(int64_t tenant_id) = 0;
  // Creates a tenant with its default project; returns its id.
  virtual absl::StatusOr<int64_t> CreateTenant(const NewTenant& tenant) = 0;
  virtual absl::Status AddApiKey(int64_t tenant_id, const std::string& key_hash) = 0;
  // Registers (or updates) a device explicitly.
  virtual absl::StatusOr<int64_t> UpsertDevice(int64_t tenant_id, const DeviceInfo& device) = 0;
  // Ids of the named devices; unknown ones are created in the default project
  // when `create_missing`, else left out of the result.
  virtual absl::StatusOr<std::map<std::string, int64_t>> ResolveDevices(
      int64_t tenant_id, const std::vector<std::string>& names, bool create_missing) = 0;
  // Series ids, aligned with `specs`; creates missing series (and devices).
  // Updates the stored labels when a spec carries labels that differ.
  virtual absl::StatusOr<std::vector<int32_t>> ResolveSeries(
      int64_t tenant_id, const std::vector<SeriesSpec>& specs) = 0;
};

// Key and tenant lookups go to `replica` while `primary` is unavailable;
// everything else to `primary`. Neither is owned.
std::unique_ptr<MetadataStore> NewFallbackMetadataStore(MetadataStore* primary,
                                                        MetadataStore* replica);

}  // namespace telemetry
