#include "common/pg/pool.h"

#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>
#include <pqxx/tablewriter>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/deadline.h"
#include "common/logging.h"

namespace telemetry {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Cancels statements still running when their call's deadline passes: one
// thread for the process, sleeping until the earliest watched deadline.
class Canceller {
 public:
  static Canceller& Get() {
    static Canceller* c = new Canceller();  // never destroyed: its thread runs to exit
    return *c;
  }

  uint64_t Watch(pqxx::connection* conn, SteadyClock::time_point deadline) {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t id = next_++;
    entries_[id] = {conn, deadline, false};
    // Wake the thread only when it sleeps past this deadline: most calls end
    // well before theirs, and a wake-up per query costs a context switch.
    if (deadline < wake_at_) cv_.notify_one();
    return id;
  }

  // Stops watching; true if the statement was cancelled (the connection is
  // then not reused: a late cancel must never hit another call's statement).
  bool Unwatch(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    bool fired = it->second.fired;
    entries_.erase(it);
    return fired;
  }

 private:
  struct Entry {
    pqxx::connection* conn;
    SteadyClock::time_point deadline;
    bool fired;
  };

  Canceller() {
    std::thread([this] { Loop(); }).detach();
  }

  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      auto earliest = SteadyClock::time_point::max();
      for (auto& [id, e] : entries_) {
        if (!e.fired) earliest = std::min(earliest, e.deadline);
      }
      wake_at_ = earliest;
      if (earliest == SteadyClock::time_point::max()) {
        cv_.wait(lock);
      } else {
        cv_.wait_until(lock, earliest);
      }
      wake_at_ = SteadyClock::time_point::min();  // awake: Watch need not notify
      const auto now = SteadyClock::now();
      for (auto& [id, e] : entries_) {
        if (e.fired || e.deadline > now) continue;
        e.fired = true;
        try {
          e.conn->cancel_query();  // PQcancel: safe from another thread
        } catch (const std::exception& ex) {
          GetLogger("pg")->warn("cancelling a statement past its deadline: {}", ex.what());
        }
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Entry> entries_;
  uint64_t next_ = 1;
  SteadyClock::time_point wake_at_ = SteadyClock::time_point::min();  // when the thread wakes
};

}  // namespace

PgPool::PgPool(std::string conninfo, int max_connections, std::string name, Settings settings)
    : conninfo_(std::move(conninfo)),
      max_(max_connections),
      name_(std::move(name)),
      settings_(std::move(settings)) {}

absl::Status PgPool::Ping() {
  return Run([](pqxx::connection& c) {
    pqxx::nontransaction(c).exec("SELECT 1");
    return absl::OkStatus();
  });
}

PgPool::~PgPool() = default;

int PgPool::open_connections() const {
  absl::MutexLock lock(&mu_);
  return open_;
}

std::unique_ptr<pqxx::connection> PgPool::Acquire(std::chrono::milliseconds wait,
                                                  absl::Status* status) {
  {
    absl::MutexLock lock(&mu_);
    auto can_go = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !idle_.empty() || open_ < max_; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&can_go), absl::FromChrono(wait))) {
      *status = absl::UnavailableError(
          absl::StrCat("postgres ", name_, ": all ", max_, " connections busy"));
      return nullptr;
    }
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    ++open_;
  }
  try {
    auto conn = std::make_unique<pqxx::connection>(conninfo_);
    for (const auto& [setting, value] : settings_) {
      // A setting's name is an identifier: quote it as one, the value as a literal.
      pqxx::nontransaction(*conn).exec("SET " + conn->quote_name(setting) + " = " +
                                       conn->quote(value));
    }
    return conn;
  } catch (const std::exception& e) {
    absl::MutexLock lock(&mu_);
    --open_;
    *status = absl::UnavailableError(absl::StrCat("postgres ", name_, ": ", e.what()));
    return nullptr;
  }
}

void PgPool::Release(std::unique_ptr<pqxx::connection> conn, bool broken) {
  absl::MutexLock lock(&mu_);
  if (broken || !conn->is_open()) {
    --open_;
    return;
  }
  idle_.push_back(std::move(conn));
}

