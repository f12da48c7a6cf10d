#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/bridge/payload.h"
#include "telemetry/v1/ingest.pb.h"

namespace telemetry::bridge {
namespace {

using telemetry::v1::Reading;

constexpr int64_t kNow = 1'714'564'800'000'000'000;  // 2024-05-01T12:00:00Z

const TopicMatch kDevice{"acme", "meter-1", ""};
const TopicMatch kSensor{"acme", "meter-1", "power_w"};

std::string ErrorsText(const DecodeResult& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.ToString() + "\n";
  return s;
}

DecodeResult MustDecode(const TopicMatch& where, std::string_view payload,
                        PayloadFormat format = PayloadFormat::kAuto) {
  absl::StatusOr<DecodeResult> r = Decode(where, payload, format, kNow);
  EXPECT_TRUE(r.ok()) << r.status() << " for " << payload;
  return r.ok() ? *std::move(r) : DecodeResult{};
}

// Decodes a document whose only metric is "x" and returns its timestamp.
int64_t TimestampOf(const std::string& ts_json) {
  std::string payload = absl::StrCat(R"({"timestamp": )", ts_json, R"(, "metrics": {"x": 1}})");
  DecodeResult r = MustDecode(kDevice, payload);
  EXPECT_EQ(r.error_count, 0u) << ErrorsText(r);
  EXPECT_EQ(r.readings.size(), 1u);
  return r.readings.empty() ? -1 : r.readings[0].timestamp_ns();
}

// The only error of a document with this timestamp.
DecodeError TimestampError(const std::string& ts_json) {
  std::string payload = absl::StrCat(R"({"timestamp": )", ts_json, R"(, "metrics": {"x": 1}})");
  DecodeResult r = MustDecode(kDevice, payload);
  EXPECT_TRUE(r.readings.empty());
  EXPECT_EQ(r.errors.size(), 1u) << ErrorsText(r);
  return r.errors.empty() ? DecodeError{} : r.errors[0];
}

// ---- topic patterns ----

TEST(TopicPattern, DefaultsGiveTheirFiltersAndNames) {
  auto device = TopicPattern::Parse(kDefaultDevicePattern);
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(device->SubscriptionFilter(), "telemetry/+/+");
  EXPECT_FALSE(device->has_sensor());
  EXPECT_EQ(device->Match("telemetry/acme/meter-1"), (TopicMatch{"acme", "meter-1", ""}));

  auto sensor = TopicPattern::Parse(kDefaultSensorPattern);
  ASSERT_TRUE(sensor.ok()) << sensor.status();
  EXPECT_EQ(sensor->SubscriptionFilter(), "telemetry/+/+/+");
  EXPECT_TRUE(sensor->has_sensor());
  EXPECT_EQ(sensor->Match("telemetry/acme/meter-1/power_w"),
            (TopicMatch{"acme", "meter-1", "power_w"}));
}

TEST(TopicPattern, PlaceholdersInAnyOrderAmongLiterals) {
  auto p = TopicPattern::Parse("site/{device}/v1/{tenant}/up");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->SubscriptionFilter(), "site/+/v1/+/up");
  EXPECT_EQ(p->Match("site/d7/v1/t3/up"), (TopicMatch{"t3", "d7", ""}));
  EXPECT_EQ(p->pattern(), "site/{device}/v1/{tenant}/up");
}

TEST(TopicPattern, TopicsThatDoNotFitAreNotMatched) {
  auto p = TopicPattern::Parse(kDefaultDevicePattern);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->Match("telemetry/acme").has_value());            // too few levels
  EXPECT_FALSE(p->Match("telemetry/acme/meter-1/x").has_value());  // too many
  EXPECT_FALSE(p->Match("other/acme/meter-1").has_value());        // another literal
  EXPECT_FALSE(p->Match("Telemetry/acme/meter-1").has_value());    // case matters
  EXPECT_FALSE(p->Match("telemetry//meter-1").has_value());        // empty tenant
  EXPECT_FALSE(p->Match("telemetry/acme/").has_value());           // empty device
  EXPECT_FALSE(p->Match("").has_value());
  EXPECT_FALSE(p->Match("/telemetry/acme/meter-1").has_value());
}

void ExpectBadPattern(std::string_view pattern, std::string_view why) {
  auto p = TopicPattern::Parse(pattern);
  ASSERT_FALSE(p.ok()) << pattern;
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(p.status().message()).find(why), std::string_view::npos)
      << pattern << " -> " << p.status().message();
}

