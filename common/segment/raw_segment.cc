#include "common/segment/raw_segment.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/float_bits.h"
#include "common/segment/bits.h"
#include "common/status_macros.h"

namespace telemetry::segment {

void PackUnsigned(const uint64_t* v, size_t n, BitWriter* w) {
  for (size_t i = 0; i < n; i += kPackBlock) {
    const size_t end = std::min(n, i + kPackBlock);
    uint64_t all = 0;
    for (size_t j = i; j < end; ++j) all |= v[j];
    const int width = BitWidth(all);
    w->Write(static_cast<uint64_t>(width), 7);
    for (size_t j = i; j < end; ++j) w->Write(v[j], width);
  }
}

bool UnpackUnsigned(BitReader* r, size_t n, uint64_t* out) {
  for (size_t i = 0; i < n; i += kPackBlock) {
    const size_t end = std::min(n, i + kPackBlock);
    uint64_t width;
    if (!r->Read(7, &width) || width > 64) return false;
    for (size_t j = i; j < end; ++j) {
      if (!r->Read(static_cast<int>(width), &out[j])) return false;
    }
  }
  return true;
}

const char* FloatCodecName(FloatCodec c) {
  switch (c) {
    case FloatCodec::kRaw:
      return "raw";
    case FloatCodec::kGorilla:
      return "gorilla";
    case FloatCodec::kPolynomial:
      return "polynomial";
    case FloatCodec::kDecimal:
      return "decimal";
    case FloatCodec::kSplitZstd:
      return "split-zstd";
  }
  return "unknown";
}

namespace {

// More readings than any series sends in an hour (4,660 a second); bounds
// what a decoder allocates before it has checked the values.
constexpr uint64_t kMaxSegmentReadings = uint64_t{1} << 24;
constexpr int kMaxDecimalExponent = 12;
constexpr int kZstdLevel = 3;

absl::Status Corrupt(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("raw segment: ", what));
}

void PutSection(std::string* out, const std::string& section) {
  PutVarint(out, section.size());
  out->append(section);
}

// ---- timestamps ----

void EncodeTimestamps(int64_t hour_ns, absl::Span<const RawRow> rows, std::string* out) {
  const size_t n = rows.size();
  const auto first = static_cast<uint64_t>(rows[0].ts_ns);
  const uint64_t offset = ZigZag(static_cast<int64_t>(first - static_cast<uint64_t>(hour_ns)));
  uint64_t g = 0;
  bool regular = true;
  for (size_t i = 1; i < n; ++i) {
    const uint64_t gap =
        static_cast<uint64_t>(rows[i].ts_ns) - static_cast<uint64_t>(rows[i - 1].ts_ns);
    if (i > 1 && gap != g) regular = false;
    g = std::gcd(g, gap);
  }
  if (regular) {
    out->push_back(0);
    PutVarint(out, offset);
    if (n > 1) PutVarint(out, g);
    return;
  }
  out->push_back(1);
  PutVarint(out, offset);
  PutVarint(out, g);
  std::vector<uint64_t> q(n - 1);
  for (size_t i = 1; i < n; ++i) {
    q[i - 1] =
        (static_cast<uint64_t>(rows[i].ts_ns) - static_cast<uint64_t>(rows[i - 1].ts_ns)) / g;
  }
  PutVarint(out, q[0]);
  std::vector<uint64_t> dod(n - 2);
  for (size_t i = 1; i < q.size(); ++i) dod[i - 1] = ZigZag(static_cast<int64_t>(q[i] - q[i - 1]));
  BitWriter w(out);
  PackUnsigned(dod.data(), dod.size(), &w);
  w.Finish();
}

absl::Status DecodeTimestamps(int64_t hour_ns, absl::string_view section, size_t n, int64_t* out) {
  ByteReader r(section);
  uint8_t mode;
  uint64_t offset;
  if (!r.Byte(&mode) || !r.Varint(&offset)) return Corrupt("timestamps truncated");
  uint64_t t = static_cast<uint64_t>(hour_ns) + static_cast<uint64_t>(UnZigZag(offset));
  out[0] = static_cast<int64_t>(t);
  if (mode == 0) {
    if (n > 1) {
      uint64_t gap;
      if (!r.Varint(&gap) || gap == 0) return Corrupt("bad timestamp gap");
      for (size_t i = 1; i < n; ++i) {
        t += gap;
        out[i] = static_cast<int64_t>(t);
      }
    }
    if (r.remaining() != 0) return Corrupt("trailing bytes after the timestamps");
  } else if (mode == 1) {
    uint64_t g, q;
    if (n < 3 || !r.Varint(&g) || g == 0 || !r.Varint(&q)) return Corrupt("bad timestamp header");
    absl::string_view rest;
    if (!r.Bytes(r.remaining(), &rest)) return Corrupt("timestamps truncated");
    BitReader br(rest);
    std::vector<uint64_t> dod(n - 2);
    if (!UnpackUnsigned(&br, dod.size(), dod.data())) return Corrupt("timestamps truncated");
    if (br.unread_bytes() != 0) return Corrupt("trailing bytes after the timestamps");
    t += q * g;
    out[1] = static_cast<int64_t>(t);
    for (size_t i = 2; i < n; ++i) {
      q += static_cast<uint64_t>(UnZigZag(dod[i - 2]));
      t += q * g;
      out[i] = static_cast<int64_t>(t);
    }
  } else {
    return Corrupt(absl::StrCat("unknown timestamp mode ", mode));
  }
  for (size_t i = 1; i < n; ++i) {
    if (out[i] <= out[i - 1]) return Corrupt("timestamps not increasing");
  }
  return absl::OkStatus();
}

// ---- runs (kinds, status codes) ----

template <typename F>
void EncodeRuns(size_t n, F value_at, std::string* out) {
  size_t i = 0;
  while (i < n) {
    const uint64_t v = value_at(i);
    size_t j = i + 1;
    while (j < n && value_at(j) == v) ++j;
    PutVarint(out, v);
    PutVarint(out, j - i);
    i = j;
  }
}

// Expands runs into `out` (n values); each value must be <= max_value.
absl::Status DecodeRuns(absl::string_view section, size_t n, uint64_t max_value,
                        std::vector<uint64_t>* out, absl::string_view what) {
  out->clear();
  out->reserve(n);
  ByteReader r(section);
  while (r.remaining() > 0) {
    uint64_t v, len;
    if (!r.Varint(&v) || !r.Varint(&len) || len == 0 || len > n - out->size() || v > max_value) {
      return Corrupt(absl::StrCat("bad ", what, " run"));
    }
    out->insert(out->end(), static_cast<size_t>(len), v);
  }
  if (out->size() != n) return Corrupt(absl::StrCat(what, " runs cover ", out->size(), " of ", n));
  return absl::OkStatus();
}

// ---- doubles ----

void EncodeGorilla(absl::Span<const double> v, std::string* out) {
  BitWriter w(out);
  w.Write(DoubleBits(v[0]), 64);
  int lead = -1, trail = 0;  // the current window; none yet
  for (size_t i = 1; i < v.size(); ++i) {
    const uint64_t x = DoubleBits(v[i]) ^ DoubleBits(v[i - 1]);
    if (x == 0) {
      w.Write(0, 1);
      continue;
    }
    const int l = std::min(__builtin_clzll(x), 31);
    const int t = __builtin_ctzll(x);
    if (lead >= 0 && l >= lead && t >= trail) {
      w.Write(2, 2);
      w.Write(x >> trail, 64 - lead - trail);
    } else {
      const int sig = 64 - l - t;
      w.Write(3, 2);
      w.Write(static_cast<uint64_t>(l), 5);
      w.Write(static_cast<uint64_t>(sig & 63), 6);  // 64 is written as 0
      w.Write(x >> t, sig);
      lead = l;
      trail = t;
    }
  }
  w.Finish();
}

bool DecodeGorilla(absl::string_view in, size_t n, double* out) {
  BitReader r(in);
  uint64_t b;
  if (!r.Read(64, &b)) return false;
  out[0] = DoubleFromBits(b);
  int lead = -1, trail = 0;
  for (size_t i = 1; i < n; ++i) {
    uint64_t x = 0, ctl;
    if (!r.Read(1, &ctl)) return false;
    if (ctl == 1) {
      if (!r.Read(1, &ctl)) return false;
      if (ctl == 0) {
        if (lead < 0 || !r.Read(64 - lead - trail, &x)) return false;
        x <<= trail;
      } else {
        uint64_t l, sig;
        if (!r.Read(5, &l) || !r.Read(6, &sig)) return false;
        if (sig == 0) sig = 64;
        if (l + sig > 64 || !r.Read(static_cast<int>(sig), &x)) return false;
        lead = static_cast<int>(l);
        trail = 64 - lead - static_cast<int>(sig);
        x <<= trail;
      }
    }
    out[i] = DoubleFromBits(x ^ DoubleBits(out[i - 1]));
  }
  return r.unread_bytes() == 0;
}

constexpr double kPow10[kMaxDecimalExponent + 1] = {1e0, 1e1, 1e2, 1e3,  1e4,  1e5, 1e6,
                                                    1e7, 1e8, 1e9, 1e10, 1e11, 1e12};

// The smallest e for which every value is (double)i / 10^e with an integer
// i, and those integers; false if there is none.
bool DecimalIntegers(absl::Span<const double> v, int* exponent, std::vector<int64_t>* ints) {
  ints->resize(v.size());
  for (int e = 0; e <= kMaxDecimalExponent; ++e) {
    const double p = kPow10[e];
    bool ok = true;
    for (size_t j = 0; j < v.size() && ok; ++j) {
      const double x = v[j];
      if (!std::isfinite(x) || (x == 0 && std::signbit(x))) return false;
      const double s = x * p;
      if (!(std::fabs(s) < 9007199254740992.0)) {
        ok = false;
        break;
      }
      const auto i = static_cast<int64_t>(std::llround(s));
      if (static_cast<double>(i) / p != x) ok = false;
      (*ints)[j] = i;
    }
    if (ok) {
      *exponent = e;
      return true;
    }
  }
  return false;
}

// Fixed polynomial prediction (as FLAC's fixed predictors): order k
// predicts x[i] from the k values before it (0: 0, 1: x1, 2: 2x1 - x2,
// 3: 3x1 - 3x2 + x3, 4: 4x1 - 6x2 + 4x3 - x4), in wrapping 64-bit integer arithmetic, so it is
// exact and reversible for any input. The residuals are zigzagged and packed.
constexpr int kMaxOrder = 4;

inline uint64_t Predict(const uint64_t* x, size_t i, int order) {
  switch (order) {
    case 1:
      return x[i - 1];
    case 2:
      return 2 * x[i - 1] - x[i - 2];
    case 3:
      return 3 * x[i - 1] - 3 * x[i - 2] + x[i - 3];
    case 4:
      return 4 * x[i - 1] - 6 * x[i - 2] + 4 * x[i - 3] - x[i - 4];
    default:
      return 0;
  }
}

// u8 order, the first `order` values as varints, the rest's residuals
// packed; the order with the fewest bytes is chosen.
void EncodePolynomial(const std::vector<uint64_t>& x, std::string* out) {
  const size_t n = x.size();
  int best_order = 0;
  size_t best_bits = SIZE_MAX;
  std::vector<uint64_t> r(n);
  for (int order = 0; order <= kMaxOrder && static_cast<size_t>(order) <= n; ++order) {
    size_t bits = 0;
    for (size_t i = 0; i < static_cast<size_t>(order); ++i) bits += 8 * (1 + BitWidth(x[i]) / 7);
    for (size_t i = order; i < n; i += kPackBlock) {
      const size_t end = std::min(n, i + kPackBlock);
      uint64_t all = 0;
      for (size_t j = i; j < end; ++j)
        all |= ZigZag(static_cast<int64_t>(x[j] - Predict(x.data(), j, order)));
      bits += 7 + static_cast<size_t>(BitWidth(all)) * (end - i);
    }
    if (bits < best_bits) {
      best_bits = bits;
      best_order = order;
    }
  }
  const auto head = static_cast<size_t>(best_order);
  out->push_back(static_cast<char>(best_order));
  for (size_t i = 0; i < head; ++i) PutVarint(out, x[i]);
  for (size_t i = head; i < n; ++i) {
    r[i] = ZigZag(static_cast<int64_t>(x[i] - Predict(x.data(), i, best_order)));
  }
  BitWriter w(out);
  PackUnsigned(r.data() + head, n - head, &w);
  w.Finish();
}

bool DecodePolynomial(ByteReader* r, size_t n, std::vector<uint64_t>* x) {
  uint8_t order;
  if (!r->Byte(&order) || order > kMaxOrder || order > n) return false;
  x->assign(n, 0);
  const size_t head = order;
  for (size_t i = 0; i < head; ++i) {
    if (!r->Varint(&(*x)[i])) return false;
  }
  absl::string_view rest;
  if (!r->Bytes(r->remaining(), &rest)) return false;
  BitReader br(rest);
  if (!UnpackUnsigned(&br, n - head, x->data() + head) || br.unread_bytes() != 0) return false;
  for (size_t i = head; i < n; ++i) {
    (*x)[i] = Predict(x->data(), i, order) + static_cast<uint64_t>(UnZigZag((*x)[i]));
  }
  return true;
}

// A double's bits as an unsigned key in the order of the values (negative
// values reversed below the positive ones), so that nearby values are
// nearby integers.
inline uint64_t OrderedKey(uint64_t b) {
  constexpr uint64_t kSign = uint64_t{1} << 63;
  return (b & kSign) ? ~b : (b | kSign);
}
inline uint64_t FromOrderedKey(uint64_t k) {
  constexpr uint64_t kSign = uint64_t{1} << 63;
  return (k & kSign) ? (k & ~kSign) : ~k;
}

bool EncodeDecimal(absl::Span<const double> v, std::string* out) {
  int e;
  std::vector<int64_t> ints;
  if (!DecimalIntegers(v, &e, &ints)) return false;
  out->push_back(static_cast<char>(e));
  EncodePolynomial(std::vector<uint64_t>(ints.begin(), ints.end()), out);
  return true;
}

bool DecodeDecimal(absl::string_view in, size_t n, double* out) {
  ByteReader r(in);
  uint8_t e;
  std::vector<uint64_t> x;
  if (!r.Byte(&e) || e > kMaxDecimalExponent || !DecodePolynomial(&r, n, &x)) return false;
  const double p = kPow10[e];
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<double>(static_cast<int64_t>(x[i])) / p;
  return true;
}

void EncodeBitsPolynomial(absl::Span<const double> v, std::string* out) {
  std::vector<uint64_t> keys(v.size());
  for (size_t i = 0; i < v.size(); ++i) keys[i] = OrderedKey(DoubleBits(v[i]));
  EncodePolynomial(keys, out);
}

bool DecodeBitsPolynomial(absl::string_view in, size_t n, double* out) {
  ByteReader r(in);
  std::vector<uint64_t> keys;
  if (!DecodePolynomial(&r, n, &keys)) return false;
  for (size_t i = 0; i < n; ++i) out[i] = DoubleFromBits(FromOrderedKey(keys[i]));
  return true;
}

bool EncodeSplitZstd(absl::Span<const double> v, std::string* out) {
  const size_t n = v.size();
  std::string streams(8 * n, '\0');
  for (size_t j = 0; j < n; ++j) {
    const uint64_t b = DoubleBits(v[j]);
    for (size_t k = 0; k < 8; ++k) streams[k * n + j] = static_cast<char>(b >> (8 * k));
  }
  const size_t old = out->size();
  const size_t bound = ZSTD_compressBound(streams.size());
  out->resize(old + bound);
  const size_t c =
      ZSTD_compress(out->data() + old, bound, streams.data(), streams.size(), kZstdLevel);
  if (ZSTD_isError(c)) {
    out->resize(old);
    return false;
  }
  out->resize(old + c);
  return true;
}

bool DecodeSplitZstd(absl::string_view in, size_t n, double* out) {
  const unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
  if (size != 8 * n) return false;
  std::string streams(8 * n, '\0');
  const size_t d = ZSTD_decompress(streams.data(), streams.size(), in.data(), in.size());
  if (ZSTD_isError(d) || d != streams.size()) return false;
  for (size_t j = 0; j < n; ++j) {
    uint64_t b = 0;
    for (size_t k = 0; k < 8; ++k)
      b |= static_cast<uint64_t>(static_cast<uint8_t>(streams[k * n + j])) << (8 * k);
    out[j] = DoubleFromBits(b);
  }
  return true;
}

// ---- strings ----

void EncodeStrings(const std::vector<const std::string*>& s, std::string* out) {
  absl::flat_hash_map<absl::string_view, uint64_t> ids;
  std::vector<const std::string*> dict;
  std::vector<uint64_t> idx(s.size());
  size_t plain = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    plain += s[i]->size() + 1 + s[i]->size() / 128;
    auto [it, added] = ids.try_emplace(*s[i], dict.size());
    if (added) dict.push_back(s[i]);
    idx[i] = it->second;
  }
  std::string d;
  d.push_back(0);
  PutVarint(&d, dict.size());
  for (const std::string* e : dict) {
    PutVarint(&d, e->size());
    d.append(*e);
  }
  if (d.size() < plain) {
    BitWriter w(&d);
    PackUnsigned(idx.data(), idx.size(), &w);
    w.Finish();
  }
  if (d.size() < plain) {
    out->append(d);
    return;
  }
  out->push_back(1);
  for (const std::string* e : s) {
    PutVarint(out, e->size());
    out->append(*e);
  }
}

