// LatestCache on Redis (hiredis 0.14): a hash per device, one field per
// sensor, updated by a Lua script that compares timestamps.
#include "common/redis/latest_cache.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"

namespace telemetry {
namespace {

// KEYS[1] = hash; ARGV = field, value, field, value, ... Values begin with a
// 19-digit zero-padded timestamp, so string order is time order.
constexpr char kUpdateScript[] =
    "for i = 1, #ARGV, 2 do "
    "local cur = redis.call('HGET', KEYS[1], ARGV[i]) "
    "if (not cur) or string.sub(cur, 1, 19) < string.sub(ARGV[i+1], 1, 19) then "
    "redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end end return 0";

std::string HashKey(int64_t tenant, const std::string& device) {
  return absl::StrCat("lv:", tenant, ":", device);
}

class RedisLatestCache final : public LatestCache {
 public:
  explicit RedisLatestCache(RedisOptions o) : o_(std::move(o)) {}
  ~RedisLatestCache() override {
    absl::MutexLock lock(&mu_);
    for (Conn& c : idle_) redisFree(c.ctx);
  }

  absl::Status UpdateIfNewer(int64_t tenant_id, const std::vector<ReadingRow>& rows) override {
    if (rows.empty()) return absl::OkStatus();
    // Group by device: one script call per device.
    std::map<std::string, std::vector<const ReadingRow*>> by_device;
    for (const auto& r : rows) by_device[r.device].push_back(&r);
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    redisContext* ctx = conn->ctx;
    const std::string& sha = conn->sha;
    for (const auto& [device, list] : by_device) {
      std::vector<std::string> args = {"EVALSHA", sha, "1", HashKey(tenant_id, device)};
      for (const ReadingRow* r : list) {
        args.push_back(r->sensor);
        args.push_back(EncodeLatest(*r));
      }
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data());
    }
    absl::Status first_error;
    for (size_t i = 0; i < by_device.size(); ++i) {
      void* reply = nullptr;
      if (redisGetReply(ctx, &reply) != REDIS_OK) return Drop(*conn, "redis update");
      auto* r = static_cast<redisReply*>(reply);
      if (r->type == REDIS_REPLY_ERROR && first_error.ok()) {
        first_error = absl::InternalError(absl::StrCat("redis: ", r->str));
      }
      freeReplyObject(r);
    }
    Release(*conn);
    return first_error;
  }

  absl::StatusOr<std::vector<ReadingRow>> Get(int64_t tenant_id,
                                              const std::vector<std::string>& devices,
                                              const std::vector<std::string>& sensors) override {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    redisContext* ctx = conn->ctx;
    for (const auto& device : devices) {
      std::vector<std::string> args;
      if (sensors.empty()) {
        args = {"HGETALL", HashKey(tenant_id, device)};
      } else {
        args = {"HMGET", HashKey(tenant_id, device)};
        args.insert(args.end(), sensors.begin(), sensors.end());
      }
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data());
    }
    std::vector<ReadingRow> out;
    for (const auto& device : devices) {
      void* reply = nullptr;
      if (redisGetReply(ctx, &reply) != REDIS_OK) return Drop(*conn, "redis get");
      auto* r = static_cast<redisReply*>(reply);
      if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; ++i) {
          std::string sensor;
          const redisReply* value = nullptr;
          if (sensors.empty()) {
            if (i % 2 == 1) continue;
            sensor.assign(r->element[i]->str, r->element[i]->len);
            value = r->element[i + 1];
          } else {
            sensor = sensors[i];
            value = r->element[i];
          }
          if (value->type != REDIS_REPLY_STRING) continue;
          auto row = DecodeLatest(std::string(value->str, value->len));
          if (!row.ok()) continue;
          row->device = device;
          row->sensor = sensor;
          out.push_back(std::move(*row));
        }
      }
      freeReplyObject(r);
    }
    Release(*conn);
    return out;
  }

 private:
  // A connection and the SHA of the update script loaded on it.
  struct Conn {
    redisContext* ctx = nullptr;
    std::string sha;
  };

  // An idle connection, or a new one while fewer than o_.connections are
  // open; otherwise waits for one to come back. Concurrent reads no longer
  // queue behind one connection (and behind one reconnect while Redis is
  // away: each caller's own attempt is bounded by o_.timeout_ms).
  absl::StatusOr<Conn> Acquire() {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &RedisLatestCache::CanAcquireLocked));
      if (!idle_.empty()) {
        Conn c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      ++open_;
    }
    auto c = Connect();
    if (!c.ok()) {
      absl::MutexLock lock(&mu_);
      --open_;
    }
    return c;
  }

  bool CanAcquireLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !idle_.empty() || open_ < std::max(1, o_.connections);
  }

  void Release(Conn c) {
    absl::MutexLock lock(&mu_);
    idle_.push_back(std::move(c));
  }

  absl::StatusOr<Conn> Connect() {
    timeval tv{o_.timeout_ms / 1000, (o_.timeout_ms % 1000) * 1000};
    Conn c;
    c.ctx = redisConnectWithTimeout(o_.host.c_str(), o_.port, tv);
    if (c.ctx == nullptr || c.ctx->err) {
      std::string err = c.ctx ? c.ctx->errstr : "out of memory";
      if (c.ctx) redisFree(c.ctx);
      return absl::UnavailableError(absl::StrCat("redis ", o_.host, ":", o_.port, ": ", err));
    }
    redisSetTimeout(c.ctx, tv);
    auto* r = static_cast<redisReply*>(redisCommand(c.ctx, "SCRIPT LOAD %s", kUpdateScript));
    if (r == nullptr || r->type != REDIS_REPLY_STRING) {
      if (r) freeReplyObject(r);
      std::string err = c.ctx->err ? c.ctx->errstr : "connection lost";
      redisFree(c.ctx);
      return absl::UnavailableError(absl::StrCat("redis script load: ", err));
    }
    c.sha.assign(r->str, r->len);
    freeReplyObject(r);
    return c;
  }

  // Closes a connection that failed (it is not returned to the pool).
  absl::Status Drop(const Conn& c, const char* what) {
    std::string err = c.ctx->err ? c.ctx->errstr : "connection lost";
    redisFree(c.ctx);
    {
      absl::MutexLock lock(&mu_);
      --open_;
    }
    return absl::UnavailableError(absl::StrCat(what, ": ", err));
  }

  RedisOptions o_;
  absl::Mutex mu_;
  std::vector<Conn> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

