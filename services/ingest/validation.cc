#include "services/ingest/validation.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace telemetry::ingest {
namespace {

telemetry::v1::RejectedReading Reject(const std::string& field, std::string reason) {
  telemetry::v1::RejectedReading rej;
  rej.set_field(field);
  rej.set_reason(std::move(reason));
  return rej;
}

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '/' || c == '-';
}

}  // namespace

bool IsValidName(const std::string& name, size_t max_len) {
  if (name.empty() || name.size() > max_len) return false;
  return std::all_of(name.begin(), name.end(), NameChar);
}

std::optional<telemetry::v1::RejectedReading> ValidateReading(const telemetry::v1::Reading& r,
                                                              const TenantInfo& tenant,
                                                              int64_t now_ns,
                                                              const ValidationLimits& limits) {
  if (r.device_id().empty()) return Reject("device_id", "device_id is empty");
  if (!IsValidName(r.device_id())) {
    return Reject("device_id", "device_id must match [A-Za-z0-9_.:/-]{1,128}");
  }
  if (r.sensor().empty()) return Reject("sensor", "sensor is empty");
  if (!IsValidName(r.sensor()))
    return Reject("sensor", "sensor must match [A-Za-z0-9_.:/-]{1,128}");
  if (!tenant.sensor_whitelist.empty() &&
      std::find(tenant.sensor_whitelist.begin(), tenant.sensor_whitelist.end(), r.sensor()) ==
          tenant.sensor_whitelist.end()) {
    return Reject("sensor", "sensor '" + r.sensor() + "' is not in the tenant's allowed sensors");
  }
  if (r.timestamp_ns() <= 0) return Reject("timestamp_ns", "timestamp_ns must be > 0");
  if (r.timestamp_ns() > now_ns + limits.max_future_ns) {
    return Reject("timestamp_ns",
                  absl::StrCat("timestamp is more than ", limits.max_future_ns / 1'000'000'000,
                               " s in the future"));
  }
  int64_t oldest = now_ns - static_cast<int64_t>(tenant.raw_retention_days) * 86'400'000'000'000;
  if (r.timestamp_ns() < oldest) {
    return Reject("timestamp_ns", absl::StrCat("timestamp is older than the raw retention of ",
                                               tenant.raw_retention_days, " days"));
  }
  switch (r.value_case()) {
    case telemetry::v1::Reading::kDoubleValue:
      if (!std::isfinite(r.double_value())) return Reject("value", "double_value must be finite");
      break;
    case telemetry::v1::Reading::kStringValue:
      if (r.string_value().size() > limits.max_string_bytes) {
        return Reject("value", absl::StrCat("string_value is longer than ", limits.max_string_bytes,
                                            " bytes"));
      }
      break;
    case telemetry::v1::Reading::kBoolValue:
      break;
    case telemetry::v1::Reading::VALUE_NOT_SET:
      return Reject("value", "no value set (double_value, string_value or bool_value)");
  }
  if (r.unit().size() > limits.max_unit_bytes) {
    return Reject("unit", absl::StrCat("unit is longer than ", limits.max_unit_bytes, " bytes"));
  }
  if (r.labels_size() > static_cast<int>(limits.max_labels)) {
    return Reject("labels", absl::StrCat("more than ", limits.max_labels, " labels"));
  }
  for (const auto& [k, v] : r.labels()) {
    if (!IsValidName(k, limits.max_label_key_bytes)) {
      return Reject("labels", "label key '" + k.substr(0, 80) + "' must match [A-Za-z0-9_.:/-]{1," +
                                  std::to_string(limits.max_label_key_bytes) + "}");
    }
    if (v.size() > limits.max_label_value_bytes) {
      return Reject("labels", absl::StrCat("label '", k, "' value is longer than ",
                                           limits.max_label_value_bytes, " bytes"));
    }
  }
  return std::nullopt;
}

}  // namespace telemetry::ingest
