// telemetry-bench-compare: the platform side by side with InfluxDB 1.6 and
// bare PostgreSQL on the same data set and the same reads. Driven by
// scripts/bench-compare.sh; prints one JSON object on stdout.
//
//   --mode=ingest --system=influx|pg   writes the data set (the platform's
//       side is telemetry-loadgen: same generator, seed and device split, so
//       the same readings); with --duration_s > 0 a steady load at --rate
//       instead, for the concurrent-read runs.
//   --mode=reads                       the five reads, interleaved: each
//       repetition draws one set of parameters and runs every read on every
//       system (rotating which system goes first).
//   --mode=concurrent --system=...     --clients threads for --seconds, each
//       cycling through the four per-device reads.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "common/pg/pool.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "tools/loadgen/fleet.h"

ABSL_FLAG(std::string, mode, "reads", "ingest | reads | concurrent");
ABSL_FLAG(std::string, system, "", "ingest/concurrent: platform | influx | pg");
ABSL_FLAG(std::string, systems, "platform,influx,pg", "reads: the systems to compare");
// The data set (must match the loadgen run that fed the platform).
ABSL_FLAG(int, tenants, 4, "Tenants");
ABSL_FLAG(int, devices, 250, "Devices per tenant");
ABSL_FLAG(int, sensors, 8, "Sensors per device");
ABSL_FLAG(int, string_sensors, 1, "Of the sensors, how many send strings");
ABSL_FLAG(int64_t, interval_s, 30, "Seconds between a series' readings");
ABSL_FLAG(int64_t, hours, 24, "Hours of data");
ABSL_FLAG(double, duplicates, 0.01, "Fraction of exact duplicates");
ABSL_FLAG(double, late, 0.0, "Fraction of late (out-of-order) readings");
ABSL_FLAG(int64_t, seed, 1, "Generator seed");
ABSL_FLAG(int64_t, start_ns, 0, "Event time of the first reading (hour-aligned)");
ABSL_FLAG(int, gen_workers, 4, "Generators per tenant (= telemetry-loadgen --concurrency)");
// Endpoints.
ABSL_FLAG(std::string, influx, "127.0.0.1:8086", "InfluxDB HTTP host:port");
ABSL_FLAG(std::string, influx_db, "bench", "InfluxDB database");
ABSL_FLAG(std::string, pg, "", "Postgres connection string (bare-Postgres side)");
ABSL_FLAG(std::string, pg_table, "bench_readings", "Bare-Postgres table");
ABSL_FLAG(std::string, query, "127.0.0.1:50052", "The platform's QueryService");
ABSL_FLAG(std::string, api_keys, "", "The platform: one API key per tenant");
// Ingest.
ABSL_FLAG(int, writers, 2, "Concurrent writers");
ABSL_FLAG(int, influx_batch, 5000, "Readings per InfluxDB write");
ABSL_FLAG(int, pg_batch, 10000, "Readings per Postgres transaction");
ABSL_FLAG(double, rate, 0, "Readings/s over all writers (0 = as fast as possible)");
ABSL_FLAG(double, duration_s, 0, "Steady load for this long instead of the data set");
// Reads.
ABSL_FLAG(int, reps, 200, "Repetitions of each per-device read");
ABSL_FLAG(int, tenant_reps, 5, "Repetitions of the tenant-wide aggregate");
ABSL_FLAG(int, clients, 8, "concurrent: client threads");
ABSL_FLAG(double, seconds, 10, "concurrent: how long");

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kSec = 1'000'000'000;

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void AppendDouble(std::string* out, double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

struct Dataset {
  int tenants, devices, sensors, string_sensors, gen_workers;
  int64_t interval_ns, start_ns, end_ns;
  double duplicates, late;
  uint64_t seed;

  static Dataset FromFlags() {
    Dataset d;
    d.tenants = absl::GetFlag(FLAGS_tenants);
    d.devices = absl::GetFlag(FLAGS_devices);
    d.sensors = absl::GetFlag(FLAGS_sensors);
    d.string_sensors = absl::GetFlag(FLAGS_string_sensors);
    d.gen_workers = absl::GetFlag(FLAGS_gen_workers);
    d.interval_ns = absl::GetFlag(FLAGS_interval_s) * kSec;
    d.start_ns = absl::GetFlag(FLAGS_start_ns);
    d.end_ns = d.start_ns + absl::GetFlag(FLAGS_hours) * 3600 * kSec;
    d.duplicates = absl::GetFlag(FLAGS_duplicates);
    d.late = absl::GetFlag(FLAGS_late);
    d.seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
    return d;
  }
  int64_t PerTenant() const {
    return static_cast<int64_t>(devices) * sensors * ((end_ns - start_ns) / interval_ns);
  }
  int NumericSensors() const { return sensors - string_sensors; }
  std::string Tenant(int t) const { return absl::StrCat("t", t); }
};

// ---------------------------------------------------------------- ingest

// One generator of the loadgen's split: tenant t, devices of worker w.
struct Unit {
  int tenant;
  std::unique_ptr<telemetry::loadgen::FleetGenerator> gen;
  int64_t budget;  // unique readings to produce (0 = unbounded)
  bool drained = false;
};

std::vector<Unit> MakeUnits(const Dataset& d, int64_t start_ns, bool bounded) {
  std::vector<Unit> units;
  telemetry::loadgen::FleetOptions fo;
  fo.devices = d.devices;
  fo.sensors = d.sensors;
  fo.string_sensors = d.string_sensors;
  fo.interval_ns = d.interval_ns;
  fo.start_ns = start_ns;
  fo.duplicate_fraction = d.duplicates;
  fo.late_fraction = d.late;
  fo.seed = d.seed;
  const int64_t total = d.PerTenant();
  for (int t = 0; t < d.tenants; ++t) {
    for (int w = 0; w < d.gen_workers; ++w) {
      int first = d.devices * w / d.gen_workers;
      int count = d.devices * (w + 1) / d.gen_workers - first;
      if (count <= 0) continue;
      // As telemetry-loadgen splits it: in proportion to the devices.
      int64_t budget =
          bounded ? total * (first + count) / d.devices - total * first / d.devices : int64_t{0};
      units.push_back(
          {t, std::make_unique<telemetry::loadgen::FleetGenerator>(fo, first, count), budget});
    }
  }
  return units;
}

// Takes up to `n` readings from `u` as the loadgen does (never past its
// budget; the held-back late readings at the end).
bool Take(Unit& u, int n, telemetry::v1::WriteRequest* out) {
  if (u.drained) return false;
  int want = n;
  if (u.budget > 0) want = static_cast<int>(std::min<int64_t>(n, u.budget - u.gen->unique()));
  if (u.budget > 0 && want <= 0) {
    u.gen->Drain(out);
    u.drained = true;
    return out->readings_size() > 0;
  }
  u.gen->Next(want, out);
  return true;
}

class Sink {
 public:
  virtual ~Sink() = default;
  virtual int batch() const = 0;
  virtual absl::Status Write(const std::string& tenant,
                             const telemetry::v1::WriteRequest& readings) = 0;
};

class InfluxSink final : public Sink {
 public:
  InfluxSink(const std::string& hostport, std::string db) : db_(std::move(db)) {
    std::vector<std::string> hp = absl::StrSplit(hostport, ':');
    cli_ = std::make_unique<httplib::Client>(hp[0], std::stoi(hp[1]));
    cli_->set_keep_alive(true);
    cli_->set_tcp_nodelay(true);  // else Nagle + delayed ACK add 40 ms per request
    cli_->set_read_timeout(120, 0);
  }
  int batch() const override { return absl::GetFlag(FLAGS_influx_batch); }
  absl::Status Write(const std::string& tenant, const telemetry::v1::WriteRequest& req) override {
    body_.clear();
    for (const auto& r : req.readings()) {
      absl::StrAppend(&body_, "m,tenant=", tenant, ",device=", r.device_id(),
                      ",sensor=", r.sensor());
      if (r.value_case() == telemetry::v1::Reading::kStringValue) {
        absl::StrAppend(&body_, " s=\"", r.string_value(), "\" ");
      } else {
        body_.append(" v=");
        AppendDouble(&body_, r.double_value());
        body_.push_back(' ');
      }
      absl::StrAppend(&body_, r.timestamp_ns(), "\n");
    }
    auto res = cli_->Post(("/write?precision=ns&db=" + db_).c_str(), body_, "text/plain");
    if (!res) return absl::UnavailableError("influx: no response");
    if (res->status != 204) {
      return absl::InternalError(absl::StrCat("influx write: ", res->status, " ", res->body));
    }
    return absl::OkStatus();
  }

 private:
  std::string db_, body_;
  std::unique_ptr<httplib::Client> cli_;
};

std::string PgCreateTable(const std::string& table) {
  return absl::StrCat("CREATE TABLE IF NOT EXISTS ", table,
                      " (tenant text NOT NULL, device text NOT NULL, sensor text NOT NULL,"
                      " ts bigint NOT NULL, value double precision, value_text text,"
                      " PRIMARY KEY (tenant, device, sensor, ts))");
}

// COPY into a temporary stage, INSERT … ON CONFLICT DO NOTHING: the usual
// hand-rolled Postgres pipeline.
class PgSink final : public Sink {
 public:
  PgSink(const std::string& conninfo, std::string table) : c_(conninfo), table_(std::move(table)) {
    pqxx::nontransaction tx(c_);
    tx.exec(absl::StrCat("CREATE TEMP TABLE stage (LIKE ", table_, ")"));
  }
  int batch() const override { return absl::GetFlag(FLAGS_pg_batch); }
  absl::Status Write(const std::string& tenant, const telemetry::v1::WriteRequest& req) override {
    buf_.clear();
    for (const auto& r : req.readings()) {
      telemetry::AppendCopyText(&buf_, tenant);
      buf_.push_back('\t');
      telemetry::AppendCopyText(&buf_, r.device_id());
      buf_.push_back('\t');
      telemetry::AppendCopyText(&buf_, r.sensor());
      absl::StrAppend(&buf_, "\t", r.timestamp_ns(), "\t");
      if (r.value_case() == telemetry::v1::Reading::kStringValue) {
        buf_.append("\\N\t");
        telemetry::AppendCopyText(&buf_, r.string_value());
        buf_.push_back('\n');
      } else {
        AppendDouble(&buf_, r.double_value());
        buf_.append("\t\\N\n");
      }
    }
    if (buf_.empty()) return absl::OkStatus();
    buf_.pop_back();
    try {
      pqxx::work tx(c_);
      tx.exec("TRUNCATE stage");
      telemetry::CopyRawText(tx, "stage", buf_);
      tx.exec(absl::StrCat("INSERT INTO ", table_, " SELECT * FROM stage ON CONFLICT DO NOTHING"));
      tx.commit();
    } catch (const std::exception& e) {
      return telemetry::StatusFromPgException(e);
    }
    return absl::OkStatus();
  }

 private:
  pqxx::connection c_;
  std::string table_, buf_;
};

int Ingest(const Dataset& d) {
  const std::string system = absl::GetFlag(FLAGS_system);
  const double duration = absl::GetFlag(FLAGS_duration_s);
  const bool bounded = duration <= 0;
  if (system == "pg") {
    pqxx::connection c(absl::GetFlag(FLAGS_pg));
    pqxx::nontransaction tx(c);
    tx.exec(PgCreateTable(absl::GetFlag(FLAGS_pg_table)));
  } else if (system != "influx") {
    std::fprintf(stderr, "--system: influx or pg (the platform's side is telemetry-loadgen)\n");
    return 2;
  }
  // A steady load writes "now"-ish data of its own.
  const int64_t start = bounded ? d.start_ns
                                : std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                          .count() /
                                      (3600 * kSec) * (3600 * kSec);
  std::vector<Unit> units = MakeUnits(d, start, bounded);
  const int writers = std::max(1, absl::GetFlag(FLAGS_writers));
  const double per_writer_rate = absl::GetFlag(FLAGS_rate) / writers;
  std::atomic<int64_t> sent{0};
  std::atomic<int> errors{0};
  std::mutex err_mu;
  std::string first_error;
  const double cpu0 = CpuSeconds();
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      std::unique_ptr<Sink> sink;
      try {
        if (system == "influx") {
          sink = std::make_unique<InfluxSink>(absl::GetFlag(FLAGS_influx),
                                              absl::GetFlag(FLAGS_influx_db));
        } else {
          sink = std::make_unique<PgSink>(absl::GetFlag(FLAGS_pg), absl::GetFlag(FLAGS_pg_table));
        }
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> l(err_mu);
        first_error = e.what();
        ++errors;
        return;
      }
      std::vector<Unit*> mine;
      for (size_t i = static_cast<size_t>(w); i < units.size(); i += static_cast<size_t>(writers))
        mine.push_back(&units[i]);
      int64_t my_sent = 0;
      // Round-robin over this writer's generators, so time advances evenly.
      for (size_t k = 0; !mine.empty(); k = (k + 1) % std::max<size_t>(mine.size(), 1)) {
        if (k >= mine.size()) k = 0;
        double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
        if (!bounded && elapsed >= duration) break;
        if (per_writer_rate > 0) {
          double due = static_cast<double>(my_sent) / per_writer_rate;
          if (due > elapsed)
            std::this_thread::sleep_for(std::chrono::duration<double>(due - elapsed));
        }
        Unit& u = *mine[k];
        telemetry::v1::WriteRequest req;
        if (!Take(u, sink->batch(), &req)) {
          mine.erase(mine.begin() + static_cast<long>(k));
          continue;
        }
        absl::Status st = sink->Write(d.Tenant(u.tenant), req);
        if (!st.ok()) {
          ++errors;
          std::lock_guard<std::mutex> l(err_mu);
          if (first_error.empty()) first_error = st.ToString();
        }
        my_sent += req.readings_size();
        sent += req.readings_size();
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  int64_t unique = 0;
  for (const auto& u : units) unique += u.gen->unique();
  if (!first_error.empty()) std::fprintf(stderr, "first error: %s\n", first_error.c_str());
  std::printf(
      "{\"system\":\"%s\",\"sent\":%lld,\"unique\":%lld,\"seconds\":%.3f,\"readings_per_s\":%.0f,"
      "\"unique_per_s\":%.0f,\"errors\":%d,\"client_cpu_s\":%.3f}\n",
      system.c_str(), static_cast<long long>(sent.load()), static_cast<long long>(unique), seconds,
      static_cast<double>(sent.load()) / seconds, static_cast<double>(unique) / seconds,
      errors.load(), CpuSeconds() - cpu0);
  return errors.load() == 0 ? 0 : 1;
}

// ----------------------------------------------------------------- reads

enum Kind { kLatest, kRange, kPlayback, kAgg1m, kTenant1h, kKinds };
const char* kKindNames[] = {"latest of a device (8 sensors)", "one sensor, 1 h raw",
                            "all sensors, t ± 30 s (playback)", "one sensor, 24 h at 1 min",
                            "a tenant's devices, 24 h at 1 h"};
const char* kKindKeys[] = {"latest", "range_1h", "playback", "agg_1m_24h", "tenant_1h_24h"};

struct Params {
  int tenant = 0, device = 0, sensor = 0;
  int64_t range_start = 0, at = 0;
};

Params Draw(const Dataset& d, std::mt19937_64& rng) {
  Params p;
  p.tenant = static_cast<int>(rng() % static_cast<uint64_t>(d.tenants));
  p.device = static_cast<int>(rng() % static_cast<uint64_t>(d.devices));
  p.sensor = d.string_sensors + static_cast<int>(rng() % static_cast<uint64_t>(d.NumericSensors()));
  const int64_t span = d.end_ns - d.start_ns;
  p.range_start =
      d.start_ns + static_cast<int64_t>(rng() % static_cast<uint64_t>(span - 3600 * kSec));
  p.at = d.start_ns + 60 * kSec +
         static_cast<int64_t>(rng() % static_cast<uint64_t>(span - 120 * kSec));
  return p;
}

// What each read must return, so a broken query is counted, not timed.
int64_t Expected(const Dataset& d, Kind k) {
  const int64_t day = std::min<int64_t>(24 * 3600 * kSec, d.end_ns - d.start_ns);
  switch (k) {
    case kLatest:
    case kPlayback:  // sensors with an edge before the window
      return d.sensors;
    case kRange:
      return 3600 * kSec / d.interval_ns;
    case kAgg1m:
      return day / (60 * kSec);
    case kTenant1h:
      return static_cast<int64_t>(d.NumericSensors()) * (day / (3600 * kSec));
    default:
      return 0;
  }
}

class System {
 public:
  virtual ~System() = default;
  // Runs one read; returns the count Expected() describes.
  virtual absl::StatusOr<int64_t> Run(Kind k, const Params& p) = 0;
};

class PlatformSystem final : public System {
 public:
  PlatformSystem(const Dataset& d, std::shared_ptr<grpc::Channel> ch, std::vector<std::string> keys)
      : d_(d), stub_(telemetry::v1::QueryService::NewStub(ch)), keys_(std::move(keys)) {}

  absl::StatusOr<int64_t> Run(Kind k, const Params& p) override {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + keys_[static_cast<size_t>(p.tenant)]);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    const std::string device = telemetry::loadgen::DeviceName(p.device);
    const std::string sensor = telemetry::loadgen::SensorName(p.sensor);
    const int64_t day_end = std::min(d_.end_ns, d_.start_ns + 24 * 3600 * kSec);
    grpc::Status st;
    int64_t n = 0;
    switch (k) {
      case kLatest: {
        telemetry::v1::LatestRequest req;
        req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_EVENTUAL);
        req.add_device_ids(device);
        telemetry::v1::LatestResponse resp;
        st = stub_->Latest(&ctx, req, &resp);
        n = resp.readings_size();
        break;
      }
      case kRange: {
        telemetry::v1::RangeRequest req;
        req.set_device_id(device);
        req.add_sensors(sensor);
        req.set_start_ns(p.range_start);
        req.set_end_ns(p.range_start + 3600 * kSec);
        auto reader = stub_->Range(&ctx, req);
        telemetry::v1::RangeResponse page;
        while (reader->Read(&page)) n += page.readings_size();
        st = reader->Finish();
        break;
      }
      case kPlayback: {
        telemetry::v1::PlaybackRequest req;
        req.set_device_id(device);
        req.set_at_ns(p.at);
        req.set_delta_ns(30 * kSec);
        telemetry::v1::PlaybackResponse resp;
        st = stub_->Playback(&ctx, req, &resp);
        n = resp.before_size();
        break;
      }
      case kAgg1m:
      case kTenant1h: {
        telemetry::v1::AggregateRequest req;
        if (k == kAgg1m) {
          req.set_device_id(device);
          req.add_sensors(sensor);
        }
        req.set_start_ns(d_.start_ns);
        req.set_end_ns(day_end);
        req.set_bucket_seconds(k == kAgg1m ? 60 : 3600);
        req.add_functions(telemetry::v1::AGGREGATE_FUNCTION_AVG);
        req.add_functions(telemetry::v1::AGGREGATE_FUNCTION_MAX);
        telemetry::v1::AggregateResponse resp;
        st = stub_->Aggregate(&ctx, req, &resp);
        for (const auto& s : resp.series()) n += s.buckets_size();
        break;
      }
      default:
        break;
    }
    if (!st.ok()) return absl::UnknownError(st.error_message());
    return n;
  }

 private:
  const Dataset& d_;
  std::unique_ptr<telemetry::v1::QueryService::Stub> stub_;
  std::vector<std::string> keys_;
};

