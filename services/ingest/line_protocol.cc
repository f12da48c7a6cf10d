#include "services/ingest/line_protocol.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/auth.h"

namespace telemetry::lineproto {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// Where a line ends: LF, or CR LF.
bool AtLineEnd(absl::string_view b, size_t p) {
  return p >= b.size() || b[p] == '\n' || (b[p] == '\r' && (p + 1 >= b.size() || b[p + 1] == '\n'));
}

// Reads a measurement, tag key, tag value or field key up to an unescaped
// byte of `stops` (or a line end) into `*out`. `\` before a byte of
// `escapable` or before `\` stands for that byte; any other `\` is literal.
void ReadName(absl::string_view b, size_t* pos, absl::string_view stops,
              absl::string_view escapable, std::string* out) {
  out->clear();
  size_t p = *pos;
  size_t run = p;  // start of the bytes not yet copied
  while (p < b.size()) {
    const char c = b[p];
    if (c == '\\' && p + 1 < b.size() &&
        (b[p + 1] == '\\' || escapable.find(b[p + 1]) != absl::string_view::npos)) {
      out->append(b.data() + run, p - run);
      out->push_back(b[p + 1]);
      p += 2;
      run = p;
      continue;
    }
    if (stops.find(c) != absl::string_view::npos || AtLineEnd(b, p)) break;
    ++p;
  }
  out->append(b.data() + run, p - run);
  *pos = p;
}

bool IsBoolean(absl::string_view t, bool* v) {
  if (t == "t" || t == "T" || t == "true" || t == "True" || t == "TRUE") {
    *v = true;
    return true;
  }
  if (t == "f" || t == "F" || t == "false" || t == "False" || t == "FALSE") {
    *v = false;
    return true;
  }
  return false;
}

// A field value other than a string: up to `,`, a space or the line end.
bool ParseScalar(absl::string_view t, FieldValue* v, std::string* error) {
  if (t.empty()) {
    *error = "missing field value";
    return false;
  }
  if (IsBoolean(t, &v->b)) {
    v->type = FieldType::kBoolean;
    return true;
  }
  const char last = t.back();
  if (last == 'i' || last == 'u') {
    absl::string_view digits = t.substr(0, t.size() - 1);
    const char* begin = digits.data();
    const char* end = digits.data() + digits.size();
    if (last == 'u' && !digits.empty() && digits[0] == '-') {
      *error = absl::StrCat("invalid unsigned value '", t, "': negative");
      return false;
    }
    std::from_chars_result r;
    if (last == 'i') {
      v->type = FieldType::kInteger;
      r = std::from_chars(begin, end, v->i);
    } else {
      v->type = FieldType::kUnsigned;
      r = std::from_chars(begin, end, v->u);
    }
    if (digits.empty() || r.ptr != end || r.ec != std::errc()) {
      *error = absl::StrCat("invalid ", last == 'i' ? "integer" : "unsigned", " value '", t, "'",
                            r.ec == std::errc::result_out_of_range ? ": out of range" : "");
      return false;
    }
    return true;
  }
  // A float: digits, one optional leading '-', '.', and an exponent. The
  // character check keeps out what from_chars would also take (inf, nan,
  // hexadecimal).
  for (char c : t) {
    if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E')) {
      *error = absl::StrCat("invalid field value '", t,
                            "' (a string needs double quotes; integers end in i, unsigned in u)");
      return false;
    }
  }
  v->type = FieldType::kFloat;
  auto r = std::from_chars(t.data(), t.data() + t.size(), v->f);
  if (r.ptr != t.data() + t.size() || r.ec != std::errc() || !std::isfinite(v->f)) {
    *error = absl::StrCat("invalid float value '", t, "'");
    return false;
  }
  return true;
}

}  // namespace

absl::string_view Parser::line_text() const {
  size_t end = line_start_;
  while (end < body_.size() && body_[end] != '\n' && end - line_start_ < 256) ++end;
  absl::string_view text = body_.substr(line_start_, end - line_start_);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return text;
}

void Parser::SkipRestOfLine() {
  while (pos_ < body_.size() && body_[pos_] != '\n') ++pos_;
  if (pos_ < body_.size()) {
    ++pos_;
    ++next_line_number_;
  }
}

Parser::Result Parser::Next(Point* point, std::string* error) {
  while (pos_ < body_.size()) {
    // Blank lines, leading whitespace and comments.
    line_start_ = pos_;
    line_number_ = next_line_number_;
    while (pos_ < body_.size() && IsSpace(body_[pos_])) ++pos_;
    if (AtLineEnd(body_, pos_) || body_[pos_] == '#') {
      SkipRestOfLine();
      continue;
    }
    line_start_ = pos_;
    if (ParseLine(point, error)) return Result::kPoint;
    SkipRestOfLine();
    return Result::kError;
  }
  return Result::kEnd;
}

