// telemetry-ingest: the IngestService gRPC server.
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/kafka_admin.h"
#include "common/logging.h"
#include "common/pg_pool.h"
#include "common/reading_store.h"
#include "common/runtime.h"
#include "services/ingest/codec.h"
#include "services/ingest/ingest_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "gRPC listen address");
ABSL_FLAG(int, http_port, 9101, "HTTP port for /metrics, /healthz, /readyz (0: any)");
ABSL_FLAG(std::string, http_host, "127.0.0.1", "HTTP listen host");
ABSL_FLAG(std::string, pg_primary, "postgresql://telemetry@127.0.0.1:5432/telemetry",
          "Postgres primary (metadata: tenants, keys, devices; writer offsets)");
ABSL_FLAG(std::string, kafka_brokers, "127.0.0.1:9092", "Kafka bootstrap servers");
ABSL_FLAG(std::string, topic, "telemetry.readings.v1", "Readings topic");
ABSL_FLAG(std::string, kafka_config, "",
          "Extra librdkafka properties: name=value,... (e.g. security.protocol=SSL)");
ABSL_FLAG(int, worker_threads, 4, "Threads for authentication, validation and registration");
ABSL_FLAG(int, max_queue, 10000, "Queued requests before RESOURCE_EXHAUSTED");
ABSL_FLAG(int, pg_connections, 4, "Postgres connections");
ABSL_FLAG(int64_t, max_ack_wait_ms, 10000, "Longest wait for Kafka's acknowledgement");
ABSL_FLAG(int64_t, max_writer_lag_messages, 20000,
          "Refuse writes while the writer is this many messages behind (0: off)");
ABSL_FLAG(int64_t, max_writer_lag_bytes, 2 << 20,
          "Refuse writes (RESOURCE_EXHAUSTED) while the writer is this many bytes behind on a "
          "partition (estimated from the average message; 0 = off)");
ABSL_FLAG(std::string, log_level, "info", "Log level");

