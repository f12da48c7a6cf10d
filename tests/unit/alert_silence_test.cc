// Silences: validation and matching (services/alert/silence.h).
#include <gtest/gtest.h>

#include "services/alert/silence.h"

namespace telemetry::alert {
namespace {

constexpr int64_t kNow = 1'700'000'000'000'000'000;
constexpr int64_t kHour = 3600LL * 1'000'000'000;

telemetry::v1::AlertEvent Event(const std::string& rule, const std::string& device,
                                std::map<std::string, std::string> labels = {}) {
  telemetry::v1::AlertEvent e;
  e.set_rule_id(rule);
  e.set_device_id(device);
  for (const auto& [k, v] : labels) (*e.mutable_labels())[k] = v;
  return e;
}

TEST(AlertSilence, NormalizeFillsTheStartAndNamesBadFields) {
  telemetry::v1::Silence s;
  s.set_device_id("dev-*");
  s.set_ends_at_ns(kNow + kHour);
  s.set_silence_id("client-chosen");
  auto ok = NormalizeSilence(s, kNow);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->starts_at_ns(), kNow);
  EXPECT_TRUE(ok->silence_id().empty());

  auto fails = [](telemetry::v1::Silence x, const std::string& field) {
    auto st = NormalizeSilence(x, kNow).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(std::string(st.message()).find(field), std::string::npos) << st;
  };
  telemetry::v1::Silence everything;
  everything.set_ends_at_ns(kNow + kHour);
  fails(everything, "at least one of rule_id");
  telemetry::v1::Silence no_end = s;
  no_end.clear_ends_at_ns();
  fails(no_end, "silence.ends_at_ns");
  telemetry::v1::Silence too_long = s;
  too_long.set_ends_at_ns(kNow + 31 * 24 * kHour);
  fails(too_long, "30 days");
  telemetry::v1::Silence bad_matcher = s;
  bad_matcher.add_label_matchers()->set_value("x");
  fails(bad_matcher, "silence.label_matchers[0].name");
}

TEST(AlertSilence, MatchesByRuleDeviceAndLabelsWhileInForce) {
  telemetry::v1::Silence s;
  s.set_rule_id("r1");
  s.set_device_id("plant-*");
  auto* m = s.add_label_matchers();
  m->set_name("team");
  m->set_value("ops");
  s.set_starts_at_ns(kNow);
  s.set_ends_at_ns(kNow + kHour);
  EXPECT_TRUE(SilenceMatches(s, Event("r1", "plant-7", {{"team", "ops"}}), kNow));
  EXPECT_FALSE(SilenceMatches(s, Event("r2", "plant-7", {{"team", "ops"}}), kNow));
  EXPECT_FALSE(SilenceMatches(s, Event("r1", "home-7", {{"team", "ops"}}), kNow));
  EXPECT_FALSE(SilenceMatches(s, Event("r1", "plant-7", {{"team", "dev"}}), kNow));
  EXPECT_FALSE(SilenceMatches(s, Event("r1", "plant-7"), kNow));
  // Only in [starts, ends).
  EXPECT_FALSE(SilenceMatches(s, Event("r1", "plant-7", {{"team", "ops"}}), kNow - 1));
  EXPECT_FALSE(SilenceMatches(s, Event("r1", "plant-7", {{"team", "ops"}}), kNow + kHour));
  m->set_negate(true);
  EXPECT_TRUE(SilenceMatches(s, Event("r1", "plant-7", {{"team", "dev"}}), kNow));
}

}  // namespace
}  // namespace telemetry::alert
