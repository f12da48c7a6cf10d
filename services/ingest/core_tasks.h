// The background work an IngestCore needs in any front door's main (the
// gRPC ingest service, the MQTT bridge): learn the topic's layout once Kafka
// answers (and cap the writer-lag limit by the topic's retention.bytes), keep
// the service's health following Kafka, and refresh the writer lag that
// back-pressure reads.
#pragma once

#include <functional>
#include <string>

#include "common/kafka/kafka.h"
#include "common/reading_writer.h"
#include "common/service/service.h"
#include "services/ingest/ingest_core.h"

namespace telemetry::ingest {

// Registers the periodic tasks on `service`; every reference must outlive it
// (the kit stops its tasks before main's objects are destroyed). The
// service is ready while Kafka answers and `also_ready` (when given) says so,
// with its reason when not (the MQTT bridge: connected to the broker).
void RunCoreTasks(Service& service, IngestCore& core, EventPublisher& publisher,
                  WriterProgress& progress, const KafkaOptions& kafka, const IngestOptions& options,
                  std::function<bool(std::string*)> also_ready = nullptr);

}  // namespace telemetry::ingest
