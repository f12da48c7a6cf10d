// telemetry-loadgen: plays a simulated fleet against IngestService and
// reports throughput, acknowledgement latency and time-to-queryable.
//
//   telemetry-loadgen --ingest 127.0.0.1:50051 --query 127.0.0.1:50052
//       --api_keys KEY1,KEY2 --devices 100 --sensors 8 --rate 20000 --duration_s 10
//
// One tenant per API key. Prints a human summary and, last, one JSON line.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/grpc/tls.h"
#include "common/token.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "tools/loadgen/fleet.h"

ABSL_FLAG(std::string, ingest, "127.0.0.1:50051", "IngestService address");
ABSL_FLAG(std::string, query, "127.0.0.1:50052", "QueryService address ('' = skip)");
ABSL_FLAG(std::string, api_keys, "", "Comma-separated API keys, one per tenant");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle that signed the services' certificates (set: connect with TLS)");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate, for services that require one");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(int, devices, 100, "Devices per tenant");
ABSL_FLAG(int, sensors, 8, "Sensors per device");
ABSL_FLAG(int, string_sensors, 0, "Of the sensors, how many send strings");
ABSL_FLAG(double, rate, 0, "Target readings/s over all workers (0 = as fast as possible)");
ABSL_FLAG(double, duration_s, 10, "How long to send");
ABSL_FLAG(int64_t, total, 0, "Stop after this many generated readings per tenant (0 = duration)");
ABSL_FLAG(int, batch, 1000, "Readings per request");
ABSL_FLAG(int, concurrency, 4, "Concurrent workers per tenant");
ABSL_FLAG(bool, stream, false, "Use WriteStream (one stream per worker) instead of Write");
ABSL_FLAG(double, duplicates, 0.0, "Fraction of exact duplicate readings");
ABSL_FLAG(double, late, 0.0, "Fraction of late (out-of-order) readings");
ABSL_FLAG(int64_t, interval_ms, 1000, "Event-time step between a series' readings");
ABSL_FLAG(int64_t, start_ago_s, 3600, "Event time of the first reading, seconds before now");
ABSL_FLAG(int64_t, start_ns, 0, "Event time of the first reading (ns; overrides --start_ago_s)");
ABSL_FLAG(int64_t, seed, 1, "Random seed");
ABSL_FLAG(int64_t, deadline_ms, 10000, "Per-call deadline");

namespace {

// Plaintext, or TLS (and a client certificate) from the --tls_* flags.
std::shared_ptr<grpc::ChannelCredentials> Credentials() {
  return telemetry::ChannelCredentialsOrExit(
      {absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key)});
}

}  // namespace

