// The archive's file format: readings of one tenant's hour as Parquet
// (issue 17; docs/archive.md). Written by the export service, read by any
// Parquet reader (DuckDB, pyarrow, Spark, Trino/Athena) and by the query
// service's cold reads. This header is free of Arrow (Arrow 26's headers need
// C++20; the implementation is the only C++20 translation unit).
//
// Columns, in this order (one row per reading, sorted by device, sensor,
// unit, ts):
//   device, sensor, unit, project, labels   string (dictionary-encoded; labels
//                                           is the series' labels as a JSON
//                                           object, "{}" when none)
//   ts                                      timestamp, ns, UTC
//   value_double, value_string, value_bool  exactly one is set per row
//   status                                  int32 (0 = OK)
// zstd-compressed, with row-group statistics and a page index; timestamps
// delta-encoded, doubles byte-stream-split. The file's key-value metadata
// names the tenant, the hour and the export version.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/archive/archive_fs.h"
#include "common/model.h"

namespace telemetry::archive {

struct ParquetOptions {
  // Rows per row group: readers prune by row group (statistics of device,
  // sensor, ts), so smaller groups prune finer and cost more metadata.
  int64_t row_group_rows = 1 << 17;
  int zstd_level = 3;
};

// What ends up in the file's key-value metadata.
struct ParquetFileInfo {
  int64_t tenant_id = 0;
  int64_t hour_start_ns = 0;
  int64_t export_version = 0;
};

struct ParquetFileSummary {
  int64_t rows = 0;
  int64_t bytes = 0;
  int64_t row_groups = 0;
  std::string sha256_hex;  // of the file's bytes
};

// Writes one Parquet file. Series must come in (device, sensor, unit) order
// and each series' readings in timestamp order; the writer checks both
// (FailedPrecondition). The SHA-256 is taken of the bytes as they are
// written. A writer destroyed before Finish leaves nothing (an S3 upload is
// aborted, a local file removed).
class ParquetReadingsWriter {
 public:
  virtual ~ParquetReadingsWriter() = default;
  // `rel` of `fs` itself (on a local disk it exists, partly written, until
  // Finish: callers that publish by name write a staged name and Move it).
  // `fs` must outlive the writer.
  static absl::StatusOr<std::unique_ptr<ParquetReadingsWriter>> Create(
      ArchiveFs* fs, const std::string& rel, const ParquetFileInfo& info,
      const ParquetOptions& options = {});
  // A local path: written as "<path>.tmp", renamed to `path` by Finish.
  static absl::StatusOr<std::unique_ptr<ParquetReadingsWriter>> Create(
      const std::string& path, const ParquetFileInfo& info, const ParquetOptions& options = {});
  // Appends `readings` of one series (a series may be appended in several
  // calls, consecutively).
  virtual absl::Status Append(const SeriesNames& series, const std::vector<RawRow>& readings) = 0;
  // Flushes, closes, checksums and publishes the file.
  virtual absl::StatusOr<ParquetFileSummary> Finish() = 0;
};

// A reading read back from an archive file.
struct ArchivedReading {
  SeriesNames series;
  ReadingRow reading;  // device / sensor / unit repeated from `series`
};

// Reads a whole file written by ParquetReadingsWriter (tests, small files):
// `rel` of `fs`, or a local path.
absl::StatusOr<std::vector<ArchivedReading>> ReadParquetReadings(ArchiveFs& fs,
                                                                 const std::string& rel);
absl::StatusOr<std::vector<ArchivedReading>> ReadParquetReadings(const std::string& path);

// The readings of one device in a file written by ParquetReadingsWriter, in
// the file's order (sensor, unit, ts) (the query service's cold reads). Row
// groups whose device statistics exclude it are not read, nor the project
// and labels columns.
struct DeviceReadStats {
  int64_t row_groups_read = 0;
  int64_t row_groups_skipped = 0;
};
absl::StatusOr<std::vector<ReadingRow>> ReadDeviceReadings(ArchiveFs& fs, const std::string& rel,
                                                           const std::string& device,
                                                           DeviceReadStats* stats = nullptr);

// The file's key-value metadata as written (InvalidArgument when absent).
absl::StatusOr<ParquetFileInfo> ReadParquetFileInfo(ArchiveFs& fs, const std::string& rel);
absl::StatusOr<ParquetFileInfo> ReadParquetFileInfo(const std::string& path);

}  // namespace telemetry::archive