absl::Status DecodeStrings(absl::string_view section, size_t n, std::vector<std::string>* out) {
  out->clear();
  if (n == 0) {
    if (!section.empty()) return Corrupt("strings without string readings");
    return absl::OkStatus();
  }
  ByteReader r(section);
  uint8_t mode;
  if (!r.Byte(&mode)) return Corrupt("strings truncated");
  auto read_one = [&r](absl::string_view* s) {
    uint64_t len;
    return r.Varint(&len) && len <= r.remaining() && r.Bytes(static_cast<size_t>(len), s);
  };
  out->reserve(n);
  if (mode == 0) {
    uint64_t k;
    if (!r.Varint(&k) || k == 0 || k > n) return Corrupt("bad string dictionary");
    std::vector<absl::string_view> dict(static_cast<size_t>(k));
    for (auto& e : dict) {
      if (!read_one(&e)) return Corrupt("string dictionary truncated");
    }
    absl::string_view rest;
    if (!r.Bytes(r.remaining(), &rest)) return Corrupt("strings truncated");
    BitReader br(rest);
    std::vector<uint64_t> idx(n);
    if (!UnpackUnsigned(&br, n, idx.data()) || br.unread_bytes() != 0) {
      return Corrupt("string indexes truncated");
    }
    for (uint64_t i : idx) {
      if (i >= k) return Corrupt("string index out of range");
      out->emplace_back(dict[static_cast<size_t>(i)]);
    }
  } else if (mode == 1) {
    for (size_t i = 0; i < n; ++i) {
      absl::string_view s;
      if (!read_one(&s)) return Corrupt("strings truncated");
      out->emplace_back(s);
    }
    if (r.remaining() != 0) return Corrupt("trailing bytes after the strings");
  } else {
    return Corrupt(absl::StrCat("unknown string mode ", mode));
  }
  return absl::OkStatus();
}