TEST(TopicPattern, MalformedPatternsAreRejectedNamingTheProblem) {
  ExpectBadPattern("", "topic pattern is empty");
  ExpectBadPattern("telemetry/+/{device}", "level 2 \"+\" has an MQTT wildcard");
  ExpectBadPattern("telemetry/{tenant}/{device}/#", "level 4 \"#\" has an MQTT wildcard");
  ExpectBadPattern("telemetry/{tenant}/dev+{device}", "MQTT wildcard");
  ExpectBadPattern("telemetry/{tenant}/dev-{device}",
                   "level 3 \"dev-{device}\": a placeholder must be a whole topic level");
  ExpectBadPattern("telemetry/{tenant}/{device}x", "must be a whole topic level");
  ExpectBadPattern("telemetry/{tenant}{device}", "must be a whole topic level");
  ExpectBadPattern("telemetry/{tenant/{device}", "must be a whole topic level");
  ExpectBadPattern("telemetry/{tenant}/{dev}", "level 3 \"{dev}\": unknown placeholder");
  ExpectBadPattern("telemetry/{tenant}/{}", "unknown placeholder");
  ExpectBadPattern("telemetry/{device}", "has no {tenant} level");
  ExpectBadPattern("telemetry/{tenant}/{sensor}", "has no {device} level");
  ExpectBadPattern("{tenant}/{device}/{device}", "{device} appears more than once");
  ExpectBadPattern("telemetry//{tenant}/{device}", "level 2 is empty");
  ExpectBadPattern("/{tenant}/{device}", "level 1 is empty");
  ExpectBadPattern("{tenant}/{device}/", "level 3 is empty");
  ExpectBadPattern("$SYS/{tenant}/{device}", "starts with '$'");
  ExpectBadPattern(std::string("a\0b/{tenant}/{device}", 21), "NUL");
  ExpectBadPattern(std::string(70000, 'a') + "/{tenant}/{device}", "65535 bytes");
}

TEST(TopicPatterns, DefaultsSubscribeToBothFormsAndMatchEach) {
  TopicPatterns patterns = TopicPatterns::Default();
  EXPECT_EQ(patterns.SubscriptionFilters(),
            (std::vector<std::string>{"telemetry/+/+", "telemetry/+/+/+"}));
  EXPECT_EQ(patterns.Match("telemetry/acme/meter-1"), (TopicMatch{"acme", "meter-1", ""}));
  EXPECT_EQ(patterns.Match("telemetry/acme/meter-1/power_w"),
            (TopicMatch{"acme", "meter-1", "power_w"}));
  EXPECT_FALSE(patterns.Match("telemetry/acme/meter-1/power_w/x").has_value());
}

TEST(TopicPatterns, OverlappingPatternsAreRejected) {
  auto same = TopicPatterns::Parse({"t/{tenant}/{device}", "t/{device}/{tenant}"});
  ASSERT_FALSE(same.ok());
  EXPECT_NE(same.status().message().find("overlap"), std::string_view::npos)
      << same.status().message();
  // a/b/x fits both.
  EXPECT_FALSE(TopicPatterns::Parse({"a/{tenant}/{device}", "{tenant}/b/{device}"}).ok());
  // A literal level that differs keeps them apart.
  EXPECT_TRUE(TopicPatterns::Parse({"a/{tenant}/{device}", "b/{tenant}/{device}"}).ok());
  EXPECT_FALSE(TopicPatterns::Parse({}).ok());
  auto bad = TopicPatterns::Parse({"t/{tenant}/{device}", "t/+/{device}"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("wildcard"), std::string_view::npos);
}

// ---- JSON documents ----

TEST(DecodeJson, DocumentGivesOneReadingPerMetricFromTheTopicsDevice) {
  DecodeResult r = MustDecode(kDevice, R"({
      "device_id": "meter-1",
      "timestamp": "2024-05-01T12:00:00Z",
      "metrics": {"power_w": 12.3, "voltage_v": 230, "relay": true, "mode": "eco"},
      "meta": {"firmware": "1.0.3", "location": "kitchen", "floor": 2, "beta": false,
               "gain": 0.25}})");
  ASSERT_EQ(r.error_count, 0u) << ErrorsText(r);
  ASSERT_EQ(r.readings.size(), 4u);
  // Sorted by metric name.
  EXPECT_EQ(r.readings[0].sensor(), "mode");
  EXPECT_EQ(r.readings[0].string_value(), "eco");
  EXPECT_EQ(r.readings[1].sensor(), "power_w");
  EXPECT_DOUBLE_EQ(r.readings[1].double_value(), 12.3);
  EXPECT_EQ(r.readings[2].sensor(), "relay");
  EXPECT_TRUE(r.readings[2].has_bool_value());
  EXPECT_TRUE(r.readings[2].bool_value());
  EXPECT_EQ(r.readings[3].sensor(), "voltage_v");
  EXPECT_EQ(r.readings[3].double_value(), 230);
  for (const Reading& reading : r.readings) {
    EXPECT_EQ(reading.device_id(), "meter-1");
    EXPECT_EQ(reading.timestamp_ns(), kNow);
    EXPECT_EQ(reading.status_code(), 0);
    EXPECT_EQ(reading.unit(), "");
    ASSERT_EQ(reading.labels_size(), 5);
    EXPECT_EQ(reading.labels().at("firmware"), "1.0.3");
    EXPECT_EQ(reading.labels().at("location"), "kitchen");
    EXPECT_EQ(reading.labels().at("floor"), "2");
    EXPECT_EQ(reading.labels().at("beta"), "false");
    EXPECT_EQ(reading.labels().at("gain"), "0.25");
  }
}

