#include "services/bridge/payload.h"

#include <google/protobuf/struct.pb.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "services/bridge/json.h"
#include "telemetry/v1/ingest.pb.h"

namespace telemetry::bridge {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;
using telemetry::v1::Reading;

// MQTT topics are at most 65,535 bytes (a UTF-8 string with a 16-bit length).
constexpr size_t kMaxTopicBytes = 65535;

// Debian's Abseil has its own string_view; the API takes std::string_view.
absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Text from a payload or a topic in an error: quoted, escaped for a log line
// and cut at 64 bytes (a bad timestamp can be the whole 256 KiB payload).
std::string Quote(absl::string_view s) {
  constexpr size_t kMax = 64;
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, kMax)), "\"",
                      s.size() > kMax ? "..." : "");
}

absl::string_view KindName(const Value& v) {
  switch (v.kind_case()) {
    case Value::kNullValue:
      return "null";
    case Value::kNumberValue:
      return "a number";
    case Value::kStringValue:
      return "a string";
    case Value::kBoolValue:
      return "a boolean";
    case Value::kStructValue:
      return "an object";
    case Value::kListValue:
      return "an array";
    case Value::KIND_NOT_SET:
      return "nothing";
  }
  return "nothing";
}

// An object's keys in byte order: Struct is a map, whose iteration order is
// unspecified, and readings and errors should come out the same every time.
std::vector<const std::string*> SortedKeys(const Struct& s) {
  std::vector<const std::string*> keys;
  keys.reserve(s.fields_size());
  for (const auto& [key, value] : s.fields()) keys.push_back(&key);
  std::sort(keys.begin(), keys.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  return keys;
}

const Value* Field(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? nullptr : &it->second;
}

// A number as a label value: integers without a fraction ("2", not "2.0"),
// others in the shortest form that reads back as the same double.
std::string NumberText(double d) {
  if (std::trunc(d) == d && std::fabs(d) < 0x1p53) return absl::StrCat(static_cast<int64_t>(d));
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  return std::string(buf, ec == std::errc() ? end : buf);
}

// ---- timestamps ----

constexpr int64_t kSecondsBelow = 100'000'000'000;         // 1e11
constexpr int64_t kMillisBelow = 100'000'000'000'000;      // 1e14
constexpr int64_t kMicrosBelow = 100'000'000'000'000'000;  // 1e17
constexpr absl::string_view kRange = "outside the range of int64 nanoseconds (1677 to 2262)";

// Nanoseconds per unit of an epoch number of magnitude `abs`, and the number
// of fractional digits that unit keeps down to the nanosecond.
std::pair<int64_t, int> EpochUnit(double abs) {
  if (abs < static_cast<double>(kSecondsBelow)) return {1'000'000'000, 9};
  if (abs < static_cast<double>(kMillisBelow)) return {1'000'000, 6};
  if (abs < static_cast<double>(kMicrosBelow)) return {1'000, 3};
  return {1, 0};
}

absl::StatusOr<int64_t> EpochFromDouble(double x) {
  if (!std::isfinite(x)) return absl::InvalidArgumentError("not a finite number");
  int64_t scale = EpochUnit(std::fabs(x)).first;
  double whole = std::trunc(x);
  // 2^63 is exact as a double; int64 holds [-2^63, 2^63).
  if (whole >= 0x1p63 || whole < -0x1p63) return absl::InvalidArgumentError(std::string(kRange));
  int64_t ns;
  if (__builtin_mul_overflow(static_cast<int64_t>(whole), scale, &ns)) {
    return absl::InvalidArgumentError(std::string(kRange));
  }
  auto frac = static_cast<int64_t>(std::llround((x - whole) * static_cast<double>(scale)));
  if (__builtin_add_overflow(ns, frac, &ns)) return absl::InvalidArgumentError(std::string(kRange));
  return ns;
}

bool IsDecimal(std::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  auto digits = [](std::string_view d) {
    return !d.empty() &&
           std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return digits(whole) && (dot == std::string_view::npos || digits(frac));
}

// An epoch number written as text, exact to the nanosecond.
absl::StatusOr<int64_t> EpochFromDecimal(std::string_view s) {
  bool negative = s[0] == '-';
  if (negative) s.remove_prefix(1);
  size_t dot = s.find('.');
  std::string_view whole_text = s.substr(0, dot);
  std::string_view frac_text = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  int64_t whole;
  if (!absl::SimpleAtoi(A(whole_text), &whole)) {
    return absl::InvalidArgumentError(std::string(kRange));
  }
  auto [scale, digits] = EpochUnit(static_cast<double>(whole));
  int64_t frac = 0;
  for (int i = 0; i < digits; ++i) {
    frac = frac * 10 + (i < static_cast<int>(frac_text.size()) ? frac_text[i] - '0' : 0);
  }
  int64_t ns;
  if (__builtin_mul_overflow(whole, scale, &ns) || __builtin_add_overflow(ns, frac, &ns)) {
    return absl::InvalidArgumentError(std::string(kRange));
  }
  return negative ? -ns : ns;
}

absl::StatusOr<int64_t> TimeFromRfc3339(absl::string_view text) {
  std::string s(text);
  // RFC 3339 lets applications put a space between date and time.
  if (s.size() > 10 && s[10] == ' ') s[10] = 'T';
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, s, &t, &err)) {
    if (absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*S", s, &t, &err)) {
      return absl::InvalidArgumentError(
          absl::StrCat(Quote(text), " has no UTC offset: add Z or +hh:mm / -hh:mm"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        Quote(text),
        " is neither an RFC 3339 time (2024-05-01T12:00:00.5Z, 2024-05-01T14:00:00+02:00) nor "
        "an epoch number"));
  }
  if (t < absl::FromUnixNanos(std::numeric_limits<int64_t>::min()) ||
      t > absl::FromUnixNanos(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is ", kRange));
  }
  return absl::ToUnixNanos(t);
}

absl::StatusOr<int64_t> ParseTimestamp(const Value& v) {
  switch (v.kind_case()) {
    case Value::kNumberValue:
      return EpochFromDouble(v.number_value());
    case Value::kStringValue:
      if (IsDecimal(v.string_value())) return EpochFromDecimal(v.string_value());
      return TimeFromRfc3339(v.string_value());
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("must be an RFC 3339 string or an epoch number, not ", KindName(v)));
  }
}

// ---- the decoder ----

class Decoder {
 public:
  Decoder(const TopicMatch& where, int64_t now_ns, const DecodeLimits& limits, DecodeResult* out)
      : where_(where), now_ns_(now_ns), limits_(limits), out_(out) {}

  absl::Status Json(const Value& root) {
    switch (root.kind_case()) {
      case Value::kStructValue:
        return Document(root.struct_value(), "");
      case Value::kListValue: {
        const auto& items = root.list_value().values();
        if (items.empty()) return absl::InvalidArgumentError("payload: the array is empty");
        for (int i = 0; i < items.size(); ++i) {
          std::string at = absl::StrCat("[", i, "]");
          if (!items[i].has_struct_value()) {
            Error(at, absl::StrCat("must be an object (a document), not ", KindName(items[i])));
            continue;
          }
          absl::Status st = Document(items[i].struct_value(), at + ".");
          if (!st.ok()) return st;
        }
        return absl::OkStatus();
      }
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("payload: a JSON document must be an object or an array of objects, not ",
                         KindName(root)));
    }
  }

  absl::Status Single(const Value& root) {
    Reading r = Base(now_ns_);
    r.set_sensor(where_.sensor);
    switch (root.kind_case()) {
      case Value::kListValue:
        return absl::InvalidArgumentError(
            "payload: an array is not one value; publish batches to the device topic");
      case Value::kStructValue: {
        const Struct& s = root.struct_value();
        bool ok = Keys(s, "", {"value", "timestamp", "unit", "status", "meta", "device_id"},
                       "a single-value object has value, timestamp, unit, status, meta and "
                       "device_id");
        ok = DeviceId(s, "") && ok;
        ok = Timestamp(s, "", &r) && ok;
        ok = Meta(s, "", &r) && ok;
        ok = ValueFields(s, "", &r) && ok;
        if (!ok) return absl::OkStatus();
        return Add(std::move(r));
      }
      default:
        if (!Scalar(root, "value", &r)) return absl::OkStatus();
        return Add(std::move(r));
    }
  }

  absl::Status Protobuf(std::string_view payload) {
    if (payload.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
      return absl::InvalidArgumentError("payload: too large for a protobuf message");
    }
    telemetry::v1::WriteRequest request;
    if (!request.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      return absl::InvalidArgumentError("payload: not a serialized telemetry.v1.WriteRequest");
    }
    if (request.readings_size() == 0) {
      return absl::InvalidArgumentError("payload: the WriteRequest has no readings");
    }
    if (static_cast<size_t>(request.readings_size()) > limits_.max_readings) {
      return TooMany();
    }
    for (int i = 0; i < request.readings_size(); ++i) {
      Reading* r = request.mutable_readings(i);
      std::string at = absl::StrCat("readings[", i, "].");
      if (r->device_id().empty()) {
        r->set_device_id(where_.device);
      } else if (r->device_id() != where_.device) {
        Error(at + "device_id", NotTopicDevice(r->device_id()));
        continue;
      }
      if (!where_.sensor.empty()) {
        if (r->sensor().empty()) {
          r->set_sensor(where_.sensor);
        } else if (r->sensor() != where_.sensor) {
          Error(at + "sensor", NotTopicSensor(r->sensor()));
          continue;
        }
      }
      absl::Status st = Add(std::move(*r));
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }

 private:
  // One document: its device_id, timestamp and meta hold for every metric,
  // so when one of them cannot be used the document gives no readings.
  absl::Status Document(const Struct& doc, const std::string& at) {
    Reading base = Base(now_ns_);
    bool ok = Keys(doc, at, {"device_id", "timestamp", "metrics", "meta"},
                   "a document has device_id, timestamp, metrics and meta");
    ok = DeviceId(doc, at) && ok;
    ok = Timestamp(doc, at, &base) && ok;
    ok = Meta(doc, at, &base) && ok;
    const Value* metrics = Field(doc, "metrics");
    if (metrics == nullptr) {
      Error(at + "metrics", "required");
      return absl::OkStatus();
    }
    if (!metrics->has_struct_value()) {
      Error(at + "metrics",
            absl::StrCat("must be an object of metric name to value, not ", KindName(*metrics)));
      return absl::OkStatus();
    }
    if (metrics->struct_value().fields().empty()) {
      Error(at + "metrics", "has no metrics");
      return absl::OkStatus();
    }
    if (!ok) return absl::OkStatus();
    const Struct& m = metrics->struct_value();
    for (const std::string* name : SortedKeys(m)) {
      std::string field = absl::StrCat(at, "metrics.", *name);
      if (!where_.sensor.empty() && *name != where_.sensor) {
        Error(field, NotTopicSensor(*name));
        continue;
      }
      Reading r = base;
      r.set_sensor(*name);
      const Value& v = m.fields().at(*name);
      bool good;
      if (v.has_struct_value()) {
        good = Keys(v.struct_value(), field + ".", {"value", "unit", "status"},
                    "a metric object has value, unit and status");
        good = ValueFields(v.struct_value(), field + ".", &r) && good;
      } else {
        good = Scalar(v, field, &r);
      }
      if (!good) continue;
      absl::Status st = Add(std::move(r));
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }

  Reading Base(int64_t ts) const {
    Reading r;
    r.set_device_id(where_.device);
    r.set_timestamp_ns(ts);
    return r;
  }

  bool Keys(const Struct& s, const std::string& at, std::initializer_list<std::string_view> known,
            std::string_view expected) {
    bool ok = true;
    for (const std::string* key : SortedKeys(s)) {
      if (std::find(known.begin(), known.end(), *key) == known.end()) {
        Error(at + *key, absl::StrCat("unknown field (", A(expected), ")"));
        ok = false;
      }
    }
    return ok;
  }

  bool DeviceId(const Struct& s, const std::string& at) {
    const Value* v = Field(s, "device_id");
    if (v == nullptr) return true;
    if (!v->has_string_value()) {
      Error(at + "device_id", absl::StrCat("must be a string, not ", KindName(*v)));
      return false;
    }
    if (v->string_value() != where_.device) {
      Error(at + "device_id", NotTopicDevice(v->string_value()));
      return false;
    }
    return true;
  }

  bool Timestamp(const Struct& s, const std::string& at, Reading* r) {
    const Value* v = Field(s, "timestamp");
    if (v == nullptr) return true;
    absl::StatusOr<int64_t> ts = ParseTimestamp(*v);
    if (!ts.ok()) {
      Error(at + "timestamp", std::string(ts.status().message()));
      return false;
    }
    r->set_timestamp_ns(*ts);
    return true;
  }

  bool Meta(const Struct& s, const std::string& at, Reading* r) {
    const Value* v = Field(s, "meta");
    if (v == nullptr) return true;
    if (!v->has_struct_value()) {
      Error(at + "meta", absl::StrCat("must be an object of label to value, not ", KindName(*v)));
      return false;
    }
    bool ok = true;
    const Struct& meta = v->struct_value();
    for (const std::string* key : SortedKeys(meta)) {
      const Value& value = meta.fields().at(*key);
      std::string text;
      switch (value.kind_case()) {
        case Value::kStringValue:
          text = value.string_value();
          break;
        case Value::kNumberValue:
          text = NumberText(value.number_value());
          break;
        case Value::kBoolValue:
          text = value.bool_value() ? "true" : "false";
          break;
        default:
          Error(absl::StrCat(at, "meta.", *key),
                absl::StrCat("must be a string, number or boolean, not ", KindName(value)));
          ok = false;
          continue;
      }
      (*r->mutable_labels())[*key] = std::move(text);
    }
    return ok;
  }

  // "value" (required), "unit" and "status" of an object.
  bool ValueFields(const Struct& s, const std::string& at, Reading* r) {
    bool ok = true;
    const Value* value = Field(s, "value");
    if (value == nullptr) {
      Error(at + "value", "required");
      ok = false;
    } else {
      ok = Scalar(*value, at + "value", r) && ok;
    }
    if (const Value* unit = Field(s, "unit"); unit != nullptr) {
      if (unit->has_string_value()) {
        r->set_unit(unit->string_value());
      } else {
        Error(at + "unit", absl::StrCat("must be a string, not ", KindName(*unit)));
        ok = false;
      }
    }
    if (const Value* status = Field(s, "status"); status != nullptr) {
      double d = status->number_value();
      if (status->has_number_value() && std::trunc(d) == d &&
          d >= std::numeric_limits<int32_t>::min() && d <= std::numeric_limits<int32_t>::max()) {
        r->set_status_code(static_cast<int32_t>(d));
      } else {
        Error(at + "status",
              absl::StrCat("must be an integer from ", std::numeric_limits<int32_t>::min(), " to ",
                           std::numeric_limits<int32_t>::max()));
        ok = false;
      }
    }
    return ok;
  }

  bool Scalar(const Value& v, const std::string& field, Reading* r) {
    switch (v.kind_case()) {
      case Value::kNumberValue:
        r->set_double_value(v.number_value());
        return true;
      case Value::kStringValue:
        r->set_string_value(v.string_value());
        return true;
      case Value::kBoolValue:
        r->set_bool_value(v.bool_value());
        return true;
      default:
        Error(field, absl::StrCat("value must be a number, string or boolean, not ", KindName(v)));
        return false;
    }
  }

  std::string NotTopicDevice(absl::string_view device) const {
    return absl::StrCat(Quote(device), " does not match the topic's device ", Quote(where_.device));
  }
  std::string NotTopicSensor(absl::string_view sensor) const {
    return absl::StrCat(Quote(sensor), " does not match the topic's sensor ", Quote(where_.sensor));
  }

  void Error(std::string field, std::string reason) {
    ++out_->error_count;
    if (out_->errors.size() < limits_.max_errors) {
      out_->errors.push_back({std::move(field), std::move(reason)});
    }
  }

  absl::Status TooMany() const {
    return absl::InvalidArgumentError(
        absl::StrCat("payload: more than ", limits_.max_readings, " readings in one message"));
  }

  absl::Status Add(Reading r) {
    if (out_->readings.size() >= limits_.max_readings) return TooMany();
    out_->readings.push_back(std::move(r));
    return absl::OkStatus();
  }

  const TopicMatch& where_;
  int64_t now_ns_;
  const DecodeLimits& limits_;
  DecodeResult* out_;
};

bool LooksLikeJson(std::string_view payload) {
  size_t i = payload.find_first_not_of(" \t\r\n");
  return i != std::string_view::npos && (payload[i] == '{' || payload[i] == '[');
}

absl::StatusOr<Value> ParseJson(std::string_view payload) {
  auto v = ParseJsonValue(payload);
  if (!v.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("payload: not valid JSON: ", v.status().message()));
  }
  return std::move(*v);
}

}  // namespace

absl::StatusOr<TopicPattern> TopicPattern::Parse(std::string_view pattern) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("topic pattern ", Quote(A(pattern)), ": ", A(why)));
  };
  if (pattern.empty()) return absl::InvalidArgumentError("topic pattern is empty");
  if (pattern.size() > kMaxTopicBytes) return bad("longer than MQTT's 65535 bytes");
  if (pattern.find('\0') != std::string_view::npos) return bad("has a NUL character");
  if (pattern[0] == '$') {
    return bad("starts with '$', which MQTT keeps for broker topics such as $SYS");
  }
  std::vector<Level> levels;
  int n = 0;
  for (absl::string_view text : absl::StrSplit(A(pattern), '/')) {
    std::string level = absl::StrCat("level ", ++n);
    if (text.empty()) return bad(absl::StrCat(level, " is empty"));
    if (text.find_first_of("+#") != absl::string_view::npos) {
      return bad(absl::StrCat(level, " ", Quote(text),
                              " has an MQTT wildcard; name the level with {tenant}, {device} "
                              "or {sensor}"));
    }
    if (text.find_first_of("{}") == absl::string_view::npos) {
      levels.push_back({Kind::kLiteral, std::string(text)});
      continue;
    }
    if (text.front() != '{' || text.find_first_of("{}", 1) != text.size() - 1 ||
        text.back() != '}') {
      return bad(absl::StrCat(level, " ", Quote(text),
                              ": a placeholder must be a whole topic level, like {device}"));
    }
    const std::pair<absl::string_view, Kind> kPlaceholders[] = {
        {"{tenant}", Kind::kTenant}, {"{device}", Kind::kDevice}, {"{sensor}", Kind::kSensor}};
    auto it = std::find_if(std::begin(kPlaceholders), std::end(kPlaceholders),
                           [&](const auto& p) { return p.first == text; });
    if (it == std::end(kPlaceholders)) {
      return bad(absl::StrCat(level, " ", Quote(text),
                              ": unknown placeholder (known: {tenant}, {device}, {sensor})"));
    }
    if (std::any_of(levels.begin(), levels.end(),
                    [&](const Level& l) { return l.kind == it->second; })) {
      return bad(absl::StrCat(text, " appears more than once"));
    }
    levels.push_back({it->second, ""});
  }
  auto has = [&](Kind kind) {
    return std::any_of(levels.begin(), levels.end(),
                       [&](const Level& l) { return l.kind == kind; });
  };
  if (!has(Kind::kTenant)) return bad("has no {tenant} level");
  if (!has(Kind::kDevice)) return bad("has no {device} level");
  return TopicPattern(std::string(pattern), std::move(levels));
}

