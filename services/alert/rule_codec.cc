#include "services/alert/rule_codec.h"

#include <cmath>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"

namespace telemetry::alert {
namespace {

using telemetry::v1::Rule;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("rule.", field, ": ", what));
}

absl::Status CheckRange(absl::string_view field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) return Invalid(field, absl::StrCat("must be between ", lo, " and ", hi));
  return absl::OkStatus();
}

absl::Status CheckGlob(absl::string_view field, const std::string& glob) {
  if (glob.size() > kMaxGlobBytes)
    return Invalid(field, absl::StrCat("at most ", kMaxGlobBytes, " bytes"));
  return absl::OkStatus();
}

// An http:// URL with a host (and, when given, a numeric port).
absl::Status CheckUrl(const std::string& field, const std::string& url) {
  constexpr absl::string_view kHttp = "http://";
  if (absl::StartsWithIgnoreCase(url, "https://")) {
    return Invalid(field, "https is not supported yet; use an http:// URL");
  }
  if (!absl::StartsWithIgnoreCase(url, kHttp)) return Invalid(field, "must be an http:// URL");
  absl::string_view authority = absl::string_view(url).substr(kHttp.size());
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    authority = authority.substr(at + 1);
  }
  absl::string_view host = authority;
  absl::string_view port;
  bool has_port = false;
  if (absl::StartsWith(authority, "[")) {  // [IPv6]:port
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) return Invalid(field, "malformed IPv6 host");
    host = authority.substr(1, close - 1);
    absl::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && rest[0] != ':') return Invalid(field, "malformed IPv6 host");
    has_port = !rest.empty();
    if (has_port) port = rest.substr(1);
  } else if (size_t colon = authority.find(':'); colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    has_port = true;
  }
  if (host.empty()) return Invalid(field, "has no host");
  if (has_port) {
    int value = 0;
    for (char c : port) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) || value > 65535) {
        return Invalid(field, "port must be 1 to 65535");
      }
      value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535) return Invalid(field, "port must be 1 to 65535");
  }
  return absl::OkStatus();
}

absl::Status CheckMap(absl::string_view field,
                      const google::protobuf::Map<std::string, std::string>& m) {
  if (m.size() > static_cast<size_t>(kMaxLabels)) {
    return Invalid(field, absl::StrCat("at most ", kMaxLabels, " entries"));
  }
  for (const auto& [key, value] : m) {
    if (key.empty()) return Invalid(field, "keys must not be empty");
  }
  return absl::OkStatus();
}

absl::Status CheckDuration(absl::string_view field, int64_t seconds) {
  return CheckRange(field, seconds, 0, kMaxDurationSeconds);
}

// A no-data rule: everything a threshold rule needs must be unset.
absl::Status CheckNoDataRule(const Rule& r) {
  absl::Status st = CheckRange("no_data_seconds", r.no_data_seconds(), 1, kMaxDurationSeconds);
  if (!st.ok()) return st;
  constexpr absl::string_view kUnset = "must be unset for a no-data rule (no_data_seconds > 0)";
  if (r.window_seconds() != 0) return Invalid("window_seconds", kUnset);
  if (r.function() != telemetry::v1::WINDOW_FUNCTION_UNSPECIFIED)
    return Invalid("function", kUnset);
  if (r.comparison() != telemetry::v1::COMPARISON_UNSPECIFIED) return Invalid("comparison", kUnset);
  if (r.threshold() != 0) return Invalid("threshold", kUnset);
  if (r.for_seconds() != 0) return Invalid("for_seconds", kUnset);
  if (r.has_resolve_threshold()) return Invalid("resolve_threshold", kUnset);
  if (r.resolve_for_seconds() != 0) return Invalid("resolve_for_seconds", kUnset);
  if (r.keep_firing_for_seconds() != 0) return Invalid("keep_firing_for_seconds", kUnset);
  return absl::OkStatus();
}

