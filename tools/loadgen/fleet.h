// A simulated fleet: deterministic readings for tenants × devices × sensors,
// with a fraction of exact duplicates and of late (out-of-order) readings.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "telemetry/v1/ingest.pb.h"

namespace telemetry::loadgen {

struct FleetOptions {
  int devices = 100;  // per tenant, split over workers
  int sensors = 8;
  int string_sensors = 0;  // of `sensors`, how many carry strings
  int64_t start_ns = 0;    // event time of the first reading
  int64_t interval_ns = 1'000'000'000;
  double duplicate_fraction = 0.0;
  double late_fraction = 0.0;
  uint64_t seed = 1;
};

// Generates the readings of devices [first_device, first_device + count).
class FleetGenerator {
 public:
  FleetGenerator(const FleetOptions& options, int first_device, int count);
  // Appends up to `n` readings (fewer only if nothing is left to send).
  void Next(int n, telemetry::v1::WriteRequest* out);
  // Releases the late readings still held back.
  void Drain(telemetry::v1::WriteRequest* out);
  int64_t unique() const { return unique_; }
  int64_t duplicates() const { return duplicates_; }
  int64_t late() const { return late_; }

 private:
  void Make(int device, int sensor, int64_t step, telemetry::v1::Reading* r) const;

  FleetOptions o_;
  int first_, count_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> coin_{0.0, 1.0};
  int64_t cursor_ = 0;                         // index into (step, device, sensor) order
  std::deque<telemetry::v1::Reading> held_;    // late readings
  std::deque<telemetry::v1::Reading> recent_;  // duplicate sources
  int64_t unique_ = 0, duplicates_ = 0, late_ = 0;
};

std::string DeviceName(int i);
std::string SensorName(int i);

}  // namespace telemetry::loadgen
