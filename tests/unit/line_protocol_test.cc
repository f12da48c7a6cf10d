#include "services/ingest/line_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace telemetry::lineproto {
namespace {

struct Parsed {
  std::vector<Point> points;
  std::vector<std::pair<int64_t, std::string>> errors;  // line, message
  std::vector<int64_t> point_lines;
};

Parsed ParseAll(absl::string_view body) {
  Parsed out;
  Parser parser(body);
  Point p;
  std::string error;
  while (true) {
    auto r = parser.Next(&p, &error);
    if (r == Parser::Result::kEnd) break;
    if (r == Parser::Result::kError) {
      out.errors.emplace_back(parser.line_number(), error);
    } else {
      out.points.push_back(p);
      out.point_lines.push_back(parser.line_number());
    }
  }
  return out;
}

TEST(LineProtocolTest, ParsesTagsEveryFieldTypeAndTimestamp) {
  auto r = ParseAll(
      "weather,location=us-midwest,season=summer temperature=82,humidity=71i,count=3u,"
      "ok=true,note=\"hot day\" 1465839830100400200\n");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].second;
  ASSERT_EQ(r.points.size(), 1u);
  const Point& p = r.points[0];
  EXPECT_EQ(p.measurement, "weather");
  ASSERT_EQ(p.tags.size(), 2u);
  EXPECT_EQ(p.tags[1], (std::pair<std::string, std::string>("season", "summer")));
  ASSERT_EQ(p.fields.size(), 5u);
  EXPECT_EQ(p.fields[0].second.type, FieldType::kFloat);
  EXPECT_EQ(p.fields[0].second.f, 82.0);
  EXPECT_EQ(p.fields[1].second.type, FieldType::kInteger);
  EXPECT_EQ(p.fields[1].second.i, 71);
  EXPECT_EQ(p.fields[2].second.type, FieldType::kUnsigned);
  EXPECT_EQ(p.fields[2].second.u, 3u);
  EXPECT_EQ(p.fields[3].second.type, FieldType::kBoolean);
  EXPECT_TRUE(p.fields[3].second.b);
  EXPECT_EQ(p.fields[4].second.type, FieldType::kString);
  EXPECT_EQ(p.fields[4].second.s, "hot day");
  EXPECT_TRUE(p.has_timestamp);
  EXPECT_EQ(p.timestamp, 1465839830100400200);
}

TEST(LineProtocolTest, EscapesInNamesAndStrings) {
  auto r = ParseAll(R"(my\ meas\,ure,tag\ key\=x=tag\,val\=ue field\ k="say \"hi\" \\ c:\path" 1)");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].second;
  ASSERT_EQ(r.points.size(), 1u);
  const Point& p = r.points[0];
  EXPECT_EQ(p.measurement, "my meas,ure");
  EXPECT_EQ(p.tags[0].first, "tag key=x");
  EXPECT_EQ(p.tags[0].second, "tag,val=ue");
  EXPECT_EQ(p.fields[0].first, "field k");
  // \" and \\ are escapes; any other backslash is literal.
  EXPECT_EQ(p.fields[0].second.s, R"(say "hi" \ c:\path)");
}

TEST(LineProtocolTest, CommentsBlankLinesLeadingWhitespaceAndCrlf) {
  auto r =
      ParseAll("# a comment\r\n\r\n   \t cpu v=1 10\r\n\n# another\ncpu v=2 20\r\n   \ncpu v=3");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].second;
  ASSERT_EQ(r.points.size(), 3u);
  EXPECT_EQ(r.point_lines, (std::vector<int64_t>{3, 6, 8}));
  EXPECT_EQ(r.points[1].timestamp, 20);
  EXPECT_FALSE(r.points[2].has_timestamp);
}

TEST(LineProtocolTest, StringsMaySpanLinesAndLineNumbersFollow) {
  auto r = ParseAll("log msg=\"one\ntwo\" 5\ncpu v=1 6\ncpu v= 7\n");
  ASSERT_EQ(r.points.size(), 2u);
  EXPECT_EQ(r.points[0].fields[0].second.s, "one\ntwo");
  EXPECT_EQ(r.point_lines[1], 3);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].first, 4);
}

