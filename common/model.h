// Plain data types of the storage layer, free of any client library.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace telemetry {

enum class ValueKind { kDouble = 0, kString = 1, kBool = 2 };

struct TenantInfo {
  int64_t id = 0;
  std::string name;
  int64_t default_project_id = 0;
  // Readings from unknown devices are rejected instead of registering them.
  bool require_registered_devices = false;
  // When non-empty, only these sensors are accepted.
  std::vector<std::string> sensor_whitelist;
  // Token bucket: readings per second and burst size.
  double rate_per_sec = 0;
  double burst = 0;
  int32_t raw_retention_days = 30;
};

// Identity of a series: a (device, sensor, unit) of a tenant. The device's
// project is part of the identity through the device.
struct SeriesSpec {
  std::string device;
  std::string sensor;
  std::string unit;
  // Newest labels seen, as a JSON object text ("" = none).
  std::string labels_json;
};

// A series' names, as the archive stores them with each reading.
struct SeriesNames {
  std::string device;
  std::string sensor;
  std::string unit;
  std::string project;
  std::string labels_json = "{}";  // a JSON object
};

// One row of the raw table.
struct RawRow {
  int32_t series_id = 0;
  int64_t ts_ns = 0;
  ValueKind kind = ValueKind::kDouble;
  double d = 0;
  std::string s;
  bool b = false;
  int32_t status = 0;
};

// A stored reading with its names, as reads return it.
struct ReadingRow {
  std::string device;
  std::string sensor;
  std::string unit;
  int64_t ts_ns = 0;
  ValueKind kind = ValueKind::kDouble;
  double d = 0;
  std::string s;
  bool b = false;
  int32_t status = 0;
};

// A position in one partition of a Kafka topic: the next offset to read.
struct PartitionOffset {
  int32_t partition = 0;
  int64_t offset = 0;
};

struct ApplyResult {
  int64_t inserted = 0;    // new raw rows
  int64_t duplicates = 0;  // rows already stored (same series and timestamp)
  // Readings of hours retention dropped (older than their tenant's
  // retention by the time they reached the store): not stored.
  int64_t expired = 0;
  // Applied by the bulk path (COPY straight into the raw table), which a
  // store takes when no reading of the batch was stored before.
  bool bulk = false;
};

// What packing one hour of raw rows did (ReadingWriter::PackRawHour).
struct RawPackResult {
  int64_t readings = 0;  // rows moved into segments
  int64_t segments = 0;  // segments written (new or repacked)
  int64_t steps = 0;     // transactions
  // Nanoseconds spent waiting for writers that started before the claim.
  int64_t claim_wait_ns = 0;
};

}  // namespace telemetry