TEST(DecodeJson, MetricObjectFormCarriesUnitAndStatus) {
  DecodeResult r =
      MustDecode(kDevice, R"({"metrics": {"power_w": {"value": 12.5, "unit": "W", "status": 3},
                                "door": {"value": false}, "mode": {"value": "eco", "unit": ""}}})");
  ASSERT_EQ(r.error_count, 0u) << ErrorsText(r);
  ASSERT_EQ(r.readings.size(), 3u);
  EXPECT_EQ(r.readings[0].sensor(), "door");
  EXPECT_TRUE(r.readings[0].has_bool_value());
  EXPECT_FALSE(r.readings[0].bool_value());
  EXPECT_EQ(r.readings[1].string_value(), "eco");
  EXPECT_EQ(r.readings[2].sensor(), "power_w");
  EXPECT_EQ(r.readings[2].double_value(), 12.5);
  EXPECT_EQ(r.readings[2].unit(), "W");
  EXPECT_EQ(r.readings[2].status_code(), 3);
}

TEST(DecodeJson, MissingTimestampIsNow) {
  DecodeResult r = MustDecode(kDevice, R"({"metrics": {"t": 21.5}})");
  ASSERT_EQ(r.readings.size(), 1u);
  EXPECT_EQ(r.readings[0].timestamp_ns(), kNow);
  EXPECT_EQ(r.readings[0].device_id(), "meter-1");
  EXPECT_EQ(r.readings[0].labels_size(), 0);
}

TEST(DecodeJson, BadMetricCostsOnlyItsOwnReading) {
  DecodeResult r =
      MustDecode(kDevice,
                 R"({"metrics": {"a": 1, "power_w": null, "list": [1], "obj": {"unit": "W"},
                      "st": {"value": 1, "status": 1.5}, "u": {"value": 1, "unit": 5},
                      "big": {"value": 1, "status": 3000000000},
                      "extra": {"quality": "good"}, "nested": {"value": {"v": 1}}}})");
  ASSERT_EQ(r.readings.size(), 1u);
  EXPECT_EQ(r.readings[0].sensor(), "a");
  ASSERT_EQ(r.error_count, 9u) << ErrorsText(r);
  std::vector<std::string> got;
  for (const auto& e : r.errors) got.push_back(e.ToString());
  EXPECT_EQ(got, (std::vector<std::string>{
                     "metrics.big.status: must be an integer from -2147483648 to 2147483647",
                     "metrics.extra.quality: unknown field (a metric object has value, unit and "
                     "status)",
                     "metrics.extra.value: required",
                     "metrics.list: value must be a number, string or boolean, not an array",
                     "metrics.nested.value: value must be a number, string or boolean, not an "
                     "object",
                     "metrics.obj.value: required",
                     "metrics.power_w: value must be a number, string or boolean, not null",
                     "metrics.st.status: must be an integer from -2147483648 to 2147483647",
                     "metrics.u.unit: must be a string, not a number",
                 }));
}

TEST(DecodeJson, PayloadDeviceMustBeTheTopicsDevice) {
  DecodeResult r = MustDecode(kDevice, R"({"device_id": "meter-2", "metrics": {"x": 1}})");
  EXPECT_TRUE(r.readings.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].field, "device_id");
  EXPECT_EQ(r.errors[0].reason, R"("meter-2" does not match the topic's device "meter-1")");

  r = MustDecode(kDevice, R"({"device_id": 7, "metrics": {"x": 1}})");
  EXPECT_TRUE(r.readings.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(), "device_id: must be a string, not a number");
}

TEST(DecodeJson, DocumentLevelErrorsCostTheDocumentAndAreAllReported) {
  DecodeResult r = MustDecode(
      kDevice,
      R"({"ts": 5, "timestamp": true, "meta": {"ok": "x", "bad": [1]}, "metrics": {"x": 1}})");
  EXPECT_TRUE(r.readings.empty());
  std::vector<std::string> fields;
  for (const auto& e : r.errors) fields.push_back(e.field);
  EXPECT_EQ(fields, (std::vector<std::string>{"ts", "timestamp", "meta.bad"})) << ErrorsText(r);
  EXPECT_EQ(r.errors[0].reason,
            "unknown field (a document has device_id, timestamp, metrics and meta)");
  EXPECT_EQ(r.errors[1].reason, "must be an RFC 3339 string or an epoch number, not a boolean");
  EXPECT_EQ(r.errors[2].reason, "must be a string, number or boolean, not an array");

  r = MustDecode(kDevice, R"({"meta": "kitchen", "metrics": {"x": 1}})");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(), "meta: must be an object of label to value, not a string");
}

