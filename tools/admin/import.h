// `telemetry-admin import`: line-protocol files (also `influx_inspect export`
// output) into the platform through IngestService.Write, with the same
// mapping as the HTTP line-protocol endpoint (services/ingest/line_protocol.h),
// bounded concurrency, retries, and a checkpoint to resume from after a crash.
// docs/ingress.md "Import and verify (migration)".
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/ingest/line_protocol.h"
#include "telemetry/v1/ingest.pb.h"

namespace telemetry::admin {

// A file mapped read-only into memory (the parser works on one body).
class MappedFile {
 public:
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  absl::string_view data() const { return {data_, size_}; }

 private:
  MappedFile(const char* data, size_t size) : data_(data), size_(size) {}
  const char* data_;
  size_t size_;
};

// Where the points of a line-protocol body start, and on which line
// (1-based): after the `# DDL` section of an `influx_inspect export` file
// (its `CREATE DATABASE ... WITH NAME ...` statements are not points), i.e.
// after the `# DML` line; 0 and line 1 for any other body. The export's other
// `#` lines (CONTEXT-DATABASE, CONTEXT-RETENTION-POLICY, "writing ... data")
// are comments to the parser.
struct DataStart {
  size_t offset = 0;
  int64_t line = 1;
};
DataStart FindDataStart(absl::string_view body);

// Progress of an import, written atomically (temporary file + rename): every
// batch of the file before `offset` (a line start) was acknowledged. The
// counters are those of that acknowledged part.
struct ImportCheckpoint {
  int64_t file_size = 0;  // of the file it belongs to (a different file is refused)
  int64_t offset = 0;     // resume here
  int64_t line = 1;       // the line number at `offset`
  int64_t readings = 0;   // readings sent and acknowledged (accepted or refused)
  int64_t accepted = 0;   // readings accepted by the platform
  int64_t malformed_lines = 0;
  int64_t refused_lines = 0;  // lines with a reading the platform refused
  bool complete = false;      // the whole file is acknowledged
};
// NOT_FOUND when there is no checkpoint file yet.
absl::StatusOr<ImportCheckpoint> ReadCheckpoint(const std::string& path);
absl::Status WriteCheckpoint(const std::string& path, const ImportCheckpoint& checkpoint);

// One Write call. OK with `*response` filled when the call was answered;
// otherwise its status, with the server's `retry-after-ms` advice in
// `*retry_after_ms` when it sent one (else -1).
class WriteSender {
 public:
  virtual ~WriteSender() = default;
  virtual absl::Status Write(const v1::WriteRequest& request, v1::WriteResponse* response,
                             int64_t* retry_after_ms) = 0;
};

struct GrpcSenderOptions {
  std::string target;   // host:port of IngestService
  std::string api_key;  // sent as `authorization: Bearer <key>`
  std::string tls_ca, tls_cert, tls_key;
  int channels = 4;  // HTTP/2 connections, used in turn
  int64_t deadline_ms = 60000;
};
absl::StatusOr<std::unique_ptr<WriteSender>> NewGrpcWriteSender(const GrpcSenderOptions& options);

struct ImportOptions {
  std::string file;
  std::string checkpoint;  // "" = none (start at the beginning, write nothing)
  lineproto::MappingOptions mapping;
  int batch = 5000;     // readings per Write (a line's readings stay together)
  int concurrency = 4;  // Write calls in flight
  double max_rate = 0;  // readings per second, 0 = as fast as the platform takes them
  // Retries of RESOURCE_EXHAUSTED, UNAVAILABLE and DEADLINE_EXCEEDED: backoff
  // from `initial_backoff_ms`, doubling to `max_backoff_ms` (the server's
  // retry-after-ms when it sent one); a batch that fails for `give_up_ms`
  // in a row stops the import (the checkpoint keeps what was acknowledged).
  int64_t initial_backoff_ms = 100;
  int64_t max_backoff_ms = 5000;
  int64_t give_up_ms = 600000;
  int64_t progress_interval_ms = 1000;  // progress callback and checkpoint
  size_t max_listed = 10;               // problems kept with their line numbers
};

struct ImportProgress {
  int64_t readings = 0;  // acknowledged so far, including a resumed checkpoint's
  int64_t bytes_done = 0;
  int64_t file_size = 0;
  int64_t malformed_lines = 0;
  int64_t refused_lines = 0;
  int64_t retries = 0;
  double seconds = 0;   // of this run
  double rate = 0;      // readings/s of this run, over its whole time
  double rate_now = 0;  // readings/s since the previous report
};

struct ImportResult {
  ImportCheckpoint checkpoint;  // the final state (complete unless stopped)
  bool resumed = false;         // from a checkpoint, at `resumed_at`
  int64_t resumed_at = 0;       // the offset this run started from
  int64_t readings_this_run = 0;
  int64_t retries = 0;
  double seconds = 0;
  // The first problems: "line N: <reason>" (malformed, or refused and why).
  std::vector<std::string> problems;
};

// Imports `options.file`. Returns the result when the file was read to its
// end (even with refused lines: the caller decides the exit code) or was
// stopped by `*stop`; an error when the import could not continue (the file,
// the checkpoint, a Write refused as a whole, retries given up).
// `progress` is called every `progress_interval_ms` and at the end.
absl::StatusOr<ImportResult> RunImport(const ImportOptions& options, WriteSender* sender,
                                       const std::function<void(const ImportProgress&)>& progress,
                                       const std::atomic<bool>* stop = nullptr);

// The command: RunImport over gRPC, progress on stderr, the summary on
// stdout. Exit status 0 when every line was stored, 1 when a line was
// malformed or refused (or the import stopped on an error), 2 on bad flags.
int ImportCommand(const ImportOptions& options, const GrpcSenderOptions& sender);

}  // namespace telemetry::admin