TEST(LineProtocolTest, MalformedLinesAreReportedAndSkipped) {
  struct Case {
    const char* line;
    const char* error;
  } cases[] = {
      {"cpu", "missing fields"},
      {"cpu ", "missing fields"},
      {"cpu,host v=1", "missing tag value of tag 'host'"},
      {"cpu,host= v=1", "missing tag value of tag 'host'"},
      {"cpu v", "missing value of field 'v'"},
      {"cpu v=", "field 'v': missing field value"},
      {"cpu v=1.2.3", "invalid float value '1.2.3'"},
      {"cpu v=nan", "invalid field value 'nan'"},
      {"cpu v=inf", "invalid field value 'inf'"},
      {"cpu v=0x10", "invalid field value '0x10'"},
      {"cpu v=abc", "invalid field value 'abc'"},
      {"cpu v=12i3", "invalid field value '12i3'"},
      {"cpu v=99999999999999999999i", "out of range"},
      {"cpu v=-1u", "negative"},
      {"cpu v=\"a\"b", "unexpected text after the string value"},
      {"cpu v=1 12x", "invalid timestamp '12x'"},
      {"cpu v=1 12 13", "unexpected text after the timestamp"},
      {",t=1 v=1", "missing measurement"},
      {"cpu =1", "missing field key"},
  };
  for (const auto& c : cases) {
    auto r = ParseAll(std::string(c.line) + "\ncpu ok=1 1\n");
    ASSERT_EQ(r.errors.size(), 1u) << c.line;
    EXPECT_NE(r.errors[0].second.find(c.error), std::string::npos)
        << c.line << " -> " << r.errors[0].second;
    EXPECT_EQ(r.errors[0].first, 1) << c.line;
    // The next line still parses.
    ASSERT_EQ(r.points.size(), 1u) << c.line;
    EXPECT_EQ(r.point_lines[0], 2) << c.line;
  }
  // A string may hold newlines, so an unclosed one runs to the end of the body.
  auto r = ParseAll("cpu v=\"open\ncpu ok=1 1\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].second.find("unterminated string value of field 'v'"), std::string::npos);
  EXPECT_TRUE(r.points.empty());
}

TEST(LineProtocolTest, BooleansAndNumbersForms) {
  auto r = ParseAll(
      "m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE\n"
      "m x=-1.5,y=1e3,z=.5,w=-0i,u=18446744073709551615u\n");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].second;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(r.points[0].fields[i].second.type, FieldType::kBoolean);
    EXPECT_EQ(r.points[0].fields[i].second.b, i < 5);
  }
  EXPECT_EQ(r.points[1].fields[0].second.f, -1.5);
  EXPECT_EQ(r.points[1].fields[1].second.f, 1000);
  EXPECT_EQ(r.points[1].fields[2].second.f, 0.5);
  EXPECT_EQ(r.points[1].fields[4].second.u, 18446744073709551615u);
}

TEST(LineProtocolTest, DuplicateFieldKeepsTheLastValue) {
  auto r = ParseAll("m v=1,w=2,v=3\n");
  ASSERT_EQ(r.points.size(), 1u);
  ASSERT_EQ(r.points[0].fields.size(), 2u);
  EXPECT_EQ(r.points[0].fields[0].second.f, 3);
}

TEST(LineProtocolTest, Precisions) {
  EXPECT_EQ(*PrecisionMultiplier(""), 1);
  EXPECT_EQ(*PrecisionMultiplier("ns"), 1);
  EXPECT_EQ(*PrecisionMultiplier("n"), 1);
  EXPECT_EQ(*PrecisionMultiplier("u"), 1000);
  EXPECT_EQ(*PrecisionMultiplier("us"), 1000);
  EXPECT_EQ(*PrecisionMultiplier("ms"), 1000000);
  EXPECT_EQ(*PrecisionMultiplier("s"), 1000000000);
  EXPECT_EQ(*PrecisionMultiplier("m"), 60000000000);
  EXPECT_EQ(*PrecisionMultiplier("h"), 3600000000000);
  auto bad = PrecisionMultiplier("d");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("precision: 'd'"), std::string::npos);
}

google::protobuf::RepeatedPtrField<telemetry::v1::Reading> Map(absl::string_view line,
                                                               MappingOptions o = {}) {
  auto r = ParseAll(line);
  EXPECT_EQ(r.points.size(), 1u);
  google::protobuf::RepeatedPtrField<telemetry::v1::Reading> out;
  EXPECT_TRUE(AppendReadings(r.points.at(0), o, &out).ok());
  return out;
}

