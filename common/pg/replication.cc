#include "common/pg/replication.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "common/pg/pool.h"
#include "common/status_macros.h"

namespace telemetry {

std::vector<ReplicaAddress> ParseReplicaList(const std::string& list) {
  std::vector<ReplicaAddress> out;
  int n = 0;
  for (absl::string_view item : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    ReplicaAddress r{"replica-" + std::to_string(++n),
                     std::string(absl::StripAsciiWhitespace(item))};
    const size_t eq = r.url.find('=');
    if (eq != std::string::npos && r.url.find("://") > eq) {
      r.name = "replica-" + r.url.substr(0, eq);
      r.url = r.url.substr(eq + 1);
    }
    out.push_back(std::move(r));
  }
  return out;
}

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