absl::StatusOr<RedisOptions> ParseRedisAddress(const std::string& address) {
  RedisOptions o;
  std::vector<std::string> parts = absl::StrSplit(address, ':');
  if (parts.size() != 2 || parts[0].empty() || !absl::SimpleAtoi(parts[1], &o.port)) {
    return absl::InvalidArgumentError("redis address must be host:port, got '" + address + "'");
  }
  o.host = parts[0];
  return o;
}

std::unique_ptr<LatestCache> NewRedisLatestCache(const RedisOptions& options) {
  return std::make_unique<RedisLatestCache>(options);
}

absl::StatusOr<std::unique_ptr<LatestCache>> NewLatestCacheAt(const std::string& address) {
  if (address.empty()) return std::unique_ptr<LatestCache>();
  auto o = ParseRedisAddress(address);
  if (!o.ok()) return o.status();
  return NewRedisLatestCache(*o);
}

// <19-digit ts>|<kind d/s/b>|<status>|<unit length>|<unit><value>
std::string EncodeLatest(const ReadingRow& row) {
  char ts[32];
  std::snprintf(ts, sizeof(ts), "%019lld", static_cast<long long>(row.ts_ns));
  std::string out = absl::StrCat(ts, "|");
  out.push_back(row.kind == ValueKind::kDouble ? 'd' : row.kind == ValueKind::kString ? 's' : 'b');
  absl::StrAppend(&out, "|", row.status, "|", row.unit.size(), "|", row.unit);
  if (row.kind == ValueKind::kDouble) {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf), row.d);
    out.append(buf, res.ptr);
  } else if (row.kind == ValueKind::kString) {
    out.append(row.s);
  } else {
    out.push_back(row.b ? '1' : '0');
  }
  return out;
}

absl::StatusOr<ReadingRow> DecodeLatest(const std::string& e) {
  ReadingRow row;
  auto bad = [&] { return absl::DataLossError("bad cached latest value"); };
  if (e.size() < 23 || e[19] != '|' || e[21] != '|') return bad();
  if (!absl::SimpleAtoi(absl::string_view(e).substr(0, 19), &row.ts_ns)) return bad();
  char kind = e[20];
  size_t p = 22;
  size_t bar = e.find('|', p);
  if (bar == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(e).substr(p, bar - p), &row.status))
    return bad();
  p = bar + 1;
  bar = e.find('|', p);
  size_t unit_len = 0;
  if (bar == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(e).substr(p, bar - p), &unit_len))
    return bad();
  p = bar + 1;
  if (p + unit_len > e.size()) return bad();
  row.unit = e.substr(p, unit_len);
  std::string value = e.substr(p + unit_len);
  if (kind == 'd') {
    row.kind = ValueKind::kDouble;
    auto res = std::from_chars(value.data(), value.data() + value.size(), row.d);
    if (res.ec != std::errc()) return bad();
  } else if (kind == 's') {
    row.kind = ValueKind::kString;
    row.s = std::move(value);
  } else if (kind == 'b') {
    row.kind = ValueKind::kBool;
    row.b = value == "1";
  } else {
    return bad();
  }
  return row;
}

}  // namespace telemetry
