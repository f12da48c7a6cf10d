#include "common/logging.h"
#include "common/metadata_store.h"

namespace telemetry {
namespace {

// Reads that only need to be eventually consistent (who owns a key, whether
// a tenant exists) fall back to a replica when the primary is unavailable;
// writes always go to the primary.
class FallbackMetadataStore final : public MetadataStore {
 public:
  FallbackMetadataStore(MetadataStore* primary, MetadataStore* replica)
      : primary_(primary), replica_(replica) {}

  absl::StatusOr<std::optional<TenantInfo>> TenantByKeyHash(const std::string& hash) override {
    auto r = primary_->TenantByKeyHash(hash);
    if (r.status().code() != absl::StatusCode::kUnavailable) return r;
    GetLogger("metadata")->warn("primary unavailable, checking the API key on a replica");
    return replica_->TenantByKeyHash(hash);
  }
  absl::StatusOr<std::optional<TenantInfo>> TenantByName(const std::string& name) override {
    auto r = primary_->TenantByName(name);
    if (r.status().code() != absl::StatusCode::kUnavailable) return r;
    return replica_->TenantByName(name);
  }
  absl::StatusOr<bool> TenantExists(int64_t tenant_id) override {
    auto r = primary_->TenantExists(tenant_id);
    if (r.status().code() != absl::StatusCode::kUnavailable) return r;
    return replica_->TenantExists(tenant_id);
  }
  absl::StatusOr<int64_t> CreateTenant(const NewTenant& t) override {
    return primary_->CreateTenant(t);
  }
  absl::Status AddApiKey(int64_t tenant_id, const std::string& hash) override {
    return primary_->AddApiKey(tenant_id, hash);
  }
  absl::StatusOr<int64_t> UpsertDevice(int64_t tenant_id, const DeviceInfo& d) override {
    return primary_->UpsertDevice(tenant_id, d);
  }
  absl::StatusOr<std::map<std::string, int64_t>> ResolveDevices(
      int64_t tenant_id, const std::vector<std::string>& names, bool create_missing) override {
    return primary_->ResolveDevices(tenant_id, names, create_missing);
  }
  absl::StatusOr<std::vector<int32_t>> ResolveSeries(
      int64_t tenant_id, const std::vector<SeriesSpec>& specs) override {
    return primary_->ResolveSeries(tenant_id, specs);
  }

 private:
  MetadataStore* primary_;
  MetadataStore* replica_;
};

}  // namespace

std::unique_ptr<MetadataStore> NewFallbackMetadataStore(MetadataStore* primary,
                                                        MetadataStore* replica) {
  return std::make_unique<FallbackMetadataStore>(primary, replica);
}

}  // namespace telemetry
