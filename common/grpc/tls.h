// TLS for every gRPC port and client of ours, configured the same way: PEM
// files. A server with a certificate and key serves TLS only; with a client
// CA as well, it requires and verifies a client certificate signed by it
// (mutual TLS; the certificate may then stand for a tenant, common/auth.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace telemetry {

struct TlsServerFiles {
  std::string cert;       // PEM certificate chain ("" = plaintext)
  std::string key;        // PEM private key
  std::string client_ca;  // PEM CA bundle for client certificates ("" = none asked)
  bool enabled() const { return !cert.empty() || !key.empty(); }
};

struct TlsClientFiles {
  std::string ca;    // PEM CA bundle that signed the server's certificate ("" = plaintext)
  std::string cert;  // PEM client certificate, for mutual TLS ("" = none)
  std::string key;   // its private key
  bool enabled() const { return !ca.empty(); }
};

// The whole content of `path`; NOT_FOUND naming it when unreadable.
absl::StatusOr<std::string> ReadPemFile(const std::string& path);

// Plaintext when `files` is empty; INVALID_ARGUMENT naming the flag when a
// certificate comes without its key (or the reverse) or a file is unreadable.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const TlsServerFiles& files);
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const TlsClientFiles& files);

// For command-line clients: the credentials, or exit(2) with the reason.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsOrExit(const TlsClientFiles& files);

// The SHA-256 fingerprint of the verified client certificate of a call, ""
// when there is none (plaintext, or TLS without a client certificate).
std::string PeerCertificateFingerprint(const grpc::ServerContextBase* ctx);

}  // namespace telemetry