TEST(DecodeJson, MissingOrEmptyMetricsIsAnError) {
  DecodeResult r = MustDecode(kDevice, R"({"metrics": {}})");
  EXPECT_TRUE(r.readings.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(), "metrics: has no metrics");

  r = MustDecode(kDevice, R"({"timestamp": 1714564800})");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(), "metrics: required");

  r = MustDecode(kDevice, R"({"metrics": [1, 2]})");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(),
            "metrics: must be an object of metric name to value, not an array");
}

TEST(DecodeJson, ArrayOfDocumentsFromAGateway) {
  DecodeResult r = MustDecode(kDevice, R"( [
      {"timestamp": 1714564800, "metrics": {"a": 1}},
      {"timestamp": 1714564801, "metrics": {"a": 2, "b": 3}},
      {"device_id": "other", "metrics": {"a": 4}},
      5,
      {"timestamp": 1714564802, "metrics": {"a": 6}}] )");
  ASSERT_EQ(r.readings.size(), 4u) << ErrorsText(r);
  EXPECT_EQ(r.readings[0].timestamp_ns(), kNow);
  EXPECT_EQ(r.readings[0].double_value(), 1);
  EXPECT_EQ(r.readings[1].timestamp_ns(), kNow + 1'000'000'000);
  EXPECT_EQ(r.readings[2].sensor(), "b");
  EXPECT_EQ(r.readings[3].double_value(), 6);
  EXPECT_EQ(r.readings[3].timestamp_ns(), kNow + 2'000'000'000);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].field, "[2].device_id");
  EXPECT_EQ(r.errors[0].reason, R"("other" does not match the topic's device "meter-1")");
  EXPECT_EQ(r.errors[1].ToString(), "[3]: must be an object (a document), not a number");

  r = MustDecode(kDevice, R"([{"metrics": {"a": null}}])");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].field, "[0].metrics.a");
}

void ExpectInvalid(const TopicMatch& where, std::string_view payload, std::string_view message,
                   PayloadFormat format = PayloadFormat::kAuto,
                   const DecodeLimits& limits = DecodeLimits{}) {
  absl::StatusOr<DecodeResult> r = Decode(where, payload, format, kNow, limits);
  ASSERT_FALSE(r.ok()) << payload;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(r.status().message()), message);
}

// The parser's own words follow "not valid JSON: "; the test pins the prefix
// and the gist, not protobuf's exact wording.
void ExpectNotJson(const TopicMatch& where, std::string_view payload, std::string_view gist,
                   PayloadFormat format = PayloadFormat::kAuto) {
  absl::StatusOr<DecodeResult> r = Decode(where, payload, format, kNow);
  ASSERT_FALSE(r.ok()) << payload;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind("payload: not valid JSON: ", 0), 0u) << r.status();
  EXPECT_NE(std::string(r.status().message()).find(gist), std::string_view::npos) << r.status();
  EXPECT_EQ(r.status().message().find('\n'), std::string_view::npos) << r.status();
}

TEST(DecodeJson, UnreadableMessagesAreRefusedWithTheReason) {
  ExpectNotJson(kDevice, R"({"metrics": {"a": 1})", "unexpected end of input");
  ExpectNotJson(kDevice, R"({"metrics": {"a": 1}} x)", "text after the JSON value");
  ExpectNotJson(kDevice, R"({"metrics": {"a": NaN}})", "unexpected token");
  ExpectNotJson(kDevice, R"({"metrics": {"a": 1, "a": 2}})", "repeated key 'a'");
  ExpectNotJson(kDevice, "{\"metrics\": {\"a\": \"\xff\"}}", "not UTF-8");
  ExpectInvalid(kDevice, "[]", "payload: the array is empty");
  ExpectInvalid(kDevice, "12.5",
                "payload: a JSON document must be an object or an array of objects, not a number",
                PayloadFormat::kJson);
  ExpectInvalid(kDevice, "", "payload: empty");
}

