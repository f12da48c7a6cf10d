// One series' raw readings of one closed hour packed into one segment, as the
// raw_readings_seg table stores it (docs/design-storage-layout.md, "Raw
// segments"). Format 1, all integers LEB128 varints unless noted:
//
//   u8 version (1), varint n (readings, >= 1)
//   section TS      (varint byte length, then bytes) the timestamps
//   section KIND    runs of (kind, run length): 0 double, 1 string, 2 bool
//   section STATUS  runs of (zigzag status code, run length)
//   section DOUBLE  the double values in order: u8 float codec, then its bytes
//   section STRING  the string values: u8 mode, 0 dictionary / 1 plain
//   section BOOL    the boolean values, one bit each, MSB first
//   u32 CRC-32 (zlib's, little-endian) of every byte before it
//
// TS: u8 mode. Mode 0 (n = 1 or every gap equal): zigzag(t0 - hour), then
// the gap if n > 1. Mode 1: zigzag(t0 - hour), g = the gaps' greatest
// common divisor, first gap / g, then the n - 2 delta-of-deltas / g,
// zigzagged and packed (bits.h, PackUnsigned).
//
// Float codecs (one per segment, the encoder keeps the smallest that applies):
//   0 raw: 8 bytes little-endian each
//   1 gorilla: XOR with the previous value (Pelkonen et al., VLDB 2015)
//   2 polynomial: the values' bits as order-preserving unsigned keys (sign
//     folded), predicted from the previous 0-4 keys by a fixed polynomial
//     (FLAC's fixed predictors) in wrapping integer arithmetic: u8 order,
//     the first `order` keys as varints, the zigzagged residuals packed
//   3 decimal: u8 e, then the integers v * 10^e coded as polynomial is;
//     applies when every value is exactly (double)i / 10^e, e <= 12 (no -0.0)
//   4 split-zstd: the values' 8 bytes split into 8 streams (byte k of every
//     value), the streams zstd-compressed as one frame
// A decoder never trusts the input: any inconsistency is DATA_LOSS.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/model.h"

namespace telemetry::segment {

constexpr uint8_t kRawSegmentVersion = 1;
constexpr int64_t kNsPerHour = 3'600'000'000'000;

enum class FloatCodec : uint8_t {
  kRaw = 0,
  kGorilla = 1,
  kPolynomial = 2,
  kDecimal = 3,
  kSplitZstd = 4,
};
const char* FloatCodecName(FloatCodec c);

struct EncodeOptions {
  // Codecs tried for the double values; the smallest result is kept.
  // Split-zstd is left out: it never won by a useful margin on the measured
  // data (docs/benchmarks.md) and SQL cannot decode it (raw_seg_unpack).
  std::vector<FloatCodec> float_codecs = {FloatCodec::kGorilla, FloatCodec::kPolynomial,
                                          FloatCodec::kDecimal};
};

// Packs `rows` (one series, timestamps strictly increasing; their series_id
// is ignored). INVALID_ARGUMENT if empty or not strictly increasing. The
// timestamps are stored relative to `hour_ns`.
absl::StatusOr<std::string> EncodeRawSegment(int64_t hour_ns, absl::Span<const RawRow> rows,
                                             const EncodeOptions& options = {});

// Appends the readings of a segment to `out` with `series_id`; DATA_LOSS if
// `data` is not an intact format-1 segment.
absl::Status DecodeRawSegment(int32_t series_id, int64_t hour_ns, absl::string_view data,
                              std::vector<RawRow>* out);

// Only the timestamps (checks the CRC too).
absl::Status DecodeRawSegmentTimestamps(int64_t hour_ns, absl::string_view data,
                                        std::vector<int64_t>* out);

// The float codecs alone (for measurements): appends the codec byte and its
// payload; false when the codec does not apply to `v` (decimal).
bool EncodeDoubles(FloatCodec codec, absl::Span<const double> v, std::string* out);
absl::Status DecodeDoubles(absl::string_view in, size_t n, std::vector<double>* out);

}  // namespace telemetry::segment
