#include "tools/admin/verify.h"

#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "tools/admin/import.h"

namespace telemetry::admin {

// ---------------------------------------------------------------- tables

void SideTable::Add(const SeriesKey& series, int64_t ts_ns, bool numeric, double value) {
  const int64_t hour = ts_ns - (((ts_ns % kNsPerHour) + kNsPerHour) % kNsPerHour);
  HourFigures& h = series_[series][hour];
  if (h.count == 0 || ts_ns < h.first_ns) h.first_ns = ts_ns;
  if (h.count == 0 || ts_ns > h.last_ns) h.last_ns = ts_ns;
  ++h.count;
  if (numeric) {
    if (h.numeric == 0) {
      h.min = h.max = value;
    } else {
      h.min = std::min(h.min, value);
      h.max = std::max(h.max, value);
    }
    h.sum += value;
    ++h.numeric;
  }
  ++readings_;
  min_ns_ = std::min(min_ns_, ts_ns);
  max_ns_ = std::max(max_ns_, ts_ns);
}

void SourceCollector::Add(const v1::Reading& r) {
  SeriesKey key{r.device_id(), r.sensor(), r.unit()};
  auto [it, inserted] = ids_.emplace(std::move(key), static_cast<uint32_t>(keys_.size()));
  if (inserted) keys_.push_back(&it->first);
  Entry e{};
  e.ts_ns = r.timestamp_ns();
  e.series = it->second;
  e.order = static_cast<uint32_t>(entries_.size());
  e.numeric = r.value_case() == v1::Reading::kDoubleValue;
  e.value = e.numeric ? r.double_value() : 0;
  entries_.push_back(e);
}

SideTable SourceCollector::Finish() {
  // By (series, timestamp, order): of a series' readings at one timestamp
  // the last one written stays, as in InfluxDB.
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.series, a.ts_ns, a.order) < std::tie(b.series, b.ts_ns, b.order);
  });
  SideTable table;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    if (i + 1 < entries_.size() && entries_[i + 1].series == e.series &&
        entries_[i + 1].ts_ns == e.ts_ns) {
      ++duplicates;
      continue;
    }
    table.Add(*keys_[e.series], e.ts_ns, e.numeric, e.value);
  }
  entries_.clear();
  entries_.shrink_to_fit();
  return table;
}

// ---------------------------------------------------------------- sources

namespace {

void AddPoint(const lineproto::Point& point, const lineproto::MappingOptions& mapping,
              const Window& window, SourceCollector* out, bool* malformed) {
  google::protobuf::RepeatedPtrField<v1::Reading> readings;
  *malformed = !lineproto::AppendReadings(point, mapping, &readings).ok();
  for (const v1::Reading& r : readings) {
    if (window.contains(r.timestamp_ns())) out->Add(r);
  }
}

}  // namespace

void CollectLineProtocol(absl::string_view body, const lineproto::MappingOptions& mapping,
                         const Window& window, SourceCollector* out) {
  const DataStart start = FindDataStart(body);
  lineproto::Parser parser(body.substr(start.offset));
  lineproto::Point point;
  std::string error;
  while (true) {
    const auto r = parser.Next(&point, &error);
    if (r == lineproto::Parser::Result::kEnd) break;
    if (r == lineproto::Parser::Result::kError) {
      ++out->malformed_lines;
      continue;
    }
    if (!point.has_timestamp) {
      ++out->points_without_timestamp;
      continue;
    }
    bool malformed = false;
    AddPoint(point, mapping, window, out, &malformed);
    if (malformed) ++out->malformed_lines;
  }
}

namespace {

// Just enough JSON for InfluxDB's answers; numbers keep their text, so a
// nanosecond timestamp (> 2^53) is read exactly.
struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject } type = Type::kNull;
  bool b = false;
  std::string text;  // number or string
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;
  const Json* Get(absl::string_view key) const {
    for (const auto& [k, v] : members) {
      if (k == key) return &v;
    }
    return nullptr;
  }
};