// Per statement of an InfluxDB /query answer: series and rows. A small scan,
// not a JSON parser: enough to check counts without timing a parser.
struct InfluxCounts {
  std::vector<int64_t> series, rows;
};

InfluxCounts CountInflux(const std::string& body) {
  InfluxCounts c;
  const std::string kStmt = "\"statement_id\":", kName = "\"name\":", kValues = "\"values\":[";
  size_t pos = 0;
  while ((pos = body.find(kStmt, pos)) != std::string::npos) {
    size_t end = body.find(kStmt, pos + 1);
    if (end == std::string::npos) end = body.size();
    int64_t series = 0, rows = 0;
    for (size_t i = body.find(kName, pos); i < end; i = body.find(kName, i + 1)) ++series;
    for (size_t i = body.find(kValues, pos); i < end; i = body.find(kValues, i + 1)) {
      int depth = 0;
      bool in_str = false;
      for (size_t j = i + kValues.size() - 1; j < end; ++j) {
        char ch = body[j];
        if (in_str) {
          if (ch == '\\')
            ++j;
          else if (ch == '"')
            in_str = false;
          continue;
        }
        if (ch == '"')
          in_str = true;
        else if (ch == '[') {
          if (++depth == 2) ++rows;
        } else if (ch == ']') {
          if (--depth == 0) break;
        }
      }
    }
    c.series.push_back(series);
    c.rows.push_back(rows);
    pos = end;
  }
  return c;
}