absl::Status PgPool::Run(const std::function<absl::Status(pqxx::connection&)>& fn,
                         std::chrono::milliseconds wait) {
  const auto deadline = CurrentCallDeadline();
  bool wait_cut = false;
  if (deadline) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - SteadyClock::now());
    if (left.count() <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("postgres ", name_, ": the call's deadline passed"));
    }
    if (left < wait) {
      wait = left;
      wait_cut = true;
    }
  }
  absl::Status status;
  std::unique_ptr<pqxx::connection> conn = Acquire(wait, &status);
  if (!conn) {
    if (wait_cut && absl::IsUnavailable(status)) {
      return absl::DeadlineExceededError(
          absl::StrCat("postgres ", name_, ": no free connection before the call's deadline (",
                       status.message(), ")"));
    }
    return status;
  }
  const uint64_t watch = deadline ? Canceller::Get().Watch(conn.get(), *deadline) : 0;
  bool broken = false;
  try {
    status = fn(*conn);
  } catch (const pqxx::broken_connection& e) {
    broken = true;
    status = absl::UnavailableError(absl::StrCat("postgres ", name_, ": ", e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    broken = true;
    status = absl::UnavailableError(absl::StrCat("postgres ", name_, ": ", e.what()));
  } catch (const std::exception& e) {
    status = StatusFromPgException(e);
    // A failure in COPY or mid-transaction can leave the connection unusable.
    broken = !conn->is_open();
  }
  if (watch != 0 && Canceller::Get().Unwatch(watch)) {
    broken = true;
    if (!status.ok()) {
      status = absl::DeadlineExceededError(
          absl::StrCat("postgres ", name_, ": cancelled at the call's deadline"));
    }
  }
  Release(std::move(conn), broken);
  return status;
}

absl::Status StatusFromPgException(const std::exception& e) {
  std::string what = e.what();
  while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
  if (dynamic_cast<const pqxx::broken_connection*>(&e)) return absl::UnavailableError(what);
  if (dynamic_cast<const pqxx::unique_violation*>(&e)) return absl::AlreadyExistsError(what);
  if (dynamic_cast<const pqxx::foreign_key_violation*>(&e))
    return absl::FailedPreconditionError(what);
  if (dynamic_cast<const pqxx::data_exception*>(&e)) return absl::InvalidArgumentError(what);
  if (dynamic_cast<const pqxx::serialization_failure*>(&e)) return absl::AbortedError(what);
  if (dynamic_cast<const pqxx::deadlock_detected*>(&e)) return absl::AbortedError(what);
  if (auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string& state = sql->sqlstate();
    // 57014: statement cancelled (statement_timeout, i.e. the call's deadline).
    if (state == "57014") return absl::DeadlineExceededError(what);
    // Class 57 (operator intervention: admin shutdown, cannot connect now),
    // 08 (connection exception), 53 (insufficient resources): transient.
    if (state.rfind("57", 0) == 0 || state.rfind("08", 0) == 0 || state.rfind("53", 0) == 0) {
      return absl::UnavailableError(what);
    }
    // 55P03: lock not available (lock_timeout): transient.
    if (state == "55P03") return absl::UnavailableError(what);
    // 25006: read-only transaction (a standby was asked to write).
    if (state == "25006") return absl::FailedPreconditionError(what);
    return absl::InternalError(what);
  }
  return absl::InternalError(what);
}

double PgDouble(const pqxx::field& f) {
  const char* b = f.c_str();
  const char* e = b + f.size();
  double v = 0;
  auto [ptr, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || ptr != e) {
    throw pqxx::conversion_error(absl::StrCat("not a double: '", b, "'"));
  }
  return v;
}

int64_t PgInt64(const pqxx::field& f) {
  const char* b = f.c_str();
  const char* e = b + f.size();
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || ptr != e) {
    throw pqxx::conversion_error(absl::StrCat("not an integer: '", b, "'"));
  }
  return v;
}

std::string PgBytea(const pqxx::field& f) {
  const char* p = f.c_str();
  const size_t n = f.size();
  if (n < 2 || p[0] != '\\' || p[1] != 'x' || n % 2 != 0) {
    throw pqxx::conversion_error("bytea field is not in hex format");
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw pqxx::conversion_error("bad hex digit in bytea");
  };
  std::string out((n - 2) / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(nibble(p[2 + 2 * i]) << 4 | nibble(p[3 + 2 * i]));
  }
  return out;
}

void AppendCopyText(std::string* out, const std::string& s) {
  for (char c : s) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      default:
        out->push_back(c);
    }
  }
}

void CopyRawText(pqxx::transaction_base& tx, const std::string& table, const std::string& text) {
  // libpqxx 6.4's stream_to keeps its raw-line writer private; the
  // (deprecated) tablewriter exposes it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  pqxx::tablewriter w(tx, table);
  w.write_raw_line(text);
  w.complete();
#pragma GCC diagnostic pop
}

std::string PgTextArray(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(',');
    out.push_back('"');
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

}  // namespace telemetry
