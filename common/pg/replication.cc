#include "common/pg/replication.h"

#include "common/pg/pool.h"
#include "common/status_macros.h"

namespace telemetry {

absl::Status BeatHeartbeat(PgPool* primary) {
  return primary->Run([](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec("UPDATE replication_heartbeat SET ts = now() WHERE id = 1");
    tx.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<double> HeartbeatAgeSeconds(PgPool* replica) {
  double age = 0;
  RETURN_IF_ERROR(replica->Run(
      [&](pqxx::connection& c) {
        pqxx::read_transaction tx(c);
        pqxx::result r = tx.exec(
            "SELECT extract(epoch FROM clock_timestamp() - ts)::float8 FROM replication_heartbeat"
            " WHERE id = 1");
        if (r.empty()) return absl::FailedPreconditionError("no heartbeat row");
        age = std::max(0.0, r[0][0].as<double>());
        return absl::OkStatus();
      },
      std::chrono::milliseconds(1000)));
  return age;
}

}  // namespace telemetry