class InfluxSystem final : public System {
 public:
  InfluxSystem(const Dataset& d, const std::string& hostport, std::string db)
      : d_(d), db_(std::move(db)) {
    std::vector<std::string> hp = absl::StrSplit(hostport, ':');
    cli_ = std::make_unique<httplib::Client>(hp[0], std::stoi(hp[1]));
    cli_->set_keep_alive(true);
    cli_->set_tcp_nodelay(true);
    cli_->set_read_timeout(300, 0);
  }

  absl::StatusOr<int64_t> Run(Kind k, const Params& p) override {
    const std::string where = absl::StrCat("tenant='", d_.Tenant(p.tenant), "' AND device='",
                                           telemetry::loadgen::DeviceName(p.device), "'");
    const std::string sensor =
        absl::StrCat(" AND sensor='", telemetry::loadgen::SensorName(p.sensor), "'");
    const int64_t day_end = std::min(d_.end_ns, d_.start_ns + 24 * 3600 * kSec);
    std::string q;
    switch (k) {
      case kLatest:
        q = absl::StrCat("SELECT last(*) FROM m WHERE ", where, " GROUP BY sensor");
        break;
      case kRange:
        q = absl::StrCat("SELECT v FROM m WHERE ", where, sensor, " AND time >= ", p.range_start,
                         " AND time < ", p.range_start + 3600 * kSec);
        break;
      case kPlayback: {
        const int64_t a = p.at - 30 * kSec, b = p.at + 30 * kSec;
        q = absl::StrCat("SELECT * FROM m WHERE ", where, " AND time >= ", a, " AND time <= ", b,
                         " GROUP BY sensor; SELECT * FROM m WHERE ", where, " AND time < ", a,
                         " GROUP BY sensor ORDER BY time DESC LIMIT 1; SELECT * FROM m WHERE ",
                         where, " AND time > ", b, " GROUP BY sensor LIMIT 1");
        break;
      }
      case kAgg1m:
        q = absl::StrCat("SELECT mean(v), max(v) FROM m WHERE ", where, sensor,
                         " AND time >= ", d_.start_ns, " AND time < ", day_end,
                         " GROUP BY time(1m) fill(none)");
        break;
      case kTenant1h:
        q = absl::StrCat("SELECT mean(v), max(v) FROM m WHERE tenant='", d_.Tenant(p.tenant),
                         "' AND time >= ", d_.start_ns, " AND time < ", day_end,
                         " GROUP BY time(1h), sensor fill(none)");
        break;
      default:
        break;
    }
    httplib::Params params{{"db", db_}, {"epoch", "ns"}, {"q", q}};
    auto res = cli_->Post("/query", params);
    if (!res) return absl::UnavailableError("influx: no response");
    if (res->status != 200) return absl::InternalError(absl::StrCat("influx: ", res->status));
    if (res->body.find("\"error\"") != std::string::npos) return absl::InternalError(res->body);
    InfluxCounts c = CountInflux(res->body);
    if (c.rows.empty()) return int64_t{0};
    switch (k) {
      case kLatest:
        return c.series[0];
      case kPlayback:
        return c.series.size() > 1 ? c.series[1] : 0;
      default:
        return c.rows[0];
    }
  }

