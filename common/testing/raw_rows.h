// Raw rows of one kind for tests (series 0 unless set afterwards).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "common/model.h"

namespace telemetry::testing {

inline RawRow DoubleRow(int64_t ts, double v, int32_t status = 0) {
  RawRow r;
  r.ts_ns = ts;
  r.kind = ValueKind::kDouble;
  r.d = v;
  r.status = status;
  return r;
}

inline RawRow StringRow(int64_t ts, std::string s, int32_t status = 0) {
  RawRow r;
  r.ts_ns = ts;
  r.kind = ValueKind::kString;
  r.s = std::move(s);
  r.status = status;
  return r;
}

inline RawRow BoolRow(int64_t ts, bool b, int32_t status = 0) {
  RawRow r;
  r.ts_ns = ts;
  r.kind = ValueKind::kBool;
  r.b = b;
  r.status = status;
  return r;
}

}  // namespace telemetry::testing
