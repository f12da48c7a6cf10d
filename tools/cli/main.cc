// telemetry-cli: a small client of the platform's gRPC API.
//
//   telemetry-cli write  --device d1 --sensor temp --value 21.5 [--unit C]
//   telemetry-cli latest --device d1[,d2] [--sensors temp,hum] [--token T]
//   telemetry-cli range  --device d1 --from_s 3600 [--to_s 0] [--sensors temp] [--limit 100]
//
// Alert rules (AlertService at --alert), given and printed as telemetry.v1.Rule JSON:
//   telemetry-cli rules-create --rule_json '{"name":"hot","sensor":"temp","windowSeconds":60,
//                                            "function":"WINDOW_FUNCTION_AVG",
//                                            "comparison":"COMPARISON_GT","threshold":30}'
//   telemetry-cli rules-get    --rule_id ID
//   telemetry-cli rules-list   [--page_size N] [--page_token T]   (default: every page)
//   telemetry-cli rules-update --rule_json '{"ruleId":"ID","version":1,...}'
//   telemetry-cli rules-delete --rule_id ID
//
// Alerts, printed as telemetry.v1.AlertEvent JSON:
//   telemetry-cli alerts-list  [--firing_only] [--history] [--rule_id ID] [--device D]
//                              [--page_size N] [--page_token T]   (default: every page)
//   telemetry-cli alerts-watch [--after_event_id N]   (one JSON object a line, until Ctrl-C;
//                              without it, only transitions from now on)
//
// Silences (mute notifications of matching alerts for a time):
//   telemetry-cli silences-create [--rule_id ID] [--device GLOB] --duration_s 3600 [--comment C]
//   telemetry-cli silences-list   [--include_expired]
//   telemetry-cli silences-end    --silence_id ID
//
// The API key comes from --api_key / TELEMETRY_API_KEY.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/grpc/tls.h"
#include "telemetry/v1/alert.grpc.pb.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "telemetry/v1/query.grpc.pb.h"

ABSL_FLAG(std::string, ingest, "127.0.0.1:50051", "IngestService address");
ABSL_FLAG(std::string, query, "127.0.0.1:50052", "QueryService address");
ABSL_FLAG(std::string, alert, "127.0.0.1:50054", "AlertService address");
ABSL_FLAG(std::string, api_key, "", "API key");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle that signed the services' certificates (set: connect with TLS)");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate, for services that require one");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, device, "", "Device name(s), comma-separated for latest");
ABSL_FLAG(std::string, sensor, "", "Sensor (write)");
ABSL_FLAG(std::string, sensors, "", "Sensors, comma-separated (empty: all)");
ABSL_FLAG(double, value, 0, "Value (write)");
ABSL_FLAG(std::string, unit, "", "Unit (write)");
ABSL_FLAG(std::string, token, "", "Consistency token from a write (STRONG read-your-writes)");
ABSL_FLAG(std::string, consistency, "strong",
          "latest, range: strong, eventual or analytics (the warehouse)");
ABSL_FLAG(bool, allow_fallback, false,
          "latest, range with --consistency=analytics: read a replica while the warehouse is "
          "unavailable");
ABSL_FLAG(int64_t, from_s, 3600, "Range start, seconds before now");
ABSL_FLAG(int64_t, to_s, 0, "Range end, seconds before now");
ABSL_FLAG(int64_t, limit, 0, "Range limit (0: none)");
ABSL_FLAG(std::string, rule_json, "",
          "rules-create, rules-update: the telemetry.v1.Rule as proto JSON");
ABSL_FLAG(std::string, rule_id, "",
          "rules-get, rules-delete: the rule's id; alerts-list: only this rule's alerts");
ABSL_FLAG(int32_t, page_size, 0,
          "rules-list, alerts-list: rules / alerts per page (0: the server's default); with it "
          "or --page_token, only that one page is printed");
ABSL_FLAG(std::string, page_token, "",
          "rules-list, alerts-list: next_page_token of a previous page");