class JsonParser {
 public:
  explicit JsonParser(absl::string_view s) : s_(s) {}
  absl::StatusOr<Json> Parse() {
    Json v;
    RETURN_IF_ERROR(Value(&v, 0));
    Skip();
    if (pos_ != s_.size()) return Error("trailing data");
    return v;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("InfluxDB answer: ", what, " at byte ", pos_));
  }
  void Skip() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool Literal(absl::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  absl::Status String(std::string* out) {
    ++pos_;  // the opening quote
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) break;
      c = s_[pos_++];
      switch (c) {
        case 'n':
          out->push_back('\n');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (pos_ + 4 > s_.size()) return Error("short \\u escape");
          for (int i = 0; i < 4; ++i) {
            const char h = s_[pos_++];
            cp = cp * 16 + static_cast<uint32_t>(h >= 'a'   ? h - 'a' + 10
                                                 : h >= 'A' ? h - 'A' + 10
                                                            : h - '0');
          }
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(pos_, 2) == "\\u" && pos_ + 6 <= s_.size()) {
            uint32_t lo = 0;
            for (size_t i = pos_ + 2; i < pos_ + 6; ++i) {
              const char h = s_[i];
              lo = lo * 16 + static_cast<uint32_t>(h >= 'a'   ? h - 'a' + 10
                                                   : h >= 'A' ? h - 'A' + 10
                                                              : h - '0');
            }
            pos_ += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          // UTF-8.
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
          break;
        }
        default:
          out->push_back(c);  // \" \\ \/
      }
    }
    if (pos_ >= s_.size()) return Error("unterminated string");
    ++pos_;
    return absl::OkStatus();
  }
  absl::Status Value(Json* v, int depth) {
    if (depth > 64) return Error("nested too deep");
    Skip();
    if (pos_ >= s_.size()) return Error("unexpected end");
    const char c = s_[pos_];
    if (c == '{') {
      v->type = Json::Type::kObject;
      ++pos_;
      Skip();
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return absl::OkStatus();
      }
      while (true) {
        Skip();
        if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected a key");
        std::string key;
        RETURN_IF_ERROR(String(&key));
        Skip();
        if (pos_ >= s_.size() || s_[pos_] != ':') return Error("expected ':'");
        ++pos_;
        Json member;
        RETURN_IF_ERROR(Value(&member, depth + 1));
        v->members.emplace_back(std::move(key), std::move(member));
        Skip();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == '}') {
          ++pos_;
          return absl::OkStatus();
        }
        return Error("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v->type = Json::Type::kArray;
      ++pos_;
      Skip();
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return absl::OkStatus();
      }
      while (true) {
        Json item;
        RETURN_IF_ERROR(Value(&item, depth + 1));
        v->items.push_back(std::move(item));
        Skip();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == ']') {
          ++pos_;
          return absl::OkStatus();
        }
        return Error("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v->type = Json::Type::kString;
      return String(&v->text);
    }
    if (Literal("true")) {
      v->type = Json::Type::kBool;
      v->b = true;
      return absl::OkStatus();
    }
    if (Literal("false")) {
      v->type = Json::Type::kBool;
      return absl::OkStatus();
    }
    if (Literal("null")) return absl::OkStatus();
    const size_t begin = pos_;
    while (pos_ < s_.size() &&
           (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '-' ||
            s_[pos_] == '+' || s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
    }
    if (pos_ == begin) return Error("unexpected character");
    v->type = Json::Type::kNumber;
    v->text = std::string(s_.substr(begin, pos_ - begin));
    return absl::OkStatus();
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

std::string QuoteIdent(absl::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

struct InfluxTarget {
  std::string host;
  int port = 8086;
  std::string user, password, db, rp;
};

absl::StatusOr<InfluxTarget> ParseInfluxUrl(const std::string& url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("influx source ", url, ": expected http://[user:password@]host:port/DB[/RP]"));
  }
  InfluxTarget t;
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("influx source ", url, ": no database"));
  }
  absl::string_view authority = rest.substr(0, slash);
  std::vector<std::string> path = absl::StrSplit(rest.substr(slash + 1), '/', absl::SkipEmpty());
  if (path.empty() || path.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("influx source ", url, ": path must be /DB[/RP]"));
  }
  t.db = path[0];
  if (path.size() == 2) t.rp = path[1];
  if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    std::pair<std::string, std::string> up =
        absl::StrSplit(authority.substr(0, at), absl::MaxSplits(':', 1));
    t.user = up.first;
    t.password = up.second;
    authority = authority.substr(at + 1);
  }
  const size_t colon = authority.rfind(':');
  t.host = std::string(authority.substr(0, colon));
  if (colon != absl::string_view::npos && !absl::SimpleAtoi(authority.substr(colon + 1), &t.port)) {
    return absl::InvalidArgumentError(absl::StrCat("influx source ", url, ": bad port"));
  }
  return t;
}

