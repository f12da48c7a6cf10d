// Measures the raw-segment codec (common/segment/raw_segment.h) on the
// benchmark's data and on synthetic signals: bytes per reading of each float
// codec forced alone and of the encoder's own choice, and the CPU it takes to
// encode and decode. Prints a Markdown table (docs/benchmarks.md, issue 16).
//
//   telemetry-bench-segment [--devices 250] [--hours 24] [--interval_s 30]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "common/segment/raw_segment.h"
#include "tools/loadgen/fleet.h"

ABSL_FLAG(int, devices, 250, "Benchmark data: devices (bench-compare.sh full: 250 per tenant)");
ABSL_FLAG(int, hours, 24, "Hours of data per series");
ABSL_FLAG(int, interval_s, 30, "Benchmark data: seconds between a series' readings");
ABSL_FLAG(int, synthetic_series, 200, "Series of each synthetic signal (1 Hz)");

namespace {

using telemetry::RawRow;
using telemetry::ValueKind;
namespace seg = telemetry::segment;

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kStart = 1'764'547'200 * kSec;  // 2025-12-01 00:00 UTC, an hour boundary

// One data set: its series-hours, each sorted by time.
struct DataSet {
  std::string name;
  std::vector<std::vector<RawRow>> hours;
  int64_t readings = 0;
};

void Add(DataSet* d, std::map<std::pair<std::string, int64_t>, std::vector<RawRow>>* by_key) {
  for (auto& [key, rows] : *by_key) {
    d->readings += static_cast<int64_t>(rows.size());
    d->hours.push_back(std::move(rows));
  }
  by_key->clear();
}

DataSet Benchmark() {
  DataSet d;
  d.name = absl::StrFormat(
      "benchmark (bench-compare full: %d devices x 8 sensors, 1 string, every %d s)",
      absl::GetFlag(FLAGS_devices), absl::GetFlag(FLAGS_interval_s));
  telemetry::loadgen::FleetOptions o;
  o.devices = absl::GetFlag(FLAGS_devices);
  o.sensors = 8;
  o.string_sensors = 1;
  o.start_ns = kStart;
  o.interval_ns = absl::GetFlag(FLAGS_interval_s) * kSec;
  o.seed = 42;
  telemetry::loadgen::FleetGenerator gen(o, 0, o.devices);
  const int64_t total = static_cast<int64_t>(o.devices) * o.sensors * absl::GetFlag(FLAGS_hours) *
                        3600 / absl::GetFlag(FLAGS_interval_s);
  std::map<std::pair<std::string, int64_t>, std::vector<RawRow>> by_key;
  int64_t done = 0;
  while (done < total) {
    telemetry::v1::WriteRequest req;
    gen.Next(static_cast<int>(std::min<int64_t>(10'000, total - done)), &req);
    if (req.readings_size() == 0) break;
    for (const auto& r : req.readings()) {
      RawRow row;
      row.ts_ns = r.timestamp_ns();
      if (r.has_string_value()) {
        row.kind = ValueKind::kString;
        row.s = r.string_value();
      } else {
        row.d = r.double_value();
      }
      const int64_t hour = row.ts_ns - row.ts_ns % seg::kNsPerHour;
      by_key[{r.device_id() + "/" + r.sensor(), hour}].push_back(std::move(row));
    }
    done += req.readings_size();
  }
  Add(&d, &by_key);
  return d;
}

// 1 Hz series of `f(series, second)`, optionally with timestamps jittered by
// up to +-5 ms, in whole milliseconds (a device clock reporting epoch ms).
template <typename F>
DataSet Synthetic(const std::string& name, F f, bool jitter = false) {
  DataSet d;
  d.name = name;
  std::mt19937_64 rng(7);
  std::map<std::pair<std::string, int64_t>, std::vector<RawRow>> by_key;
  const int n = absl::GetFlag(FLAGS_synthetic_series);
  const int64_t seconds = std::min(absl::GetFlag(FLAGS_hours), 4) * 3600;
  for (int s = 0; s < n; ++s) {
    for (int64_t t = 0; t < seconds; ++t) {
      RawRow row;
      row.ts_ns =
          kStart + t * kSec + (jitter ? (static_cast<int64_t>(rng() % 11) - 5) * 1'000'000 : 0);
      row.d = f(s, t, rng);
      const int64_t hour = (kStart + t * kSec) - (kStart + t * kSec) % seg::kNsPerHour;
      by_key[{std::to_string(s), hour}].push_back(row);
    }
  }
  Add(&d, &by_key);
  return d;
}

struct Result {
  int64_t bytes = 0;
  double encode_s = 0, decode_s = 0;
};

Result Measure(const DataSet& d, const seg::EncodeOptions& o) {
  Result r;
  std::vector<std::string> segs;
  segs.reserve(d.hours.size());
  auto t0 = std::chrono::steady_clock::now();
  for (const auto& rows : d.hours) {
    const int64_t hour = rows[0].ts_ns - rows[0].ts_ns % seg::kNsPerHour;
    auto s = seg::EncodeRawSegment(hour, rows, o);
    if (!s.ok()) {
      std::fprintf(stderr, "encode: %s\n", s.status().ToString().c_str());
      std::exit(1);
    }
    r.bytes += static_cast<int64_t>(s->size());
    segs.push_back(std::move(*s));
  }
  auto t1 = std::chrono::steady_clock::now();
  std::vector<RawRow> out;
  for (size_t i = 0; i < segs.size(); ++i) {
    out.clear();
    const auto& rows = d.hours[i];
    const int64_t hour = rows[0].ts_ns - rows[0].ts_ns % seg::kNsPerHour;
    auto st = seg::DecodeRawSegment(1, hour, segs[i], &out);
    if (!st.ok() || out.size() != rows.size()) {
      std::fprintf(stderr, "decode: %s\n", st.ToString().c_str());
      std::exit(1);
    }
    for (size_t j = 0; j < rows.size(); ++j) {
      if (std::memcmp(&out[j].d, &rows[j].d, sizeof(double)) != 0 || out[j].s != rows[j].s ||
          out[j].ts_ns != rows[j].ts_ns) {
        std::fprintf(stderr, "round trip differs\n");
        std::exit(1);
      }
    }
  }
  auto t2 = std::chrono::steady_clock::now();
  r.encode_s = std::chrono::duration<double>(t1 - t0).count();
  r.decode_s = std::chrono::duration<double>(t2 - t1).count();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<DataSet> sets;
  sets.push_back(Benchmark());
  sets.push_back(Synthetic("smooth: 20 + 5 sin(t / 100 s), full precision, 1 Hz",
                           [&](int s, int64_t t, std::mt19937_64&) {
                             return 20 + 5 * std::sin(static_cast<double>(t) / 100 + s);
                           }));
  sets.push_back(Synthetic("noisy: smooth + N(0, 0.5), full precision, 1 Hz",
                           [&](int s, int64_t t, std::mt19937_64& rng) {
                             std::normal_distribution<double> noise(0, 0.5);
                             return 20 + 5 * std::sin(static_cast<double>(t) / 100 + s) +
                                    noise(rng);
                           }));
  sets.push_back(Synthetic(
      "sensor: noisy rounded to 0.1 (a thermometer), 1 Hz, +-5 ms clock jitter",
      [&](int s, int64_t t, std::mt19937_64& rng) {
        std::normal_distribution<double> noise(0, 0.2);
        return std::round((20 + 5 * std::sin(static_cast<double>(t) / 600 + s) + noise(rng)) * 10) /
               10;
      },
      true));
  sets.push_back(Synthetic("counter: an energy meter's running total in Wh, 1 Hz",
                           [&](int s, int64_t t, std::mt19937_64&) {
                             return std::floor(static_cast<double>(t) * (150 + s % 50) / 3600.0 *
                                               10);
                           }));
  const std::vector<std::pair<std::string, seg::EncodeOptions>> codecs = {
      {"raw (8 bytes)", {{seg::FloatCodec::kRaw}}},
      {"gorilla", {{seg::FloatCodec::kGorilla}}},
      {"polynomial", {{seg::FloatCodec::kPolynomial}}},
      {"decimal (else raw)", {{seg::FloatCodec::kDecimal}}},
      {"split-zstd", {{seg::FloatCodec::kSplitZstd}}},
      {"**chosen** (default: smallest of gorilla, polynomial, decimal)", seg::EncodeOptions{}},
  };
  std::printf(
      "| data | readings | readings per segment | float codec | bytes/reading | encode ns/reading "
      "| decode ns/reading |\n");
  std::printf("|---|---:|---:|---|---:|---:|---:|\n");
  for (const DataSet& d : sets) {
    for (const auto& [name, o] : codecs) {
      Result r = Measure(d, o);
      const double n = static_cast<double>(d.readings);
      std::printf("| %s | %lld | %.0f | %s | %.3f | %.0f | %.0f |\n", d.name.c_str(),
                  static_cast<long long>(d.readings), n / static_cast<double>(d.hours.size()),
                  name.c_str(), static_cast<double>(r.bytes) / n, r.encode_s * 1e9 / n,
                  r.decode_s * 1e9 / n);
      std::fflush(stdout);
    }
  }
  return 0;
}