ABSL_FLAG(int64_t, duration_s, 3600, "silences-create: how long the silence lasts from now");
ABSL_FLAG(std::string, comment, "", "silences-create: why");
ABSL_FLAG(std::string, silence_id, "", "silences-end: the silence's id");
ABSL_FLAG(bool, include_expired, false, "silences-list: also silences that ended");
ABSL_FLAG(bool, firing_only, false, "alerts-list: only the alerts firing now");
ABSL_FLAG(bool, history, false,
          "alerts-list: every transition, newest first (default: the current state of each "
          "alert)");
ABSL_FLAG(int64_t, after_event_id, 0,
          "alerts-watch: resume after this event_id (the last one printed); 0: only new "
          "transitions");
ABSL_FLAG(bool, raw_time, false,
          "Print timestamps as nanoseconds since the epoch (default: RFC 3339, UTC)");

namespace {

// Plaintext, or TLS (and a client certificate) from the --tls_* flags.
std::shared_ptr<grpc::ChannelCredentials> Credentials() {
  return telemetry::ChannelCredentialsOrExit(
      {absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key)});
}

}  // namespace

namespace {

void Print(const telemetry::v1::StoredReading& r) {
  std::string v;
  if (r.has_double_value()) v = std::to_string(r.double_value());
  if (r.has_string_value()) v = "\"" + r.string_value() + "\"";
  if (r.has_bool_value()) v = r.bool_value() ? "true" : "false";
  const std::string ts =
      absl::GetFlag(FLAGS_raw_time)
          ? std::to_string(r.timestamp_ns())
          : absl::FormatTime(absl::RFC3339_full, absl::FromUnixNanos(r.timestamp_ns()),
                             absl::UTCTimeZone());
  std::printf("%s\t%s\t%s\t%s%s%s\n", r.device_id().c_str(), r.sensor().c_str(), ts.c_str(),
              v.c_str(), r.unit().empty() ? "" : " ", r.unit().c_str());
}

void PrintMetadata(const telemetry::v1::ReadMetadata& md) {
  std::fprintf(stderr, "source=%s lag=%.3fs consistency=%s cache=%s\n", md.data_source().c_str(),
               md.lag_seconds(),
               telemetry::v1::ConsistencyLevel_Name(md.consistency_level()).c_str(),
               telemetry::v1::CacheStatus_Name(md.cache_status()).c_str());
  if (!md.fallback().empty()) std::fprintf(stderr, "fallback=%s\n", md.fallback().c_str());
}

int Fail(const grpc::Status& st) {
  std::fprintf(stderr, "error %d: %s\n", st.error_code(), st.error_message().c_str());
  return 1;
}

// Prints a message as indented proto JSON on stdout.
int PrintJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = false;
  std::string json;
  auto st = google::protobuf::util::MessageToJsonString(m, &json, options);
  if (!st.ok()) {
    std::fprintf(stderr, "error: cannot print the response as JSON: %s\n", st.ToString().c_str());
    return 1;
  }
  std::fputs(json.c_str(), stdout);
  if (json.empty() || json.back() != '\n') std::fputc('\n', stdout);
  return 0;
}

bool IsRulesCommand(const std::string& cmd) { return cmd.rfind("rules-", 0) == 0; }
bool IsAlertsCommand(const std::string& cmd) { return cmd.rfind("alerts-", 0) == 0; }
bool IsSilencesCommand(const std::string& cmd) { return cmd.rfind("silences-", 0) == 0; }

