// Byte and bit primitives of the segment formats: LEB128 varints, zigzag,
// an MSB-first bit writer/reader, and frame-of-reference bit packing of
// unsigned integers in blocks. Readers never read past their input: every
// read reports running out instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace telemetry::segment {

inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// Bits needed for `v` (0 for 0).
inline int BitWidth(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }

inline void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Reads bytes from a view, front to back.
class ByteReader {
 public:
  explicit ByteReader(absl::string_view in) : in_(in) {}

  bool Varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) return false;
      auto b = static_cast<uint8_t>(in_[pos_++]);
      r |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *v = r;
        return true;
      }
    }
    return false;  // more than 10 bytes
  }
  bool Byte(uint8_t* b) {
    if (pos_ >= in_.size()) return false;
    *b = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  // The next `n` bytes.
  bool Bytes(size_t n, absl::string_view* out) {
    if (n > in_.size() - pos_) return false;
    *out = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // A varint length followed by that many bytes.
  bool Section(absl::string_view* out) {
    uint64_t n;
    return Varint(&n) && n <= in_.size() - pos_ && Bytes(static_cast<size_t>(n), out);
  }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  absl::string_view in_;
  size_t pos_ = 0;
};

inline uint64_t LowBits(int bits) { return bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1; }

// Appends bits most significant first; Finish pads the last byte with zeros.
class BitWriter {
 public:
  explicit BitWriter(std::string* out) : out_(out) {}

  // The low `bits` (0-64) bits of `v`.
  void Write(uint64_t v, int bits) {
    if (bits > 32) {
      Write(v >> 32, bits - 32);
      bits = 32;
    }
    acc_ = (acc_ << bits) | (v & LowBits(bits));
    n_ += bits;
    while (n_ >= 8) {
      n_ -= 8;
      out_->push_back(static_cast<char>(acc_ >> n_));
    }
    acc_ &= LowBits(n_);
  }
  void Finish() {
    if (n_ > 0) out_->push_back(static_cast<char>(acc_ << (8 - n_)));
    acc_ = 0;
    n_ = 0;
  }

 private:
  std::string* out_;
  uint64_t acc_ = 0;
  int n_ = 0;  // pending bits in the low end of acc_ (< 8 between calls)
};

class BitReader {
 public:
  explicit BitReader(absl::string_view in) : in_(in) {}

  // Reads `bits` (0-64) bits into the low end of `*v`.
  bool Read(int bits, uint64_t* v) {
    if (bits > 32) {
      uint64_t hi;
      if (!Read(bits - 32, &hi)) return false;
      uint64_t lo;
      if (!Read(32, &lo)) return false;
      *v = (hi << 32) | lo;
      return true;
    }
    while (n_ < bits) {
      if (pos_ >= in_.size()) return false;
      acc_ = (acc_ << 8) | static_cast<uint8_t>(in_[pos_++]);
      n_ += 8;
    }
    n_ -= bits;
    *v = (acc_ >> n_) & LowBits(bits);
    acc_ &= LowBits(n_);
    return true;
  }
  // Whole bytes not yet touched.
  size_t unread_bytes() const { return in_.size() - pos_; }

 private:
  absl::string_view in_;
  size_t pos_ = 0;
  uint64_t acc_ = 0;
  int n_ = 0;
};

// Frame-of-reference packing: values in blocks of kPackBlock, each block a
// 7-bit width w (the widest value's bit count) then its values in w bits.
// The count is not stored (the caller knows it).
constexpr size_t kPackBlock = 64;
void PackUnsigned(const uint64_t* v, size_t n, BitWriter* w);
bool UnpackUnsigned(BitReader* r, size_t n, uint64_t* out);

}  // namespace telemetry::segment
