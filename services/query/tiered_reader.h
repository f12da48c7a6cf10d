// Reads over hours that retention dropped from Postgres (docs/archive.md
// "Cold reads"): a ReadingReader over a database (primary or replica) and the
// archive, built per read by QueryCore. A read that overlaps no dropped hour
// goes to the database unchanged; otherwise it is split by time into the
// dropped hours (from the archive) and the rest (from the database) and merged,
// with the contracts of ReadingReader: Range in (sensor, unit, time) order in
// pages with its resume cursor, Playback's neighbours from whichever tier holds
// the nearer reading, Latest of a series whose newest reading was dropped
// from the archive. Aggregate reads the database only (retention does not
// drop the rollups).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/cold_readings.h"
#include "common/reading_reader.h"

namespace telemetry::query {

// Which tiers a read used (bits of TieredReader::tiers()).
inline constexpr int kHotTier = 1;
inline constexpr int kColdTier = 2;

class TieredReader final : public ReadingReader {
 public:
  // Neither is owned; `cold` may be null (no archive: the database alone).
  TieredReader(ReadingReader* hot, ColdReadings* cold) : hot_(hot), cold_(cold) {}

  // The tiers the reads so far used. A Range knows them before its first page.
  int tiers() const { return tiers_; }

  absl::StatusOr<std::vector<ReadingRow>> Latest(int64_t tenant_id,
                                                 const std::vector<std::string>& devices,
                                                 const std::vector<std::string>& sensors) override;
  absl::Status Range(const RangeQuery& query,
                     const std::function<bool(std::vector<ReadingRow>&&)>& page) override;
  absl::StatusOr<std::vector<AggregateRow>> Aggregate(const AggregateQuery& query) override;
  absl::StatusOr<PlaybackRows> Playback(int64_t tenant_id, const std::string& device,
                                        const std::vector<std::string>& sensors, int64_t from_ns,
                                        int64_t to_ns) override;
  absl::StatusOr<std::vector<SeriesRef>> Series(int64_t tenant_id,
                                                const std::vector<std::string>& devices,
                                                const std::vector<std::string>& sensors) override;

 private:
  ReadingReader* hot_;
  ColdReadings* cold_;
  int tiers_ = 0;
};

// "archive" when only the archive answered, "<source>+archive" when both did,
// else `source`.
std::string TieredSourceName(const std::string& source, int tiers);

}  // namespace telemetry::query
