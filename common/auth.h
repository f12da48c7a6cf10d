// Tenant authentication: `authorization: Bearer <api key>`; keys are stored
// as SHA-256 hex in Postgres and looked up through MetadataStore, with a
// short-lived cache so a call costs no database round trip.
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/metadata_store.h"

namespace telemetry {

std::string Sha256Hex(absl::string_view data);
// A new random API key ("tk_" + 64 hex digits).
std::string GenerateApiKey();

class Authenticator {
 public:
  Authenticator(MetadataStore* store, const Clock* clock, int64_t cache_ttl_ns = 30 * kNsPerSec);
  // `authorization` is the metadata value ("Bearer <key>"). UNAUTHENTICATED
  // when missing or unknown; UNAVAILABLE when the store cannot be reached.
  absl::StatusOr<std::shared_ptr<const TenantInfo>> Authenticate(absl::string_view authorization);

 private:
  struct Entry {
    std::shared_ptr<const TenantInfo> tenant;  // null: known-bad key
    int64_t expires_ns;
  };
  MetadataStore* store_;
  const Clock* clock_;
  int64_t ttl_ns_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace telemetry
