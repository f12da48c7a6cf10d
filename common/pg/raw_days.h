// The day partitions of the raw readings, shared by the Postgres stores
// (reading_writer.cc packs and truncates them, archive_store.cc applies
// retention to them). Not a public header of the store interfaces.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace telemetry {

inline constexpr int64_t kRawDayNs = 86'400'000'000'000LL;

// A CTE `days` of raw_readings' day partitions (raw_readings_dYYYYMMDD):
// relname, oid and the day's start in ns (lo).
inline constexpr char kRawDaysCte[] =
    "WITH days AS ("
    "  SELECT c.relname, c.oid, extract(epoch FROM to_date(substring(c.relname FROM"
    "           'raw_readings_d([0-9]{8})$'), 'YYYYMMDD'))::bigint * 1000000000 AS lo"
    "  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    "  WHERE i.inhparent = 'raw_readings'::regclass)";

// The partitions of the raw rows and of the segments of the day starting at
// `day_ns` (a multiple of kRawDayNs).
inline std::string RawDayTable(int64_t day_ns) {
  return absl::StrCat("raw_readings_d",
                      absl::FormatTime("%Y%m%d", absl::FromUnixNanos(day_ns), absl::UTCTimeZone()));
}
inline std::string RawSegDayTable(int64_t day_ns) {
  return absl::StrCat("raw_readings_seg_d",
                      absl::FormatTime("%Y%m%d", absl::FromUnixNanos(day_ns), absl::UTCTimeZone()));
}

}  // namespace telemetry