bool Parser::ParseLine(Point* point, std::string* error) {
  absl::string_view b = body_;
  point->tags.clear();
  point->fields.clear();
  point->has_timestamp = false;
  point->timestamp = 0;

  ReadName(b, &pos_, ", ", ", ", &point->measurement);
  if (point->measurement.empty()) {
    *error = "missing measurement";
    return false;
  }
  while (pos_ < b.size() && b[pos_] == ',') {
    ++pos_;
    auto& tag = point->tags.emplace_back();
    ReadName(b, &pos_, ",= ", ",= ", &tag.first);
    if (tag.first.empty()) {
      *error = "missing tag key";
      return false;
    }
    if (pos_ >= b.size() || b[pos_] != '=') {
      *error = absl::StrCat("missing tag value of tag '", tag.first, "'");
      return false;
    }
    ++pos_;
    ReadName(b, &pos_, ",= ", ",= ", &tag.second);
    if (tag.second.empty()) {
      *error = absl::StrCat("missing tag value of tag '", tag.first, "'");
      return false;
    }
  }
  if (pos_ >= b.size() || !IsSpace(b[pos_])) {
    *error = AtLineEnd(b, pos_) ? "missing fields"
                                : absl::StrCat("unexpected '", std::string(1, b[pos_]),
                                               "' after the tags (escape it with \\)");
    return false;
  }
  while (pos_ < b.size() && IsSpace(b[pos_])) ++pos_;
  if (AtLineEnd(b, pos_)) {
    *error = "missing fields";
    return false;
  }

  // Fields.
  while (true) {
    std::string key;
    ReadName(b, &pos_, ",= ", ",= ", &key);
    if (key.empty()) {
      *error = "missing field key";
      return false;
    }
    if (pos_ >= b.size() || b[pos_] != '=') {
      *error = absl::StrCat("missing value of field '", key, "'");
      return false;
    }
    ++pos_;
    FieldValue value;
    if (pos_ < b.size() && b[pos_] == '"') {
      ++pos_;
      value.type = FieldType::kString;
      size_t run = pos_;
      bool closed = false;
      while (pos_ < b.size()) {
        const char c = b[pos_];
        if (c == '\\' && pos_ + 1 < b.size() && (b[pos_ + 1] == '"' || b[pos_ + 1] == '\\')) {
          value.s.append(b.data() + run, pos_ - run);
          value.s.push_back(b[pos_ + 1]);
          pos_ += 2;
          run = pos_;
          continue;
        }
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\n') ++next_line_number_;  // a newline inside a string
        ++pos_;
      }
      if (!closed) {
        *error = absl::StrCat("unterminated string value of field '", key, "'");
        return false;
      }
      value.s.append(b.data() + run, pos_ - run);
      ++pos_;  // the closing quote
      if (!(pos_ >= b.size() || b[pos_] == ',' || IsSpace(b[pos_]) || AtLineEnd(b, pos_))) {
        *error = absl::StrCat("unexpected text after the string value of field '", key, "'");
        return false;
      }
    } else {
      size_t start = pos_;
      while (pos_ < b.size() && b[pos_] != ',' && !IsSpace(b[pos_]) && !AtLineEnd(b, pos_)) ++pos_;
      if (!ParseScalar(b.substr(start, pos_ - start), &value, error)) {
        *error = absl::StrCat("field '", key, "': ", *error);
        return false;
      }
    }
    auto same = std::find_if(point->fields.begin(), point->fields.end(),
                             [&](const auto& f) { return f.first == key; });
    if (same != point->fields.end()) {
      same->second = std::move(value);
    } else {
      point->fields.emplace_back(std::move(key), std::move(value));
    }
    if (pos_ < b.size() && b[pos_] == ',') {
      ++pos_;
      continue;
    }
    break;
  }

  // Optional timestamp, then only whitespace to the line end.
  while (pos_ < b.size() && IsSpace(b[pos_])) ++pos_;
  if (!AtLineEnd(b, pos_)) {
    size_t start = pos_;
    while (pos_ < b.size() && !IsSpace(b[pos_]) && !AtLineEnd(b, pos_)) ++pos_;
    absl::string_view t = b.substr(start, pos_ - start);
    auto r = std::from_chars(t.data(), t.data() + t.size(), point->timestamp);
    if (r.ptr != t.data() + t.size() || r.ec != std::errc()) {
      *error = absl::StrCat("invalid timestamp '", t, "'",
                            r.ec == std::errc::result_out_of_range ? ": out of range" : "");
      return false;
    }
    point->has_timestamp = true;
    while (pos_ < b.size() && IsSpace(b[pos_])) ++pos_;
    if (!AtLineEnd(b, pos_)) {
      *error = "unexpected text after the timestamp";
      return false;
    }
  }
  // Past the line end.
  if (pos_ < b.size() && b[pos_] == '\r') ++pos_;
  if (pos_ < b.size() && b[pos_] == '\n') {
    ++pos_;
    ++next_line_number_;
  }
  return true;
}