std::string TopicPattern::SubscriptionFilter() const {
  std::string filter;
  for (const Level& level : levels_) {
    if (!filter.empty()) filter += '/';
    filter += level.kind == Kind::kLiteral ? level.literal : "+";
  }
  return filter;
}

std::optional<TopicMatch> TopicPattern::Match(std::string_view topic) const {
  std::vector<absl::string_view> parts = absl::StrSplit(A(topic), '/');
  if (parts.size() != levels_.size()) return std::nullopt;
  TopicMatch m;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Level& level = levels_[i];
    if (level.kind == Kind::kLiteral) {
      if (parts[i] != level.literal) return std::nullopt;
      continue;
    }
    if (parts[i].empty()) return std::nullopt;
    std::string& name = level.kind == Kind::kTenant   ? m.tenant
                        : level.kind == Kind::kDevice ? m.device
                                                      : m.sensor;
    name = std::string(parts[i]);
  }
  return m;
}

bool TopicPattern::has_sensor() const {
  return std::any_of(levels_.begin(), levels_.end(),
                     [](const Level& l) { return l.kind == Kind::kSensor; });
}

bool TopicPattern::Overlaps(const TopicPattern& other) const {
  if (levels_.size() != other.levels_.size()) return false;
  for (size_t i = 0; i < levels_.size(); ++i) {
    const Level& a = levels_[i];
    const Level& b = other.levels_[i];
    if (a.kind == Kind::kLiteral && b.kind == Kind::kLiteral && a.literal != b.literal) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<TopicPatterns> TopicPatterns::Parse(const std::vector<std::string>& patterns) {
  if (patterns.empty()) return absl::InvalidArgumentError("no topic patterns");
  std::vector<TopicPattern> parsed;
  for (const std::string& text : patterns) {
    absl::StatusOr<TopicPattern> p = TopicPattern::Parse(text);
    if (!p.ok()) return p.status();
    for (const TopicPattern& earlier : parsed) {
      if (earlier.Overlaps(*p)) {
        return absl::InvalidArgumentError(absl::StrCat("topic patterns ", Quote(earlier.pattern()),
                                                       " and ", Quote(p->pattern()),
                                                       " overlap: some topic would match both"));
      }
    }
    parsed.push_back(*std::move(p));
  }
  return TopicPatterns(std::move(parsed));
}

TopicPatterns TopicPatterns::Default() {
  return *Parse({std::string(kDefaultDevicePattern), std::string(kDefaultSensorPattern)});
}

std::vector<std::string> TopicPatterns::SubscriptionFilters() const {
  std::vector<std::string> filters;
  for (const TopicPattern& p : patterns_) filters.push_back(p.SubscriptionFilter());
  return filters;
}

std::optional<TopicMatch> TopicPatterns::Match(std::string_view topic) const {
  for (const TopicPattern& p : patterns_) {
    if (auto m = p.Match(topic)) return m;
  }
  return std::nullopt;
}

absl::StatusOr<PayloadFormat> ParsePayloadFormat(std::string_view name) {
  for (PayloadFormat f : {PayloadFormat::kAuto, PayloadFormat::kJson, PayloadFormat::kSingleValue,
                          PayloadFormat::kProtobuf}) {
    if (name == PayloadFormatName(f)) return f;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown payload format ", Quote(A(name)),
                                                 " (known: auto, json, single, protobuf)"));
}

std::string_view PayloadFormatName(PayloadFormat format) {
  switch (format) {
    case PayloadFormat::kAuto:
      return "auto";
    case PayloadFormat::kJson:
      return "json";
    case PayloadFormat::kSingleValue:
      return "single";
    case PayloadFormat::kProtobuf:
      return "protobuf";
  }
  return "auto";
}

absl::StatusOr<DecodeResult> Decode(const TopicMatch& where, std::string_view payload,
                                    PayloadFormat format, int64_t now_ns,
                                    const DecodeLimits& limits) {
  if (payload.empty()) {
    // Also what a client publishes to clear a retained message.
    return absl::InvalidArgumentError("payload: empty");
  }
  if (payload.size() > limits.max_payload_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("payload: ", payload.size(),
                                                   " bytes is more than the limit of ",
                                                   limits.max_payload_bytes, " bytes"));
  }
  // A WriteRequest starts with 0x0a, field 1's tag, which is also JSON's
  // newline: when a length of 91 or 123 bytes follows, it looks like '[' or '{'.
  bool ambiguous = false;
  if (format == PayloadFormat::kAuto) {
    bool json = LooksLikeJson(payload);
    ambiguous = where.sensor.empty() && json && payload[0] == '\n';
    format = !where.sensor.empty() ? PayloadFormat::kSingleValue
             : json                ? PayloadFormat::kJson
                                   : PayloadFormat::kProtobuf;
  }
  if (format == PayloadFormat::kSingleValue && where.sensor.empty()) {
    return absl::InvalidArgumentError(
        "payload: the single-value form needs a topic pattern with {sensor}");
  }
  DecodeResult result;
  Decoder decoder(where, now_ns, limits, &result);
  absl::Status st;
  switch (format) {
    case PayloadFormat::kProtobuf:
      st = decoder.Protobuf(payload);
      break;
    case PayloadFormat::kJson:
    case PayloadFormat::kSingleValue:
    case PayloadFormat::kAuto: {
      absl::StatusOr<Value> root = ParseJson(payload);
      if (!root.ok() && ambiguous) {
        telemetry::v1::WriteRequest probe;
        if (!probe.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
          return absl::InvalidArgumentError(absl::StrCat(
              root.status().message(), "; nor is it a serialized telemetry.v1.WriteRequest"));
        }
        st = decoder.Protobuf(payload);
        break;
      }
      if (!root.ok()) return root.status();
      st = format == PayloadFormat::kJson ? decoder.Json(*root) : decoder.Single(*root);
      break;
    }
  }
  if (!st.ok()) return st;
  return result;
}

}  // namespace telemetry::bridge
