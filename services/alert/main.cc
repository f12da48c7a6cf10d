// telemetry-alert: the AlertService (rules) and the evaluator: its own
// consumer group on the readings topic, transitions recorded in Postgres
// exactly once, notifications delivered from the outbox.
#include <algorithm>

#include "absl/flags/flag.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/grpc/handler.h"
#include "common/pg/pool.h"
#include "common/pg/stores.h"
#include "common/service/http_client.h"
#include "common/service/service.h"
#include "common/thread_pool.h"
#include "services/alert/alert_service.h"
#include "services/alert/notifier.h"
#include "services/alert/processor.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50054", "gRPC listen address");
ABSL_FLAG(std::string, pg_primary, "postgresql://telemetry@127.0.0.1:5432/telemetry",
          "Postgres primary");
ABSL_FLAG(std::string, kafka_brokers, "127.0.0.1:9092", "Kafka bootstrap servers");
ABSL_FLAG(std::string, topic, "telemetry.readings.v1", "Readings topic");
ABSL_FLAG(std::string, alerts_topic, "telemetry.alerts.v1", "Topic every transition goes to");
ABSL_FLAG(std::string, kafka_config, "",
          "Extra librdkafka properties: name=value,... (e.g. security.protocol=SSL)");
ABSL_FLAG(std::string, group, "telemetry-alert", "Consumer group (and checkpoint key)");
ABSL_FLAG(int, session_timeout_ms, 6000, "Kafka group session timeout");
ABSL_FLAG(int, max_poll_interval_ms, 30000, "Kafka max.poll.interval.ms");
ABSL_FLAG(double, allowed_lateness_s, 5,
          "A reading older than its partition's newest by more than this is late (dropped, "
          "counted); windows are evaluated once the partition's newest reading is this far "
          "past their end");
ABSL_FLAG(double, checkpoint_interval_s, 5, "How often evaluation state is checkpointed");
ABSL_FLAG(double, idle_after_s, 2,
          "A partition read to its end that got nothing for this long is advanced by the wall "
          "clock (no-data detection without new data)");
ABSL_FLAG(int, notify_threads, 8, "Notifications delivered at once");
ABSL_FLAG(int, notify_give_up_s, 3600, "A failing notification is retried this long");
ABSL_FLAG(int, notify_max_backoff_s, 60,
          "Longest wait between two attempts of a failing notification (from 1 s, doubling)");
ABSL_FLAG(int, notify_timeout_ms, 5000, "HTTP timeout of one webhook / Alertmanager call");
ABSL_FLAG(int, alertmanager_resend_s, 60,
          "Every FIRING alert is posted again to its rule's Alertmanagers this often, with endsAt "
          "4 intervals ahead (Alertmanager resolves an alert by itself past its endsAt)");
ABSL_FLAG(int64_t, default_deadline_ms, 30000, "Deadline of calls that set none");
ABSL_FLAG(int, worker_threads, 4, "Threads running AlertService calls");