// silences-create|list|end against the AlertService.
int Silences(const std::string& cmd, const std::string& auth) {
  auto stub = telemetry::v1::AlertService::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_alert), Credentials()));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", auth);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (cmd == "silences-create") {
    telemetry::v1::CreateSilenceRequest req;
    auto* s = req.mutable_silence();
    s->set_rule_id(absl::GetFlag(FLAGS_rule_id));
    s->set_device_id(absl::GetFlag(FLAGS_device));
    s->set_comment(absl::GetFlag(FLAGS_comment));
    s->set_ends_at_ns(telemetry::SystemClock::Get()->NowNs() +
                      absl::GetFlag(FLAGS_duration_s) * telemetry::kNsPerSec);
    telemetry::v1::Silence resp;
    grpc::Status st = stub->CreateSilence(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    return PrintJson(resp);
  }
  if (cmd == "silences-list") {
    telemetry::v1::ListSilencesRequest req;
    req.set_include_expired(absl::GetFlag(FLAGS_include_expired));
    telemetry::v1::ListSilencesResponse resp;
    grpc::Status st = stub->ListSilences(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    return PrintJson(resp);
  }
  if (cmd == "silences-end") {
    telemetry::v1::DeleteSilenceRequest req;
    req.set_silence_id(absl::GetFlag(FLAGS_silence_id));
    telemetry::v1::DeleteSilenceResponse resp;
    grpc::Status st = stub->DeleteSilence(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    return PrintJson(resp);
  }
  std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 2;
}

// rules-create|get|list|update|delete against the AlertService.
int Rules(const std::string& cmd, const std::string& auth) {
  auto stub = telemetry::v1::AlertService::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_alert), Credentials()));
  auto context = [&auth](grpc::ClientContext* ctx) {
    ctx->AddMetadata("authorization", auth);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  };
  auto rule_from_flag = [&cmd](telemetry::v1::Rule* rule) {
    const std::string json = absl::GetFlag(FLAGS_rule_json);
    if (json.empty()) {
      std::fprintf(stderr, "%s needs --rule_json\n", cmd.c_str());
      return false;
    }
    auto st = google::protobuf::util::JsonStringToMessage(json, rule);
    if (!st.ok()) {
      std::fprintf(stderr, "--rule_json is not a telemetry.v1.Rule: %s\n", st.ToString().c_str());
      return false;
    }
    return true;
  };
  const std::string rule_id = absl::GetFlag(FLAGS_rule_id);
  if (cmd == "rules-create" || cmd == "rules-update") {
    telemetry::v1::Rule rule;
    if (!rule_from_flag(&rule)) return 2;
    grpc::ClientContext ctx;
    context(&ctx);
    telemetry::v1::Rule resp;
    grpc::Status st;
    if (cmd == "rules-create") {
      telemetry::v1::CreateRuleRequest req;
      *req.mutable_rule() = rule;
      st = stub->CreateRule(&ctx, req, &resp);
    } else {
      if (rule.rule_id().empty() && !rule_id.empty()) rule.set_rule_id(rule_id);
      telemetry::v1::UpdateRuleRequest req;
      *req.mutable_rule() = rule;
      st = stub->UpdateRule(&ctx, req, &resp);
    }
    if (!st.ok()) return Fail(st);
    return PrintJson(resp);
  }
  if (cmd == "rules-get" || cmd == "rules-delete") {
    if (rule_id.empty()) {
      std::fprintf(stderr, "%s needs --rule_id\n", cmd.c_str());
      return 2;
    }
    grpc::ClientContext ctx;
    context(&ctx);
    if (cmd == "rules-get") {
      telemetry::v1::GetRuleRequest req;
      req.set_rule_id(rule_id);
      telemetry::v1::Rule resp;
      grpc::Status st = stub->GetRule(&ctx, req, &resp);
      if (!st.ok()) return Fail(st);
      return PrintJson(resp);
    }
    telemetry::v1::DeleteRuleRequest req;
    req.set_rule_id(rule_id);
    telemetry::v1::DeleteRuleResponse resp;
    grpc::Status st = stub->DeleteRule(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    return PrintJson(resp);
  }
  if (cmd == "rules-list") {
    // One page when asked for one, else every page in one response.
    const bool one_page =
        absl::GetFlag(FLAGS_page_size) != 0 || !absl::GetFlag(FLAGS_page_token).empty();
    telemetry::v1::ListRulesResponse all;
    std::string token = absl::GetFlag(FLAGS_page_token);
    do {
      grpc::ClientContext ctx;
      context(&ctx);
      telemetry::v1::ListRulesRequest req;
      req.set_page_size(absl::GetFlag(FLAGS_page_size));
      req.set_page_token(token);
      telemetry::v1::ListRulesResponse page;
      grpc::Status st = stub->ListRules(&ctx, req, &page);
      if (!st.ok()) return Fail(st);
      if (one_page) return PrintJson(page);
      for (auto& r : *page.mutable_rules()) *all.add_rules() = std::move(r);
      token = page.next_page_token();
    } while (!token.empty());
    return PrintJson(all);
  }
  std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 2;
}