 private:
  const Dataset& d_;
  std::string db_;
  std::unique_ptr<httplib::Client> cli_;
};

class PgSystem final : public System {
 public:
  PgSystem(const Dataset& d, const std::string& conninfo, const std::string& table)
      : d_(d), c_(conninfo) {
    std::vector<std::string> all;
    for (int s = 0; s < d.sensors; ++s) all.push_back(telemetry::loadgen::SensorName(s));
    sensors_ = telemetry::PgTextArray(all);
    c_.prepare("latest",
               absl::StrCat("SELECT s.sensor, r.ts, r.value, r.value_text FROM unnest($3::text[])"
                            " s(sensor) CROSS JOIN LATERAL (SELECT ts, value, value_text FROM ",
                            table,
                            " WHERE tenant = $1 AND device = $2 AND sensor = s.sensor"
                            " ORDER BY ts DESC LIMIT 1) r"));
    c_.prepare("range", absl::StrCat("SELECT ts, value FROM ", table,
                                     " WHERE tenant = $1 AND device = $2 AND sensor = $3"
                                     " AND ts >= $4 AND ts < $5 ORDER BY ts"));
    c_.prepare("playback",
               absl::StrCat("SELECT s.sensor, x.part, x.ts, x.value, x.value_text"
                            " FROM unnest($3::text[]) s(sensor) CROSS JOIN LATERAL ("
                            "  (SELECT 0 AS part, ts, value, value_text FROM ",
                            table,
                            "   WHERE tenant = $1 AND device = $2 AND sensor = s.sensor AND ts < $4"
                            "   ORDER BY ts DESC LIMIT 1)"
                            "  UNION ALL (SELECT 1, ts, value, value_text FROM ",
                            table,
                            "   WHERE tenant = $1 AND device = $2 AND sensor = s.sensor"
                            "   AND ts >= $4 AND ts <= $5)"
                            "  UNION ALL (SELECT 2, ts, value, value_text FROM ",
                            table,
                            "   WHERE tenant = $1 AND device = $2 AND sensor = s.sensor AND ts > $5"
                            "   ORDER BY ts LIMIT 1)) x"));
    c_.prepare("agg_1m",
               absl::StrCat("SELECT ts - ts % 60000000000, avg(value), max(value) FROM ", table,
                            " WHERE tenant = $1 AND device = $2 AND sensor = $3"
                            " AND ts >= $4 AND ts < $5 GROUP BY 1 ORDER BY 1"));
    c_.prepare(
        "tenant_1h",
        absl::StrCat("SELECT sensor, ts - ts % 3600000000000, avg(value), max(value) FROM ", table,
                     " WHERE tenant = $1 AND ts >= $2 AND ts < $3 AND value IS NOT NULL"
                     " GROUP BY 1, 2 ORDER BY 1, 2"));
  }

