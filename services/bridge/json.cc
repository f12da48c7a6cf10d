#include "services/bridge/json.h"

#include <charconv>
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace telemetry::bridge {

namespace {

using google::protobuf::Value;

constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(std::string_view text) : t_(text) {}

  absl::StatusOr<Value> Parse() {
    Value v;
    if (!ParseValue(&v, 0)) return Fail();
    SkipSpace();
    if (p_ != t_.size()) {
      error_ = "text after the JSON value";
      return Fail();
    }
    return v;
  }

 private:
  absl::Status Fail() const {
    return absl::InvalidArgumentError(absl::StrCat(error_, " at byte ", p_));
  }
  bool Error(const char* why) {
    error_ = why;
    return false;
  }
  void SkipSpace() {
    while (p_ < t_.size() &&
           (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) {
      ++p_;
    }
  }
  bool Literal(std::string_view word) {
    if (t_.substr(p_, word.size()) != word) return Error("unexpected token");
    p_ += word.size();
    return true;
  }

  bool ParseValue(Value* v, int depth) {
    SkipSpace();
    if (p_ >= t_.size()) return Error("unexpected end of input");
    switch (t_[p_]) {
      case '{':
        return ParseObject(v, depth + 1);
      case '[':
        return ParseArray(v, depth + 1);
      case '"':
        return ParseString(v->mutable_string_value());
      case 't':
        if (!Literal("true")) return false;
        v->set_bool_value(true);
        return true;
      case 'f':
        if (!Literal("false")) return false;
        v->set_bool_value(false);
        return true;
      case 'n':
        if (!Literal("null")) return false;
        v->set_null_value(google::protobuf::NULL_VALUE);
        return true;
      default:
        return ParseNumber(v);
    }
  }

  bool ParseObject(Value* v, int depth) {
    if (depth > kMaxDepth) return Error("nested deeper than 64");
    ++p_;  // {
    auto* fields = v->mutable_struct_value()->mutable_fields();
    SkipSpace();
    if (p_ < t_.size() && t_[p_] == '}') {
      ++p_;
      return true;
    }
    std::string key;
    while (true) {
      SkipSpace();
      if (p_ >= t_.size()) return Error("unexpected end of input");
      if (t_[p_] != '"') return Error("expected a string key");
      key.clear();
      if (!ParseString(&key)) return false;
      SkipSpace();
      if (p_ >= t_.size() || t_[p_] != ':') return Error("expected ':' after a key");
      ++p_;
      auto [it, inserted] = fields->insert({key, Value()});
      if (!inserted) {
        error_ = absl::StrCat("repeated key '", key, "'");
        return false;
      }
      if (!ParseValue(&it->second, depth)) return false;
      SkipSpace();
      if (p_ >= t_.size()) return Error("unexpected end of input");
      if (t_[p_] == ',') {
        ++p_;
        continue;
      }
      if (t_[p_] == '}') {
        ++p_;
        return true;
      }
      return Error("expected ',' or '}'");
    }
  }

  bool ParseArray(Value* v, int depth) {
    if (depth > kMaxDepth) return Error("nested deeper than 64");
    ++p_;  // [
    auto* list = v->mutable_list_value();
    SkipSpace();
    if (p_ < t_.size() && t_[p_] == ']') {
      ++p_;
      return true;
    }
    while (true) {
      if (!ParseValue(list->add_values(), depth)) return false;
      SkipSpace();
      if (p_ >= t_.size()) return Error("unexpected end of input");
      if (t_[p_] == ',') {
        ++p_;
        continue;
      }
      if (t_[p_] == ']') {
        ++p_;
        return true;
      }
      return Error("expected ',' or ']'");
    }
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool Hex4(uint32_t* out) {
    if (p_ + 4 > t_.size()) return Error("unexpected end of input in a \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = t_[p_ + static_cast<size_t>(i)];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return Error("bad \\u escape");
      }
    }
    p_ += 4;
    *out = v;
    return true;
  }

  // One UTF-8 sequence starting at p_ (a lead byte >= 0x80), copied.
  bool Utf8(std::string* out) {
    const auto b = [&](size_t i) { return static_cast<unsigned char>(t_[p_ + i]); };
    const unsigned char c = b(0);
    size_t n = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      cp = c & 0x07;
    } else {
      return Error("a string is not UTF-8");
    }
    if (p_ + n > t_.size()) return Error("a string is not UTF-8");
    for (size_t i = 1; i < n; ++i) {
      if ((b(i) & 0xC0) != 0x80) return Error("a string is not UTF-8");
      cp = (cp << 6) | (b(i) & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return Error("a string is not UTF-8");
    }
    out->append(t_.data() + p_, n);
    p_ += n;
    return true;
  }

  bool ParseString(std::string* out) {
    ++p_;  // opening quote
    while (true) {
      const size_t run = p_;
      while (p_ < t_.size()) {
        const unsigned char c = static_cast<unsigned char>(t_[p_]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++p_;
      }
      out->append(t_.data() + run, p_ - run);
      if (p_ >= t_.size()) return Error("unterminated string");
      const unsigned char c = static_cast<unsigned char>(t_[p_]);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return Error("a control character in a string");
      if (c >= 0x80) {
        if (!Utf8(out)) return false;
        continue;
      }
      // An escape.
      if (++p_ >= t_.size()) return Error("unterminated string");
      const char e = t_[p_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low = 0;
            if (t_.substr(p_, 2) != "\\u") return Error("a lone surrogate in a \\u escape");
            p_ += 2;
            if (!Hex4(&low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return Error("a lone surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Error("a lone surrogate in a \\u escape");
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          --p_;
          return Error("bad escape in a string");
      }
    }
  }

  bool ParseNumber(Value* v) {
    const size_t start = p_;
    auto digits = [&] {
      const size_t from = p_;
      while (p_ < t_.size() && t_[p_] >= '0' && t_[p_] <= '9') ++p_;
      return p_ > from;
    };
    if (p_ < t_.size() && t_[p_] == '-') ++p_;
    if (p_ < t_.size() && t_[p_] == '0') {
      ++p_;
    } else if (!digits()) {
      p_ = start;
      return Error("unexpected token");
    }
    if (p_ < t_.size() && t_[p_] == '.') {
      ++p_;
      if (!digits()) return Error("a number needs digits after '.'");
    }
    if (p_ < t_.size() && (t_[p_] == 'e' || t_[p_] == 'E')) {
      ++p_;
      if (p_ < t_.size() && (t_[p_] == '+' || t_[p_] == '-')) ++p_;
      if (!digits()) return Error("a number needs digits in its exponent");
    }
    double d = 0;
    auto r = std::from_chars(t_.data() + start, t_.data() + p_, d);
    if (r.ec != std::errc() || !std::isfinite(d)) {
      p_ = start;
      return Error("a number out of a double's range");
    }
    v->set_number_value(d);
    return true;
  }

  std::string_view t_;
  size_t p_ = 0;
  std::string error_;
};

}  // namespace

absl::StatusOr<Value> ParseJsonValue(std::string_view text) { return Parser(text).Parse(); }

}  // namespace telemetry::bridge
