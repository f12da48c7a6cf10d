// The MQTT bridge's decoding layer, pure logic with no client library in it:
// which tenant, device (and sensor) a topic names, and the readings a message
// payload holds. The bridge hands the readings to ingest::IngestCore::Write
// for the tenant of the TOPIC: the broker's ACL confines a device to its
// tenant's topic prefix, so nothing in a payload can choose the tenant, and a
// device_id in a payload must agree with the topic's device.
//
// This layer only turns bytes into readings. It does not repeat what the core
// checks for every reading (name charset, value and label limits, timestamp
// range): the core rejects such readings and names them.
//
// Payload forms (PayloadFormat):
//
//   kJson, the device document, on a {device} topic:
//     {"device_id": "meter-1",                    optional; must equal the topic's device
//      "timestamp": "2024-05-01T12:00:00.5Z",     optional; see "Timestamps"
//      "metrics": {"power_w": 12.3,               number -> double_value
//                  "relay": true,                 boolean -> bool_value
//                  "mode": "eco",                 string -> string_value
//                  "voltage_v": {"value": 230, "unit": "V", "status": 0}},
//      "meta": {"firmware": "1.0.3", "floor": 2}} -> labels (numbers and booleans as text)
//     or a JSON array of such documents (a gateway batching). One reading per
//     metric: device_id = the topic's device, sensor = the metric's name.
//     Keys other than these are errors (a misspelt "timestamp" would
//     otherwise store the readings at the bridge's clock without a word).
//
//   kSingleValue, one value on a {sensor} topic: a JSON number, `true` or
//     `false`, a JSON string, or an object {"value": v, "timestamp": t,
//     "unit": "W", "status": 0, "meta": {...}, "device_id": "..."} of which
//     only "value" is required. Bare text that is not JSON (`ON`, `12,5`) is
//     an error, not a string: a malformed number must not become a string.
//
//   kProtobuf: a serialized telemetry.v1.WriteRequest. Every reading's
//     device_id must be the topic's device or empty (then it is filled in);
//     on a {sensor} topic the same holds for the sensor.
//
//   kAuto: kSingleValue when the topic matched a pattern with {sensor}; else
//     kJson when the first byte that is not JSON whitespace (space, \t, \r,
//     \n) is '{' or '['; else kProtobuf. The {sensor} test comes first: on a
//     sensor topic an object is the single-value object form. One overlap:
//     a serialized WriteRequest starts with 0x0a (field 1's tag, also '\n')
//     and then its first reading's length, which is '[' or '{' when that
//     reading is 91 or 123 bytes long. So a payload that starts with '\n' and
//     looks like JSON is JSON if it parses as JSON, else protobuf if it
//     parses as a WriteRequest, else an error naming the JSON reason.
//
// On a {sensor} topic, kJson and kProtobuf readings must be for that sensor.
//
// Timestamps ("timestamp" in JSON; none given: now_ns):
//   - a string in RFC 3339 form (the ISO 8601 profile): 2024-05-01T12:00:00Z,
//     2024-05-01T14:00:00.123456789+02:00; 'T' or 't' or one space between
//     date and time, 'Z' or 'z' or ±hh:mm required, any number of fractional
//     digits (beyond nanoseconds they are truncated);
//   - an epoch number, as a JSON number or a decimal string ("1714564800123"),
//     whose unit is told by its magnitude |x|:
//         |x| < 1e11         seconds
//         1e11 <= |x| < 1e14 milliseconds   (1973-03-03 onwards)
//         1e14 <= |x| < 1e17 microseconds   (1973-03-03 onwards)
//         1e17 <= |x|        nanoseconds    (1973-03-03 onwards)
//     so milliseconds, microseconds and nanoseconds before 1973-03-03 are
//     read as a coarser unit (the core then rejects them as too old or in
//     the future). Fractions are kept to the nanosecond. A time that int64
//     nanoseconds cannot hold (after 2262-04-11, e.g. 9.3e9 seconds) is an
//     error.
//   JSON numbers are doubles here (google.protobuf.Struct holds numbers as
//   doubles): integers beyond 2^53 lose precision, so an epoch in ns as a JSON
//   number keeps about a quarter microsecond; send ns as a decimal string or
//   RFC 3339 text to keep every digit. Metric values have the same limit,
//   as they do on the gRPC path (Reading.double_value).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "telemetry/v1/common.pb.h"

