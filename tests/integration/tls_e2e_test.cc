// TLS on every port, end to end: certificates made here with openssl, the
// services started as processes with the kit's --tls_* flags, called through
// gRPC and HTTPS. A plaintext client and a client trusting another CA are
// refused; the right CA works; with a client CA (mutual TLS) a client without
// a certificate is refused and a registered certificate stands for its tenant.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/grpc/tls.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {
namespace {

// A scratch directory with a CA, a server certificate for 127.0.0.1 and
// localhost, two client certificates, and a second CA nobody uses.
class Certificates {
 public:
  Certificates() : dir_(::testing::TempDir() + "/tls-" + std::to_string(::getpid())) {
    Run("rm -rf " + dir_ + " && mkdir -p " + dir_);
    MakeCa("ca");
    MakeCa("other-ca");
    Sign("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1");
    Sign("client", "device-1", "extendedKeyUsage=clientAuth");
    Sign("stranger", "device-2", "extendedKeyUsage=clientAuth");
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  static void Run(const std::string& cmd) {
    ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
  }
  void MakeCa(const std::string& name) {
    Run(absl::StrCat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes",
                     " -keyout ", Path(name + ".key"), " -out ", Path(name + ".pem"),
                     " -days 2 -subj /CN=", name));
  }
  void Sign(const std::string& name, const std::string& cn, const std::string& ext) {
    std::ofstream(Path(name + ".ext")) << ext << "\n";
    Run(absl::StrCat("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes",
                     " -keyout ", Path(name + ".key"), " -out ", Path(name + ".csr"),
                     " -subj /CN=", cn));
    Run(absl::StrCat("openssl x509 -req -in ", Path(name + ".csr"), " -CA ", Path("ca.pem"),
                     " -CAkey ", Path("ca.key"), " -CAcreateserial -days 2 -out ",
                     Path(name + ".pem"), " -extfile ", Path(name + ".ext")));
  }
  std::string dir_;
};

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A plaintext request to a TLS port ends in a reset: a write on it must
    // fail, not kill the test with SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    certs_ = new Certificates();
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }

  std::shared_ptr<grpc::Channel> Channel(int port, const std::string& ca,
                                         const std::string& cert = "") {
    TlsClientFiles files;
    files.ca = ca.empty() ? "" : certs_->Path(ca + ".pem");
    if (!cert.empty()) {
      files.cert = certs_->Path(cert + ".pem");
      files.key = certs_->Path(cert + ".key");
    }
    auto credentials = ChannelCredentialsFor(files);
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port), *credentials);
  }

  // Starts `binary` with TLS (and mutual TLS when `client_ca`), waits until
  // its HTTPS admin port answers /healthz.
  std::unique_ptr<Process> Start(const std::string& binary, std::vector<std::string> args,
                                 bool client_ca, int* grpc_port, int* http_port) {
    *grpc_port = FreePort();
    *http_port = FreePort();
    args.push_back("--listen=127.0.0.1:" + std::to_string(*grpc_port));
    args.push_back("--http_port=" + std::to_string(*http_port));
    args.push_back("--tls_cert=" + certs_->Path("server.pem"));
    args.push_back("--tls_key=" + certs_->Path("server.key"));
    if (client_ca) args.push_back("--tls_client_ca=" + certs_->Path("ca.pem"));
    auto process =
        std::make_unique<Process>(BuildDir() + binary, args,
                                  ::testing::TempDir() + "/tls-" + std::to_string(::getpid()) +
                                      "-" + std::to_string(*grpc_port) + ".log");
    for (int i = 0; i < 100 && Https(*http_port, "/healthz", client_ca) != 200; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return process;
  }

  // GET over HTTPS trusting our CA (with the client certificate when asked);
  // the status, 0 when refused.
  int Https(int port, const std::string& path, bool with_client_cert) {
    std::unique_ptr<httplib::SSLClient> client;
    if (with_client_cert) {
      client = std::make_unique<httplib::SSLClient>("127.0.0.1", port, certs_->Path("client.pem"),
                                                    certs_->Path("client.key"));
    } else {
      client = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
    }
    client->set_ca_cert_path(certs_->Path("ca.pem").c_str());
    client->enable_server_certificate_verification(true);
    client->set_connection_timeout(2);
    auto res = client->Get(path.c_str());
    return res ? res->status : 0;
  }

  static int PlainHttp(int port, const std::string& path) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(2);
    client.set_read_timeout(2);
    auto res = client.Get(path.c_str());
    return res ? res->status : 0;
  }

  static std::unique_ptr<grpc::ClientContext> Context(const std::string& key) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!key.empty()) ctx->AddMetadata("authorization", "Bearer " + key);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return ctx;
  }

  static Certificates* certs_;
};

