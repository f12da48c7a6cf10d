#include "common/grpc/tls.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/auth.h"
#include "common/status_macros.h"

namespace telemetry {

absl::StatusOr<std::string> ReadPemFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

namespace {

// The certificate and key files of one side, read together.
absl::Status ReadPair(const std::string& cert_path, const std::string& key_path, std::string* cert,
                      std::string* key) {
  if (cert_path.empty() || key_path.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  auto c = ReadPemFile(cert_path);
  if (!c.ok()) return absl::InvalidArgumentError("--tls_cert: " + c.status().ToString());
  auto k = ReadPemFile(key_path);
  if (!k.ok()) return absl::InvalidArgumentError("--tls_key: " + k.status().ToString());
  *cert = std::move(*c);
  *key = std::move(*k);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const TlsServerFiles& files) {
  if (!files.enabled()) {
    if (!files.client_ca.empty()) {
      return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  std::string cert, key;
  RETURN_IF_ERROR(ReadPair(files.cert, files.key, &cert, &key));
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({key, cert});
  if (!files.client_ca.empty()) {
    auto ca = ReadPemFile(files.client_ca);
    if (!ca.ok()) {
      return absl::InvalidArgumentError("--tls_client_ca: " + ca.status().ToString());
    }
    options.pem_root_certs = *ca;
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const TlsClientFiles& files) {
  if (!files.enabled()) {
    if (!files.cert.empty() || !files.key.empty()) {
      return absl::InvalidArgumentError("--tls_cert/--tls_key need --tls_ca");
    }
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions options;
  auto ca = ReadPemFile(files.ca);
  if (!ca.ok()) return absl::InvalidArgumentError("--tls_ca: " + ca.status().ToString());
  options.pem_root_certs = *ca;
  if (!files.cert.empty() || !files.key.empty()) {
    RETURN_IF_ERROR(
        ReadPair(files.cert, files.key, &options.pem_cert_chain, &options.pem_private_key));
  }
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsOrExit(const TlsClientFiles& files) {
  auto credentials = ChannelCredentialsFor(files);
  if (!credentials.ok()) {
    std::fprintf(stderr, "%s\n", std::string(credentials.status().message()).c_str());
    std::exit(2);
  }
  return *credentials;
}

std::string PeerCertificateFingerprint(const grpc::ServerContextBase* ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return "";
  std::vector<grpc::string_ref> pem = auth->FindPropertyValues("x509_pem_cert");
  if (pem.empty()) return "";
  auto fingerprint = CertificateFingerprint(absl::string_view(pem[0].data(), pem[0].size()));
  return fingerprint.ok() ? *fingerprint : "";
}

}  // namespace telemetry