// alerts-list|watch against the AlertService.
int Alerts(const std::string& cmd, const std::string& auth) {
  auto stub = telemetry::v1::AlertService::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_alert), Credentials()));
  if (cmd == "alerts-list") {
    const bool one_page =
        absl::GetFlag(FLAGS_page_size) != 0 || !absl::GetFlag(FLAGS_page_token).empty();
    telemetry::v1::ListAlertsResponse all;
    std::string token = absl::GetFlag(FLAGS_page_token);
    do {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", auth);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      telemetry::v1::ListAlertsRequest req;
      req.set_firing_only(absl::GetFlag(FLAGS_firing_only));
      req.set_history(absl::GetFlag(FLAGS_history));
      req.set_rule_id(absl::GetFlag(FLAGS_rule_id));
      req.set_device_id(absl::GetFlag(FLAGS_device));
      req.set_limit(absl::GetFlag(FLAGS_page_size));
      req.set_page_token(token);
      telemetry::v1::ListAlertsResponse page;
      grpc::Status st = stub->ListAlerts(&ctx, req, &page);
      if (!st.ok()) return Fail(st);
      if (one_page) return PrintJson(page);
      for (auto& a : *page.mutable_alerts()) *all.add_alerts() = std::move(a);
      token = page.next_page_token();
    } while (!token.empty());
    return PrintJson(all);
  }
  if (cmd == "alerts-watch") {
    grpc::ClientContext ctx;  // no deadline: until the stream ends or Ctrl-C
    ctx.AddMetadata("authorization", auth);
    telemetry::v1::SubscribeRequest req;
    req.set_after_event_id(absl::GetFlag(FLAGS_after_event_id));
    auto reader = stub->Subscribe(&ctx, req);
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = false;
    telemetry::v1::AlertEvent event;
    int64_t last = req.after_event_id();
    while (reader->Read(&event)) {
      std::string json;
      if (!google::protobuf::util::MessageToJsonString(event, &json, options).ok()) continue;
      std::printf("%s\n", json.c_str());
      std::fflush(stdout);
      last = event.event_id();
    }
    grpc::Status st = reader->Finish();
    if (last > 0) {
      std::fprintf(stderr, "stream ended; resume with --after_event_id=%lld\n",
                   static_cast<long long>(last));
    }
    return st.ok() ? 0 : Fail(st);
  }
  std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr const char* kCommands =
      "write|latest|range|rules-create|rules-get|rules-list|rules-update|rules-delete|"
      "alerts-list|alerts-watch|silences-create|silences-list|silences-end";
  const std::string usage = std::string("telemetry-cli ") + kCommands + " [flags]";
  auto args = telemetry::InitFlags(argc, argv, usage.c_str());
  if (args.size() < 2) {
    std::fprintf(stderr, "usage: telemetry-cli %s [flags] (see --help)\n", kCommands);
    return 2;
  }
  std::string cmd = args[1];
  std::string auth = "Bearer " + absl::GetFlag(FLAGS_api_key);
  if (IsRulesCommand(cmd)) return Rules(cmd, auth);
  if (IsAlertsCommand(cmd)) return Alerts(cmd, auth);
  if (IsSilencesCommand(cmd)) return Silences(cmd, auth);
  std::vector<std::string> sensors =
      absl::StrSplit(absl::GetFlag(FLAGS_sensors), ',', absl::SkipEmpty());
  const int64_t now = telemetry::SystemClock::Get()->NowNs();
  if (cmd == "write") {
    auto stub = telemetry::v1::IngestService::NewStub(
        grpc::CreateChannel(absl::GetFlag(FLAGS_ingest), Credentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", auth);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    telemetry::v1::WriteRequest req;
    auto* r = req.add_readings();
    r->set_device_id(absl::GetFlag(FLAGS_device));
    r->set_sensor(absl::GetFlag(FLAGS_sensor));
    r->set_timestamp_ns(now);
    r->set_double_value(absl::GetFlag(FLAGS_value));
    r->set_unit(absl::GetFlag(FLAGS_unit));
    telemetry::v1::WriteResponse resp;
    grpc::Status st = stub->Write(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    for (const auto& rej : resp.rejected()) {
      std::printf("rejected #%d %s: %s\n", rej.index(), rej.field().c_str(), rej.reason().c_str());
    }
    std::printf("accepted=%lld\ntoken=%s\n", static_cast<long long>(resp.accepted()),
                resp.consistency_token().c_str());
    return 0;
  }
  auto stub = telemetry::v1::QueryService::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_query), Credentials()));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", auth);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  telemetry::v1::ReadOptions opts;
  telemetry::v1::ConsistencyLevel level;
  if (!telemetry::v1::ConsistencyLevel_Parse(
          "CONSISTENCY_LEVEL_" + absl::AsciiStrToUpper(absl::GetFlag(FLAGS_consistency)), &level) ||
      level == telemetry::v1::CONSISTENCY_LEVEL_UNSPECIFIED) {
    std::fprintf(stderr, "--consistency: strong, eventual or analytics, not '%s'\n",
                 absl::GetFlag(FLAGS_consistency).c_str());
    return 2;
  }
  opts.set_consistency(level);
  opts.set_allow_fallback(absl::GetFlag(FLAGS_allow_fallback));
  opts.set_consistency_token(absl::GetFlag(FLAGS_token));
  if (cmd == "latest") {
    telemetry::v1::LatestRequest req;
    *req.mutable_options() = opts;
    for (absl::string_view d :
         absl::StrSplit(absl::GetFlag(FLAGS_device), ',', absl::SkipEmpty())) {
      req.add_device_ids(std::string(d));
    }
    for (const auto& s : sensors) req.add_sensors(s);
    telemetry::v1::LatestResponse resp;
    grpc::Status st = stub->Latest(&ctx, req, &resp);
    if (!st.ok()) return Fail(st);
    for (const auto& r : resp.readings()) Print(r);
    PrintMetadata(resp.metadata());
    return 0;
  }
  if (cmd == "range") {
    telemetry::v1::RangeRequest req;
    *req.mutable_options() = opts;
    req.set_device_id(absl::GetFlag(FLAGS_device));
    for (const auto& s : sensors) req.add_sensors(s);
    req.set_start_ns(now - absl::GetFlag(FLAGS_from_s) * telemetry::kNsPerSec);
    req.set_end_ns(now - absl::GetFlag(FLAGS_to_s) * telemetry::kNsPerSec + 1);
    req.set_limit(absl::GetFlag(FLAGS_limit));
    auto reader = stub->Range(&ctx, req);
    telemetry::v1::RangeResponse page;
    while (reader->Read(&page)) {
      if (page.has_metadata()) PrintMetadata(page.metadata());
      for (const auto& r : page.readings()) Print(r);
      if (!page.next_cursor().empty())
        std::fprintf(stderr, "next_cursor=%s\n", page.next_cursor().c_str());
    }
    grpc::Status st = reader->Finish();
    if (!st.ok()) return Fail(st);
    return 0;
  }
  std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 2;
}