  absl::StatusOr<int64_t> Run(Kind k, const Params& p) override {
    const std::string tenant = d_.Tenant(p.tenant);
    const std::string device = telemetry::loadgen::DeviceName(p.device);
    const std::string sensor = telemetry::loadgen::SensorName(p.sensor);
    const int64_t day_end = std::min(d_.end_ns, d_.start_ns + 24 * 3600 * kSec);
    try {
      pqxx::nontransaction tx(c_);
      switch (k) {
        case kLatest:
          return static_cast<int64_t>(tx.exec_prepared("latest", tenant, device, sensors_).size());
        case kRange:
          return static_cast<int64_t>(tx.exec_prepared("range", tenant, device, sensor,
                                                       p.range_start, p.range_start + 3600 * kSec)
                                          .size());
        case kPlayback: {
          auto r = tx.exec_prepared("playback", tenant, device, sensors_, p.at - 30 * kSec,
                                    p.at + 30 * kSec);
          int64_t before = 0;
          for (const auto& row : r) before += row[1].c_str()[0] == '0';
          return before;
        }
        case kAgg1m:
          return static_cast<int64_t>(
              tx.exec_prepared("agg_1m", tenant, device, sensor, d_.start_ns, day_end).size());
        case kTenant1h:
          return static_cast<int64_t>(
              tx.exec_prepared("tenant_1h", tenant, d_.start_ns, day_end).size());
        default:
          return int64_t{0};
      }
    } catch (const std::exception& e) {
      return telemetry::StatusFromPgException(e);
    }
  }