int main(int argc, char** argv) {
  telemetry::BlockShutdownSignals();
  telemetry::InitFlags(argc, argv, "telemetry-ingest: accepts readings over gRPC into Kafka");
  telemetry::SetLogLevel(absl::GetFlag(FLAGS_log_level));
  auto log = telemetry::GetLogger("ingest");
  auto* clock = telemetry::SystemClock::Get();
  auto* registry = telemetry::MetricsRegistry::Default();

  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary), absl::GetFlag(FLAGS_pg_connections),
                         "primary");
  auto metadata = telemetry::NewPgMetadataStore(&pool);
  auto store = telemetry::NewPgReadingStore(&pool);
  telemetry::KafkaOptions ko;
  ko.brokers = absl::GetFlag(FLAGS_kafka_brokers);
  ko.client_id = "telemetry-ingest";
  ko.message_timeout_ms = static_cast<int>(absl::GetFlag(FLAGS_max_ack_wait_ms)) + 5000;
  auto kafka_extra = telemetry::ParseKeyValues(absl::GetFlag(FLAGS_kafka_config));
  if (!kafka_extra.ok()) {
    log->critical("--kafka_config: {}", std::string(kafka_extra.status().message()));
    return 2;
  }
  ko.extra = *kafka_extra;
  auto publisher = telemetry::NewKafkaPublisher(ko);
  if (!publisher.ok()) {
    log->critical("kafka: {}", publisher.status().ToString());
    return 1;
  }
  telemetry::ingest::IngestOptions options;
  options.topic = absl::GetFlag(FLAGS_topic);
  options.max_ack_wait_ns = absl::GetFlag(FLAGS_max_ack_wait_ms) * telemetry::kNsPerMs;
  options.max_writer_lag_messages = absl::GetFlag(FLAGS_max_writer_lag_messages);
  options.max_writer_lag_bytes = absl::GetFlag(FLAGS_max_writer_lag_bytes);
  telemetry::ingest::IngestMetrics metrics(registry);
  telemetry::ingest::IngestCore core(options, publisher->get(), metadata.get(), clock, &metrics);
  // Kafka may come up after us: keep trying to learn the topic's layout.
  // Then, every second, check Kafka still answers: while it does not, this
  // instance reports NOT_SERVING (gRPC health) and not ready (/readyz), so a
  // load balancer sends writes to another one; writes that arrive anyway get
  // UNAVAILABLE at their deadline.
  std::atomic<bool> started{false};
  std::atomic<bool> kafka_ok{false};
  std::atomic<bool> stop{false};
  // The health flip and the server's first status under one lock: a flip
  // between reading kafka_ok and publishing it would be lost otherwise.
  std::mutex health_mu;
  std::atomic<grpc::Server*> grpc_server{nullptr};
  auto set_kafka_ok = [&](bool ok) {
    std::lock_guard<std::mutex> lock(health_mu);
    if (kafka_ok.exchange(ok) == ok) return;
    if (ok) {
      log->info("Kafka answers again: serving");
    } else {
      log->warn("Kafka does not answer: reporting NOT_SERVING");
    }
    if (grpc::Server* s = grpc_server.load()) s->GetHealthCheckService()->SetServingStatus(ok);
  };
  auto sleep_a_second = [&] {
    for (int i = 0; i < 10 && !stop; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  };
  std::thread health([&] {
    while (!stop) {
      if (!started) {
        absl::Status st = core.Start();
        if (st.ok()) {
          started = true;
          set_kafka_ok(true);
          log->info("topic {} has {} partitions", options.topic, core.partitions());
          // A size-based retention must never drop what the writer has not
          // read: back-pressure comes first (at half of retention.bytes).
          auto configs = telemetry::DescribeTopicConfig(ko, options.topic, 5000);
          if (configs.ok()) {
            int64_t retention = -1;
            auto it = configs->find("retention.bytes");
            if (it != configs->end()) absl::SimpleAtoi(it->second, &retention);
            const int64_t limit = core.LimitLagToRetention(retention);
            if (retention > 0 && limit != options.max_writer_lag_bytes) {
              log->warn(
                  "{} keeps {} bytes a partition: writer-lag back-pressure at {} bytes, not {}",
                  options.topic, retention, limit, options.max_writer_lag_bytes);
            }
          } else {
            log->warn("cannot read the configs of {} ({}): writer-lag limit stays {} bytes",
                      options.topic, configs.status().ToString(), options.max_writer_lag_bytes);
          }
        } else {
          log->warn("waiting for Kafka: {}", st.ToString());
        }
      } else {
        set_kafka_ok((*publisher)->PartitionCount(options.topic).ok());
      }
      sleep_a_second();
    }
  });
  // The writer's lag, on a thread of its own: librdkafka's watermark query
  // ignores its timeout when the broker goes away during the call (it waits
  // for the reconnection), and that must not freeze the health check above.
  std::atomic<bool> lag_done{false};
  std::thread lag([&] {
    while (!stop) {
      if (started && kafka_ok) {
        auto applied = store->AppliedOffsets(options.topic);
        if (applied.ok()) core.UpdateWriterLag(*applied).IgnoreError();
      }
      sleep_a_second();
    }
    lag_done = true;
  });
  // Ends both threads; false if a lag query is stuck in librdkafka (Kafka
  // went away during it), which would hold the exit until Kafka returns.
  auto stop_background = [&] {
    stop = true;
    health.join();
    for (int i = 0; i < 50 && !lag_done; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!lag_done) return false;
    lag.join();
    return true;
  };
  auto fail = [&] {
    if (!stop_background()) std::_Exit(1);
    return 1;
  };

  telemetry::Authenticator auth(metadata.get(), clock);
  telemetry::ThreadPool workers(absl::GetFlag(FLAGS_worker_threads),
                                static_cast<size_t>(absl::GetFlag(FLAGS_max_queue)));
  telemetry::ingest::IngestServiceImpl service(&core, &auth, &workers, clock,
                                               options.max_ack_wait_ns);
  int port = 0;
  // The documented request limit (ingest.proto): gRPC refuses a larger
  // request with RESOURCE_EXHAUSTED naming both sizes, before any work.
  auto server = telemetry::StartGrpcServer(absl::GetFlag(FLAGS_listen), {&service}, &port,
                                           telemetry::ingest::kMaxRequestBytes);
  if (!server.ok()) {
    log->critical("{}", server.status().ToString());
    return fail();
  }
  {
    // The empty name and the service's own (what a Kubernetes gRPC probe or
    // a load balancer asks for); SetServingStatus(bool) flips both.
    std::lock_guard<std::mutex> lock(health_mu);
    grpc_server = server->get();
    auto* health = (*server)->GetHealthCheckService();
    health->SetServingStatus(telemetry::v1::IngestService::service_full_name(), kafka_ok.load());
    health->SetServingStatus(kafka_ok.load());
  }
  telemetry::AdminHttpServer http(registry, [&](std::string* reason) {
    if (!started)
      *reason = "Kafka topic not reachable yet";
    else if (!kafka_ok)
      *reason = "Kafka does not answer";
    return started.load() && kafka_ok.load();
  });
  absl::Status hs = http.Start(absl::GetFlag(FLAGS_http_host), absl::GetFlag(FLAGS_http_port));
  if (!hs.ok()) {
    log->critical("{}", hs.ToString());
    return fail();
  }
  log->info("ingest listening on gRPC port {} and HTTP port {}", port, http.port());
  int sig = telemetry::WaitForShutdownSignal();
  log->info("signal {}: draining", sig);
  grpc_server = nullptr;
  (*server)->GetHealthCheckService()->SetServingStatus(false);
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  absl::Status fl = (*publisher)->Flush(10000);
  if (!fl.ok()) log->warn("flush: {}", fl.ToString());
  const bool clean = stop_background();
  http.Stop();
  if (!clean) {  // drained already: do not wait for Kafka to come back
    log->warn("writer-lag query still waiting on Kafka; exiting without it");
    spdlog::shutdown();
    std::_Exit(0);
  }
  log->info("stopped");
  return 0;
}