absl::Status CheckThresholdRule(const Rule& r) {
  absl::Status st = CheckRange("window_seconds", r.window_seconds(), 1, kMaxWindowSeconds);
  if (!st.ok()) return st;
  if (r.function() == telemetry::v1::WINDOW_FUNCTION_UNSPECIFIED) {
    return Invalid("function", "required (AVG, MIN, MAX, COUNT, SUM, LAST or RATE)");
  }
  if (!telemetry::v1::WindowFunction_IsValid(r.function())) {
    return Invalid("function", absl::StrCat("unknown value ", static_cast<int>(r.function())));
  }
  if (r.comparison() == telemetry::v1::COMPARISON_UNSPECIFIED) {
    return Invalid("comparison", "required (GT, GE, LT, LE, EQ or NE)");
  }
  if (!telemetry::v1::Comparison_IsValid(r.comparison())) {
    return Invalid("comparison", absl::StrCat("unknown value ", static_cast<int>(r.comparison())));
  }
  if (!std::isfinite(r.threshold())) return Invalid("threshold", "must be a finite number");
  if (st = CheckDuration("for_seconds", r.for_seconds()); !st.ok()) return st;
  if (st = CheckDuration("resolve_for_seconds", r.resolve_for_seconds()); !st.ok()) return st;
  if (st = CheckDuration("keep_firing_for_seconds", r.keep_firing_for_seconds()); !st.ok()) {
    return st;
  }
  if (r.has_resolve_threshold()) {
    const double rt = r.resolve_threshold();
    if (!std::isfinite(rt)) return Invalid("resolve_threshold", "must be a finite number");
    switch (r.comparison()) {
      case telemetry::v1::COMPARISON_GT:
      case telemetry::v1::COMPARISON_GE:
        if (rt > r.threshold()) {
          return Invalid("resolve_threshold",
                         absl::StrCat("must be <= threshold (", r.threshold(), ") for GT and GE"));
        }
        break;
      case telemetry::v1::COMPARISON_LT:
      case telemetry::v1::COMPARISON_LE:
        if (rt < r.threshold()) {
          return Invalid("resolve_threshold",
                         absl::StrCat("must be >= threshold (", r.threshold(), ") for LT and LE"));
        }
        break;
      default:
        return Invalid("resolve_threshold", "only with comparison GT, GE, LT or LE");
    }
  }
  return absl::OkStatus();
}

// The deprecated field, read only to reject it.
double Hysteresis(const Rule& r) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  return r.hysteresis();
#pragma GCC diagnostic pop
}

Aggregate AggregateOf(telemetry::v1::WindowFunction f) {
  switch (f) {
    case telemetry::v1::WINDOW_FUNCTION_MIN:
      return Aggregate::kMin;
    case telemetry::v1::WINDOW_FUNCTION_MAX:
      return Aggregate::kMax;
    case telemetry::v1::WINDOW_FUNCTION_COUNT:
      return Aggregate::kCount;
    case telemetry::v1::WINDOW_FUNCTION_SUM:
      return Aggregate::kSum;
    case telemetry::v1::WINDOW_FUNCTION_LAST:
      return Aggregate::kLast;
    case telemetry::v1::WINDOW_FUNCTION_RATE:
      return Aggregate::kRate;
    default:
      return Aggregate::kAvg;
  }
}

Comparison ComparisonOf(telemetry::v1::Comparison c) {
  switch (c) {
    case telemetry::v1::COMPARISON_GE:
      return Comparison::kGe;
    case telemetry::v1::COMPARISON_LT:
      return Comparison::kLt;
    case telemetry::v1::COMPARISON_LE:
      return Comparison::kLe;
    case telemetry::v1::COMPARISON_EQ:
      return Comparison::kEq;
    case telemetry::v1::COMPARISON_NE:
      return Comparison::kNe;
    default:
      return Comparison::kGt;
  }
}

}  // namespace

