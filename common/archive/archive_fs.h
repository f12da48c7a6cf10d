// Where the archive's files live (issue 17; docs/archive.md "Archive root"):
// a local directory, or a bucket (and prefix) of any S3-compatible object
// store, behind one small set of file operations. Paths are relative to the
// root, '/'-separated. Arrow-free header (the implementation is C++20, over
// Arrow's LocalFileSystem and S3FileSystem).
//
// Root syntax:
//   /var/lib/telemetry/archive          a local directory (created when
//   file:///var/lib/telemetry/archive   missing; a relative path is taken
//                                       from the working directory)
//   s3://BUCKET[/PREFIX][?endpoint=URL&region=R]
//       endpoint: http://host:port or https://host[:port] of an
//       S3-compatible server (path-style addressing); without it, AWS S3.
//       region: the bucket's region (default us-east-1 with an endpoint;
//       without one, asked of AWS).
//   Credentials are never part of the URL: they come from the AWS default
//   chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
//   ~/.aws/credentials, an instance profile). The bucket must exist.
//
// Semantics the exporter relies on: a file written through an output stream
// appears whole or not at all on S3 (a multipart upload completes at close),
// and may appear partly on a local disk until it is closed (so the exporter
// writes under staged names and moves them); Move is a rename locally and a
// server-side copy + delete on S3.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace telemetry::archive {

class ArchiveFs {
 public:
  struct Impl;  // archive_fs_internal.h (Arrow types)

  // Opens the root and checks it is usable: a local directory is created
  // when missing; a bucket must exist and answer (FAILED_PRECONDITION when
  // it does not exist, UNAVAILABLE when the store cannot be reached or
  // refuses the credentials). INVALID_ARGUMENT for a malformed root.
  static absl::StatusOr<std::unique_ptr<ArchiveFs>> Open(const std::string& root);
  explicit ArchiveFs(std::unique_ptr<Impl> impl);
  ~ArchiveFs();

  // The root as given (it holds no secret).
  const std::string& root() const;
  bool is_s3() const;

  // Creates the directory and its parents (a no-op on S3, which has none).
  absl::Status CreateDirs(const std::string& rel_dir);
  // The names (not paths) of the files directly in `rel_dir`, sorted; empty
  // when it does not exist.
  absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& rel_dir);
  // NOT_FOUND when there is no such file.
  absl::Status Delete(const std::string& rel);
  // The file's size in bytes; NOT_FOUND when there is no such file.
  absl::StatusOr<int64_t> FileSize(const std::string& rel);
  absl::Status Move(const std::string& from_rel, const std::string& to_rel);
  // A whole file (tests, small files).
  // Every file under the directory, at any depth ("" = the whole root;
  // directories themselves may stay). OK when there is none.
  absl::Status DeleteFilesUnder(const std::string& rel_dir);
  absl::StatusOr<std::string> Read(const std::string& rel);
  absl::Status Write(const std::string& rel, const std::string& data);

  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Shuts the S3 client library down if an S3 root was opened. Call once at
// the end of main(), after every ArchiveFs (and every writer or reader on
// one) is destroyed; a no-op otherwise.
void ShutdownArchiveFs();

}  // namespace telemetry::archive
