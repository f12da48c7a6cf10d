#include "services/ingest/influx_http.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_payload.h"
#include "services/ingest/line_protocol.h"

namespace telemetry::ingest {

using telemetry::v1::WriteRequest;
using telemetry::v1::WriteResponse;

InfluxHttpMetrics::InfluxHttpMetrics(MetricsRegistry* r)
    : requests(r->AddCounter("ingest_http_write_requests_total",
                             "Line-protocol write requests (v1 and v2)")),
      lines(r->AddCounter("ingest_http_lines_total", "Line-protocol lines parsed into points")),
      bad_lines(r->AddCounter("ingest_http_bad_lines_total",
                              "Line-protocol lines refused (malformed, or a reading refused)")),
      refused(r->AddCounter("ingest_http_refused_requests_total",
                            "Write requests answered 401, 413, 429 or 5xx")) {}

namespace {

// Influx v1 answers {"error": ...}; v2 {"code": ..., "message": ...} (and
// the line of a parse error). Both carry X-Influxdb-Error.
HttpReply Error(bool v2, int status, const std::string& message, int64_t line = 0) {
  google::protobuf::Struct s;
  auto& f = *s.mutable_fields();
  if (v2) {
    const char* code = status == 400   ? "invalid"
                       : status == 401 ? "unauthorized"
                       : status == 413 ? "request too large"
                       : status == 429 ? "too many requests"
                       : status == 503 ? "unavailable"
                                       : "internal error";
    f["code"].set_string_value(code);
    f["message"].set_string_value(message);
    if (line > 0) f["line"].set_number_value(static_cast<double>(line));
  } else {
    f["error"].set_string_value(message);
  }
  HttpReply reply;
  reply.status = status;
  (void)google::protobuf::util::MessageToJsonString(s, &reply.body);
  reply.headers.emplace_back("X-Influxdb-Error", message.substr(0, 512));
  return reply;
}

int64_t RetryAfterSeconds(const absl::Status& st) {
  auto ms = st.GetPayload(kRetryAfterPayload);
  int64_t v = 0;
  if (!ms || !absl::SimpleAtoi(std::string(*ms), &v) || v <= 0) return 1;
  return (v + 999) / 1000;
}

// The HTTP answer to a write-path status that is not OK.
HttpReply FromStatus(bool v2, const absl::Status& st, int64_t written) {
  const std::string stored =
      written > 0 ? absl::StrCat(" (", written,
                                 " readings of this request are stored; sending it again is "
                                 "safe: readings are de-duplicated)")
                  : "";
  HttpReply r;
  switch (st.code()) {
    case absl::StatusCode::kResourceExhausted:
      r = Error(v2, 429, std::string(st.message()) + stored);
      r.headers.emplace_back("Retry-After", std::to_string(RetryAfterSeconds(st)));
      return r;
    case absl::StatusCode::kInvalidArgument:
      return Error(v2, 400, std::string(st.message()) + stored);
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kFailedPrecondition:
      r = Error(v2, 503, std::string(st.message()) + stored);
      r.headers.emplace_back("Retry-After", "1");
      return r;
    default:
      return Error(v2, 500, std::string(st.message()) + stored);
  }
}

// The chunks of one request in flight in IngestCore.
struct Flight {
  absl::Mutex mu;
  int outstanding ABSL_GUARDED_BY(mu) = 0;
  absl::Status error ABSL_GUARDED_BY(mu);
  int64_t accepted ABSL_GUARDED_BY(mu) = 0;
  // (index of the reading in the request, reason) of refused readings.
  std::vector<std::pair<int64_t, std::string>> rejected ABSL_GUARDED_BY(mu);
};

}  // namespace

InfluxHttpServer::InfluxHttpServer(IngestCore* core, Authenticator* auth, const Clock* clock,
                                   InfluxHttpMetrics* metrics, InfluxHttpOptions options,
                                   TlsServerFiles tls)
    : core_(core),
      auth_(auth),
      clock_(clock),
      metrics_(metrics),
      options_(std::move(options)),
      tls_(std::move(tls)) {}

InfluxHttpServer::~InfluxHttpServer() { Stop(); }

absl::StatusOr<std::shared_ptr<const TenantInfo>> InfluxHttpServer::Authenticate(
    const HttpWrite& request) {
  // Token and Bearer carry the key; Basic and the v1 parameters carry it as
  // the password (the user name is not used).
  std::string key;
  absl::string_view h = absl::StripAsciiWhitespace(request.authorization);
  if (absl::StartsWithIgnoreCase(h, "token ") || absl::StartsWithIgnoreCase(h, "bearer ")) {
    key = std::string(absl::StripAsciiWhitespace(h.substr(h.find(' ') + 1)));
  } else if (absl::StartsWithIgnoreCase(h, "basic ")) {
    std::string decoded;
    if (!absl::Base64Unescape(absl::StripAsciiWhitespace(h.substr(6)), &decoded)) {
      return absl::UnauthenticatedError("unable to parse Basic authentication credentials");
    }
    const size_t colon = decoded.find(':');
    key = colon == std::string::npos ? decoded : decoded.substr(colon + 1);
  } else if (!h.empty()) {
    return absl::UnauthenticatedError(
        "Authorization must be 'Token <api key>', 'Bearer <api key>' or Basic with the key as "
        "the password");
  } else {
    key = request.password;
  }
  if (key.empty()) {
    return absl::UnauthenticatedError(
        "unable to parse authentication credentials: send 'Authorization: Token <api key>' (or "
        "the key as the password)");
  }
  return auth_->Authenticate("Bearer " + key);
}

HttpReply InfluxHttpServer::HandleWrite(const HttpWrite& request) {
  const bool v2 = request.v2;
  metrics_->requests->Inc();
  if (std::string why; ready_ && !ready_(&why)) {
    metrics_->refused->Inc();
    HttpReply r = Error(v2, 503, "the write path is unavailable: " + why);
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  if (request.database.empty()) {
    return Error(v2, 400, v2 ? "bucket is required" : "database is required");
  }
  auto precision = lineproto::PrecisionMultiplier(request.precision);
  if (!precision.ok()) return Error(v2, 400, std::string(precision.status().message()));
  auto tenant = Authenticate(request);
  if (!tenant.ok()) {
    metrics_->refused->Inc();
    if (absl::IsUnauthenticated(tenant.status())) {
      return Error(v2, 401, std::string(tenant.status().message()));
    }
    return FromStatus(v2, tenant.status(), 0);
  }

  lineproto::MappingOptions mapping;
  mapping.device_tag = options_.device_tag;
  mapping.precision_ns = *precision;
  mapping.now_ns = clock_->NowNs();
  const int64_t deadline = clock_->MonotonicNs() + options_.max_wait_ns;

  auto flight = std::make_shared<Flight>();
  // The line of every reading handed to the core, to name refused ones.
  std::vector<int64_t> line_of;
  std::string first_error;
  int64_t first_error_line = 0, bad_lines = 0, lines = 0;
  auto note_error = [&](int64_t line, std::string message) {
    ++bad_lines;
    if (first_error_line == 0 || line < first_error_line) {
      first_error_line = line;
      first_error = std::move(message);
    }
  };

  WriteRequest chunk;
  auto send = [&] {
    if (chunk.readings_size() == 0) return;
    const int64_t base = static_cast<int64_t>(line_of.size()) - chunk.readings_size();
    {
      absl::MutexLock lock(&flight->mu);
      ++flight->outstanding;
    }
    core_->Write(**tenant, chunk, base, deadline, [flight](absl::StatusOr<WriteResponse> result) {
      absl::MutexLock lock(&flight->mu);
      --flight->outstanding;
      if (!result.ok()) {
        if (flight->error.ok()) flight->error = result.status();
        return;
      }
      flight->accepted += result->accepted();
      for (const auto& rej : result->rejected()) {
        flight->rejected.emplace_back(rej.index(), absl::StrCat(rej.field(), ": ", rej.reason()));
      }
    });
    chunk.Clear();
  };

  lineproto::Parser parser(request.body);
  lineproto::Point point;
  std::string error;
  while (true) {
    const auto result = parser.Next(&point, &error);
    if (result == lineproto::Parser::Result::kEnd) break;
    ++lines;
    if (result == lineproto::Parser::Result::kError) {
      note_error(parser.line_number(),
                 absl::StrCat("unable to parse '", parser.line_text(), "': ", error));
      continue;
    }
    const int before = chunk.readings_size();
    absl::Status st = lineproto::AppendReadings(point, mapping, chunk.mutable_readings());
    if (!st.ok()) {
      note_error(parser.line_number(),
                 absl::StrCat("unable to parse '", parser.line_text(), "': ", st.message()));
      continue;
    }
    line_of.insert(line_of.end(), static_cast<size_t>(chunk.readings_size() - before),
                   parser.line_number());
    if (chunk.readings_size() >= options_.chunk_readings) send();
  }
  send();
  metrics_->lines->Inc(lines);

  int64_t accepted = 0;
  absl::Status failed;
  std::vector<std::pair<int64_t, std::string>> rejected;
  {
    absl::MutexLock lock(&flight->mu);
    flight->mu.Await(absl::Condition(
        +[](int* outstanding) { return *outstanding == 0; }, &flight->outstanding));
    accepted = flight->accepted;
    failed = flight->error;
    rejected = std::move(flight->rejected);
  }
  if (!failed.ok()) {
    metrics_->refused->Inc();
    return FromStatus(v2, failed, accepted);
  }
  // Readings the write path refused count against their line.
  int64_t refused_line = 0;
  for (const auto& [index, reason] : rejected) {
    if (index < 0 || static_cast<size_t>(index) >= line_of.size()) continue;
    const int64_t line = line_of[static_cast<size_t>(index)];
    if (line == refused_line) continue;
    refused_line = line;
    note_error(line, absl::StrCat("line ", line, ": ", reason));
  }
  metrics_->bad_lines->Inc(bad_lines);
  if (bad_lines == 0) return HttpReply{};
  return Error(
      v2, 400,
      absl::StrCat("partial write: ", first_error, " (line ", first_error_line, "); ", bad_lines,
                   " of ", lines, " lines refused, ", accepted, " readings written"),
      first_error_line);
}

absl::Status InfluxHttpServer::Start(const std::string& host, int port) {
  if (tls_.enabled()) {
    server_ = std::make_unique<httplib::SSLServer>(
        tls_.cert.c_str(), tls_.key.c_str(),
        tls_.client_ca.empty() ? nullptr : tls_.client_ca.c_str());
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  if (!server_->is_valid()) {
    return absl::InvalidArgumentError("line-protocol port: cannot load --tls_cert " + tls_.cert +
                                      " / --tls_key " + tls_.key);
  }
  const int threads = options_.threads;
  server_->new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  server_->set_payload_max_length(options_.max_body_bytes);
  const std::string version = options_.version;
  auto ping = [version](const httplib::Request&, httplib::Response& res) {
    res.status = 204;
    res.set_header("X-Influxdb-Version", version);
    res.set_header("X-Influxdb-Build", "OSS");
  };
  server_->Get("/ping", ping);
  server_->Options("/ping", ping);
  server_->Get("/health", [this, version](const httplib::Request&, httplib::Response& res) {
    std::string why;
    const bool ok = !ready_ || ready_(&why);
    google::protobuf::Struct health;
    auto& f = *health.mutable_fields();
    f["name"].set_string_value("telemetry-ingest");
    f["message"].set_string_value(ok ? "ready for writes"
                                     : "the write path is unavailable: " + why);
    f["status"].set_string_value(ok ? "pass" : "fail");
    f["version"].set_string_value(version);
    std::string body;
    (void)google::protobuf::util::MessageToJsonString(health, &body);
    res.status = ok ? 200 : 503;
    res.set_content(body, "application/json");
  });
  // influx -import sends its DDL section here before the data: creating a
  // database or retention policy has nothing to do (a tenant is one
  // namespace), anything else is refused.
  server_->Post("/query", [](const httplib::Request& req, httplib::Response& res) {
    std::string q = req.has_param("q") ? req.get_param_value("q") : "";
    const std::string upper = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(q));
    if (absl::StartsWith(upper, "CREATE DATABASE") ||
        absl::StartsWith(upper, "CREATE RETENTION POLICY")) {
      res.set_content(R"({"results":[{"statement_id":0}]})", "application/json");
      return;
    }
    res.status = 400;
    res.set_content(
        R"j({"error":"this endpoint takes writes only: query through the QueryService (gRPC)"})j",
        "application/json");
  });
  auto write = [this](bool v2) {
    return [this, v2](const httplib::Request& req, httplib::Response& res,
                      const httplib::ContentReader& content_reader) {
      HttpWrite w;
      w.v2 = v2;
      w.authorization = req.get_header_value("Authorization");
      w.user = req.get_param_value("u");
      w.password = req.get_param_value("p");
      w.database = req.get_param_value(v2 ? "bucket" : "db");
      w.precision = req.get_param_value("precision");
      bool too_large = false;
      const size_t limit = options_.max_body_bytes;
      // httplib hands over the body decompressed (gzip, deflate): the limit
      // holds after decompression too.
      content_reader([&](const char* data, size_t n) {
        if (w.body.size() + n > limit) {
          too_large = true;
          return false;
        }
        w.body.append(data, n);
        return true;
      });
      HttpReply reply;
      if (too_large) {
        metrics_->requests->Inc();
        metrics_->refused->Inc();
        reply = Error(v2, 413,
                      absl::StrCat("request body larger than ", limit,
                                   " bytes (after decompression): split it"));
      } else {
        reply = HandleWrite(w);
      }
      res.status = reply.status;
      for (const auto& [k, v] : reply.headers) res.set_header(k, v);
      res.set_header("X-Influxdb-Version", options_.version);
      if (!reply.body.empty()) res.set_content(reply.body, "application/json");
    };
  };
  server_->Post("/write", write(false));
  server_->Post("/api/v2/write", write(true));

  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
  } else {
    port_ = server_->bind_to_port(host, port) ? port : -1;
  }
  if (port_ < 0) {
    return absl::UnavailableError("cannot listen for line protocol on " + host + ":" +
                                  std::to_string(port));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

void InfluxHttpServer::Stop() {
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

}  // namespace telemetry::ingest