// ---- the whole segment ----

struct Sections {
  size_t n = 0;
  absl::string_view ts, kind, status, dbl, str, bools;
};

absl::Status Split(absl::string_view data, Sections* s) {
  if (data.size() < 5) return Corrupt(absl::StrCat("too short (", data.size(), " bytes)"));
  const absl::string_view body = data.substr(0, data.size() - 4);
  uint32_t stored = 0;
  for (int k = 0; k < 4; ++k) {
    stored |=
        static_cast<uint32_t>(static_cast<uint8_t>(data[body.size() + static_cast<size_t>(k)]))
        << (8 * k);
  }
  const auto crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  if (crc != stored) return Corrupt("checksum mismatch");
  ByteReader r(body);
  uint8_t version;
  uint64_t n;
  if (!r.Byte(&version)) return Corrupt("empty");
  if (version != kRawSegmentVersion) return Corrupt(absl::StrCat("unknown version ", version));
  if (!r.Varint(&n) || n == 0 || n > kMaxSegmentReadings) return Corrupt("bad reading count");
  s->n = static_cast<size_t>(n);
  for (absl::string_view* sec : {&s->ts, &s->kind, &s->status, &s->dbl, &s->str, &s->bools}) {
    if (!r.Section(sec)) return Corrupt("section truncated");
  }
  if (r.remaining() != 0) return Corrupt("trailing bytes");
  return absl::OkStatus();
}

}  // namespace

