// A double's IEEE 754 bits and back (C++17 has no std::bit_cast): the
// segment codecs and the tests that compare doubles bit for bit use these.
#pragma once

#include <cstdint>
#include <cstring>

namespace telemetry {

inline uint64_t DoubleBits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}

inline double DoubleFromBits(uint64_t b) {
  double d;
  std::memcpy(&d, &b, sizeof d);
  return d;
}

}  // namespace telemetry
