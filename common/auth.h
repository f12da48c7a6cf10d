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

// The SHA-256 fingerprint (64 lowercase hex digits) of a PEM X.509
// certificate's DER encoding: what `openssl x509 -noout -fingerprint -sha256`
// prints, without the colons.
absl::StatusOr<std::string> CertificateFingerprint(absl::string_view pem);
// The key a client certificate stands for (its hash is stored like an API
// key's): "x509-sha256:<fingerprint>".
std::string CertificateKey(absl::string_view fingerprint);

class Authenticator {
 public:
  Authenticator(MetadataStore* store, const Clock* clock, int64_t cache_ttl_ns = 30 * kNsPerSec);
  // `authorization` is the metadata value ("Bearer <key>"). Without one, a
  // verified client certificate (mutual TLS; its fingerprint) stands for the
  // tenant it was registered to. UNAUTHENTICATED when missing or unknown;
  // UNAVAILABLE when the store cannot be reached.
  absl::StatusOr<std::shared_ptr<const TenantInfo>> Authenticate(
      absl::string_view authorization, absl::string_view peer_certificate_fingerprint = "");

 private:
  absl::StatusOr<std::shared_ptr<const TenantInfo>> Lookup(const std::string& key_hash,
                                                           const char* unknown);
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
