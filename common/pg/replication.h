// Replica lag from a heartbeat row: the primary updates
// replication_heartbeat about once a second, a replica reads how old its copy
// is. (pg_last_xact_replay_timestamp() alone grows while the primary is idle.)
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace telemetry {

class PgPool;

// A read replica as configured: its name ("replica-<name>") and URL.
struct ReplicaAddress {
  std::string name;
  std::string url;
};

// Parses a comma-separated list of replicas, each "name=postgresql://..." or
// just the URL (then named replica-1, replica-2, ... by position).
std::vector<ReplicaAddress> ParseReplicaList(const std::string& list);

// On the primary: sets the heartbeat to now().
absl::Status BeatHeartbeat(PgPool* primary);
// On a replica (or the primary): seconds since the heartbeat it holds.
absl::StatusOr<double> HeartbeatAgeSeconds(PgPool* replica);

}  // namespace telemetry
