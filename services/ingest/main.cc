// telemetry-ingest: the IngestService gRPC server (readings into Kafka).
#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/grpc/handler.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/service/service.h"
#include "common/thread_pool.h"
#include "services/ingest/core_tasks.h"
#include "services/ingest/influx_http.h"
#include "services/ingest/ingest_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "gRPC listen address");
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
ABSL_FLAG(std::string, influx_listen, "127.0.0.1:8086",
          "InfluxDB-compatible line-protocol write endpoint, host:port (empty: off; "
          "docs/ingress.md)");
ABSL_FLAG(std::string, influx_device_tag, "",
          "Line protocol: the tag whose value names the device (empty: the measurement and all "
          "tags name it)");
ABSL_FLAG(int64_t, influx_max_body_bytes, 32 << 20,
          "Line protocol: largest request body, also after decompression (413 beyond)");

int main(int argc, char** argv) {
  telemetry::Service service(argc, argv,
                             {"telemetry-ingest",
                              "accepts readings over gRPC into Kafka",
                              {telemetry::v1::IngestService::service_full_name()},
                              "Kafka topic not reachable yet",
                              9101});
  auto log = service.log();
  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary), absl::GetFlag(FLAGS_pg_connections),
                         "primary");
  auto metadata = telemetry::NewPgMetadataStore(&pool);
  auto progress = telemetry::NewPgReadingWriter(&pool);
  auto kafka = telemetry::ProducerOptions(absl::GetFlag(FLAGS_kafka_brokers), "telemetry-ingest",
                                          absl::GetFlag(FLAGS_max_ack_wait_ms),
                                          absl::GetFlag(FLAGS_kafka_config));
  if (!kafka.ok()) return service.Fail("--kafka_config", kafka.status(), 2);
  const telemetry::KafkaOptions& ko = *kafka;
  auto publisher = telemetry::NewKafkaPublisher(ko);
  if (!publisher.ok()) return service.Fail("kafka", publisher.status());

  telemetry::ingest::IngestOptions options;
  options.topic = absl::GetFlag(FLAGS_topic);
  options.max_ack_wait_ns = absl::GetFlag(FLAGS_max_ack_wait_ms) * telemetry::kNsPerMs;
  options.max_writer_lag_messages = absl::GetFlag(FLAGS_max_writer_lag_messages);
  options.max_writer_lag_bytes = absl::GetFlag(FLAGS_max_writer_lag_bytes);
  telemetry::ingest::IngestMetrics metrics(service.metrics());
  telemetry::ingest::IngestCore core(options, publisher->get(), metadata.get(), service.clock(),
                                     &metrics);

  telemetry::ingest::RunCoreTasks(service, core, **publisher, *progress, ko, options);

  telemetry::Authenticator auth(metadata.get(), service.clock());
  telemetry::ThreadPool workers(absl::GetFlag(FLAGS_worker_threads),
                                static_cast<size_t>(absl::GetFlag(FLAGS_max_queue)));
  telemetry::HandlerKit kit(
      telemetry::ingest::IngestServiceImpl::KitOptions(options.max_ack_wait_ns), &auth, &workers,
      service.clock());
  telemetry::ingest::IngestServiceImpl impl(&core, &kit);
  // The documented request limit (ingest.proto): gRPC refuses a larger
  // request with RESOURCE_EXHAUSTED naming both sizes, before any work.
  absl::Status served =
      service.ServeGrpc(absl::GetFlag(FLAGS_listen), {&impl}, telemetry::ingest::kMaxRequestBytes);
  if (!served.ok()) return service.Fail("gRPC", served);
  telemetry::ingest::InfluxHttpMetrics influx_metrics(service.metrics());
  std::unique_ptr<telemetry::ingest::InfluxHttpServer> influx;
  if (const std::string listen = absl::GetFlag(FLAGS_influx_listen); !listen.empty()) {
    const size_t colon = listen.rfind(':');
    int port = -1;
    if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port)) {
      return service.Fail("--influx_listen",
                          absl::InvalidArgumentError("'" + listen + "' is not host:port"), 2);
    }
    telemetry::ingest::InfluxHttpOptions io;
    io.device_tag = absl::GetFlag(FLAGS_influx_device_tag);
    io.max_body_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_influx_max_body_bytes));
    io.max_wait_ns = options.max_ack_wait_ns;
    auto server = std::make_unique<telemetry::ingest::InfluxHttpServer>(
        &core, &auth, service.clock(), &influx_metrics, io, telemetry::Service::TlsFiles());
    server->SetReadiness([&service](std::string* why) { return service.health()->Ready(why); });
    absl::Status st = server->Start(listen.substr(0, colon), port);
    if (!st.ok()) return service.Fail("line protocol", st);
    log->info("line protocol (InfluxDB /write, /api/v2/write) on {}:{}", listen.substr(0, colon),
              server->port());
    influx = std::move(server);
  }
  service.OnShutdown("stop the line-protocol endpoint", [&] {
    if (influx) influx->Stop();
  });
  service.OnShutdown("flush acknowledged writes to Kafka", [&] {
    absl::Status fl = (*publisher)->Flush(10000);
    if (!fl.ok()) log->warn("flush: {}", fl.ToString());
  });
  return service.Run();
}
