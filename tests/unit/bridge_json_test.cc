// The bridge's JSON parser against protobuf's own (JsonStringToMessage into
// google.protobuf.Value), which it replaced for speed: the same Value for
// valid documents. It is stricter than protobuf's, which takes raw newlines
// in strings, unknown escapes, "1." and unquoted keys: RFC 8259 refuses them.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "services/bridge/json.h"

namespace telemetry::bridge {
namespace {

google::protobuf::Value Reference(const std::string& text, bool* ok) {
  google::protobuf::Value v;
  *ok = google::protobuf::util::JsonStringToMessage(text, &v).ok();
  return v;
}

TEST(BridgeJson, SameValueAsProtobufsParser) {
  const char* docs[] = {
      R"({"device_id":"dev-1","timestamp":1764590400,"metrics":{"m0":1.5,"m1":-2e3,"on":true,"mode":"eco","v":{"value":230,"unit":"V"}},"meta":{"fw":"1.0.3","floor":2}})",
      R"([{"metrics":{"a":1}},{"metrics":{"b":0.25}}])",
      R"(  {"s":"esc \" \\ \/ \b \f \n \r \t \u00e9 \u20ac \ud83d\ude00 é"} )",
      R"({"n":null,"f":false,"t":true,"e":[],"o":{},"z":0,"neg":-0.5,"exp":1E+2,"exp2":5e-3})",
      "21.5",
      "true",
      R"("just a string")",
      "[1,[2,[3,[4]]]]",
  };
  for (const char* doc : docs) {
    bool ok = false;
    auto want = Reference(doc, &ok);
    ASSERT_TRUE(ok) << doc;
    auto got = ParseJsonValue(doc);
    ASSERT_TRUE(got.ok()) << doc << ": " << got.status();
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*got, want))
        << doc << "\n got " << got->DebugString() << "\nwant " << want.DebugString();
  }
}

TEST(BridgeJson, RefusesWhatIsNotOneJsonValueWithTheReasonAndOffset) {
  struct Case {
    std::string text;
    const char* why;
  } cases[] = {
      {"", "unexpected end of input"},
      {R"({"a": 1)", "unexpected end of input"},
      {R"({"a": 1} x)", "text after the JSON value"},
      {R"({"a": NaN})", "unexpected token"},
      {R"({"a": 1, "a": 2})", "repeated key 'a'"},
      {"{\"a\": \"\xff\"}", "not UTF-8"},
      {"{\"a\": \"\xc0\xaf\"}", "not UTF-8"},  // overlong '/'
      {"{\"a\": \"x\ny\"}", "control character"},
      {R"({"a": "\q"})", "bad escape"},
      {R"({"a": "\ud800"})", "lone surrogate"},
      {R"({"a": 01})", "expected ',' or '}'"},
      {R"({"a": 1.})", "digits after '.'"},
      {R"({"a": 1e})", "digits in its exponent"},
      {R"({"a": 1e999})", "out of a double's range"},
      {R"({"a": +1})", "unexpected token"},
      {R"({a: 1})", "expected a string key"},
      {R"({"a" 1})", "expected ':'"},
      {R"([1 2])", "expected ',' or ']'"},
      {"12,5", "text after the JSON value"},
      {"ON", "unexpected token"},
      {std::string(70, '[') + std::string(70, ']'), "nested deeper than 64"},
  };
  for (const auto& c : cases) {
    auto got = ParseJsonValue(c.text);
    ASSERT_FALSE(got.ok()) << c.text;
    EXPECT_NE(got.status().message().find(c.why), std::string::npos)
        << c.text << " -> " << got.status();
    EXPECT_NE(got.status().message().find(" at byte "), std::string::npos);
  }
}

}  // namespace
}  // namespace telemetry::bridge