 private:
  const Dataset& d_;
  pqxx::connection c_;
  std::string sensors_;
};

std::unique_ptr<System> MakeSystem(const std::string& name, const Dataset& d,
                                   const std::shared_ptr<grpc::Channel>& ch) {
  if (name == "platform") {
    std::vector<std::string> keys =
        absl::StrSplit(absl::GetFlag(FLAGS_api_keys), ',', absl::SkipEmpty());
    if (static_cast<int>(keys.size()) < d.tenants) {
      std::fprintf(stderr, "--api_keys: one per tenant\n");
      std::exit(2);
    }
    return std::make_unique<PlatformSystem>(d, ch, keys);
  }
  if (name == "influx") {
    return std::make_unique<InfluxSystem>(d, absl::GetFlag(FLAGS_influx),
                                          absl::GetFlag(FLAGS_influx_db));
  }
  if (name == "pg") {
    return std::make_unique<PgSystem>(d, absl::GetFlag(FLAGS_pg), absl::GetFlag(FLAGS_pg_table));
  }
  std::fprintf(stderr, "unknown system %s\n", name.c_str());
  std::exit(2);
}

double Pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

std::shared_ptr<grpc::Channel> QueryChannel(int id) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetInt("grpc.channel_id", id);
  return grpc::CreateCustomChannel(absl::GetFlag(FLAGS_query), grpc::InsecureChannelCredentials(),
                                   args);
}