bool EncodeDoubles(FloatCodec codec, absl::Span<const double> v, std::string* out) {
  const size_t old = out->size();
  out->push_back(static_cast<char>(codec));
  bool ok = true;
  switch (codec) {
    case FloatCodec::kRaw:
      for (double d : v) {
        const uint64_t b = DoubleBits(d);
        for (int k = 0; k < 8; ++k) out->push_back(static_cast<char>(b >> (8 * k)));
      }
      break;
    case FloatCodec::kGorilla:
      EncodeGorilla(v, out);
      break;
    case FloatCodec::kPolynomial:
      EncodeBitsPolynomial(v, out);
      break;
    case FloatCodec::kDecimal:
      ok = EncodeDecimal(v, out);
      break;
    case FloatCodec::kSplitZstd:
      ok = EncodeSplitZstd(v, out);
      break;
  }
  if (!ok) out->resize(old);
  return ok;
}

absl::Status DecodeDoubles(absl::string_view in, size_t n, std::vector<double>* out) {
  out->assign(n, 0.0);
  if (n == 0) {
    if (!in.empty()) return Corrupt("doubles without double readings");
    return absl::OkStatus();
  }
  if (in.empty()) return Corrupt("doubles missing");
  const auto codec = static_cast<uint8_t>(in[0]);
  const absl::string_view body = in.substr(1);
  bool ok = false;
  switch (codec) {
    case static_cast<uint8_t>(FloatCodec::kRaw):
      ok = body.size() == 8 * n;
      for (size_t j = 0; ok && j < n; ++j) {
        uint64_t b = 0;
        for (size_t k = 0; k < 8; ++k)
          b |= static_cast<uint64_t>(static_cast<uint8_t>(body[8 * j + k])) << (8 * k);
        (*out)[j] = DoubleFromBits(b);
      }
      break;
    case static_cast<uint8_t>(FloatCodec::kGorilla):
      ok = DecodeGorilla(body, n, out->data());
      break;
    case static_cast<uint8_t>(FloatCodec::kPolynomial):
      ok = DecodeBitsPolynomial(body, n, out->data());
      break;
    case static_cast<uint8_t>(FloatCodec::kDecimal):
      ok = DecodeDecimal(body, n, out->data());
      break;
    case static_cast<uint8_t>(FloatCodec::kSplitZstd):
      ok = DecodeSplitZstd(body, n, out->data());
      break;
    default:
      return Corrupt(absl::StrCat("unknown float codec ", codec));
  }
  if (!ok)
    return Corrupt(absl::StrCat("bad ", FloatCodecName(static_cast<FloatCodec>(codec)), " values"));
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeRawSegment(int64_t hour_ns, absl::Span<const RawRow> rows,
                                             const EncodeOptions& options) {
  const size_t n = rows.size();
  if (n == 0) return absl::InvalidArgumentError("raw segment: no readings");
  if (n > kMaxSegmentReadings) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw segment: ", n, " readings, at most ", kMaxSegmentReadings));
  }
  std::vector<double> doubles;
  std::vector<const std::string*> strings;
  std::string bools;
  BitWriter bool_bits(&bools);
  for (size_t i = 0; i < n; ++i) {
    const RawRow& r = rows[i];
    if (i > 0 && r.ts_ns <= rows[i - 1].ts_ns) {
      return absl::InvalidArgumentError(
          absl::StrCat("raw segment: timestamps not strictly increasing at reading ", i, " (",
                       r.ts_ns, " after ", rows[i - 1].ts_ns, ")"));
    }
    switch (r.kind) {
      case ValueKind::kDouble:
        doubles.push_back(r.d);
        break;
      case ValueKind::kString:
        strings.push_back(&r.s);
        break;
      case ValueKind::kBool:
        bool_bits.Write(r.b ? 1 : 0, 1);
        break;
    }
  }
  bool_bits.Finish();

  std::string out, sec;
  out.push_back(static_cast<char>(kRawSegmentVersion));
  PutVarint(&out, n);
  EncodeTimestamps(hour_ns, rows, &sec);
  PutSection(&out, sec);
  sec.clear();
  EncodeRuns(
      n, [&](size_t i) { return static_cast<uint64_t>(rows[i].kind); }, &sec);
  PutSection(&out, sec);
  sec.clear();
  EncodeRuns(
      n, [&](size_t i) { return ZigZag(rows[i].status); }, &sec);
  PutSection(&out, sec);
  sec.clear();
  if (!doubles.empty()) {
    for (FloatCodec c : options.float_codecs) {
      std::string candidate;
      if (EncodeDoubles(c, doubles, &candidate) && (sec.empty() || candidate.size() < sec.size())) {
        sec = std::move(candidate);
      }
    }
    if (sec.empty()) EncodeDoubles(FloatCodec::kRaw, doubles, &sec);
  }
  PutSection(&out, sec);
  sec.clear();
  if (!strings.empty()) EncodeStrings(strings, &sec);
  PutSection(&out, sec);
  PutSection(&out, bools);
  const auto crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(out.size())));
  for (int k = 0; k < 4; ++k) out.push_back(static_cast<char>(crc >> (8 * k)));
  return out;
}