// Runs one InfluxQL query; `on_series` gets each series object of each
// (chunked) answer.
absl::Status InfluxQuery(const InfluxTarget& t, const std::string& q,
                         const std::function<absl::Status(const Json&)>& on_series) {
  httplib::Client client(t.host, t.port);
  client.set_connection_timeout(10);
  client.set_read_timeout(300);
  if (!t.user.empty()) client.set_basic_auth(t.user, t.password);
  httplib::Params params{
      {"db", t.db}, {"q", q}, {"epoch", "ns"}, {"chunked", "true"}, {"chunk_size", "10000"}};
  std::string pending;
  absl::Status failed;
  auto handle_line = [&](absl::string_view line) -> absl::Status {
    if (line.find_first_not_of(" \r\n\t") == absl::string_view::npos) return absl::OkStatus();
    auto doc = JsonParser(line).Parse();
    if (!doc.ok()) return doc.status();
    if (const Json* err = doc->Get("error")) {
      return absl::FailedPreconditionError(absl::StrCat("InfluxDB: ", err->text));
    }
    const Json* results = doc->Get("results");
    if (results == nullptr) return absl::OkStatus();
    for (const Json& result : results->items) {
      if (const Json* err = result.Get("error")) {
        return absl::FailedPreconditionError(absl::StrCat("InfluxDB: ", err->text, " (", q, ")"));
      }
      if (const Json* series = result.Get("series")) {
        for (const Json& s : series->items) RETURN_IF_ERROR(on_series(s));
      }
    }
    return absl::OkStatus();
  };
  int status = 0;
  auto res = client.Get(
      "/query", params, httplib::Headers{},
      [&](const httplib::Response& response) {
        status = response.status;
        return true;
      },
      [&](const char* data, size_t n) {
        pending.append(data, n);
        if (status != 200) return true;  // the error body, read below
        size_t nl;
        while ((nl = pending.find('\n')) != std::string::npos) {
          failed = handle_line(absl::string_view(pending).substr(0, nl));
          pending.erase(0, nl + 1);
          if (!failed.ok()) return false;
        }
        return true;
      });
  if (!failed.ok()) return failed;
  if (!res) {
    return absl::UnavailableError(
        absl::StrCat("InfluxDB at ", t.host, ":", t.port, ": ", httplib::to_string(res.error())));
  }
  if (status != 200) {
    return absl::FailedPreconditionError(
        absl::StrCat("InfluxDB answered ", status, " to ", q, ": ", pending));
  }
  return handle_line(pending);
}

}  // namespace

