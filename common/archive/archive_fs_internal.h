// ArchiveFs's Arrow side, shared by the archive library's C++20 translation
// units (archive_fs.cc, parquet_readings.cc). Never include it from a header
// other code sees.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "arrow/filesystem/filesystem.h"
#include "arrow/status.h"
#include "common/archive/archive_fs.h"

namespace telemetry::archive {

struct ArchiveFs::Impl {
  std::string root;
  bool s3 = false;
  // Rooted at the archive root (a SubTreeFileSystem): paths are relative.
  std::shared_ptr<arrow::fs::FileSystem> fs;
};

// An Arrow status as ours: I/O (a disk, the network, the object store) is
// UNAVAILABLE, so the caller retries; bad input INVALID_ARGUMENT.
absl::Status FromArrow(const arrow::Status& st, absl::string_view what);

#define RETURN_IF_ARROW(expr, what)                                           \
  do {                                                                        \
    absl::Status _arrow_st = ::telemetry::archive::FromArrow((expr), (what)); \
    if (!_arrow_st.ok()) return _arrow_st;                                    \
  } while (0)

// A local directory as an ArchiveFs, not created when missing (the path
// forms of the Parquet functions).
absl::StatusOr<std::unique_ptr<ArchiveFs>> LocalDirFs(const std::string& dir);

}  // namespace telemetry::archive