absl::Status DecodeRawSegmentTimestamps(int64_t hour_ns, absl::string_view data,
                                        std::vector<int64_t>* out) {
  Sections s;
  RETURN_IF_ERROR(Split(data, &s));
  const size_t old = out->size();
  out->resize(old + s.n);
  absl::Status st = DecodeTimestamps(hour_ns, s.ts, s.n, out->data() + old);
  if (!st.ok()) out->resize(old);
  return st;
}

absl::Status DecodeRawSegment(int32_t series_id, int64_t hour_ns, absl::string_view data,
                              std::vector<RawRow>* out) {
  Sections s;
  RETURN_IF_ERROR(Split(data, &s));
  std::vector<int64_t> ts(s.n);
  RETURN_IF_ERROR(DecodeTimestamps(hour_ns, s.ts, s.n, ts.data()));
  std::vector<uint64_t> kinds, status;
  RETURN_IF_ERROR(DecodeRuns(s.kind, s.n, 2, &kinds, "kind"));
  RETURN_IF_ERROR(DecodeRuns(s.status, s.n, ZigZag(INT32_MIN), &status, "status"));
  size_t nd = 0, ns = 0, nb = 0;
  for (uint64_t k : kinds) {
    nd += k == 0;
    ns += k == 1;
    nb += k == 2;
  }
  std::vector<double> doubles;
  RETURN_IF_ERROR(DecodeDoubles(s.dbl, nd, &doubles));
  std::vector<std::string> strings;
  RETURN_IF_ERROR(DecodeStrings(s.str, ns, &strings));
  if (s.bools.size() != (nb + 7) / 8) return Corrupt("booleans truncated");
  BitReader bools(s.bools);
  size_t id = 0, is = 0;
  out->reserve(out->size() + s.n);
  for (size_t i = 0; i < s.n; ++i) {
    RawRow& r = out->emplace_back();
    r.series_id = series_id;
    r.ts_ns = ts[i];
    r.status = static_cast<int32_t>(UnZigZag(status[i]));
    r.kind = static_cast<ValueKind>(kinds[i]);
    switch (r.kind) {
      case ValueKind::kDouble:
        r.d = doubles[id++];
        break;
      case ValueKind::kString:
        r.s = std::move(strings[is++]);
        break;
      case ValueKind::kBool: {
        uint64_t b = 0;
        bools.Read(1, &b);
        r.b = b != 0;
        break;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace telemetry::segment