TEST(DecodeJson, DeeplyNestedJsonIsRefusedNotACrash) {
  std::string deep(100'000, '[');
  absl::StatusOr<DecodeResult> r = Decode(kDevice, deep, PayloadFormat::kAuto, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not valid JSON"), std::string_view::npos)
      << r.status().message();
}

// ---- timestamps ----

TEST(DecodeTimestamp, Rfc3339WithZOffsetAndFraction) {
  EXPECT_EQ(TimestampOf(R"("2024-05-01T12:00:00Z")"), kNow);
  EXPECT_EQ(TimestampOf(R"("2024-05-01t12:00:00z")"), kNow);
  EXPECT_EQ(TimestampOf(R"("2024-05-01 12:00:00Z")"), kNow);
  EXPECT_EQ(TimestampOf(R"("2024-05-01T14:00:00+02:00")"), kNow);
  EXPECT_EQ(TimestampOf(R"("2024-05-01T09:30:00-02:30")"), kNow);
  EXPECT_EQ(TimestampOf(R"("2024-05-01T12:00:00.5Z")"), kNow + 500'000'000);
  EXPECT_EQ(TimestampOf(R"("2024-05-01T14:00:00.123456789+02:00")"), kNow + 123'456'789);
  // Beyond nanoseconds: truncated.
  EXPECT_EQ(TimestampOf(R"("2024-05-01T12:00:00.1234567899Z")"), kNow + 123'456'789);
}

TEST(DecodeTimestamp, EpochUnitFollowsMagnitude) {
  EXPECT_EQ(TimestampOf("1714564800"), kNow);                         // s
  EXPECT_EQ(TimestampOf("1714564800.25"), kNow + 250'000'000);        // fractional s
  EXPECT_EQ(TimestampOf("1714564800123"), kNow + 123'000'000);        // ms
  EXPECT_EQ(TimestampOf("1714564800123.5"), kNow + 123'500'000);      // fractional ms
  EXPECT_EQ(TimestampOf("1714564800123456"), kNow + 123'456'000);     // µs
  EXPECT_EQ(TimestampOf("1714564800123456768"), kNow + 123'456'768);  // ns (exact double)
  // The band edges: 1e11 is milliseconds, below it seconds (which int64
  // nanoseconds hold only up to 9223372036 s, see UnusableTimestamps...).
  EXPECT_EQ(TimestampOf("9000000000"), 9'000'000'000LL * 1'000'000'000);
  EXPECT_EQ(TimestampOf("100000000000"), 100'000'000'000LL * 1'000'000);
  EXPECT_EQ(TimestampOf("100000000000000"), 100'000'000'000'000LL * 1'000);
  EXPECT_EQ(TimestampOf("100000000000000000"), 100'000'000'000'000'000LL);
}

TEST(DecodeTimestamp, DecimalStringsAreExact) {
  // As a JSON number this would round to a multiple of 256 ns.
  EXPECT_EQ(TimestampOf(R"("1714564800123456789")"), kNow + 123'456'789);
  EXPECT_EQ(TimestampOf(R"("1714564800.123456789")"), kNow + 123'456'789);
  EXPECT_EQ(TimestampOf(R"("1714564800123.456789")"), kNow + 123'456'789);
  EXPECT_EQ(TimestampOf(R"("1714564800123456.789")"), kNow + 123'456'789);
  EXPECT_EQ(TimestampOf(R"("1714564800")"), kNow);
}

TEST(DecodeTimestamp, UnusableTimestampsNameTheReason) {
  DecodeError e = TimestampError(R"("2024-05-01T12:00:00")");
  EXPECT_EQ(e.field, "timestamp");
  EXPECT_EQ(e.reason, R"("2024-05-01T12:00:00" has no UTC offset: add Z or +hh:mm / -hh:mm)");
  e = TimestampError(R"("yesterday")");
  EXPECT_EQ(e.field, "timestamp");
  EXPECT_NE(e.reason.find(R"("yesterday" is neither an RFC 3339 time)"), std::string::npos)
      << e.reason;
  EXPECT_NE(TimestampError(R"("2024-02-30T00:00:00Z")").reason.find("neither"), std::string::npos);
  EXPECT_NE(TimestampError(R"("9999-01-01T00:00:00Z")").reason.find("outside the range"),
            std::string::npos);
  EXPECT_NE(TimestampError("1e19").reason.find("outside the range"), std::string::npos);
  EXPECT_NE(TimestampError("99999999999").reason.find("outside the range"), std::string::npos);
  EXPECT_NE(TimestampError(R"("9300000000")").reason.find("outside the range"), std::string::npos);
  EXPECT_NE(TimestampError(R"("99999999999999999999")").reason.find("outside the range"),
            std::string::npos);
  EXPECT_NE(TimestampError(R"("9223372036854775808")").reason.find("outside the range"),
            std::string::npos);
  // Text from the payload is escaped and cut in an error.
  EXPECT_EQ(TimestampError("\"" + std::string(100, 'x') + "\"").reason,
            "\"" + std::string(64, 'x') +
                "\"... is neither an RFC 3339 time "
                "(2024-05-01T12:00:00.5Z, 2024-05-01T14:00:00+02:00) nor an epoch number");
  EXPECT_EQ(TimestampError(R"("bad\ttime")").reason.substr(0, 12), R"("bad\ttime" )");
  EXPECT_EQ(TimestampError("null").reason,
            "must be an RFC 3339 string or an epoch number, not null");
}

// ---- single values ----

TEST(DecodeSingle, PlainValuesTakeTheTopicsSensorAndNow) {
  DecodeResult r = MustDecode(kSensor, " 12.5\n");
  ASSERT_EQ(r.readings.size(), 1u) << ErrorsText(r);
  EXPECT_EQ(r.readings[0].device_id(), "meter-1");
  EXPECT_EQ(r.readings[0].sensor(), "power_w");
  EXPECT_EQ(r.readings[0].timestamp_ns(), kNow);
  EXPECT_EQ(r.readings[0].double_value(), 12.5);

  r = MustDecode(kSensor, "true");
  ASSERT_EQ(r.readings.size(), 1u);
  EXPECT_TRUE(r.readings[0].has_bool_value());
  EXPECT_TRUE(r.readings[0].bool_value());

  r = MustDecode(kSensor, "false");
  ASSERT_EQ(r.readings.size(), 1u);
  EXPECT_TRUE(r.readings[0].has_bool_value());
  EXPECT_FALSE(r.readings[0].bool_value());

  r = MustDecode(kSensor, R"("on")");
  ASSERT_EQ(r.readings.size(), 1u);
  EXPECT_EQ(r.readings[0].string_value(), "on");

  r = MustDecode(kSensor, "-3");
  ASSERT_EQ(r.readings.size(), 1u);
  EXPECT_EQ(r.readings[0].double_value(), -3);
}

TEST(DecodeSingle, ObjectFormWithTimestampUnitStatusAndMeta) {
  DecodeResult r = MustDecode(kSensor, R"({"value": 7, "timestamp": "2024-05-01T12:00:01Z",
      "unit": "W", "status": -2, "meta": {"fw": "2"}, "device_id": "meter-1"})");
  ASSERT_EQ(r.readings.size(), 1u) << ErrorsText(r);
  const Reading& got = r.readings[0];
  EXPECT_EQ(got.sensor(), "power_w");
  EXPECT_EQ(got.double_value(), 7);
  EXPECT_EQ(got.timestamp_ns(), kNow + 1'000'000'000);
  EXPECT_EQ(got.unit(), "W");
  EXPECT_EQ(got.status_code(), -2);
  EXPECT_EQ(got.labels().at("fw"), "2");

  r = MustDecode(kSensor, R"({"value": true})");
  ASSERT_EQ(r.readings.size(), 1u);
  EXPECT_TRUE(r.readings[0].bool_value());
  EXPECT_EQ(r.readings[0].timestamp_ns(), kNow);
}

TEST(DecodeSingle, ErrorsNameTheField) {
  DecodeResult r = MustDecode(kSensor, "null");
  EXPECT_TRUE(r.readings.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(), "value: value must be a number, string or boolean, not null");

  r = MustDecode(kSensor, R"({"timestamp": 1714564800})");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(), "value: required");

  r = MustDecode(kSensor, R"({"value": 1, "device_id": "meter-9", "metrics": {}})");
  EXPECT_TRUE(r.readings.empty());
  std::vector<std::string> fields;
  for (const auto& e : r.errors) fields.push_back(e.field);
  EXPECT_EQ(fields, (std::vector<std::string>{"metrics", "device_id"})) << ErrorsText(r);

  ExpectInvalid(kSensor, "[1, 2]",
                "payload: an array is not one value; publish batches to the device topic");
  ExpectNotJson(kSensor, "ON", "unexpected token");
  ExpectNotJson(kSensor, "12,5", "text after the JSON value");
  ExpectInvalid(kDevice, "1", "payload: the single-value form needs a topic pattern with {sensor}",
                PayloadFormat::kSingleValue);
}

TEST(DecodeSingle, DocumentOnASensorTopicMustBeForThatSensor) {
  DecodeResult r =
      MustDecode(kSensor, R"({"metrics": {"power_w": 1, "voltage_v": 2}})", PayloadFormat::kJson);
  ASSERT_EQ(r.readings.size(), 1u);
  EXPECT_EQ(r.readings[0].sensor(), "power_w");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(),
            R"(metrics.voltage_v: "voltage_v" does not match the topic's sensor "power_w")");
}

// ---- protobuf ----

std::string Serialized(const std::vector<Reading>& readings) {
  telemetry::v1::WriteRequest req;
  for (const Reading& r : readings) *req.add_readings() = r;
  return req.SerializeAsString();
}

Reading Make(std::string device, std::string sensor, double v) {
  Reading r;
  r.set_device_id(std::move(device));
  r.set_sensor(std::move(sensor));
  r.set_timestamp_ns(kNow);
  r.set_double_value(v);
  return r;
}

TEST(DecodeProtobuf, ReadingsKeepTheirFieldsAndGetTheTopicsDevice) {
  Reading full = Make("meter-1", "power_w", 1.5);
  full.set_unit("W");
  full.set_status_code(4);
  (*full.mutable_labels())["fw"] = "1";
  Reading anonymous = Make("", "voltage_v", 230);
  Reading other = Make("meter-2", "power_w", 9);
  DecodeResult r = MustDecode(kDevice, Serialized({full, anonymous, other}));
  ASSERT_EQ(r.readings.size(), 2u);
  EXPECT_EQ(r.readings[0].SerializeAsString(), full.SerializeAsString());
  EXPECT_EQ(r.readings[1].device_id(), "meter-1");
  EXPECT_EQ(r.readings[1].sensor(), "voltage_v");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].field, "readings[2].device_id");
  EXPECT_EQ(r.errors[0].reason, R"("meter-2" does not match the topic's device "meter-1")");
}

TEST(DecodeProtobuf, OnASensorTopicTheSensorIsFilledOrChecked) {
  DecodeResult r = MustDecode(kSensor, Serialized({Make("", "", 1), Make("", "other", 2)}),
                              PayloadFormat::kProtobuf);
  ASSERT_EQ(r.readings.size(), 1u);
  EXPECT_EQ(r.readings[0].sensor(), "power_w");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].field, "readings[1].sensor");
}