TEST(LineProtocolMappingTest, DeviceIsMeasurementAndSortedTagsEachFieldASensor) {
  MappingOptions o;
  o.precision_ns = 1'000'000'000;
  auto rs =
      Map("cpu,host=a,cpu=cpu0 usage_idle=90,usage_user=2i,up=true,state=\"ok\" 1700000000", o);
  ASSERT_EQ(rs.size(), 4);
  for (const auto& r : rs) {
    EXPECT_EQ(r.device_id(), "cpu/cpu:cpu0/host:a");
    EXPECT_EQ(r.timestamp_ns(), 1700000000LL * 1'000'000'000);
    EXPECT_EQ(r.labels().at("host"), "a");
    EXPECT_EQ(r.labels().at("cpu"), "cpu0");
  }
  EXPECT_EQ(rs[0].sensor(), "usage_idle");
  EXPECT_EQ(rs[0].double_value(), 90);
  EXPECT_EQ(rs[1].double_value(), 2);
  EXPECT_TRUE(rs[2].bool_value());
  EXPECT_EQ(rs[3].string_value(), "ok");
  // Tag order in the line does not matter.
  EXPECT_EQ(Map("cpu,cpu=cpu0,host=a v=1")[0].device_id(), "cpu/cpu:cpu0/host:a");
}

TEST(LineProtocolMappingTest, DeviceTagNamesTheDeviceAndTheRestGoesToTheSensor) {
  MappingOptions o;
  o.device_tag = "host";
  auto rs = Map("cpu,host=server01,cpu=cpu0 usage_idle=90 1", o);
  ASSERT_EQ(rs.size(), 1);
  EXPECT_EQ(rs[0].device_id(), "server01");
  EXPECT_EQ(rs[0].sensor(), "cpu/cpu:cpu0.usage_idle");
  EXPECT_EQ(Map("mem,host=server01 used=1 1", o)[0].sensor(), "mem.used");
  // Without the tag, the default naming.
  EXPECT_EQ(Map("mem,region=eu used=1 1", o)[0].device_id(), "mem/region:eu");
}

TEST(LineProtocolMappingTest, NamesThatCannotBeDeviceIdsAreHashedNeverMerged) {
  auto a = Map("disk,path=/var/log used=1 1")[0].device_id();
  auto b = Map("disk,path=/var used=1 1")[0].device_id();
  auto c = Map("my\\ disk used=1 1")[0].device_id();
  EXPECT_EQ(a.rfind("h-", 0), 0u) << a;
  EXPECT_EQ(a.size(), 18u);
  EXPECT_NE(a, b);
  EXPECT_EQ(c.rfind("h-", 0), 0u) << c;
  // The hash is stable: the same series always lands on the same device.
  EXPECT_EQ(a, Map("disk,path=/var/log free=2 2")[0].device_id());
  // Labels still say what the tags were.
  EXPECT_EQ(Map("disk,path=/var/log used=1 1")[0].labels().at("path"), "/var/log");
  // Too long for a device id.
  std::string long_value(130, 'x');
  EXPECT_EQ(Map("m,t=" + long_value + " v=1 1")[0].device_id().rfind("h-", 0), 0u);
}

TEST(LineProtocolMappingTest, MissingTimestampIsNowAndOverflowFails) {
  MappingOptions o;
  o.now_ns = 42;
  EXPECT_EQ(Map("m v=1", o)[0].timestamp_ns(), 42);
  auto r = ParseAll("m v=1 9223372036854775807");
  o.precision_ns = 1000;
  google::protobuf::RepeatedPtrField<telemetry::v1::Reading> out;
  auto st = AppendReadings(r.points[0], o, &out);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(out.empty());
}

TEST(LineProtocolMappingTest, TooManyTagsForLabelsStillNamesTheDevice) {
  std::string line = "m";
  for (int i = 0; i < 17; ++i) line += ",t" + std::to_string(i) + "=value";
  auto rs = Map(line + " v=1 1");
  EXPECT_TRUE(rs[0].labels().empty());
  EXPECT_EQ(rs[0].device_id().rfind("h-", 0), 0u);  // over 128 bytes
}

}  // namespace
}  // namespace telemetry::lineproto