namespace telemetry::bridge {

// The default topics: several metrics of a device per message, and one value
// of one sensor per message.
inline constexpr std::string_view kDefaultDevicePattern = "telemetry/{tenant}/{device}";
inline constexpr std::string_view kDefaultSensorPattern = "telemetry/{tenant}/{device}/{sensor}";

// What a topic names. `sensor` is empty unless the pattern has {sensor}.
struct TopicMatch {
  std::string tenant;
  std::string device;
  std::string sensor;

  friend bool operator==(const TopicMatch& a, const TopicMatch& b) {
    return a.tenant == b.tenant && a.device == b.device && a.sensor == b.sensor;
  }
};

// A topic pattern: MQTT topic levels separated by '/', each either literal
// text or a placeholder taking the whole level: {tenant} and {device}
// (required), {sensor} (optional). Wildcards ('+', '#'), empty levels, a
// leading '$' (broker topics such as $SYS) and placeholders inside a level
// ("dev-{device}") are rejected.
class TopicPattern {
 public:
  static absl::StatusOr<TopicPattern> Parse(std::string_view pattern);

  // The subscription filter: every placeholder level becomes '+'
  // ("telemetry/{tenant}/{device}" -> "telemetry/+/+").
  std::string SubscriptionFilter() const;

  // The names in `topic`, or nullopt when it does not fit: another number of
  // levels, another literal level, or an empty placeholder level.
  std::optional<TopicMatch> Match(std::string_view topic) const;

  bool has_sensor() const;
  const std::string& pattern() const { return pattern_; }

  // Whether some topic fits both patterns.
  bool Overlaps(const TopicPattern& other) const;

 private:
  enum class Kind { kLiteral, kTenant, kDevice, kSensor };
  struct Level {
    Kind kind;
    std::string literal;  // kLiteral only
  };

  TopicPattern(std::string pattern, std::vector<Level> levels)
      : pattern_(std::move(pattern)), levels_(std::move(levels)) {}

  std::string pattern_;
  std::vector<Level> levels_;
};

// The patterns a bridge subscribes with (e.g. the device and the sensor
// form), tried in order. No two may overlap, so a topic has one reading.
class TopicPatterns {
 public:
  static absl::StatusOr<TopicPatterns> Parse(const std::vector<std::string>& patterns);
  // kDefaultDevicePattern and kDefaultSensorPattern.
  static TopicPatterns Default();

  // One filter per pattern, in order.
  std::vector<std::string> SubscriptionFilters() const;
  std::optional<TopicMatch> Match(std::string_view topic) const;
  const std::vector<TopicPattern>& patterns() const { return patterns_; }

 private:
  explicit TopicPatterns(std::vector<TopicPattern> patterns) : patterns_(std::move(patterns)) {}
  std::vector<TopicPattern> patterns_;
};

enum class PayloadFormat { kAuto, kJson, kSingleValue, kProtobuf };

// "auto", "json", "single", "protobuf" (for a flag).
absl::StatusOr<PayloadFormat> ParsePayloadFormat(std::string_view name);
std::string_view PayloadFormatName(PayloadFormat format);

struct DecodeLimits {
  // Larger payloads are refused before parsing.
  size_t max_payload_bytes = 256 << 10;
  // A message that would give more readings is refused whole.
  size_t max_readings = 10'000;
  // Errors kept in DecodeResult::errors; the rest are only counted.
  size_t max_errors = 100;
};

// Why part of a message was not decoded. `field` is a path into the payload:
// "timestamp", "metrics.power_w", "[2].meta.floor", "readings[3].device_id",
// "value"; "payload" for the message as a whole.
struct DecodeError {
  std::string field;
  std::string reason;

  std::string ToString() const { return field + ": " + reason; }
};

// What a message decoded to. A metric that cannot be decoded costs only its
// own reading; a document whose device_id, timestamp or meta cannot be used
// costs that document's readings (of a JSON array, the other documents
// still count); a protobuf reading with another device costs that reading.
struct DecodeResult {
  std::vector<telemetry::v1::Reading> readings;
  std::vector<DecodeError> errors;  // at most DecodeLimits::max_errors
  size_t error_count = 0;           // all of them, kept or not
};

// Decodes `payload`, received on a topic that matched `where`. Returns
// INVALID_ARGUMENT, naming the reason, when nothing of the message can be
// used: too large, not JSON (the parser's reason), the wrong JSON shape (not
// an object or array; an empty array), more than max_readings readings, not
// a WriteRequest, a WriteRequest without readings, kSingleValue on a topic
// without {sensor}. `now_ns` stamps readings that have no timestamp.
absl::StatusOr<DecodeResult> Decode(const TopicMatch& where, std::string_view payload,
                                    PayloadFormat format, int64_t now_ns,
                                    const DecodeLimits& limits = {});

}  // namespace telemetry::bridge