TEST(DecodeProtobuf, GarbageAndEmptyRequestsAreRefused) {
  ExpectInvalid(kDevice, "\x0a\x05\x0a\x01", "payload: not a serialized telemetry.v1.WriteRequest");
  ExpectInvalid(kDevice, "12.5", "payload: not a serialized telemetry.v1.WriteRequest");
  // Parses (an unknown field 2), but holds nothing.
  ExpectInvalid(kDevice, std::string("\x10\x01", 2), "payload: the WriteRequest has no readings");
}

// ---- format selection and limits ----

TEST(DecodeFormat, AutoPicksByTopicThenFirstByte) {
  // A sensor topic: an object is the single-value object form.
  DecodeResult r = MustDecode(kSensor, R"({"value": 1})");
  ASSERT_EQ(r.readings.size(), 1u) << ErrorsText(r);
  // Leading whitespace before '{' still means JSON.
  r = MustDecode(kDevice, " \r\n\t{\"metrics\": {\"a\": 1}}");
  ASSERT_EQ(r.readings.size(), 1u) << ErrorsText(r);
  // Anything else on a device topic is protobuf.
  r = MustDecode(kDevice, Serialized({Make("", "a", 1)}));
  ASSERT_EQ(r.readings.size(), 1u);
  // Forced JSON on a payload that is not.
  ExpectNotJson(kDevice, Serialized({Make("", "a", 1)}), "", PayloadFormat::kJson);
}

