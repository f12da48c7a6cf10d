#include "common/auth.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace telemetry {

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string GenerateApiKey() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) std::abort();
  return "tk_" +
         absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

Authenticator::Authenticator(MetadataStore* store, const Clock* clock, int64_t cache_ttl_ns)
    : store_(store), clock_(clock), ttl_ns_(cache_ttl_ns) {}

absl::StatusOr<std::string> CertificateFingerprint(absl::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return absl::InternalError("out of memory reading a certificate");
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return absl::InvalidArgumentError("not a PEM X.509 certificate");
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  X509_free(cert);
  if (len <= 0) return absl::InvalidArgumentError("cannot encode the certificate");
  std::string fingerprint = Sha256Hex(absl::string_view(reinterpret_cast<char*>(der), len));
  OPENSSL_free(der);
  return fingerprint;
}

std::string CertificateKey(absl::string_view fingerprint) {
  return absl::StrCat("x509-sha256:", absl::AsciiStrToLower(fingerprint));
}

absl::StatusOr<std::shared_ptr<const TenantInfo>> Authenticator::Authenticate(
    absl::string_view authorization, absl::string_view peer_certificate_fingerprint) {
  absl::string_view value = absl::StripAsciiWhitespace(authorization);
  if (value.empty() && !peer_certificate_fingerprint.empty()) {
    // Mutual TLS without a key: the verified client certificate stands for
    // the tenant it was registered to.
    return Lookup(Sha256Hex(CertificateKey(peer_certificate_fingerprint)),
                  "client certificate not registered to a tenant");
  }
  if (value.empty()) {
    return absl::UnauthenticatedError("missing 'authorization: Bearer <api key>' metadata");
  }
  if (!absl::StartsWithIgnoreCase(value, "bearer ")) {
    return absl::UnauthenticatedError("authorization metadata must be 'Bearer <api key>'");
  }
  std::string key(absl::StripAsciiWhitespace(value.substr(7)));
  if (key.empty()) return absl::UnauthenticatedError("empty API key");
  return Lookup(Sha256Hex(key), "unknown or revoked API key");
}

absl::StatusOr<std::shared_ptr<const TenantInfo>> Authenticator::Lookup(const std::string& hash,
                                                                        const char* unknown) {
  int64_t now = clock_->MonotonicNs();
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end() && it->second.expires_ns > now) {
      if (!it->second.tenant) return absl::UnauthenticatedError(unknown);
      return it->second.tenant;
    }
  }
  auto found = store_->TenantByKeyHash(hash);
  if (!found.ok()) {
    return absl::UnavailableError("cannot check the API key now: " +
                                  std::string(found.status().message()));
  }
  std::shared_ptr<const TenantInfo> tenant;
  if (found->has_value()) tenant = std::make_shared<const TenantInfo>(std::move(**found));
  {
    absl::MutexLock lock(&mu_);
    if (cache_.size() > 100000) cache_.clear();
    // Unknown keys are remembered briefly too, so a flood of bad keys does
    // not reach the database; a newly created key works within the TTL.
    cache_[hash] = Entry{tenant, now + (tenant ? ttl_ns_ : std::min(ttl_ns_, 2 * kNsPerSec))};
  }
  if (!tenant) return absl::UnauthenticatedError(unknown);
  return tenant;
}

}  // namespace telemetry