int Reads(const Dataset& d) {
  std::vector<std::string> names =
      absl::StrSplit(absl::GetFlag(FLAGS_systems), ',', absl::SkipEmpty());
  auto ch = QueryChannel(0);
  std::vector<std::unique_ptr<System>> systems;
  for (const auto& n : names) systems.push_back(MakeSystem(n, d, ch));
  const size_t ns = systems.size();
  // lat[kind][system][rep]; -1 = failed or wrong count.
  std::vector<std::vector<std::vector<double>>> lat(kKinds, std::vector<std::vector<double>>(ns));
  std::vector<std::vector<int>> errors(kKinds, std::vector<int>(ns, 0));
  std::vector<std::vector<std::string>> first_error(kKinds, std::vector<std::string>(ns));
  std::mt19937_64 rng(static_cast<uint64_t>(absl::GetFlag(FLAGS_seed)) * 31 + 7);
  const int reps = absl::GetFlag(FLAGS_reps), tenant_reps = absl::GetFlag(FLAGS_tenant_reps);
  // Warm-up: one of each read on each system, not timed.
  {
    Params p = Draw(d, rng);
    for (int k = 0; k < kKinds; ++k)
      for (auto& s : systems) (void)s->Run(static_cast<Kind>(k), p);
  }
  for (int rep = 0; rep < reps; ++rep) {
    Params p = Draw(d, rng);
    for (int k = 0; k < kKinds; ++k) {
      if (k == kTenant1h && rep >= tenant_reps) continue;
      for (size_t j = 0; j < ns; ++j) {
        size_t i = (j + static_cast<size_t>(rep)) % ns;  // rotate who goes first
        auto t0 = Clock::now();
        auto n = systems[i]->Run(static_cast<Kind>(k), p);
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        bool ok = n.ok() && *n == Expected(d, static_cast<Kind>(k));
        if (!ok) {
          ++errors[k][i];
          if (first_error[k][i].empty()) {
            first_error[k][i] = n.ok() ? absl::StrCat("returned ", *n, ", expected ",
                                                      Expected(d, static_cast<Kind>(k)))
                                       : n.status().ToString();
          }
        }
        lat[k][i].push_back(ok ? ms : -1);
      }
    }
  }
  std::string out = "{\"reads\":[";
  for (int k = 0; k < kKinds; ++k) {
    if (k) out += ",";
    absl::StrAppend(&out, "{\"read\":\"", kKindKeys[k], "\",\"name\":\"", kKindNames[k],
                    "\",\"systems\":{");
    for (size_t i = 0; i < ns; ++i) {
      std::vector<double> good;
      for (double v : lat[k][i])
        if (v >= 0) good.push_back(v);
      if (i) out += ",";
      absl::StrAppend(&out, "\"", names[i], "\":{\"n\":", good.size(), ",\"errors\":", errors[k][i],
                      ",\"p50_ms\":", Pct(good, 0.5), ",\"p95_ms\":", Pct(good, 0.95),
                      ",\"p99_ms\":", Pct(good, 0.99), "}");
      if (!first_error[k][i].empty()) {
        std::fprintf(stderr, "%s on %s: %s\n", kKindKeys[k], names[i].c_str(),
                     first_error[k][i].c_str());
      }
    }
    out += "},\"ratios\":{";
    // Per repetition: the other system's time ÷ the platform's (> 1: the
    // platform was faster); the median over repetitions.
    bool first = true;
    for (size_t i = 1; i < ns; ++i) {
      std::vector<double> r;
      for (size_t rep = 0; rep < lat[k][0].size() && rep < lat[k][i].size(); ++rep) {
        if (lat[k][0][rep] > 0 && lat[k][i][rep] > 0) r.push_back(lat[k][i][rep] / lat[k][0][rep]);
      }
      if (!first) out += ",";
      first = false;
      absl::StrAppend(&out, "\"", names[i], "_over_", names[0], "\":", Pct(r, 0.5));
    }
    out += "}}";
  }
  out += "]}";
  std::printf("%s\n", out.c_str());
  return 0;
}