// A reading whose serialized size is `size` bytes (its unit pads it).
Reading OfSize(int size) {
  Reading r = Make("", "a", 1);
  r.set_unit(std::string(static_cast<size_t>(size), 'u'));
  while (r.ByteSizeLong() > static_cast<size_t>(size)) r.mutable_unit()->pop_back();
  return r;
}

TEST(DecodeFormat, ProtobufThatStartsLikeJsonAfterANewlineIsStillProtobuf) {
  for (int size : {91, 123}) {
    Reading first = OfSize(size);
    ASSERT_EQ(first.ByteSizeLong(), static_cast<size_t>(size));
    std::string payload = Serialized({first, Make("", "b", 2)});
    ASSERT_EQ(payload[0], '\n');
    ASSERT_EQ(payload[1], size == 91 ? '[' : '{');
    DecodeResult r = MustDecode(kDevice, payload);
    ASSERT_EQ(r.readings.size(), 2u) << ErrorsText(r);
    EXPECT_EQ(r.readings[0].unit(), first.unit());
    EXPECT_EQ(r.readings[1].sensor(), "b");
  }
  // JSON after a newline is JSON.
  DecodeResult r = MustDecode(kDevice, "\n{\"metrics\": {\"a\": 1}}");
  ASSERT_EQ(r.readings.size(), 1u) << ErrorsText(r);
  EXPECT_EQ(r.readings[0].sensor(), "a");
  // Neither: the JSON reason, and that it is no WriteRequest either.
  ExpectNotJson(kDevice, "\n{\"metrics\": ", "nor is it a serialized telemetry.v1.WriteRequest");
}

TEST(DecodeFormat, NamesRoundTrip) {
  for (PayloadFormat f : {PayloadFormat::kAuto, PayloadFormat::kJson, PayloadFormat::kSingleValue,
                          PayloadFormat::kProtobuf}) {
    auto parsed = ParsePayloadFormat(PayloadFormatName(f));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, f);
  }
  auto bad = ParsePayloadFormat("xml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), R"(unknown payload format "xml" (known: auto, json, single, )"
                                    R"(protobuf))");
}

