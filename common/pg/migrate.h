// Schema migrations: every db/migrations/*.sql file not applied yet, in name
// order, each in its own transaction, recorded in schema_migrations. Safe to
// run from several processes at once (one migration at a time).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace telemetry {

class PgPool;

// Applies the pending migrations of `dir`; returns the versions applied now
// (file names without .sql). `total` receives how many files `dir` holds.
absl::StatusOr<std::vector<std::string>> ApplyMigrations(PgPool* pool, const std::string& dir,
                                                         size_t* total);

}  // namespace telemetry
