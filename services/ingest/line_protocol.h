// InfluxDB line protocol: the parser, and the mapping of its points to our
// readings. Pure logic (no I/O, no gRPC), shared by the HTTP write endpoint
// (influx_http.h) and `telemetry-admin import`; fuzzed by
// tests/fuzz/line_protocol_fuzz.cc.
//
//   measurement[,tag=value...] field=value[,field=value...] [timestamp]
//
// What is accepted (docs/ingress.md "Line protocol"): comments (`#` first on
// a line), blank lines, leading spaces and tabs, LF or CRLF line ends; `\,`
// `\ ` (and `\=` in tag keys, tag values and field keys) escapes, `\\` is one
// backslash, any other backslash is literal; float (`1`, `-1.5`, `1e3`),
// integer (`1i`), unsigned (`1u`), boolean (t, T, true, True, TRUE, f, F,
// false, False, FALSE) and string (`"..."`, with `\"` and `\\` escapes,
// newlines allowed) field values; an optional integer timestamp in the
// request's precision. NaN and infinities are refused, as InfluxDB does. A
// field written twice in one line keeps its last value.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "telemetry/v1/common.pb.h"

namespace telemetry::lineproto {

enum class FieldType { kFloat, kInteger, kUnsigned, kBoolean, kString };

struct FieldValue {
  FieldType type = FieldType::kFloat;
  double f = 0;
  int64_t i = 0;
  uint64_t u = 0;
  bool b = false;
  std::string s;
};

struct Point {
  std::string measurement;
  std::vector<std::pair<std::string, std::string>> tags;  // as written
  std::vector<std::pair<std::string, FieldValue>> fields;
  bool has_timestamp = false;
  int64_t timestamp = 0;  // in the request's precision
};

// Reads points one line at a time from a body held by the caller.
class Parser {
 public:
  enum class Result { kPoint, kError, kEnd };

  explicit Parser(absl::string_view body) : body_(body) {}

  // The next point into `*point` (its buffers are reused). kError: the line
  // is malformed, `*error` says why, and the parser has moved past it.
  Result Next(Point* point, std::string* error);

  // The 1-based line number where the last point or error started, and that
  // line's text (without the line end; at most 256 bytes) for messages.
  int64_t line_number() const { return line_number_; }
  absl::string_view line_text() const;

 private:
  bool ParseLine(Point* point, std::string* error);
  void SkipRestOfLine();

  absl::string_view body_;
  size_t pos_ = 0;
  size_t line_start_ = 0;
  int64_t line_number_ = 0;
  int64_t next_line_number_ = 1;
};

// How a timestamp is read: n/ns (default), u/us, ms, s, m, h. Returns the
// number of nanoseconds per unit, or INVALID_ARGUMENT naming the value.
absl::StatusOr<int64_t> PrecisionMultiplier(absl::string_view precision);

// How points become readings (docs/ingress.md "Mapping").
struct MappingOptions {
  // The tag whose value names the device. Empty: the device is the
  // measurement and every tag (sorted by key), e.g. `cpu/cpu:cpu0/host:a`.
  // With a device tag, the measurement and the other tags go to the sensor
  // name instead: `cpu/cpu:cpu0.usage_idle` (or `cpu.usage_idle`).
  std::string device_tag;
  int64_t precision_ns = 1;  // from PrecisionMultiplier
  int64_t now_ns = 0;        // the time of a point without a timestamp
};

// Appends one reading per field of `point` to `out`. A name that would not
// be a valid device or sensor name ([A-Za-z0-9_.:/-]{1,128}, and no `/` or
// `:` inside a measurement, tag key or tag value) is replaced by
// `h-<16 hex digits of its SHA-256>` so distinct series never merge; the
// tags are the readings' labels (when they fit the 16-label limit). Field
// keys become sensor names as they are: the write path's validation refuses
// one that is not a valid name. Integers and unsigned values are stored as
// doubles (exact up to 2^53). Fails (nothing appended) only when the
// timestamp overflows in nanoseconds.
absl::Status AppendReadings(const Point& point, const MappingOptions& options,
                            google::protobuf::RepeatedPtrField<telemetry::v1::Reading>* out);

}  // namespace telemetry::lineproto
