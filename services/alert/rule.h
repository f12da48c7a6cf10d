// An alert rule as the evaluator sees it: plain data, no protobuf or gRPC.
// rule_codec.h converts the AlertService's telemetry.v1.Rule to and from it
// and validates it; the Postgres rule store keeps the proto form.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace telemetry::alert {

enum class Aggregate { kAvg, kMin, kMax, kCount, kSum, kLast, kRate };
enum class Comparison { kGt, kGe, kLt, kLe, kEq, kNe };

// One matcher on a reading's labels: the label `name` must (or with
// `negate`, must not) match the glob `value` ("*" and "?"); a missing label
// matches as "".
struct LabelMatcher {
  std::string name;
  std::string value;
  bool negate = false;
};

// Which series a rule watches. Empty globs match everything.
struct Selector {
  std::string project;  // glob on the device's project name
  std::string device;   // glob on the device name
  std::string sensor;   // glob on the sensor name
  std::vector<LabelMatcher> labels;
};

struct RuleSpec {
  int64_t tenant_id = 0;
  std::string rule_id;
  int64_t version = 1;
  Selector selector;
  // Threshold rules: a tumbling event-time window and its aggregate.
  int64_t window_ns = 60'000'000'000;
  Aggregate aggregate = Aggregate::kAvg;
  Comparison comparison = Comparison::kGt;
  double threshold = 0;
  // The condition must hold this long (event time) before FIRING; 0 fires
  // on the first window that holds.
  int64_t for_ns = 0;
  // Hysteresis: a FIRING alert stays FIRING while `value comparison
  // resolve_threshold` holds (default: the threshold itself) ...
  std::optional<double> resolve_threshold;
  // ... and resolves after it stopped holding for this long.
  int64_t resolve_for_ns = 0;
  // A FIRING alert stays FIRING this long after the last window in which
  // its condition held, also when the series stops reporting.
  int64_t keep_firing_for_ns = 0;
  // No-data rules (> 0): a selected series silent this long fires. Window,
  // aggregate and comparison are then unused.
  int64_t no_data_ns = 0;
};

bool GlobMatch(const std::string& pattern, const std::string& text);

// Whether `value comparison threshold` holds.
bool Compare(Comparison c, double value, double threshold);

const char* AggregateName(Aggregate a);
const char* ComparisonSymbol(Comparison c);

}  // namespace telemetry::alert
