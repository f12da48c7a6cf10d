// telemetry-bridge: MQTT devices into the write path (docs/ingress.md "MQTT").
// Subscribes with QoS 1 on a persistent session and acknowledges a message
// only once Kafka acknowledged its readings.
#include <atomic>
#include <map>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "common/mqtt/client.h"
#include "common/mqtt/sys_topics.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/service/service.h"
#include "services/bridge/bridge.h"
#include "services/ingest/core_tasks.h"

ABSL_FLAG(std::string, mqtt_host, "127.0.0.1", "MQTT broker host");
ABSL_FLAG(int, mqtt_port, 1883, "MQTT broker port");
ABSL_FLAG(std::string, mqtt_user, "telemetry-bridge", "MQTT user name of the bridge");
ABSL_FLAG(std::string, mqtt_password, "", "MQTT password of the bridge");
ABSL_FLAG(std::string, mqtt_client_id, "telemetry-bridge",
          "MQTT client id: the persistent session at the broker (one per bridge instance)");
ABSL_FLAG(std::string, mqtt_topics,
          "telemetry/{tenant}/{device},telemetry/{tenant}/{device}/{sensor}",
          "Topic patterns, comma separated: {tenant} and {device} levels required, {sensor} "
          "optional");
ABSL_FLAG(std::string, payload_format, "auto", "auto, json, single or protobuf");
ABSL_FLAG(std::string, error_topic_prefix, "telemetry-errors",
          "Errors about a device's messages go to <prefix>/<tenant>/<device> (QoS 0)");
ABSL_FLAG(int, max_unacked_messages, 20000,
          "Messages received and not yet acknowledged before the bridge stops reading");
ABSL_FLAG(std::string, pg_primary, "postgresql://telemetry@127.0.0.1:5432/telemetry",
          "Postgres primary (tenants, devices; writer offsets)");
ABSL_FLAG(std::string, kafka_brokers, "127.0.0.1:9092", "Kafka bootstrap servers");
ABSL_FLAG(std::string, topic, "telemetry.readings.v1", "Readings topic");
ABSL_FLAG(std::string, kafka_config, "",
          "Extra librdkafka properties: name=value,... (e.g. security.protocol=SSL)");
ABSL_FLAG(int64_t, max_ack_wait_ms, 10000, "Longest wait for Kafka's acknowledgement of a batch");
ABSL_FLAG(int, pg_connections, 2, "Postgres connections");

namespace {

// Owns its client: batches still being written keep the connection's
// object alive after the connection ended (their Acks then fail, and the
// broker resends those messages to the session).
class ClientSession final : public telemetry::bridge::Session {
 public:
  explicit ClientSession(std::shared_ptr<telemetry::mqtt::Client> client)
      : client_(std::move(client)) {}
  absl::Status Ack(uint16_t packet_id) override { return client_->Ack(packet_id); }
  absl::Status Publish(const std::string& topic, const std::string& payload) override {
    return client_->Publish(topic, payload, 0);
  }

 private:
  std::shared_ptr<telemetry::mqtt::Client> client_;
};

}  // namespace