int main(int argc, char** argv) {
  const std::string kService = telemetry::v1::AlertService::service_full_name();
  telemetry::Service service(argc, argv,
                             {"telemetry-alert",
                              "alert rules and real-time evaluation",
                              {kService},
                              "rules not loaded / no partitions assigned yet",
                              9104});
  auto log = service.log();
  telemetry::PgPool pool(absl::GetFlag(FLAGS_pg_primary), 4 + absl::GetFlag(FLAGS_notify_threads),
                         "primary");
  auto metadata = telemetry::NewPgMetadataStore(&pool);
  auto rules = telemetry::NewPgAlertRuleStore(&pool);
  auto state = telemetry::NewPgAlertStateStore(&pool);
  auto silences = telemetry::NewPgAlertSilenceStore(&pool);

  telemetry::KafkaOptions ko;
  ko.brokers = absl::GetFlag(FLAGS_kafka_brokers);
  ko.client_id = "telemetry-alert";
  ko.group_id = absl::GetFlag(FLAGS_group);
  ko.topic = absl::GetFlag(FLAGS_topic);
  ko.session_timeout_ms = absl::GetFlag(FLAGS_session_timeout_ms);
  ko.max_poll_interval_ms = absl::GetFlag(FLAGS_max_poll_interval_ms);
  auto kafka_extra = telemetry::ParseKeyValues(absl::GetFlag(FLAGS_kafka_config));
  if (!kafka_extra.ok()) return service.Fail("--kafka_config", kafka_extra.status(), 2);
  ko.extra = *kafka_extra;
  auto consumer = telemetry::NewKafkaConsumer(ko);
  if (!consumer.ok()) return service.Fail("kafka consumer", consumer.status());
  auto publisher = telemetry::NewKafkaPublisher(ko);
  if (!publisher.ok()) return service.Fail("kafka publisher", publisher.status());

  telemetry::alert::ProcessorOptions po;
  po.topic = ko.topic;
  po.group = ko.group_id;
  po.engine.allowed_lateness_ns =
      static_cast<int64_t>(absl::GetFlag(FLAGS_allowed_lateness_s) * 1e9);
  po.checkpoint_interval_ns =
      static_cast<int64_t>(absl::GetFlag(FLAGS_checkpoint_interval_s) * 1e9);
  po.idle_after_ns = static_cast<int64_t>(absl::GetFlag(FLAGS_idle_after_s) * 1e9);
  if (po.engine.allowed_lateness_ns < 0 || po.checkpoint_interval_ns <= 0 ||
      po.idle_after_ns <= 0) {
    return service.Fail(
        "flags",
        absl::InvalidArgumentError("--allowed_lateness_s must be >= 0, "
                                   "--checkpoint_interval_s and --idle_after_s > 0"),
        2);
  }
  telemetry::alert::ProcessorMetrics processor_metrics(service.metrics());
  telemetry::alert::Processor processor(po, consumer->get(), rules.get(), state.get(),
                                        silences.get(), service.clock(), &processor_metrics);

  telemetry::alert::NotifierOptions no;
  no.alerts_topic = absl::GetFlag(FLAGS_alerts_topic);
  no.give_up_after_ns = absl::GetFlag(FLAGS_notify_give_up_s) * telemetry::kNsPerSec;
  no.max_backoff_ns = std::max(1, absl::GetFlag(FLAGS_notify_max_backoff_s)) * telemetry::kNsPerSec;
  no.http_timeout_ms = absl::GetFlag(FLAGS_notify_timeout_ms);
  const int resend_s = absl::GetFlag(FLAGS_alertmanager_resend_s);
  if (resend_s <= 0) {
    return service.Fail("flags", absl::InvalidArgumentError("--alertmanager_resend_s must be > 0"),
                        2);
  }
  no.alertmanager_resend_ns = resend_s * telemetry::kNsPerSec;
  auto http = telemetry::NewHttpPoster();
  telemetry::ThreadPool notify_pool(absl::GetFlag(FLAGS_notify_threads), 100000);
  telemetry::alert::NotifierMetrics notifier_metrics(service.metrics());
  telemetry::alert::Notifier notifier(no, state.get(), publisher->get(), http.get(), &notify_pool,
                                      service.clock(), &notifier_metrics);
  service.Every("notify", absl::Milliseconds(100), [&] {
    // Drain what is due, then wait for the next tick.
    for (int round = 0; round < 50; ++round) {
      auto n = notifier.RunOnce();
      if (!n.ok()) {
        log->warn("alert outbox: {}", n.status().ToString());
        return;
      }
      if (*n == 0) return;
    }
  });
  telemetry::alert::ResendOptions ro;
  ro.interval_ns = no.alertmanager_resend_ns;
  ro.http_timeout_ms = no.http_timeout_ms;
  telemetry::alert::AlertmanagerResender resender(ro, state.get(), rules.get(), http.get(),
                                                  service.clock(), &notifier_metrics);
  service.Every("alertmanager resend", absl::Seconds(resend_s), [&] {
    auto n = resender.RunOnce();
    if (!n.ok()) log->warn("alertmanager re-send: {}", n.status().ToString());
  });
  service.Every("readiness", absl::Milliseconds(200), [&] {
    service.health()->SetAll(processor.rules_loaded() && processor.assigned(),
                             "rules not loaded / no partitions assigned yet");
  });

  telemetry::Authenticator auth(metadata.get(), service.clock());
  telemetry::ThreadPool workers(absl::GetFlag(FLAGS_worker_threads), 10000);
  telemetry::HandlerKit kit(telemetry::alert::AlertServiceImpl::KitOptions(
                                absl::GetFlag(FLAGS_default_deadline_ms) * telemetry::kNsPerMs),
                            &auth, &workers, service.clock());
  telemetry::alert::AlertServiceImpl impl(rules.get(), state.get(), silences.get(), &kit);
  absl::Status served = service.ServeGrpc(absl::GetFlag(FLAGS_listen), {&impl});
  if (!served.ok()) return service.Fail("gRPC", served);
  // Subscribe streams never end on their own: end them (UNAVAILABLE, clients
  // resume with after_event_id) as shutdown begins rather than at the drain's end.
  service.OnDrainStart("end alert subscriptions", [&] { impl.StopSubscriptions(); });
  service.OnShutdown("flush alerts topic", [&] { publisher->get()->Flush(5000).IgnoreError(); });
  log->info("alert evaluating {} as group {}", ko.topic, ko.group_id);
  // On a signal: evaluation checkpoints every partition and leaves the group.
  return service.Run([&](const std::atomic<bool>& stop) { processor.Run(stop); });
}
