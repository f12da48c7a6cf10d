#include "common/pg/migrate.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/pg/pool.h"
#include "common/status_macros.h"

namespace telemetry {

absl::StatusOr<std::vector<std::string>> ApplyMigrations(PgPool* pool, const std::string& dir,
                                                         size_t* total) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".sql") files.push_back(e.path());
  }
  if (ec) return absl::NotFoundError("migrations directory " + dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  if (total != nullptr) *total = files.size();
  std::vector<std::string> applied;
  RETURN_IF_ERROR(pool->Run([&](pqxx::connection& c) {
    {
      pqxx::work tx(c);
      tx.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY,"
          " applied_at timestamptz NOT NULL DEFAULT now())");
      tx.commit();
    }
    for (const auto& f : files) {
      std::string version = f.stem().string();
      pqxx::work tx(c);
      // One migration at a time across concurrent migrators.
      tx.exec("LOCK TABLE schema_migrations IN EXCLUSIVE MODE");
      if (!tx.exec_params("SELECT 1 FROM schema_migrations WHERE version = $1", version).empty()) {
        continue;
      }
      std::ifstream in(f);
      std::stringstream sql;
      sql << in.rdbuf();
      tx.exec(sql.str());
      tx.exec_params("INSERT INTO schema_migrations (version) VALUES ($1)", version);
      tx.commit();
      applied.push_back(version);
    }
    return absl::OkStatus();
  }));
  return applied;
}

}  // namespace telemetry
