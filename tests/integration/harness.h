// Test harness for integration, e2e and robustness tests: endpoints from the
// environment (deploy/local's env file or a compose stack), child processes
// for the services, tenants with keys, gRPC stubs and SQL for assertions.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/testing/grpc_health.h"
#include "telemetry/v1/alert.grpc.pb.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "telemetry/v1/query.grpc.pb.h"

namespace telemetry::testing {

// TELEMETRY_<name>; fails the test (not skips) when unset: the test command
// always provides it.
std::string RequireEnv(const char* name);
// Directory holding the built binaries (TELEMETRY_BUILD_DIR, else ./build).
std::string BuildDir();
// The local stack's S3 server (deploy/local/s3.sh) as an archive root:
// s3://<TELEMETRY_S3_BUCKET>/<prefix>?endpoint=<TELEMETRY_S3_ENDPOINT>. Also
// puts its credentials into this process's AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY, which the processes a test starts inherit.
std::string S3ArchiveRoot(const std::string& prefix);
std::string SourceDir();
int FreePort();

class Process {
 public:
  Process(std::string binary, std::vector<std::string> args, std::string log_path);
  ~Process();  // SIGTERM, then SIGKILL after 10 s
  void Signal(int sig);
  // Waits for exit; returns the exit status (or -signal).
  int Wait(int timeout_ms = 15000);
  bool running();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

struct Tenant {
  int64_t id = 0;
  std::string key;
};

// Creates a tenant (unique name) with an API key in the primary.
Tenant CreateTenant(const std::string& prefix, NewTenant options = {});

// The services, started as processes on free ports against the env's stack.
class Services {
 public:
  Services();
  ~Services();
  void StartIngest(const std::vector<std::string>& extra = {});
  void StartWriter(const std::vector<std::string>& extra = {});
  void StartQuery(const std::vector<std::string>& extra = {});
  // The alert service; returns once its rules are loaded and it has
  // partitions (readiness). Each start logs to alert.<n>.log.
  void StartAlert(const std::vector<std::string>& extra = {});
  void StopAlert(int sig);
  // The MQTT bridge against the env's Mosquitto with the bridge user and a
  // client id (persistent session) of this process; ready once connected to
  // the broker and Kafka. StopBridge(sig) waits for it to end.
  void StartBridge(const std::vector<std::string>& extra = {});
  void StopBridge(int sig);
  Process* bridge() { return bridge_.get(); }
  int bridge_http_port() const { return bridge_http_port_; }
  std::string bridge_client_id() const;
  Process* writer() { return writer_.get(); }
  Process* alert() { return alert_.get(); }
  void StopWriter(int sig);
  std::unique_ptr<telemetry::v1::IngestService::Stub> IngestStub();
  std::unique_ptr<telemetry::v1::QueryService::Stub> QueryStub();
  std::unique_ptr<telemetry::v1::AlertService::Stub> AlertStub();
  int alert_http_port() const { return alert_http_port_; }
  std::string log_dir() const { return log_dir_; }
  int ingest_port() const { return ingest_port_; }
  // Ingest's InfluxDB line-protocol port (--influx_listen).
  int influx_port() const { return influx_port_; }
  int writer_http_port() const { return writer_http_port_; }
  int query_port() const { return query_port_; }

 private:
  std::string log_dir_;
  int ingest_port_ = 0, influx_port_ = 0, query_port_ = 0, writer_http_port_ = 0;
  int alert_port_ = 0, alert_http_port_ = 0, bridge_http_port_ = 0;
  std::unique_ptr<Process> ingest_, writer_, query_, alert_, bridge_;
  int writer_runs_ = 0, alert_runs_ = 0, bridge_runs_ = 0;
};

// A topic of its own for a test (unique name from `prefix`), created on the
// env's Kafka with `partitions` and topic `config`; DeleteTopic removes it.
std::string CreateTopic(const std::string& prefix, int partitions,
                        const std::map<std::string, std::string>& config = {});
void DeleteTopic(const std::string& name);

// deploy/local/kafka.sh WHAT (stop, kill, start, pause, resume): the local
// broker's outages for robustness tests; returns the script's exit status.
int KafkaCtl(const std::string& what);

// The value of a Prometheus sample (`name` with its labels, as printed) on
// http://127.0.0.1:<port>/metrics; -1 when absent or unreachable.
double MetricValue(int http_port, const std::string& name);

// Waits until a gRPC server answers on `port` (health check).
bool WaitForServing(int port, int timeout_ms);

// Polls GrpcHealth (common/testing/grpc_health.h) until it returns `want` (true) or `timeout_ms`
// passes.
bool WaitForHealth(int port, const std::string& service, int want, int timeout_ms);

// Runs `cmd` with /bin/sh; its standard output and exit status (-1 when it
// did not exit normally).
std::pair<std::string, int> Shell(const std::string& cmd);

// SQL counting the raw readings stored for the series matching `series_where`
// (a condition on `series s`): rows of raw_readings plus the readings packed
// into segments (raw_readings_seg.n; the writer packs closed hours).
std::string StoredReadingsSql(const std::string& series_where);
// A subquery with a tenant's raw readings, rows and unpacked segments (the
// columns of raw_readings): what `raw_readings_merged` holds for the tenant,
// with the segments chosen before they are unpacked (a join of the view with
// `series` unpacks every segment of the database first).
std::string TenantReadingsSql(int64_t tenant_id);
// Raw readings stored for a tenant (rows and packed, StoredReadingsSql).
int64_t StoredReadings(int64_t tenant_id);
// Waits until `expected` readings of the tenant are stored (at most
// `timeout_s`), then a second more to see nothing extra arrives; the count.
int64_t WaitForReadings(int64_t tenant_id, int64_t expected, int timeout_s = 60);

// One-shot SQL on the primary (as the telemetry role): first column of each
// row as text.
std::vector<std::vector<std::string>> Sql(const std::string& query);
int64_t SqlInt(const std::string& query);
// Runs a statement that changes data on the primary; returns the rows touched.
int64_t SqlExec(const std::string& statement);

// Polls `probe` every 100 ms until it returns true (at most `ms`); whether it did.
template <typename F>
bool Eventually(F probe, int ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!probe()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

// A STRONG Latest call that waits for `token` (returns the status).
grpc::Status WaitForToken(telemetry::v1::QueryService::Stub* query, const std::string& key,
                          const std::string& token, const std::string& any_device,
                          int timeout_ms = 60000);

}  // namespace telemetry::testing