absl::StatusOr<int64_t> PrecisionMultiplier(absl::string_view p) {
  if (p.empty() || p == "n" || p == "ns") return 1;
  if (p == "u" || p == "us" || p == "µ") return 1'000;
  if (p == "ms") return 1'000'000;
  if (p == "s") return 1'000'000'000;
  if (p == "m") return 60'000'000'000;
  if (p == "h") return 3'600'000'000'000;
  return absl::InvalidArgumentError(
      absl::StrCat("precision: '", p, "' is not one of ns, us, ms, s, m, h"));
}

namespace {

// A byte of a measurement, tag key or tag value that may appear in a
// device or sensor name unchanged (`:` and `/` are the separators).
bool IsPlainByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

bool IsPlain(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsPlainByte);
}

// `measurement/key:value/...` over the tags other than `skip`, sorted by key,
// or `h-<hash>` of the line-protocol series key when a part is not plain or
// the name would be longer than `max_len`.
std::string SeriesName(const std::string& measurement,
                       const std::vector<const std::pair<std::string, std::string>*>& sorted,
                       const std::string& skip, size_t max_len) {
  std::string name = measurement;
  bool plain = IsPlain(measurement);
  std::string key = measurement;  // what the hash covers: unambiguous
  for (const auto* tag : sorted) {
    if (!skip.empty() && tag->first == skip) continue;
    absl::StrAppend(&name, "/", tag->first, ":", tag->second);
    absl::StrAppend(&key, "\n", tag->first, "\n", tag->second);
    plain = plain && IsPlain(tag->first) && IsPlain(tag->second);
  }
  if (plain && name.size() <= max_len) return name;
  return "h-" + Sha256Hex(key).substr(0, 16);
}

}  // namespace

absl::Status AppendReadings(const Point& point, const MappingOptions& options,
                            google::protobuf::RepeatedPtrField<telemetry::v1::Reading>* out) {
  int64_t ts = options.now_ns;
  if (point.has_timestamp && __builtin_mul_overflow(point.timestamp, options.precision_ns, &ts)) {
    return absl::InvalidArgumentError(
        absl::StrCat("timestamp ", point.timestamp, " overflows in nanoseconds"));
  }
  std::vector<const std::pair<std::string, std::string>*> sorted;
  sorted.reserve(point.tags.size());
  for (const auto& tag : point.tags) sorted.push_back(&tag);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto* a, const auto* b) { return a->first < b->first; });

  std::string device, sensor_prefix;
  const std::pair<std::string, std::string>* device_tag = nullptr;
  if (!options.device_tag.empty()) {
    for (const auto* tag : sorted) {
      if (tag->first == options.device_tag) device_tag = tag;
    }
  }
  if (device_tag != nullptr) {
    const std::string& v = device_tag->second;
    device = v.size() <= 128 &&
                     std::all_of(v.begin(), v.end(),
                                 [](char c) { return IsPlainByte(c) || c == ':' || c == '/'; })
                 ? v
                 : "h-" + Sha256Hex(v).substr(0, 16);
    sensor_prefix = SeriesName(point.measurement, sorted, options.device_tag, 96) + ".";
  } else {
    device = SeriesName(point.measurement, sorted, "", 128);
  }
  const bool labels_fit =
      sorted.size() <= 16 && std::all_of(sorted.begin(), sorted.end(), [](const auto* t) {
        return !t->first.empty() && t->first.size() <= 64 && t->second.size() <= 256 &&
               std::all_of(t->first.begin(), t->first.end(),
                           [](char c) { return IsPlainByte(c) || c == ':' || c == '/'; });
      });

  for (const auto& [key, value] : point.fields) {
    telemetry::v1::Reading* r = out->Add();
    r->set_device_id(device);
    r->set_sensor(sensor_prefix.empty() ? key : sensor_prefix + key);
    r->set_timestamp_ns(ts);
    switch (value.type) {
      case FieldType::kFloat:
        r->set_double_value(value.f);
        break;
      case FieldType::kInteger:
        r->set_double_value(static_cast<double>(value.i));
        break;
      case FieldType::kUnsigned:
        r->set_double_value(static_cast<double>(value.u));
        break;
      case FieldType::kBoolean:
        r->set_bool_value(value.b);
        break;
      case FieldType::kString:
        r->set_string_value(value.s);
        break;
    }
    if (labels_fit) {
      auto* labels = r->mutable_labels();
      for (const auto* tag : sorted) (*labels)[tag->first] = tag->second;
    }
  }
  return absl::OkStatus();
}

}  // namespace telemetry::lineproto
