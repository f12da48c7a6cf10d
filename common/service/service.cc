#include "common/service/service.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "absl/flags/flag.h"
#include "common/config.h"
#include "common/grpc/server.h"
#include "common/grpc/tls.h"

// The flags every service has (each main() adds its own).
ABSL_FLAG(std::string, log_level, "info", "Log level (trace, debug, info, warn, error)");
ABSL_FLAG(std::string, http_host, "127.0.0.1",
          "Host the HTTP admin port (/metrics, /healthz, /readyz) listens on (0.0.0.0: all)");
ABSL_FLAG(int, http_port, -1,
          "HTTP admin port (/metrics, /healthz, /readyz); 0 picks a free one; -1: the "
          "service's own default (ingest 9101, writer 9102, query 9103)");
ABSL_FLAG(int, drain_s, 10, "On shutdown, how long in-flight gRPC calls get to finish");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: with --tls_key, the gRPC and HTTP ports serve TLS only");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: the gRPC and HTTP ports require a client certificate it signed "
          "(mutual TLS; a certificate registered with telemetry-admin add-client-cert stands "
          "for its tenant when a call has no API key)");

namespace telemetry {
namespace {

sigset_t ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// Blocks SIGTERM, SIGINT and SIGPIPE in the calling thread, so every thread
// started later (gRPC, librdkafka) inherits the mask.
void BlockShutdownSignals() {
  sigset_t set = ShutdownSignals();
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForShutdownSignal() {
  sigset_t set = ShutdownSignals();
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace

Service::Service(int argc, char** argv, ServiceInfo info)
    : info_(std::move(info)), health_(info_.health_names, info_.starting_reason) {
  BlockShutdownSignals();
  InitFlags(argc, argv, (info_.name + ": " + info_.usage).c_str());
  SetLogLevel(absl::GetFlag(FLAGS_log_level));
  std::string logger = info_.name;
  if (logger.rfind("telemetry-", 0) == 0) logger = logger.substr(10);
  log_ = GetLogger(logger);
}

Service::~Service() {
  // Run() and Fail() stopped them already; a main() that returned another
  // way gets them stopped here, after its own objects are gone.
  for (auto it = tasks_.rbegin(); it != tasks_.rend(); ++it) (*it)->Stop();
}

void Service::Every(const std::string& name, absl::Duration interval, std::function<void()> fn,
                    bool run_at_start) {
  tasks_.push_back(std::make_unique<PeriodicTask>(name, interval, std::move(fn), run_at_start));
}

absl::Status Service::ServeGrpc(const std::string& address,
                                const std::vector<grpc::Service*>& services,
                                int max_message_bytes) {
  auto credentials = ServerCredentialsFor(TlsFiles());
  if (!credentials.ok()) return credentials.status();
  auto server = StartGrpcServer(address, services, &grpc_port_, max_message_bytes, *credentials);
  if (!server.ok()) return server.status();
  grpc_server_ = std::move(*server);
  health_.Attach(grpc_server_.get());
  return absl::OkStatus();
}

TlsServerFiles Service::TlsFiles() {
  TlsServerFiles files;
  files.cert = absl::GetFlag(FLAGS_tls_cert);
  files.key = absl::GetFlag(FLAGS_tls_key);
  files.client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  return files;
}

void Service::OnShutdown(const std::string& name, std::function<void()> step) {
  shutdown_steps_.emplace_back(name, std::move(step));
}

void Service::OnDrainStart(const std::string& name, std::function<void()> step) {
  drain_start_steps_.emplace_back(name, std::move(step));
}

void Service::StartDrain() {
  std::call_once(drain_started_, [this] {
    for (auto& [name, step] : drain_start_steps_) {
      log_->info("shutdown: {}", name);
      step();
    }
  });
}

int Service::Fail(const std::string& what, const absl::Status& status, int code) {
  log_->critical("{}: {}", what, std::string(status.message()));
  // The server's handlers and the tasks use what main() built after them,
  // which main() destroys as it returns: stop them first.
  health_.ShutDown();
  if (grpc_server_) grpc_server_->Shutdown(std::chrono::system_clock::now());
  if (!StopTasks()) {
    spdlog::shutdown();
    std::_Exit(code);
  }
  return code;
}

bool Service::StopTasks() {
  bool clean = true;
  for (auto it = tasks_.rbegin(); it != tasks_.rend(); ++it) {
    if (!(*it)->Stop(absl::Seconds(5))) {
      log_->warn("{} is still waiting on a dependency; exiting without it", (*it)->name());
      clean = false;
    }
  }
  if (clean) tasks_.clear();
  return clean;
}

int Service::Run(std::function<void(const std::atomic<bool>& stop)> main_loop) {
  int http_port = absl::GetFlag(FLAGS_http_port);
  if (http_port < 0) http_port = info_.default_http_port;
  http_ = std::make_unique<AdminHttpServer>(metrics(), &health_, TlsFiles());
  absl::Status hs = http_->Start(absl::GetFlag(FLAGS_http_host), http_port);
  if (!hs.ok()) return Fail("HTTP admin port", hs);
  const char* tls =
      TlsFiles().enabled() ? (TlsFiles().client_ca.empty() ? " (TLS)" : " (mutual TLS)") : "";
  if (grpc_server_) {
    log_->info("{} listening on gRPC port {} and HTTP port {}{}", info_.name, grpc_port_,
               http_->port(), tls);
  } else {
    log_->info("{} running; HTTP port {}{}", info_.name, http_->port(), tls);
  }
  std::atomic<bool> stop{false};
  if (main_loop) {
    std::thread signals([&] {
      const int sig = WaitForShutdownSignal();
      log_->info("signal {}: shutting down", sig);
      health_.ShutDown();
      StartDrain();
      stop = true;
    });
    main_loop(stop);
    if (!stop) {  // the loop ended on its own: wake the signal thread
      log_->warn("main loop ended without a signal: shutting down");
      kill(getpid(), SIGTERM);
    }
    signals.join();
  } else {
    const int sig = WaitForShutdownSignal();
    log_->info("signal {}: shutting down", sig);
  }
  ShutDown();
  return 0;
}

void Service::ShutDown() {
  health_.ShutDown();
  StartDrain();
  if (grpc_server_) {
    const auto start = std::chrono::steady_clock::now();
    grpc_server_->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::seconds(absl::GetFlag(FLAGS_drain_s)));
    log_->info("shutdown: gRPC calls drained in {} ms",
               std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count());
  }
  for (auto& [name, step] : shutdown_steps_) {
    log_->info("shutdown: {}", name);
    step();
  }
  const bool clean = StopTasks();
  if (http_) http_->Stop();
  if (!clean) {
    // A task left running still uses what main() built: leave now, without
    // destructors.
    spdlog::shutdown();
    std::_Exit(0);
  }
  log_->info("stopped");
}

}  // namespace telemetry
