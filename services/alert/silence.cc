#include "services/alert/silence.h"

#include "absl/strings/str_cat.h"
#include "services/alert/rule.h"

namespace telemetry::alert {

absl::StatusOr<telemetry::v1::Silence> NormalizeSilence(telemetry::v1::Silence s, int64_t now_ns) {
  s.clear_silence_id();
  s.clear_created_at_ns();
  if (s.rule_id().empty() && s.device_id().empty() && s.label_matchers().empty()) {
    return absl::InvalidArgumentError(
        "silence: set at least one of rule_id, device_id and label_matchers (a silence of "
        "everything is not allowed)");
  }
  if (s.rule_id().size() > 200 || s.device_id().size() > 200) {
    return absl::InvalidArgumentError("silence.rule_id / silence.device_id: at most 200 bytes");
  }
  if (s.label_matchers_size() > 20) {
    return absl::InvalidArgumentError("silence.label_matchers: at most 20");
  }
  for (int i = 0; i < s.label_matchers_size(); ++i) {
    if (s.label_matchers(i).name().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("silence.label_matchers[", i, "].name: required"));
    }
  }
  if (s.comment().size() > 1000) {
    return absl::InvalidArgumentError("silence.comment: at most 1000 bytes");
  }
  if (s.starts_at_ns() < 0) {
    return absl::InvalidArgumentError("silence.starts_at_ns: must not be negative");
  }
  if (s.starts_at_ns() == 0) s.set_starts_at_ns(now_ns);
  if (s.ends_at_ns() <= s.starts_at_ns()) {
    return absl::InvalidArgumentError("silence.ends_at_ns: required, after starts_at_ns");
  }
  if (s.ends_at_ns() - s.starts_at_ns() > kMaxSilenceNs) {
    return absl::InvalidArgumentError("silence.ends_at_ns: a silence lasts at most 30 days");
  }
  return s;
}

bool SilenceMatches(const telemetry::v1::Silence& s, const telemetry::v1::AlertEvent& e,
                    int64_t now_ns) {
  if (now_ns < s.starts_at_ns() || now_ns >= s.ends_at_ns()) return false;
  if (!s.rule_id().empty() && s.rule_id() != e.rule_id()) return false;
  if (!s.device_id().empty() && !GlobMatch(s.device_id(), e.device_id())) return false;
  for (const auto& m : s.label_matchers()) {
    auto l = e.labels().find(m.name());
    const bool hit = GlobMatch(m.value(), l == e.labels().end() ? std::string() : l->second);
    if (hit == m.negate()) return false;
  }
  return true;
}

}  // namespace telemetry::alert
