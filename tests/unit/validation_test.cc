#include "services/ingest/validation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace telemetry::ingest {
namespace {

constexpr int64_t kNow = 1'790'000'000'000'000'000;  // 2026-09

telemetry::v1::Reading Good() {
  telemetry::v1::Reading r;
  r.set_device_id("dev-1");
  r.set_sensor("temp");
  r.set_timestamp_ns(kNow - 1'000'000'000);
  r.set_double_value(21.5);
  return r;
}

TenantInfo Tenant() {
  TenantInfo t;
  t.id = 1;
  t.raw_retention_days = 30;
  return t;
}

// Expects a rejection on `field` whose reason mentions `words`.
void ExpectRejected(const telemetry::v1::Reading& r, const std::string& field,
                    const std::string& words, const TenantInfo& t = Tenant()) {
  auto rej = ValidateReading(r, t, kNow, ValidationLimits{});
  ASSERT_TRUE(rej.has_value()) << "expected a rejection on " << field;
  EXPECT_EQ(rej->field(), field);
  EXPECT_NE(rej->reason().find(words), std::string::npos) << rej->reason();
}

TEST(Validation, AcceptsAGoodReadingOfEachKind) {
  auto r = Good();
  EXPECT_FALSE(ValidateReading(r, Tenant(), kNow, {}).has_value());
  r.set_string_value("ok");
  EXPECT_FALSE(ValidateReading(r, Tenant(), kNow, {}).has_value());
  r.set_bool_value(true);
  r.set_unit("C");
  (*r.mutable_labels())["fw"] = "1.2.3";
  EXPECT_FALSE(ValidateReading(r, Tenant(), kNow, {}).has_value());
}

TEST(Validation, EmptyDeviceOrSensor) {
  auto r = Good();
  r.clear_device_id();
  ExpectRejected(r, "device_id", "empty");
  r = Good();
  r.clear_sensor();
  ExpectRejected(r, "sensor", "empty");
}

TEST(Validation, NamesOutsideTheAllowedAlphabetOrTooLong) {
  auto r = Good();
  r.set_device_id("dev 1");
  ExpectRejected(r, "device_id", "[A-Za-z0-9_.:/-]");
  r.set_device_id(std::string(129, 'a'));
  ExpectRejected(r, "device_id", "{1,128}");
  r = Good();
  r.set_sensor("temp;drop");
  ExpectRejected(r, "sensor", "[A-Za-z0-9_.:/-]");
  r.set_sensor("a.b:c/d-e_f");
  EXPECT_FALSE(ValidateReading(r, Tenant(), kNow, {}).has_value());
}

TEST(Validation, SensorNotInTheTenantsWhitelist) {
  auto t = Tenant();
  t.sensor_whitelist = {"humidity"};
  ExpectRejected(Good(), "sensor", "not in the tenant's allowed sensors", t);
  auto r = Good();
  r.set_sensor("humidity");
  EXPECT_FALSE(ValidateReading(r, t, kNow, {}).has_value());
}

TEST(Validation, TimestampMissingFutureOrTooOld) {
  auto r = Good();
  r.set_timestamp_ns(0);
  ExpectRejected(r, "timestamp_ns", "> 0");
  r.set_timestamp_ns(kNow + 11LL * 60 * 1'000'000'000);
  ExpectRejected(r, "timestamp_ns", "future");
  r.set_timestamp_ns(kNow + 9LL * 60 * 1'000'000'000);
  EXPECT_FALSE(ValidateReading(r, Tenant(), kNow, {}).has_value());
  r.set_timestamp_ns(kNow - 31LL * 86'400'000'000'000);
  ExpectRejected(r, "timestamp_ns", "retention of 30 days");
}

TEST(Validation, NonFiniteNumbers) {
  auto r = Good();
  r.set_double_value(std::nan(""));
  ExpectRejected(r, "value", "finite");
  r.set_double_value(std::numeric_limits<double>::infinity());
  ExpectRejected(r, "value", "finite");
}

TEST(Validation, NoValue) {
  auto r = Good();
  r.clear_value();
  ExpectRejected(r, "value", "no value");
}

TEST(Validation, StringOver1KiB) {
  auto r = Good();
  r.set_string_value(std::string(1025, 'x'));
  ExpectRejected(r, "value", "1024 bytes");
  r.set_string_value(std::string(1024, 'x'));
  EXPECT_FALSE(ValidateReading(r, Tenant(), kNow, {}).has_value());
}

TEST(Validation, UnitTooLong) {
  auto r = Good();
  r.set_unit(std::string(33, 'u'));
  ExpectRejected(r, "unit", "32 bytes");
}

TEST(Validation, TooManyOrTooLongLabels) {
  auto r = Good();
  for (int i = 0; i < 17; ++i) (*r.mutable_labels())["k" + std::to_string(i)] = "v";
  ExpectRejected(r, "labels", "more than 16");
  r = Good();
  (*r.mutable_labels())[std::string(65, 'k')] = "v";
  ExpectRejected(r, "labels", "label key");
  r = Good();
  (*r.mutable_labels())["bad key"] = "v";
  ExpectRejected(r, "labels", "label key");
  r = Good();
  (*r.mutable_labels())["fw"] = std::string(257, 'v');
  ExpectRejected(r, "labels", "256 bytes");
}

}  // namespace
}  // namespace telemetry::ingest
