// The AlertService's telemetry.v1.Rule: what a valid rule is (ValidateRule,
// run by CreateRule and UpdateRule before anything is stored) and its
// conversion to the evaluator's RuleSpec (services/alert/rule.h).
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "services/alert/rule.h"
#include "telemetry/v1/alert.pb.h"

namespace telemetry::alert {

// Limits of a rule (the contract's comments in proto/telemetry/v1/alert.proto).
inline constexpr size_t kMaxRuleNameBytes = 200;
inline constexpr size_t kMaxGlobBytes = 200;  // device_id, sensor, project, label matchers
inline constexpr int64_t kMaxWindowSeconds = 3600;
inline constexpr int64_t kMaxDurationSeconds = 86400;  // for, resolve_for, keep_firing_for,
                                                       // no_data
inline constexpr int kMaxLabelMatchers = 20;
inline constexpr int kMaxLabels = 50;   // labels and annotations, each
inline constexpr int kMaxTargets = 10;  // webhook_urls + alertmanager_urls

// OK, or INVALID_ARGUMENT naming the first offending field
// ("rule.window_seconds: must be between 1 and 3600"). Server-assigned
// fields (rule_id, version, created_at_ns, updated_at_ns) are not looked at.
absl::Status ValidateRule(const telemetry::v1::Rule& r);

// The evaluator's form of a (valid) rule; durations in nanoseconds. A
// no-data rule keeps RuleSpec's default window, aggregate and comparison
// (unused for it).
RuleSpec ToSpec(int64_t tenant_id, const telemetry::v1::Rule& r);

}  // namespace telemetry::alert
