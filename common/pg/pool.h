// A bounded pool of libpqxx connections to one Postgres server. Only files in
// common/pg/ (and the bare-Postgres benchmark and test helpers) include this:
// libpqxx stays out of every other header. Services build stores on a pool
// (common/pg/stores.h) and never run SQL themselves. Exceptions
// from libpqxx never leave Run(): they become statuses (transient →
// UNAVAILABLE, duplicate → ALREADY_EXISTS, bad data → INVALID_ARGUMENT,
// cancelled by timeout → DEADLINE_EXCEEDED).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace telemetry {

class PgPool {
 public:
  // Session settings (`SET name = 'value'`) applied to every new connection,
  // e.g. {"plan_cache_mode", "force_generic_plan"}.
  using Settings = std::map<std::string, std::string>;
  PgPool(std::string conninfo, int max_connections, std::string name, Settings settings = {});
  ~PgPool();

  // Runs `fn` on a pooled connection. Waits at most `wait` for a free one
  // (then UNAVAILABLE). A broken connection is dropped, not returned.
  absl::Status Run(const std::function<absl::Status(pqxx::connection&)>& fn,
                   std::chrono::milliseconds wait = std::chrono::milliseconds(5000));

  // One round trip (SELECT 1): whether the server answers.
  absl::Status Ping();
  const std::string& name() const { return name_; }
  int open_connections() const;

 private:
  std::unique_ptr<pqxx::connection> Acquire(std::chrono::milliseconds wait, absl::Status* status);
  void Release(std::unique_ptr<pqxx::connection> conn, bool broken);

  std::string conninfo_;
  int max_;
  std::string name_;
  Settings settings_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

// A read: one statement outside a transaction block (no BEGIN/COMMIT round
// trips), prepared once per connection (under `name`) so its plan is cached.
template <typename... Args>
pqxx::result PgReadPrepared(pqxx::connection& c, const char* name, const std::string& sql,
                            Args&&... args) {
  c.prepare(name, sql);
  pqxx::nontransaction tx(c);
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}

// Maps a libpqxx / std exception to a status (used by Run, exposed for tests).
absl::Status StatusFromPgException(const std::exception& e);

// Fast parsers for a non-null field's text (libpqxx 6's as<double>() goes
// through an istringstream, which dominated the cost of reading rows).
// Throw pqxx::conversion_error on malformed text, as as<T>() does.
double PgDouble(const pqxx::field& f);
int64_t PgInt64(const pqxx::field& f);

// The bytes of a non-null bytea field (text format: "\x" and hex digits);
// throws pqxx::conversion_error on anything else.
std::string PgBytea(const pqxx::field& f);

// Appends `s` escaped for a COPY text-format field.
void AppendCopyText(std::string* out, const std::string& s);

// COPY `text` (rows already in COPY text format, '\n'-separated, without the
// final newline) into `table` in one call.
void CopyRawText(pqxx::transaction_base& tx, const std::string& table, const std::string& text);

// A Postgres array literal ('{"a","b"}') of strings, safely quoted.
std::string PgTextArray(const std::vector<std::string>& items);

}  // namespace telemetry
