#include <gtest/gtest.h>

#include "common/auth.h"
#include "common/config.h"
#include "common/grpc/status.h"
#include "common/grpc/tls.h"
#include "common/metrics.h"
#include "common/pg/pool.h"
#include "common/pg/replication.h"
#include "common/redis/latest_cache.h"
#include "common/testing/fakes.h"

namespace telemetry {
namespace {

TEST(Config, KeyValueListsParseAndRejectWhatTheyCannotMean) {
  auto kv = ParseKeyValues(" linger.ms=5 , sasl.jaas=a=b,,security.protocol=SASL_SSL ");
  ASSERT_TRUE(kv.ok()) << kv.status();
  EXPECT_EQ(*kv, (std::map<std::string, std::string>{
                     {"linger.ms", "5"}, {"sasl.jaas", "a=b"}, {"security.protocol", "SASL_SSL"}}));
  EXPECT_TRUE(ParseKeyValues("")->empty());
  auto missing = ParseKeyValues("linger.ms");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("linger.ms"), std::string::npos);
  EXPECT_FALSE(ParseKeyValues("=5").ok());
  auto twice = ParseKeyValues("a=1,a=2");
  EXPECT_NE(twice.status().message().find("given twice"), std::string::npos);
}

TEST(Status, MapsEveryCodeToTheSameGrpcCode) {
  for (int c = 0; c <= 16; ++c) {
    absl::Status st(static_cast<absl::StatusCode>(c), "m");
    grpc::Status g = ToGrpcStatus(st);
    EXPECT_EQ(static_cast<int>(g.error_code()), c);
    EXPECT_EQ(FromGrpcStatus(g).code(), st.code());
  }
}

TEST(Auth, BearerKeysAreCheckedAgainstTheirHash) {
  testing::FakeMetadataStore store;
  NewTenant t;
  t.name = "a";
  int64_t id = *store.CreateTenant(t);
  std::string key = GenerateApiKey();
  ASSERT_TRUE(store.AddApiKey(id, Sha256Hex(key)).ok());
  FakeClock clock(0);
  Authenticator auth(&store, &clock);
  auto ok = auth.Authenticate("Bearer " + key);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->id, id);
  EXPECT_EQ(auth.Authenticate("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.Authenticate(key).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.Authenticate("Bearer tk_wrong").status().code(),
            absl::StatusCode::kUnauthenticated);
  // Cached: a store outage does not fail a known key within the TTL...
  store.SetUp(false);
  EXPECT_TRUE(auth.Authenticate("Bearer " + key).ok());
  // ...but an unknown key cannot be checked: UNAVAILABLE, not UNAUTHENTICATED.
  EXPECT_EQ(auth.Authenticate("Bearer tk_other").status().code(), absl::StatusCode::kUnavailable);
}

TEST(Auth, ARegisteredCertificateStandsForItsTenantWhenNoKeyIsSent) {
  testing::FakeMetadataStore store;
  NewTenant t;
  t.name = "a";
  const int64_t a = *store.CreateTenant(t);
  t.name = "b";
  const int64_t b = *store.CreateTenant(t);
  const std::string fingerprint(64, 'a');
  ASSERT_TRUE(store.AddApiKey(a, Sha256Hex(CertificateKey(fingerprint))).ok());
  const std::string key = GenerateApiKey();
  ASSERT_TRUE(store.AddApiKey(b, Sha256Hex(key)).ok());
  FakeClock clock(0);
  Authenticator auth(&store, &clock);
  auto by_cert = auth.Authenticate("", fingerprint);
  ASSERT_TRUE(by_cert.ok()) << by_cert.status();
  EXPECT_EQ((*by_cert)->id, a);
  // Upper-case hex is the same certificate.
  EXPECT_TRUE(auth.Authenticate("", std::string(64, 'A')).ok());
  // A key, when sent, decides.
  EXPECT_EQ((*auth.Authenticate("Bearer " + key, fingerprint))->id, b);
  auto unknown = auth.Authenticate("", std::string(64, 'b'));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(unknown.status().message(), "client certificate not registered to a tenant");
  // Not a certificate: no fingerprint.
  EXPECT_EQ(CertificateFingerprint("not a certificate").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Tls, FlagCombinationsThatCannotWorkAreRefusedNamingTheFlag) {
  TlsServerFiles server;
  EXPECT_TRUE(ServerCredentialsFor(server).ok());  // plaintext
  server.cert = "/nonexistent/cert.pem";
  auto half = ServerCredentialsFor(server);
  EXPECT_EQ(half.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(half.status().message().find("--tls_cert and --tls_key go together"),
            std::string::npos);
  server.key = "/nonexistent/key.pem";
  auto unreadable = ServerCredentialsFor(server);
  EXPECT_EQ(unreadable.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unreadable.status().message().find("--tls_cert: "), std::string::npos);
  TlsServerFiles ca_only;
  ca_only.client_ca = "/nonexistent/ca.pem";
  EXPECT_EQ(ServerCredentialsFor(ca_only).status().code(), absl::StatusCode::kInvalidArgument);
  TlsClientFiles client;
  EXPECT_TRUE(ChannelCredentialsFor(client).ok());  // plaintext
  client.cert = "/nonexistent/client.pem";
  EXPECT_EQ(ChannelCredentialsFor(client).status().code(), absl::StatusCode::kInvalidArgument);
  client.ca = "/nonexistent/ca.pem";
  auto no_ca = ChannelCredentialsFor(client);
  EXPECT_NE(no_ca.status().message().find("--tls_ca: "), std::string::npos);
}

TEST(Replicas, ListNamesEachReplicaByItsPrefixOrPosition) {
  auto r = ParseReplicaList("postgresql://a:1/t, ,east=postgresql://b:2/t?x=y,postgresql://c/t");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].name, "replica-1");
  EXPECT_EQ(r[0].url, "postgresql://a:1/t");
  EXPECT_EQ(r[1].name, "replica-east");
  EXPECT_EQ(r[1].url, "postgresql://b:2/t?x=y");  // '=' inside the URL stays
  EXPECT_EQ(r[2].name, "replica-3");
  EXPECT_TRUE(ParseReplicaList("").empty());
}

TEST(Auth, Sha256IsTheStandardDigest) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(LatestCacheEncoding, RoundTripsEveryKind) {
  ReadingRow r;
  r.ts_ns = 1'790'000'000'000'000'000;
  r.unit = "k|Pa";
  r.status = 7;
  r.d = 0.1 + 0.2;
  auto back = DecodeLatest(EncodeLatest(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ts_ns, r.ts_ns);
  EXPECT_EQ(back->unit, "k|Pa");
  EXPECT_EQ(back->status, 7);
  EXPECT_EQ(back->d, r.d);  // exact round trip
  r.kind = ValueKind::kString;
  r.s = "a|b";
  EXPECT_EQ(DecodeLatest(EncodeLatest(r))->s, "a|b");
  r.kind = ValueKind::kBool;
  r.b = true;
  EXPECT_TRUE(DecodeLatest(EncodeLatest(r))->b);
  // Newer timestamps sort after older ones as strings (the Lua guard).
  ReadingRow older = r;
  older.ts_ns = 999;
  EXPECT_LT(EncodeLatest(older).substr(0, 19), EncodeLatest(r).substr(0, 19));
  EXPECT_EQ(DecodeLatest("garbage").status().code(), absl::StatusCode::kDataLoss);
}

TEST(Metrics, RendersPrometheusText) {
  MetricsRegistry r;
  r.AddCounter("x_total", "help x")->Inc(3);
  r.AddGauge("g", "help g", "a=\"1\"")->Set(2.5);
  r.AddHistogram("h_seconds", "help h", {0.1, 1})->Observe(0.5);
  std::string text = r.Render();
  EXPECT_NE(text.find("# TYPE x_total counter\nx_total 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("g{a=\"1\"} 2.5"), std::string::npos);
  EXPECT_NE(text.find("h_seconds_bucket{le=\"1\"} 1"), std::string::npos);
  EXPECT_NE(text.find("h_seconds_count 1"), std::string::npos);
}

TEST(PgArray, QuotesEveryElement) {
  EXPECT_EQ(PgTextArray({"a", "b\"c", "d\\e", ""}), "{\"a\",\"b\\\"c\",\"d\\\\e\",\"\"}");
  EXPECT_EQ(PgTextArray({}), "{}");
}

}  // namespace
}  // namespace telemetry
