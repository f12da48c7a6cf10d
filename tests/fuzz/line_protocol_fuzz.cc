// libFuzzer target: the line-protocol parser and its mapping to readings
// take any bytes without crashing, reading out of bounds or looping, and
// keep their promises on what they return. Built and run by
// scripts/fuzz-lineproto.sh (clang, -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "services/ingest/line_protocol.h"

namespace lp = telemetry::lineproto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  lp::Parser parser(body);
  lp::Point point;
  std::string error;
  lp::MappingOptions options;
  options.now_ns = 1'700'000'000'000'000'000;
  options.precision_ns = size % 2 == 0 ? 1 : 1'000'000'000;
  options.device_tag = size % 3 == 0 ? "host" : "";
  google::protobuf::RepeatedPtrField<telemetry::v1::Reading> readings;
  int64_t last_line = 0;
  size_t results = 0;
  while (true) {
    const auto r = parser.Next(&point, &error);
    if (r == lp::Parser::Result::kEnd) break;
    // Progress: every result is on a later line, and there are never more
    // results than bytes.
    if (parser.line_number() <= last_line || ++results > size) abort();
    last_line = parser.line_number();
    if (r == lp::Parser::Result::kError) {
      if (error.empty()) abort();
      continue;
    }
    if (point.measurement.empty() || point.fields.empty()) abort();
    const int before = readings.size();
    if (lp::AppendReadings(point, options, &readings).ok()) {
      if (readings.size() - before != static_cast<int>(point.fields.size())) abort();
      for (int i = before; i < readings.size(); ++i) {
        const auto& reading = readings.Get(i);
        // A device name is never empty nor longer than a device id may be.
        if (reading.device_id().empty() || reading.device_id().size() > 128) abort();
      }
    } else if (readings.size() != before) {
      abort();
    }
    (void)parser.line_text();
  }
  return 0;
}
