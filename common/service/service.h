// The service kit: what every service's main() shares, so a main() is only
// the wiring of its own parts. In order:
//
//   telemetry::Service service(argc, argv, {"telemetry-foo", "what it does", {grpc names}});
//   ... build clients and cores (service.log(), .clock(), .metrics()) ...
//   service.Every("kafka-health", absl::Seconds(1), [&] { ... service.health()->SetAll(...); });
//   RETURN_IF_FAILED(service.ServeGrpc(listen, {&impl}));       // optional
//   service.OnShutdown("flush Kafka", [&] { publisher->Flush(10000); });
//   return service.Run();                                       // or Run(main_loop)
//
// The constructor blocks the shutdown signals (before gRPC or librdkafka
// start threads, which inherit the mask), applies the environment fallbacks
// of the flags and parses them (common/config.h), and sets the log level.
// With --tls_cert and --tls_key, the gRPC and HTTP ports serve TLS only; with
// --tls_client_ca too, both require a client certificate (common/grpc/tls.h).
// Run() serves the HTTP admin port (/metrics, /healthz, /readyz), waits for
// SIGTERM or SIGINT on the calling thread (or runs `main_loop` there while a
// signal thread waits), then shuts down in one order for every service:
//   1. health NOT_SERVING and /readyz 503, for good (load balancers leave);
//      the OnDrainStart steps (end streams that would hold the drain);
//   2. stop accepting: gRPC Shutdown, in-flight calls get --drain_s to end;
//   3. the main loop (if any) is told to stop and returns (drain);
//   4. the OnShutdown steps in the order added (flush, then commit);
//   5. periodic tasks stopped, newest first, each promptly; one stuck in a
//      client library for 5 s is left behind and the process exits without
//      waiting for it;
//   6. the HTTP admin port closes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/grpc/tls.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/service/admin_http.h"
#include "common/service/health.h"
#include "common/service/periodic.h"

namespace telemetry {

struct ServiceInfo {
  std::string name;   // e.g. "telemetry-ingest"; the logger is named after it
  std::string usage;  // the first line of --help
  // gRPC health names besides "" (e.g. "telemetry.v1.IngestService").
  std::vector<std::string> health_names;
  // /readyz's answer until the service says it is ready.
  std::string starting_reason = "starting";
  // The HTTP admin port when --http_port is -1 (its default).
  int default_http_port = 0;
};

class Service {
 public:
  // Call first in main(), before anything starts a thread.
  Service(int argc, char** argv, ServiceInfo info);
  ~Service();

  const std::shared_ptr<spdlog::logger>& log() const { return log_; }
  const Clock* clock() const { return SystemClock::Get(); }
  MetricsRegistry* metrics() const { return MetricsRegistry::Default(); }
  HealthState* health() { return &health_; }

  // Starts a periodic task now (PeriodicTask); Run's shutdown stops it.
  void Every(const std::string& name, absl::Duration interval, std::function<void()> fn,
             bool run_at_start = true);

  // Serves `services` on `address` ("host:port", port 0 picks one) with
  // grpc.health.v1 (published from health()) and server reflection.
  absl::Status ServeGrpc(const std::string& address, const std::vector<grpc::Service*>& services,
                         int max_message_bytes = 64 << 20);
  int grpc_port() const { return grpc_port_; }

  // A shutdown step, run after the service stopped accepting and drained.
  void OnShutdown(const std::string& name, std::function<void()> step);
  // A step run as shutdown begins (on the signal, before the main loop
  // stops and gRPC drains): ends calls that never end on their own (server
  // streams), which would otherwise hold the drain for --drain_s. Runs once.
  void OnDrainStart(const std::string& name, std::function<void()> step);

  // Logs `status` as the reason the service cannot start, stops the periodic
  // tasks; returns `code` for main() to return. Every early return of a
  // main() goes through here (the tasks use what main() built).
  int Fail(const std::string& what, const absl::Status& status, int code = 1);

  // Serves the HTTP admin port, waits for a shutdown signal (running
  // `main_loop` on this thread meanwhile, if given: it must return soon
  // after `stop` turns true), then shuts down (above). Returns the exit code.
  int Run(std::function<void(const std::atomic<bool>& stop)> main_loop = nullptr);

  // The kit's --tls_* flags (for a service's own extra listeners).
  static TlsServerFiles TlsFiles();

 private:
  void ShutDown();
  // The OnDrainStart steps, the first time only.
  void StartDrain();
  // Stops every periodic task, newest first, each given 5 s; false when one
  // is still running (left behind).
  bool StopTasks();
  ServiceInfo info_;
  std::shared_ptr<spdlog::logger> log_;
  HealthState health_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int grpc_port_ = 0;
  std::vector<std::unique_ptr<PeriodicTask>> tasks_;
  std::vector<std::pair<std::string, std::function<void()>>> shutdown_steps_;
  std::vector<std::pair<std::string, std::function<void()>>> drain_start_steps_;
  std::once_flag drain_started_;
  std::unique_ptr<AdminHttpServer> http_;
};

}  // namespace telemetry