namespace {

using telemetry::v1::IngestService;
using telemetry::v1::WriteRequest;
using telemetry::v1::WriteResponse;

struct Stats {
  std::mutex mu;
  std::vector<double> latencies_ms;
  int64_t accepted = 0, rejected = 0, failed_calls = 0, calls = 0, retries = 0;
  int64_t generated = 0, unique = 0, duplicates = 0, late = 0;
  std::map<int, telemetry::ConsistencyPositions> tokens;  // per tenant
  std::map<int, std::string> first_error;
};

void Merge(telemetry::ConsistencyPositions* into, const std::string& token) {
  auto pos = telemetry::DecodeConsistencyToken(token);
  if (!pos.ok()) return;
  into->topic = pos->topic;
  for (const auto& [p, o] : pos->offsets) into->offsets[p] = std::max(into->offsets[p], o);
}

// CPU time of this process so far (the client's share, for CPU per reading).
double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::InitFlags(argc, argv, "telemetry-loadgen: a simulated fleet against IngestService");
  std::vector<std::string> keys =
      absl::StrSplit(absl::GetFlag(FLAGS_api_keys), ',', absl::SkipEmpty());
  if (keys.empty()) {
    std::fprintf(stderr, "--api_keys (or TELEMETRY_API_KEYS) is required\n");
    return 2;
  }
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);
  const int concurrency = std::max(1, absl::GetFlag(FLAGS_concurrency));
  const int devices = absl::GetFlag(FLAGS_devices);
  const double duration = absl::GetFlag(FLAGS_duration_s);
  const int64_t total = absl::GetFlag(FLAGS_total);
  const int batch = absl::GetFlag(FLAGS_batch);
  const double rate = absl::GetFlag(FLAGS_rate);
  const int workers_total = concurrency * static_cast<int>(keys.size());
  const double per_worker_rate = rate > 0 ? rate / workers_total : 0;
  const int64_t now_ns = telemetry::SystemClock::Get()->NowNs();

  // A few channels shared by the workers (one HTTP/2 connection each).
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < std::min(4, workers_total); ++i) {
    args.SetInt("grpc.channel_id", i);  // distinct channels
    channels.push_back(grpc::CreateCustomChannel(absl::GetFlag(FLAGS_ingest), Credentials(), args));
  }

  Stats stats;
  std::vector<std::thread> threads;
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<int64_t> last_ack_ns{0};
  for (size_t tenant = 0; tenant < keys.size(); ++tenant) {
    for (int w = 0; w < concurrency; ++w) {
      threads.emplace_back([&, tenant, w] {
        telemetry::loadgen::FleetOptions fo;
        fo.devices = devices;
        fo.sensors = absl::GetFlag(FLAGS_sensors);
        fo.string_sensors = absl::GetFlag(FLAGS_string_sensors);
        fo.interval_ns = absl::GetFlag(FLAGS_interval_ms) * telemetry::kNsPerMs;
        fo.start_ns = absl::GetFlag(FLAGS_start_ns) > 0
                          ? absl::GetFlag(FLAGS_start_ns)
                          : now_ns - absl::GetFlag(FLAGS_start_ago_s) * telemetry::kNsPerSec;
        fo.duplicate_fraction = absl::GetFlag(FLAGS_duplicates);
        fo.late_fraction = absl::GetFlag(FLAGS_late);
        fo.seed = static_cast<uint64_t>(absl::GetFlag(FLAGS_seed));
        int first = devices * w / concurrency;
        int count = devices * (w + 1) / concurrency - first;
        if (count <= 0) return;
        telemetry::loadgen::FleetGenerator gen(fo, first, count);
        // Each worker's share in proportion to its devices, so every device
        // covers the same span of event time.
        int64_t budget =
            total > 0 ? (total * (first + count) / devices - total * first / devices) : 0;
        auto stub = IngestService::NewStub(channels[(tenant * concurrency + w) % channels.size()]);
        std::vector<double> lat;
        int64_t accepted = 0, rejected = 0, failed = 0, calls = 0, sent = 0, retries = 0;
        telemetry::ConsistencyPositions token;
        std::string error;
        const auto start = std::chrono::steady_clock::now();

        std::unique_ptr<grpc::ClientContext> stream_ctx;
        WriteResponse stream_resp;
        std::unique_ptr<grpc::ClientWriter<WriteRequest>> writer;
        if (absl::GetFlag(FLAGS_stream)) {
          stream_ctx = std::make_unique<grpc::ClientContext>();
          stream_ctx->AddMetadata("authorization", "Bearer " + keys[tenant]);
          writer = stub->WriteStream(stream_ctx.get(), &stream_resp);
        }
        bool done = false;
        while (!done) {
          WriteRequest req;
          int want = batch;
          if (budget > 0) want = static_cast<int>(std::min<int64_t>(want, budget - gen.unique()));
          double elapsed =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          if ((budget > 0 && want <= 0) || (budget == 0 && elapsed >= duration)) {
            gen.Drain(&req);
            done = true;
            if (req.readings_size() == 0) break;
          } else {
            gen.Next(want, &req);
          }
          if (per_worker_rate > 0) {
            double due = static_cast<double>(sent) / per_worker_rate;
            if (due > elapsed)
              std::this_thread::sleep_for(std::chrono::duration<double>(due - elapsed));
          }
          sent += req.readings_size();
          auto c0 = std::chrono::steady_clock::now();
          if (writer) {
            if (!writer->Write(req)) {
              error = "stream broken";
              break;
            }
            ++calls;
            continue;
          }
          WriteResponse resp;
          grpc::Status st;
          // Like a well-behaved gateway: a refusal for back-pressure or quota
          // (RESOURCE_EXHAUSTED) is retried after the advised delay, for at
          // most --deadline_ms in all; the wait counts in the ack latency.
          for (auto give_up = c0 + std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms));;) {
            grpc::ClientContext ctx;
            ctx.AddMetadata("authorization", "Bearer " + keys[tenant]);
            ctx.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms)));
            st = stub->Write(&ctx, req, &resp);
            ++calls;
            if (st.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) break;
            int64_t wait_ms = 100;
            auto md = ctx.GetServerTrailingMetadata();
            if (auto it = md.find("retry-after-ms"); it != md.end()) {
              wait_ms = std::max<int64_t>(
                  1, std::atoll(std::string(it->second.data(), it->second.size()).c_str()));
            }
            if (std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms) > give_up)
              break;
            ++retries;
            std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
          }
          lat.push_back(
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0)
                  .count());
          if (!st.ok()) {
            ++failed;
            if (error.empty()) error = std::to_string(st.error_code()) + ": " + st.error_message();
            continue;
          }
          accepted += resp.accepted();
          rejected += resp.rejected_size();
          if (resp.rejected_size() > 0 && error.empty()) {
            error = "rejected " + resp.rejected(0).field() + ": " + resp.rejected(0).reason();
          }
          Merge(&token, resp.consistency_token());
          last_ack_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
        }
        if (writer) {
          writer->WritesDone();
          grpc::Status st = writer->Finish();
          if (!st.ok()) {
            ++failed;
            error = std::to_string(st.error_code()) + ": " + st.error_message();
          } else {
            accepted += stream_resp.accepted();
            rejected += stream_resp.rejected_size();
            Merge(&token, stream_resp.consistency_token());
          }
          last_ack_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
        }
        std::lock_guard<std::mutex> lock(stats.mu);
        stats.latencies_ms.insert(stats.latencies_ms.end(), lat.begin(), lat.end());
        stats.accepted += accepted;
        stats.rejected += rejected;
        stats.failed_calls += failed;
        stats.calls += calls;
        stats.retries += retries;
        stats.generated += sent;
        stats.unique += gen.unique();
        stats.duplicates += gen.duplicates();
        stats.late += gen.late();
        auto& t = stats.tokens[static_cast<int>(tenant)];
        t.topic = token.topic.empty() ? t.topic : token.topic;
        for (const auto& [p, o] : token.offsets) t.offsets[p] = std::max(t.offsets[p], o);
        if (!error.empty() && stats.first_error[static_cast<int>(tenant)].empty()) {
          stats.first_error[static_cast<int>(tenant)] = error;
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  const auto t_end = std::chrono::steady_clock::now();
  double send_s = std::chrono::duration<double>(t_end - t0).count();

  // Time until queryable: a STRONG read with the merged token of each tenant
  // returns once the writer applied everything written.
  double queryable_ms = -1;
  if (!absl::GetFlag(FLAGS_query).empty() && stats.failed_calls == 0) {
    auto qch = grpc::CreateChannel(absl::GetFlag(FLAGS_query), Credentials());
    auto qstub = telemetry::v1::QueryService::NewStub(qch);
    bool all_ok = true;
    for (const auto& [tenant, positions] : stats.tokens) {
      if (positions.offsets.empty()) continue;
      telemetry::v1::LatestRequest req;
      req.mutable_options()->set_consistency(telemetry::v1::CONSISTENCY_LEVEL_STRONG);
      req.mutable_options()->set_consistency_token(telemetry::EncodeConsistencyToken(positions));
      req.add_device_ids(telemetry::loadgen::DeviceName(0));
      telemetry::v1::LatestResponse resp;
      grpc::Status st;
      // The service caps one call's wait (--default_deadline_ms); ask again
      // until everything is applied, for up to 10 minutes.
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(10);
      do {
        grpc::ClientContext ctx;
        ctx.AddMetadata("authorization", "Bearer " + keys[static_cast<size_t>(tenant)]);
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
        st = qstub->Latest(&ctx, req, &resp);
      } while (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
               std::chrono::steady_clock::now() < give_up);
      if (!st.ok()) {
        all_ok = false;
        std::fprintf(stderr, "queryable check failed: %s\n", st.error_message().c_str());
      }
    }
    if (all_ok) {
      int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count();
      queryable_ms = static_cast<double>(now - last_ack_ns.load()) / 1e6;
    }
  }

  double p50 = Percentile(stats.latencies_ms, 0.5), p99 = Percentile(stats.latencies_ms, 0.99);
  std::printf(
      "sent %lld readings (%lld unique, %lld duplicates, %lld late) in %.2f s over %lld calls\n",
      static_cast<long long>(stats.generated), static_cast<long long>(stats.unique),
      static_cast<long long>(stats.duplicates), static_cast<long long>(stats.late), send_s,
      static_cast<long long>(stats.calls));
  std::printf("accepted %lld (%.0f readings/s), rejected %lld, failed calls %lld\n",
              static_cast<long long>(stats.accepted), static_cast<double>(stats.accepted) / send_s,
              static_cast<long long>(stats.rejected), static_cast<long long>(stats.failed_calls));
  std::printf("ack latency p50 %.2f ms, p99 %.2f ms; queryable %.1f ms after the last ack\n", p50,
              p99, queryable_ms);
  for (const auto& [tenant, err] : stats.first_error) {
    if (!err.empty()) std::printf("tenant %d first error: %s\n", tenant, err.c_str());
  }
  std::printf(
      "{\"sent\":%lld,\"unique\":%lld,\"duplicates\":%lld,\"late\":%lld,\"accepted\":%lld,"
      "\"rejected\":%lld,\"failed_calls\":%lld,\"seconds\":%.3f,\"readings_per_s\":%.0f,"
      "\"ack_p50_ms\":%.3f,\"ack_p99_ms\":%.3f,\"queryable_ms\":%.1f,\"client_cpu_s\":%.3f,"
      "\"retries\":%lld}\n",
      static_cast<long long>(stats.generated), static_cast<long long>(stats.unique),
      static_cast<long long>(stats.duplicates), static_cast<long long>(stats.late),
      static_cast<long long>(stats.accepted), static_cast<long long>(stats.rejected),
      static_cast<long long>(stats.failed_calls), send_s,
      static_cast<double>(stats.accepted) / send_s, p50, p99, queryable_ms, ProcessCpuSeconds(),
      static_cast<long long>(stats.retries));
  return stats.failed_calls == 0 ? 0 : 1;
}