int main(int argc, char** argv) {
  telemetry::Service service(argc, argv,
                             {"telemetry-bridge",
                              "MQTT devices into the write path (acknowledged after Kafka)",
                              {},
                              "not connected to Kafka and the MQTT broker yet",
                              9105});
  auto log = service.log();

  telemetry::bridge::BridgeOptions options;
  auto patterns = telemetry::bridge::TopicPatterns::Parse(
      absl::StrSplit(absl::GetFlag(FLAGS_mqtt_topics), ',', absl::SkipWhitespace()));
  if (!patterns.ok()) return service.Fail("--mqtt_topics", patterns.status(), 2);
  options.patterns = *patterns;
  auto format = telemetry::bridge::ParsePayloadFormat(absl::GetFlag(FLAGS_payload_format));
  if (!format.ok()) return service.Fail("--payload_format", format.status(), 2);
  options.format = *format;
  options.error_topic_prefix = absl::GetFlag(FLAGS_error_topic_prefix);
  options.max_unacked_messages = static_cast<size_t>(absl::GetFlag(FLAGS_max_unacked_messages));
  options.max_ack_wait_ns = absl::GetFlag(FLAGS_max_ack_wait_ms) * telemetry::kNsPerMs;

  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary), absl::GetFlag(FLAGS_pg_connections),
                         "primary");
  auto metadata = telemetry::NewPgMetadataStore(&pool);
  auto progress = telemetry::NewPgReadingWriter(&pool);
  auto kafka = telemetry::ProducerOptions(absl::GetFlag(FLAGS_kafka_brokers), "telemetry-bridge",
                                          absl::GetFlag(FLAGS_max_ack_wait_ms),
                                          absl::GetFlag(FLAGS_kafka_config));
  if (!kafka.ok()) return service.Fail("--kafka_config", kafka.status(), 2);
  const telemetry::KafkaOptions& ko = *kafka;
  auto publisher = telemetry::NewKafkaPublisher(ko);
  if (!publisher.ok()) return service.Fail("kafka", publisher.status());

  telemetry::ingest::IngestOptions ingest_options;
  ingest_options.topic = absl::GetFlag(FLAGS_topic);
  ingest_options.max_ack_wait_ns = options.max_ack_wait_ns;
  telemetry::ingest::IngestMetrics ingest_metrics(service.metrics());
  telemetry::ingest::IngestCore core(ingest_options, publisher->get(), metadata.get(),
                                     service.clock(), &ingest_metrics);
  telemetry::bridge::BridgeMetrics metrics(service.metrics());
  telemetry::bridge::Bridge bridge(options, &core, metadata.get(), service.clock(), &metrics);

  std::atomic<bool> connected{false};
  telemetry::ingest::RunCoreTasks(service, core, **publisher, *progress, ko, ingest_options,
                                  [&connected](std::string* why) {
                                    if (!connected) *why = "not connected to the MQTT broker";
                                    return connected.load();
                                  });
  bridge.Start();
  service.OnShutdown("stop writing batches (unacknowledged messages stay at the broker)",
                     [&] { bridge.Stop(); });
  service.OnShutdown("flush acknowledged writes to Kafka", [&] {
    absl::Status fl = (*publisher)->Flush(10000);
    if (!fl.ok()) log->warn("flush: {}", fl.ToString());
  });

  telemetry::mqtt::ConnectOptions mo;
  mo.host = absl::GetFlag(FLAGS_mqtt_host);
  mo.port = absl::GetFlag(FLAGS_mqtt_port);
  mo.client_id = absl::GetFlag(FLAGS_mqtt_client_id);
  mo.username = absl::GetFlag(FLAGS_mqtt_user);
  mo.password = absl::GetFlag(FLAGS_mqtt_password);
  mo.clean_session = false;  // the broker keeps what arrives while we are away
  std::vector<telemetry::mqtt::Subscription> subscriptions;
  for (const auto& filter : options.patterns.SubscriptionFilters()) {
    subscriptions.push_back({filter, 1});
  }
  // The broker's own counters ($SYS, QoS 0), as gauges of ours: a dropped
  // counter above 0 means the broker lost QoS 1 messages it had acknowledged
  // to devices (its queue limits; deploy/mosquitto/mosquitto.conf has none).
  const std::map<std::string, telemetry::Gauge*> broker_gauges = {
      {std::string(telemetry::mqtt::kSysPublishDropped),
       service.metrics()->AddGauge("mqtt_broker_messages_dropped",
                                   "Broker: PUBLISHes dropped by its queue limits since it started "
                                   "($SYS/broker/publish/messages/dropped)")},
      {std::string(telemetry::mqtt::kSysStoredMessages),
       service.metrics()->AddGauge("mqtt_broker_stored_messages",
                                   "Broker: messages held (retained and queued for sessions)")},
      {std::string(telemetry::mqtt::kSysClientsDisconnected),
       service.metrics()->AddGauge("mqtt_broker_sessions_disconnected",
                                   "Broker: persistent sessions not connected")},
      {std::string(telemetry::mqtt::kSysPublishReceived),
       service.metrics()->AddGauge("mqtt_broker_messages_received",
                                   "Broker: PUBLISHes received since it started")},
  };
  for (const auto& [topic, gauge] : broker_gauges) subscriptions.push_back({topic, 0});

  // The connection loop: connect, subscribe, hand messages to the bridge
  // until the connection is lost, then connect again with backoff. Messages
  // not acknowledged when a connection ends are resent by the broker.
  return service.Run([&](const std::atomic<bool>& stop) {
    int64_t backoff_ms = 200;
    while (!stop) {
      std::atomic<bool> lost{false};
      std::shared_ptr<ClientSession> session;
      telemetry::mqtt::Callbacks callbacks;
      // The client calls on_message only after Connect returned (and the
      // session exists); messages wait in its socket until then.
      callbacks.on_message = [&](telemetry::mqtt::Message m) {
        if (auto it = broker_gauges.find(m.topic); it != broker_gauges.end()) {
          if (auto v = telemetry::mqtt::ParseSysCounter(m.payload); v.ok()) {
            it->second->Set(static_cast<double>(*v));
          }
          return;
        }
        bridge.OnMessage(session, std::move(m));
      };
      callbacks.on_disconnect = [&](absl::Status st) {
        log->warn("MQTT connection lost: {}", st.ToString());
        lost = true;
      };
      auto connecting = telemetry::mqtt::Client::Connect(mo, callbacks);
      if (!connecting.ok()) {
        log->warn("cannot connect to MQTT broker {}:{}: {}", mo.host, mo.port,
                  connecting.status().ToString());
        telemetry::SleepUnlessStopped(backoff_ms * telemetry::kNsPerMs, &stop);
        backoff_ms = std::min<int64_t>(backoff_ms * 2, 10'000);
        continue;
      }
      std::shared_ptr<telemetry::mqtt::Client> client = std::move(*connecting);
      session = std::make_shared<ClientSession>(client);
      auto granted = client->Subscribe(subscriptions);
      if (!granted.ok()) {
        log->error("subscribe: {}", granted.status().ToString());
        client->Disconnect();
        telemetry::SleepUnlessStopped(backoff_ms * telemetry::kNsPerMs, &stop);
        continue;
      }
      log->info("connected to MQTT broker {}:{} as {} (session {})", mo.host, mo.port, mo.client_id,
                client->session_present() ? "resumed" : "new");
      backoff_ms = 200;
      connected = true;
      while (!stop && !lost) telemetry::SleepUnlessStopped(100 * telemetry::kNsPerMs, &stop);
      connected = false;
      if (stop) {
        // Stop taking messages first, so none is half handled; then the
        // PUBACKs already queued go out before DISCONNECT.
        bridge.Stop();
        client->Disconnect();
      }
    }
  });
}