absl::Status CollectInflux(const std::string& url, const lineproto::MappingOptions& mapping,
                           const Window& window, SourceCollector* out) {
  auto target = ParseInfluxUrl(url);
  if (!target.ok()) return target.status();
  std::vector<std::string> measurements;
  RETURN_IF_ERROR(InfluxQuery(*target, "SHOW MEASUREMENTS", [&](const Json& s) {
    if (const Json* values = s.Get("values")) {
      for (const Json& row : values->items) {
        if (!row.items.empty()) measurements.push_back(row.items[0].text);
      }
    }
    return absl::OkStatus();
  }));
  // Timestamps come back in ns; the mapping multiplies by its precision.
  lineproto::MappingOptions ns_mapping = mapping;
  ns_mapping.precision_ns = 1;
  const std::string where =
      window.all() ? ""
                   : absl::StrCat(" WHERE time >= ", window.from_ns, " AND time < ", window.to_ns);
  for (const std::string& m : measurements) {
    const std::string from = target->rp.empty()
                                 ? QuoteIdent(m)
                                 : absl::StrCat(QuoteIdent(target->rp), ".", QuoteIdent(m));
    const std::string q = absl::StrCat("SELECT * FROM ", from, where, " GROUP BY *");
    lineproto::Point point;
    RETURN_IF_ERROR(InfluxQuery(*target, q, [&](const Json& s) {
      point.measurement = m;
      point.tags.clear();
      if (const Json* tags = s.Get("tags")) {
        // A tag the series does not have comes back as "".
        for (const auto& [k, v] : tags->members) {
          if (!v.text.empty()) point.tags.emplace_back(k, v.text);
        }
      }
      const Json* columns = s.Get("columns");
      const Json* values = s.Get("values");
      if (columns == nullptr || values == nullptr) return absl::OkStatus();
      for (const Json& row : values->items) {
        point.fields.clear();
        if (row.items.size() != columns->items.size() || row.items.empty()) {
          return absl::InvalidArgumentError(absl::StrCat("InfluxDB row of ", m, " has ",
                                                         row.items.size(), " values for ",
                                                         columns->items.size(), " columns"));
        }
        if (!absl::SimpleAtoi(row.items[0].text, &point.timestamp)) {
          return absl::InvalidArgumentError(
              absl::StrCat("InfluxDB row of ", m, ": time ", row.items[0].text));
        }
        point.has_timestamp = true;
        for (size_t i = 1; i < row.items.size(); ++i) {
          const Json& v = row.items[i];
          lineproto::FieldValue f;
          switch (v.type) {
            case Json::Type::kNull:
              continue;  // the point has no such field
            case Json::Type::kBool:
              f.type = lineproto::FieldType::kBoolean;
              f.b = v.b;
              break;
            case Json::Type::kString:
              f.type = lineproto::FieldType::kString;
              f.s = v.text;
              break;
            case Json::Type::kNumber:
              // Integers too: strtod rounds to the nearest double, as the
              // mapping's conversion of an integer field does.
              f.type = lineproto::FieldType::kFloat;
              f.f = std::strtod(v.text.c_str(), nullptr);
              break;
            case Json::Type::kArray:
            case Json::Type::kObject:
              return absl::InvalidArgumentError(
                  absl::StrCat("InfluxDB row of ", m, ": unexpected value"));
          }
          point.fields.emplace_back(columns->items[i].text, std::move(f));
        }
        if (point.fields.empty()) continue;
        bool malformed = false;
        AddPoint(point, ns_mapping, window, out, &malformed);
        if (malformed) ++out->malformed_lines;
      }
      return absl::OkStatus();
    }));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- platform

absl::Status CollectPlatform(ReadingReader* reader, int64_t tenant_id,
                             const std::vector<std::string>& devices, const Window& window,
                             SideTable* out) {
  std::vector<std::string> all = devices;
  // Devices the rollups know in the window (one bucket over it, or two).
  AggregateQuery aq;
  aq.tenant_id = tenant_id;
  aq.start_ns = window.from_ns;
  aq.end_ns = window.to_ns;
  aq.bucket_ns = std::max<int64_t>(
      kNsPerHour, (window.to_ns - window.from_ns + kNsPerHour - 1) / kNsPerHour * kNsPerHour);
  aq.group_by_device = true;
  aq.need_sum = aq.need_min = aq.need_max = aq.need_last = false;
  auto rows = reader->Aggregate(aq);
  if (!rows.ok()) return rows.status();
  for (const AggregateRow& r : *rows) all.push_back(r.device);
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  for (const std::string& device : all) {
    RangeQuery q;
    q.tenant_id = tenant_id;
    q.device = device;
    q.start_ns = window.from_ns;
    q.end_ns = window.to_ns;
    q.page_size = 10000;
    RETURN_IF_ERROR(reader->Range(q, [&](std::vector<ReadingRow>&& page) {
      for (const ReadingRow& r : page) {
        const bool numeric = r.kind == ValueKind::kDouble;
        out->Add({r.device, r.sensor, r.unit}, r.ts_ns, numeric, numeric ? r.d : 0);
      }
      return true;
    }));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- compare

namespace {

bool SumsMatch(double a, double b, double tolerance) {
  if (a == b) return true;
  return std::fabs(a - b) <= tolerance * std::max(std::fabs(a), std::fabs(b));
}

std::vector<std::string> Differences(const HourFigures& s, const HourFigures& p, double tol) {
  std::vector<std::string> d;
  if (s.count != p.count) d.push_back("count");
  if (s.numeric != p.numeric) d.push_back("numeric");
  if (s.numeric > 0 && p.numeric > 0) {
    if (s.min != p.min) d.push_back("min");
    if (s.max != p.max) d.push_back("max");
    if (!SumsMatch(s.sum, p.sum, tol)) d.push_back("sum");
  }
  if (s.count > 0 && p.count > 0) {
    if (s.first_ns != p.first_ns) d.push_back("first");
    if (s.last_ns != p.last_ns) d.push_back("last");
  }
  return d;
}

}  // namespace

ParityReport Compare(const SideTable& source, const SideTable& platform,
                     const ParityOptions& options) {
  ParityReport r;
  r.sum_relative_tolerance = options.sum_relative_tolerance;
  r.source_readings = source.readings();
  r.platform_readings = platform.readings();
  r.source_series = static_cast<int64_t>(source.series().size());
  r.platform_series = static_cast<int64_t>(platform.series().size());
  const std::map<int64_t, HourFigures> none;
  auto s_it = source.series().begin();
  auto p_it = platform.series().begin();
  while (s_it != source.series().end() || p_it != platform.series().end()) {
    const bool take_s = p_it == platform.series().end() ||
                        (s_it != source.series().end() && !(p_it->first < s_it->first));
    const bool take_p = s_it == source.series().end() ||
                        (p_it != platform.series().end() && !(s_it->first < p_it->first));
    const SeriesKey& key = take_s ? s_it->first : p_it->first;
    const auto& s_hours = take_s ? s_it->second : none;
    const auto& p_hours = take_p ? p_it->second : none;
    if (!take_p) {
      if (r.only_in_source.size() < options.max_listed) r.only_in_source.push_back(key);
      ++r.only_in_source_total;
    }
    if (!take_s) {
      if (r.only_in_platform.size() < options.max_listed) r.only_in_platform.push_back(key);
      ++r.only_in_platform_total;
    }
    auto sh = s_hours.begin();
    auto ph = p_hours.begin();
    while (sh != s_hours.end() || ph != p_hours.end()) {
      const bool hs = ph == p_hours.end() || (sh != s_hours.end() && sh->first <= ph->first);
      const bool hp = sh == s_hours.end() || (ph != p_hours.end() && ph->first <= sh->first);
      Mismatch m;
      m.series = key;
      m.hour_ns = hs ? sh->first : ph->first;
      m.in_source = hs;
      m.in_platform = hp;
      if (hs) m.source = sh->second;
      if (hp) m.platform = ph->second;
      m.differs = Differences(m.source, m.platform, options.sum_relative_tolerance);
      ++r.series_hours;
      if (m.differs.empty()) {
        ++r.matching;
      } else {
        ++r.mismatched;
        if (r.mismatches.size() < options.max_listed) r.mismatches.push_back(std::move(m));
      }
      if (hs) ++sh;
      if (hp) ++ph;
    }
    if (take_s) ++s_it;
    if (take_p) ++p_it;
  }
  return r;
}

// ---------------------------------------------------------------- reports

namespace {

std::string Utc(int64_t ns) {
  const time_t s = static_cast<time_t>(ns / 1'000'000'000 - (ns % 1'000'000'000 < 0 ? 1 : 0));
  struct tm tm {};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Num(double v) { return absl::StrFormat("%.17g", v); }

std::string SeriesName(const SeriesKey& k) {
  return k.unit.empty() ? absl::StrCat(k.device, " ", k.sensor)
                        : absl::StrCat(k.device, " ", k.sensor, " [", k.unit, "]");
}

std::string FiguresText(const HourFigures& h, bool present) {
  if (!present) return "absent";
  std::string out = absl::StrCat("count ", h.count);
  if (h.numeric > 0) {
    absl::StrAppend(&out, ", numeric ", h.numeric, ", min ", Num(h.min), ", max ", Num(h.max),
                    ", sum ", Num(h.sum));
  } else if (h.count > 0) {
    absl::StrAppend(&out, ", numeric 0");
  }
  absl::StrAppend(&out, ", first ", h.first_ns, ", last ", h.last_ns);
  return out;
}

std::string MdCell(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\";
    out.push_back(c);
  }
  return out;
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", static_cast<int>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string JsonFigures(const HourFigures& h, bool present) {
  if (!present) return "null";
  std::string out = absl::StrCat("{\"count\":", h.count, ",\"numeric\":", h.numeric);
  if (h.numeric > 0) {
    absl::StrAppend(&out, ",\"min\":", Num(h.min), ",\"max\":", Num(h.max),
                    ",\"sum\":", Num(h.sum));
  } else {
    absl::StrAppend(&out, ",\"min\":null,\"max\":null,\"sum\":null");
  }
  absl::StrAppend(&out, ",\"first_ns\":", h.first_ns, ",\"last_ns\":", h.last_ns, "}");
  return out;
}

std::string JsonSeries(const SeriesKey& k) {
  return absl::StrCat("{\"device\":", JsonString(k.device), ",\"sensor\":", JsonString(k.sensor),
                      ",\"unit\":", JsonString(k.unit), "}");
}

}  // namespace

std::string RenderMarkdown(const ParityReport& r) {
  std::string md = "# Parity report\n\n";
  absl::StrAppend(&md, "- Source: `", r.source_name, "`: ", r.source_readings, " readings in ",
                  r.source_series, " series");
  if (r.source_duplicates > 0) {
    absl::StrAppend(&md, " (", r.source_duplicates,
                    " repeated (series, timestamp) readings counted once, with the last value)");
  }
  absl::StrAppend(&md, ".\n");
  if (r.source_points_without_timestamp > 0 || r.source_malformed_lines > 0) {
    absl::StrAppend(&md, "- Not compared from the source: ", r.source_points_without_timestamp,
                    " points without a timestamp, ", r.source_malformed_lines,
                    " malformed lines.\n");
  }
  absl::StrAppend(&md, "- Platform: tenant ", r.tenant_id, ": ", r.platform_readings,
                  " readings in ", r.platform_series, " series (read through ReadingReader).\n");
  absl::StrAppend(&md, "- Window: ", Utc(r.window.from_ns), " to ", Utc(r.window.to_ns),
                  " (end excluded), per series and UTC hour.\n");
  absl::StrAppend(&md,
                  "- Compared exactly: count, numeric count, min and max (doubles, equal values),"
                  " first and last timestamp (ns); the sum within a relative tolerance of ",
                  absl::StrFormat("%g", r.sum_relative_tolerance),
                  " (summation order differs). min/max/sum over numeric readings only;"
                  " strings and booleans count in the count and the timestamps.\n\n");
  absl::StrAppend(&md,
                  "| series-hours | matching | mismatched | series only in the source | series"
                  " only in the platform | diff rate |\n|---|---|---|---|---|---|\n");
  absl::StrAppend(&md, "| ", r.series_hours, " | ", r.matching, " | ", r.mismatched, " | ",
                  r.only_in_source_total, " | ", r.only_in_platform_total, " | ",
                  absl::StrFormat("%.4f %%", 100 * r.diff_rate()), " |\n\n");
  absl::StrAppend(&md, r.mismatched == 0 ? "**No mismatches.**" : "**Mismatches found.**",
                  " Note 001 asks for a diff rate below 0.1 % before cutover: ",
                  r.diff_rate() < 0.001 ? "met" : "not met", ".\n");
  if (!r.mismatches.empty()) {
    absl::StrAppend(&md, "\n## Mismatched series-hours\n\n",
                    "| device | sensor | hour (UTC) | differs | source | platform |\n"
                    "|---|---|---|---|---|---|\n");
    for (const Mismatch& m : r.mismatches) {
      absl::StrAppend(&md, "| ", MdCell(m.series.device), " | ", MdCell(m.series.sensor),
                      m.series.unit.empty() ? "" : absl::StrCat(" [", MdCell(m.series.unit), "]"),
                      " | ", Utc(m.hour_ns), " | ", absl::StrJoin(m.differs, ", "), " | ",
                      FiguresText(m.source, m.in_source), " | ",
                      FiguresText(m.platform, m.in_platform), " |\n");
    }
    const int64_t more = r.mismatched - static_cast<int64_t>(r.mismatches.size());
    if (more > 0) absl::StrAppend(&md, "\n", more, " more mismatched series-hours not listed.\n");
  }
  auto list = [&](const char* title, const std::vector<SeriesKey>& keys, int64_t total) {
    if (total == 0) return;
    absl::StrAppend(&md, "\n## ", title, " (", total, ")\n\n");
    for (const SeriesKey& k : keys) absl::StrAppend(&md, "- `", SeriesName(k), "`\n");
    const int64_t more = total - static_cast<int64_t>(keys.size());
    if (more > 0) absl::StrAppend(&md, "- ... and ", more, " more\n");
  };
  list("Series only in the source", r.only_in_source, r.only_in_source_total);
  list("Series only in the platform", r.only_in_platform, r.only_in_platform_total);
  return md;
}

std::string RenderJson(const ParityReport& r) {
  std::string j = absl::StrCat(
      "{\"source\":", JsonString(r.source_name), ",\"tenant_id\":", r.tenant_id,
      ",\"window\":{\"from_ns\":", r.window.from_ns, ",\"to_ns\":", r.window.to_ns,
      "},\"sum_relative_tolerance\":", Num(r.sum_relative_tolerance),
      ",\"source_readings\":", r.source_readings, ",\"platform_readings\":", r.platform_readings,
      ",\"source_series\":", r.source_series, ",\"platform_series\":", r.platform_series,
      ",\"source_points_without_timestamp\":", r.source_points_without_timestamp,
      ",\"source_malformed_lines\":", r.source_malformed_lines,
      ",\"source_duplicates\":", r.source_duplicates, ",\"series_hours\":", r.series_hours,
      ",\"matching\":", r.matching, ",\"mismatched\":", r.mismatched,
      ",\"diff_rate\":", Num(r.diff_rate()), ",\"mismatches\":[");
  for (size_t i = 0; i < r.mismatches.size(); ++i) {
    const Mismatch& m = r.mismatches[i];
    std::vector<std::string> differs;
    for (const std::string& d : m.differs) differs.push_back(JsonString(d));
    absl::StrAppend(&j, i ? "," : "", "{\"series\":", JsonSeries(m.series),
                    ",\"hour_ns\":", m.hour_ns, ",\"differs\":[", absl::StrJoin(differs, ","),
                    "],\"source\":", JsonFigures(m.source, m.in_source),
                    ",\"platform\":", JsonFigures(m.platform, m.in_platform), "}");
  }
  absl::StrAppend(
      &j, "],\"mismatches_not_listed\":", r.mismatched - static_cast<int64_t>(r.mismatches.size()),
      ",\"series_only_in_source\":", r.only_in_source_total,
      ",\"series_only_in_platform\":", r.only_in_platform_total, ",\"only_in_source\":[");
  for (size_t i = 0; i < r.only_in_source.size(); ++i) {
    absl::StrAppend(&j, i ? "," : "", JsonSeries(r.only_in_source[i]));
  }
  absl::StrAppend(&j, "],\"only_in_platform\":[");
  for (size_t i = 0; i < r.only_in_platform.size(); ++i) {
    absl::StrAppend(&j, i ? "," : "", JsonSeries(r.only_in_platform[i]));
  }
  absl::StrAppend(&j, "]}\n");
  return j;
}

namespace {

absl::Status WriteFile(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return absl::UnavailableError(absl::StrCat(path, ": cannot write"));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok)
    return absl::UnavailableError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace

int VerifyCommand(const VerifyConfig& config, ReadingReader* reader) {
  if (config.tenant_id <= 0) {
    std::fprintf(stderr, "verify needs --tenant_id\n");
    return 2;
  }
  SourceCollector collector;
  absl::string_view source = config.source;
  if (absl::ConsumePrefix(&source, "file:")) {
    auto file = MappedFile::Open(std::string(source));
    if (!file.ok()) {
      std::fprintf(stderr, "verify: %s\n", file.status().ToString().c_str());
      return 2;
    }
    CollectLineProtocol((*file)->data(), config.mapping, config.window, &collector);
  } else if (absl::ConsumePrefix(&source, "influx:")) {
    absl::Status st = CollectInflux(std::string(source), config.mapping, config.window, &collector);
    if (!st.ok()) {
      std::fprintf(stderr, "verify: %s\n", st.ToString().c_str());
      return 2;
    }
  } else {
    std::fprintf(stderr, "verify needs --source file:PATH or influx:http://host:port/DB[/RP]\n");
    return 2;
  }
  const int64_t without_ts = collector.points_without_timestamp;
  const int64_t malformed = collector.malformed_lines;
  SideTable source_table = collector.Finish();
  Window window = config.window;
  if (window.all()) {
    if (source_table.readings() == 0) {
      std::fprintf(stderr, "verify: the source has no readings; give --from_s and --to_s\n");
      return 2;
    }
    // The source's hours.
    window.from_ns =
        source_table.min_ns() - (((source_table.min_ns() % kNsPerHour) + kNsPerHour) % kNsPerHour);
    const int64_t last =
        source_table.max_ns() - (((source_table.max_ns() % kNsPerHour) + kNsPerHour) % kNsPerHour);
    window.to_ns = last + kNsPerHour;
  }
  std::vector<std::string> devices;
  for (const auto& [key, hours] : source_table.series()) {
    if (devices.empty() || devices.back() != key.device) devices.push_back(key.device);
  }
  SideTable platform;
  absl::Status st = CollectPlatform(reader, config.tenant_id, devices, window, &platform);
  if (!st.ok()) {
    std::fprintf(stderr, "verify: reading the platform: %s\n", st.ToString().c_str());
    return 2;
  }
  ParityReport report = Compare(source_table, platform, config.parity);
  report.source_name = config.source;
  report.tenant_id = config.tenant_id;
  report.window = window;
  report.source_points_without_timestamp = without_ts;
  report.source_malformed_lines = malformed;
  report.source_duplicates = collector.duplicates;
  const std::string md = RenderMarkdown(report);
  if (config.report_path.empty()) {
    std::fputs(md.c_str(), stdout);
  } else if (absl::Status w = WriteFile(config.report_path, md); !w.ok()) {
    std::fprintf(stderr, "verify: %s\n", w.ToString().c_str());
    return 2;
  }
  if (!config.json_path.empty()) {
    if (absl::Status w = WriteFile(config.json_path, RenderJson(report)); !w.ok()) {
      std::fprintf(stderr, "verify: %s\n", w.ToString().c_str());
      return 2;
    }
  }
  std::fprintf(stderr,
               "verify: %lld series-hours, %lld matching, %lld mismatched (diff rate %.4f %%);"
               " %lld series only in the source, %lld only in the platform\n",
               static_cast<long long>(report.series_hours), static_cast<long long>(report.matching),
               static_cast<long long>(report.mismatched), 100 * report.diff_rate(),
               static_cast<long long>(report.only_in_source_total),
               static_cast<long long>(report.only_in_platform_total));
  return report.mismatched == 0 ? 0 : 1;
}

}  // namespace telemetry::admin