TEST(DecodeLimits, PayloadSizeIsBoundedBeforeParsing) {
  std::string big = R"({"metrics": {"a": ")" + std::string(256 << 10, 'x') + R"("}})";
  ExpectInvalid(kDevice, big,
                absl::StrCat("payload: ", big.size(),
                             " bytes is more than the limit of 262144 "
                             "bytes"));
  DecodeLimits small;
  small.max_payload_bytes = 10;
  ExpectInvalid(kDevice, R"({"metrics": {"a": 1}})",
                "payload: 21 bytes is more than the limit of 10 bytes", PayloadFormat::kAuto,
                small);
  // Exactly at the limit is fine.
  small.max_payload_bytes = 21;
  EXPECT_TRUE(Decode(kDevice, R"({"metrics": {"a": 1}})", PayloadFormat::kAuto, kNow, small).ok());
}

TEST(DecodeLimits, ReadingsPerMessageAreBounded) {
  DecodeLimits limits;
  limits.max_readings = 3;
  ExpectInvalid(kDevice, R"({"metrics": {"a": 1, "b": 2, "c": 3, "d": 4}})",
                "payload: more than 3 readings in one message", PayloadFormat::kAuto, limits);
  ExpectInvalid(kDevice, R"([{"metrics": {"a": 1, "b": 2}}, {"metrics": {"a": 1, "b": 2}}])",
                "payload: more than 3 readings in one message", PayloadFormat::kAuto, limits);
  ExpectInvalid(
      kDevice, Serialized({Make("", "a", 1), Make("", "b", 1), Make("", "c", 1), Make("", "d", 1)}),
      "payload: more than 3 readings in one message", PayloadFormat::kAuto, limits);
  absl::StatusOr<DecodeResult> r = Decode(kDevice, R"({"metrics": {"a": 1, "b": 2, "c": 3}})",
                                          PayloadFormat::kAuto, kNow, limits);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->readings.size(), 3u);

  // The default: 10,000.
  std::string many = "{\"metrics\": {";
  for (int i = 0; i <= 10'000; ++i) absl::StrAppend(&many, i ? "," : "", "\"m", i, "\": 1");
  many += "}}";
  ExpectInvalid(kDevice, many, "payload: more than 10000 readings in one message");
}

TEST(DecodeLimits, ErrorsBeyondTheLimitAreCountedNotKept) {
  DecodeLimits limits;
  limits.max_errors = 2;
  absl::StatusOr<DecodeResult> r =
      Decode(kDevice, R"({"metrics": {"a": null, "b": null, "c": null, "d": 1}})",
             PayloadFormat::kAuto, kNow, limits);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->readings.size(), 1u);
  EXPECT_EQ(r->errors.size(), 2u);
  EXPECT_EQ(r->error_count, 3u);
}

// Mutated payloads (a fuzzer's first step): every outcome is a status or
// readings of the topic's device, never a crash (the sanitizer build runs
// this too) and never another device.
TEST(DecodeFuzz, MutatedPayloadsNeverEscapeTheTopicsDevice) {
  const std::vector<std::string> seeds = {
      R"({"device_id": "meter-1", "timestamp": "2024-05-01T12:00:00.5+02:00",
          "metrics": {"p": 1.5, "q": {"value": "x", "unit": "W", "status": 2}, "r": true},
          "meta": {"fw": "1", "n": 2}})",
      R"([{"timestamp": 1714564800123, "metrics": {"a": 1}}, {"metrics": {"b": false}}])",
      R"({"value": 12, "timestamp": "1714564800.5"})",
      Serialized({Make("meter-1", "a", 1), Make("", "b", 2)}),
  };
  std::mt19937 rng(18);
  const std::string alphabet = "{}[]\":,.0123456789eE+-tfnul \\xZT";
  int decoded = 0;
  for (int round = 0; round < 20'000; ++round) {
    std::string p = seeds[round % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !p.empty(); ++e) {
      size_t at = rng() % p.size();
      switch (rng() % 3) {
        case 0:
          p[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          p.erase(at, 1 + rng() % 3);
          break;
        default:
          p.insert(at, 1, static_cast<char>(rng() % 256));
          break;
      }
    }
    for (const TopicMatch& where : {kDevice, kSensor}) {
      absl::StatusOr<DecodeResult> r = Decode(where, p, PayloadFormat::kAuto, kNow);
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
        continue;
      }
      ++decoded;
      for (const Reading& reading : r->readings) {
        ASSERT_EQ(reading.device_id(), "meter-1") << p;
        if (!where.sensor.empty()) {
          ASSERT_EQ(reading.sensor(), where.sensor) << p;
        }
      }
      EXPECT_LE(r->errors.size(), r->error_count);
    }
  }
  EXPECT_GT(decoded, 1000);  // the mutations leave many payloads decodable
}

}  // namespace
}  // namespace telemetry::bridge