absl::Status ValidateRule(const Rule& r) {
  if (r.name().empty()) return Invalid("name", "required");
  if (r.name().size() > kMaxRuleNameBytes) {
    return Invalid("name", absl::StrCat("at most ", kMaxRuleNameBytes, " bytes"));
  }
  if (Hysteresis(r) != 0) {  // also NaN
    return Invalid("hysteresis", "deprecated and never served; must be 0 (use resolve_threshold)");
  }
  absl::Status st;
  if (r.no_data_seconds() < 0) {
    return Invalid("no_data_seconds", absl::StrCat("must be between 1 and ", kMaxDurationSeconds,
                                                   " (a no-data rule) or 0 (a threshold rule)"));
  }
  st = r.no_data_seconds() > 0 ? CheckNoDataRule(r) : CheckThresholdRule(r);
  if (!st.ok()) return st;
  if (st = CheckGlob("device_id", r.device_id()); !st.ok()) return st;
  if (st = CheckGlob("sensor", r.sensor()); !st.ok()) return st;
  if (st = CheckGlob("project", r.project()); !st.ok()) return st;
  if (r.label_matchers_size() > kMaxLabelMatchers) {
    return Invalid("label_matchers", absl::StrCat("at most ", kMaxLabelMatchers));
  }
  for (int i = 0; i < r.label_matchers_size(); ++i) {
    const auto& m = r.label_matchers(i);
    const std::string field = absl::StrCat("label_matchers[", i, "]");
    if (m.name().empty()) return Invalid(field + ".name", "required");
    if (st = CheckGlob(field + ".name", m.name()); !st.ok()) return st;
    if (st = CheckGlob(field + ".value", m.value()); !st.ok()) return st;
  }
  if (st = CheckMap("labels", r.labels()); !st.ok()) return st;
  if (st = CheckMap("annotations", r.annotations()); !st.ok()) return st;
  if (r.webhook_urls_size() + r.alertmanager_urls_size() > kMaxTargets) {
    return Invalid("webhook_urls",
                   absl::StrCat("at most ", kMaxTargets,
                                " notification targets (webhook_urls and alertmanager_urls "
                                "together), got ",
                                r.webhook_urls_size() + r.alertmanager_urls_size()));
  }
  for (int i = 0; i < r.webhook_urls_size(); ++i) {
    if (st = CheckUrl(absl::StrCat("webhook_urls[", i, "]"), r.webhook_urls(i)); !st.ok()) {
      return st;
    }
  }
  for (int i = 0; i < r.alertmanager_urls_size(); ++i) {
    if (st = CheckUrl(absl::StrCat("alertmanager_urls[", i, "]"), r.alertmanager_urls(i));
        !st.ok()) {
      return st;
    }
  }
  if (!telemetry::v1::Severity_IsValid(r.severity())) {
    return Invalid("severity", absl::StrCat("unknown value ", static_cast<int>(r.severity())));
  }
  return absl::OkStatus();
}

RuleSpec ToSpec(int64_t tenant_id, const Rule& r) {
  RuleSpec s;
  s.tenant_id = tenant_id;
  s.rule_id = r.rule_id();
  s.version = r.version();
  s.selector.project = r.project();
  s.selector.device = r.device_id();
  s.selector.sensor = r.sensor();
  for (const auto& m : r.label_matchers()) {
    s.selector.labels.push_back(LabelMatcher{m.name(), m.value(), m.negate()});
  }
  if (r.no_data_seconds() > 0) {
    s.no_data_ns = r.no_data_seconds() * kNsPerSec;
    return s;
  }
  if (r.window_seconds() > 0) s.window_ns = r.window_seconds() * kNsPerSec;
  s.aggregate = AggregateOf(r.function());
  s.comparison = ComparisonOf(r.comparison());
  s.threshold = r.threshold();
  s.for_ns = r.for_seconds() * kNsPerSec;
  if (r.has_resolve_threshold()) s.resolve_threshold = r.resolve_threshold();
  s.resolve_for_ns = r.resolve_for_seconds() * kNsPerSec;
  s.keep_firing_for_ns = r.keep_firing_for_seconds() * kNsPerSec;
  return s;
}

}  // namespace telemetry::alert