int Concurrent(const Dataset& d) {
  const std::string name = absl::GetFlag(FLAGS_system);
  const int clients = std::max(1, absl::GetFlag(FLAGS_clients));
  const double seconds = absl::GetFlag(FLAGS_seconds);
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < std::max(1, clients / 8); ++i) channels.push_back(QueryChannel(i));
  std::mutex mu;
  std::vector<double> all;
  std::atomic<int> errors{0};
  std::string first_error;
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::unique_ptr<System> s =
          MakeSystem(name, d, channels[static_cast<size_t>(c) % channels.size()]);
      std::mt19937_64 rng(static_cast<uint64_t>(c) * 7919 + 11);
      std::vector<double> mine;
      const Kind mix[] = {kLatest, kRange, kPlayback, kAgg1m};
      for (int i = 0; std::chrono::duration<double>(Clock::now() - t0).count() < seconds; ++i) {
        Kind k = mix[(i + c) % 4];
        Params p = Draw(d, rng);
        auto a = Clock::now();
        auto n = s->Run(k, p);
        if (!n.ok() || *n != Expected(d, k)) {
          ++errors;
          std::lock_guard<std::mutex> l(mu);
          if (first_error.empty())
            first_error =
                n.ok() ? absl::StrCat(kKindKeys[k], " returned ", *n) : n.status().ToString();
          continue;
        }
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
      }
      std::lock_guard<std::mutex> l(mu);
      all.insert(all.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!first_error.empty()) std::fprintf(stderr, "first error: %s\n", first_error.c_str());
  std::printf(
      "{\"system\":\"%s\",\"clients\":%d,\"queries\":%zu,\"qps\":%.1f,\"p50_ms\":%.3f,"
      "\"p99_ms\":%.3f,\"errors\":%d}\n",
      name.c_str(), clients, all.size(), static_cast<double>(all.size()) / elapsed, Pct(all, 0.5),
      Pct(all, 0.99), errors.load());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::InitFlags(argc, argv,
                       "telemetry-bench-compare: the platform, InfluxDB and bare Postgres on the "
                       "same data and reads");
  Dataset d = Dataset::FromFlags();
  if (d.start_ns <= 0) {
    std::fprintf(stderr, "--start_ns is required (the data set's first event time)\n");
    return 2;
  }
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "ingest") return Ingest(d);
  if (mode == "reads") return Reads(d);
  if (mode == "concurrent") return Concurrent(d);
  std::fprintf(stderr, "--mode: ingest, reads or concurrent\n");
  return 2;
}
