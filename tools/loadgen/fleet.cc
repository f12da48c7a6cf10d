#include "tools/loadgen/fleet.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace telemetry::loadgen {

std::string DeviceName(int i) { return absl::StrCat("dev-", i); }
std::string SensorName(int i) { return absl::StrCat("s", i); }

FleetGenerator::FleetGenerator(const FleetOptions& o, int first_device, int count)
    : o_(o),
      first_(first_device),
      count_(count),
      rng_(o.seed * 7919 + static_cast<uint64_t>(first_device)) {}

void FleetGenerator::Make(int device, int sensor, int64_t step, telemetry::v1::Reading* r) const {
  r->set_device_id(DeviceName(device));
  r->set_sensor(SensorName(sensor));
  r->set_timestamp_ns(o_.start_ns + step * o_.interval_ns);
  if (sensor < o_.string_sensors) {
    static const char* kStates[] = {"ok", "warn", "idle", "running"};
    r->set_string_value(kStates[(step + device) % 4]);
  } else {
    // A smooth, distinct signal per series.
    r->set_double_value(20.0 + 5.0 * std::sin(static_cast<double>(step) / 30.0 + device) + sensor);
    r->set_unit("C");
  }
}

void FleetGenerator::Next(int n, telemetry::v1::WriteRequest* out) {
  const int64_t per_step = static_cast<int64_t>(count_) * o_.sensors;
  for (int i = 0; i < n; ++i) {
    // Release a held-back reading now and then, after newer ones were sent.
    if (!held_.empty() && coin_(rng_) < 0.5) {
      *out->add_readings() = std::move(held_.front());
      held_.pop_front();
      continue;
    }
    if (!recent_.empty() && coin_(rng_) < o_.duplicate_fraction) {
      *out->add_readings() = recent_[static_cast<size_t>(rng_() % recent_.size())];
      ++duplicates_;
      continue;
    }
    int64_t step = cursor_ / per_step;
    int64_t rem = cursor_ % per_step;
    int device = first_ + static_cast<int>(rem / o_.sensors);
    int sensor = static_cast<int>(rem % o_.sensors);
    ++cursor_;
    ++unique_;
    telemetry::v1::Reading r;
    Make(device, sensor, step, &r);
    recent_.push_back(r);
    if (recent_.size() > 1024) recent_.pop_front();
    if (coin_(rng_) < o_.late_fraction) {
      held_.push_back(std::move(r));
      ++late_;
      continue;
    }
    *out->add_readings() = std::move(r);
  }
}

void FleetGenerator::Drain(telemetry::v1::WriteRequest* out) {
  while (!held_.empty()) {
    *out->add_readings() = std::move(held_.front());
    held_.pop_front();
  }
}

}  // namespace telemetry::loadgen