Certificates* Tls::certs_ = nullptr;

TEST_F(Tls, IngestServesTlsOnlyAndRefusesPlaintextAndOtherCas) {
  Tenant tenant = CreateTenant("tls");
  int grpc_port = 0, http_port = 0;
  const int influx_port = FreePort();
  auto ingest = Start("/services/ingest/telemetry-ingest",
                      {"--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY"),
                       "--kafka_brokers=" + RequireEnv("TELEMETRY_KAFKA_BROKERS"),
                       "--influx_listen=127.0.0.1:" + std::to_string(influx_port)},
                      /*client_ca=*/false, &grpc_port, &http_port);
  ASSERT_EQ(Https(http_port, "/healthz", false), 200);
  EXPECT_EQ(PlainHttp(http_port, "/healthz"), 0) << "the admin port answered plaintext";
  // The line-protocol port takes the same certificate.
  EXPECT_EQ(Https(influx_port, "/ping", false), 204);
  EXPECT_EQ(PlainHttp(influx_port, "/ping"), 0) << "the line-protocol port answered plaintext";

  v1::WriteRequest req;
  auto* r = req.add_readings();
  r->set_device_id("tls-dev");
  r->set_sensor("temp");
  r->set_timestamp_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count());
  r->set_double_value(1.5);
  v1::WriteResponse resp;
  {
    auto stub = v1::IngestService::NewStub(Channel(grpc_port, ""));
    EXPECT_EQ(stub->Write(Context(tenant.key).get(), req, &resp).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
  {
    auto stub = v1::IngestService::NewStub(Channel(grpc_port, "other-ca"));
    EXPECT_EQ(stub->Write(Context(tenant.key).get(), req, &resp).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
  auto stub = v1::IngestService::NewStub(Channel(grpc_port, "ca"));
  grpc::Status st;
  for (int i = 0; i < 100; ++i) {  // until ingest has reached Kafka
    st = stub->Write(Context(tenant.key).get(), req, &resp);
    if (st.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.accepted(), 1);
  // TLS and a wrong key: still the tenant check, not a transport error.
  EXPECT_EQ(stub->Write(Context("tk_wrong").get(), req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(Tls, MutualTlsNeedsAClientCertificateAndARegisteredOneStandsForItsTenant) {
  Tenant tenant = CreateTenant("mtls");
  // The certificate is registered with the admin tool, as an operator would.
  Process admin(BuildDir() + "/tools/admin/telemetry-admin",
                {"add-client-cert", "--tenant_id=" + std::to_string(tenant.id),
                 "--cert=" + certs_->Path("client.pem"),
                 "--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY")},
                ::testing::TempDir() + "/tls-admin.log");
  ASSERT_EQ(admin.Wait(15000), 0);

  int grpc_port = 0, http_port = 0;
  auto query = Start("/services/query/telemetry-query",
                     {"--pg_primary=" + RequireEnv("TELEMETRY_PG_PRIMARY")},
                     /*client_ca=*/true, &grpc_port, &http_port);
  ASSERT_EQ(Https(http_port, "/healthz", true), 200);
  EXPECT_EQ(Https(http_port, "/healthz", false), 0) << "HTTPS without a client certificate";

  v1::LatestRequest req;
  req.add_device_ids("nobody");
  req.mutable_options()->set_consistency(v1::CONSISTENCY_LEVEL_STRONG);
  v1::LatestResponse resp;
  {
    // TLS with the right CA but no client certificate: the handshake fails.
    auto stub = v1::QueryService::NewStub(Channel(grpc_port, "ca"));
    EXPECT_EQ(stub->Latest(Context(tenant.key).get(), req, &resp).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
  {
    // A certificate the CA signed but nobody registered, and no key.
    auto stub = v1::QueryService::NewStub(Channel(grpc_port, "ca", "stranger"));
    grpc::Status st = stub->Latest(Context("").get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_NE(st.error_message().find("client certificate not registered"), std::string::npos)
        << st.error_message();
    // With an API key as well, the key decides.
    EXPECT_TRUE(stub->Latest(Context(tenant.key).get(), req, &resp).ok());
  }
  auto stub = v1::QueryService::NewStub(Channel(grpc_port, "ca", "client"));
  grpc::Status st = stub->Latest(Context("").get(), req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

}  // namespace
}  // namespace telemetry::testing
