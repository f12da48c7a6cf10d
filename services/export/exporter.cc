#include "services/export/exporter.h"

#include <time.h>

#include <chrono>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace telemetry {
namespace {

constexpr int64_t kHourNs = 3'600'000'000'000LL;

// The export version a file of the archive belongs to, from its name
// (readings-v<version>-<part>.parquet, last-v<version>.parquet, either one
// staged (a leading '.') or being written (.tmp)); -1 for any other file.
int64_t VersionOfFile(const std::string& name) {
  absl::string_view n = name;
  absl::ConsumePrefix(&n, ".");
  absl::ConsumeSuffix(&n, ".tmp");
  if (!absl::ConsumeSuffix(&n, ".parquet")) return -1;
  if (!absl::ConsumePrefix(&n, "readings-v") && !absl::ConsumePrefix(&n, "last-v")) return -1;
  const size_t dash = n.find('-');
  int64_t v = -1;
  if (!absl::SimpleAtoi(n.substr(0, dash), &v)) return -1;
  return v;
}

// A file's name while it is written: the same in its directory with a
// leading '.'.
std::string Staged(const std::string& rel) {
  const size_t slash = rel.rfind('/');
  if (slash == std::string::npos) return "." + rel;
  return absl::StrCat(rel.substr(0, slash + 1), ".", rel.substr(slash + 1));
}

// Removes the files of the hour's directory whose version `drop` says so.
template <typename Pred>
absl::Status RemoveFiles(archive::ArchiveFs* fs, const std::string& dir, Pred drop) {
  auto names = fs->ListFiles(dir);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    const int64_t v = VersionOfFile(name);
    if (v < 0 || !drop(v, name)) continue;
    absl::Status st = fs->Delete(absl::StrCat(dir, "/", name));
    if (!st.ok() && !absl::IsNotFound(st)) return st;
  }
  return absl::OkStatus();
}

}  // namespace

std::string ArchiveHourDir(int64_t tenant_id, int64_t hour_ns) {
  const time_t secs = static_cast<time_t>(hour_ns / 1'000'000'000LL);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  return absl::StrFormat("tenant=%d/date=%04d-%02d-%02d/hour=%02d", tenant_id, tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
}

Exporter::Exporter(ArchiveStore* store, archive::ArchiveFs* fs, ExporterOptions options)
    : store_(store), fs_(fs), options_(std::move(options)) {}

absl::StatusOr<ExportPass> Exporter::RunOnce(int64_t from_ns, int64_t before_ns, int max_hours) {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  std::map<int64_t, int64_t> waiting;
  {
    absl::MutexLock lock(&retry_mu_);
    for (auto it = retry_at_.begin(); it != retry_at_.end();) {
      it = it->second <= now ? retry_at_.erase(it) : std::next(it);
    }
    waiting = retry_at_;
  }
  ExportPass pass;
  auto due = store_->DueHours(from_ns, before_ns, max_hours + static_cast<int>(waiting.size()));
  if (!due.ok()) return due.status();
  int hours = 0;
  for (const DueHour& h : *due) {
    if (hours >= max_hours) break;
    if (waiting.count(h.hour_ns)) continue;
    ++hours;
    ++pass.hours;
    absl::Status st = ExportHour(h, &pass.exports);
    if (!st.ok()) {
      pass.failed.emplace_back(h.hour_ns, st);
      absl::MutexLock lock(&retry_mu_);
      retry_at_[h.hour_ns] = now + options_.retry_after_ns;
    }
  }
  return pass;
}

absl::Status Exporter::ExportHour(const DueHour& h, std::vector<TenantHourExport>* out) {
  auto tenants = store_->TenantsInHour(h.hour_ns);
  if (!tenants.ok()) return tenants.status();
  for (int64_t tenant : *tenants) {
    auto done = Export(tenant, h.hour_ns, h.packs);
    if (!done.ok()) {
      return absl::Status(done.status().code(),
                          absl::StrCat("tenant ", tenant, ": ", done.status().message()));
    }
    out->push_back(std::move(*done));
  }
  return store_->MarkHourArchived(h.hour_ns, h.packs);
}

absl::StatusOr<TenantHourExport> Exporter::ExportTenantHour(int64_t tenant_id, int64_t hour_ns) {
  if (hour_ns % kHourNs != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hour_start_ns ", hour_ns, " is not the start of an hour"));
  }
  auto packs = store_->PackedVersion(hour_ns);
  if (!packs.ok()) return packs.status();
  return Export(tenant_id, hour_ns, *packs);
}

absl::StatusOr<TenantHourExport> Exporter::Export(int64_t tenant_id, int64_t hour_ns,
                                                  int32_t packs) {
  absl::MutexLock lock(&mu_);
  TenantHourExport result;
  result.tenant_id = tenant_id;
  result.hour_ns = hour_ns;
  auto current = store_->CurrentExport(tenant_id, hour_ns);
  if (current.ok() && current->source_packs >= packs) {
    result.version = current->version;
    result.up_to_date = true;
    result.readings = current->readings;
    result.bytes = current->bytes;
    result.files = current->files;
    return result;
  }
  if (!current.ok() && current.status().code() != absl::StatusCode::kNotFound) {
    return current.status();
  }
  auto version = store_->BeginExport(tenant_id, hour_ns, packs);
  if (!version.ok()) return version.status();
  result.version = *version;

  const std::string dir = ArchiveHourDir(tenant_id, hour_ns);
  RETURN_IF_ERROR(fs_->CreateDirs(dir));
  // What a crashed attempt at this version left (parts it may not rewrite).
  RETURN_IF_ERROR(RemoveFiles(fs_, dir, [&](int64_t v, const std::string& name) {
    return v == *version || absl::EndsWith(name, ".tmp");
  }));

  // Every file is written under a staged name (a leading '.': readers that
  // glob readings-*.parquet, and pyarrow's datasets, skip it) and moved to
  // its name only once all are written, just before the manifest records
  // them: a failed or killed export leaves nothing a reader of the directory
  // sees, but for the moves (milliseconds on a disk; on S3 a server-side
  // copy each, which is also why an S3 object is never seen half written).
  absl::Status written = WriteFiles(tenant_id, hour_ns, *version, dir, &result);
  for (const ArchiveFile& f : result.files) {
    if (!written.ok()) break;
    written = fs_->Move(Staged(f.path), f.path);
  }
  if (!written.ok()) {
    // Nothing of this version stays (a retry writes it again).
    RemoveFiles(fs_, dir, [&](int64_t v, const std::string&) {
      return v == *version;
    }).IgnoreError();
    return written;
  }
  RETURN_IF_ERROR(store_->CommitExport(tenant_id, hour_ns, *version, result.files));
  // The superseded versions' files: the manifest keeps their record.
  RETURN_IF_ERROR(
      RemoveFiles(fs_, dir, [&](int64_t v, const std::string&) { return v != *version; }));
  return result;
}

absl::Status Exporter::WriteFiles(int64_t tenant_id, int64_t hour_ns, int32_t version,
                                  const std::string& rel_dir, TenantHourExport* result) {
  const archive::ParquetFileInfo info{tenant_id, hour_ns, version};
  std::unique_ptr<archive::ParquetReadingsWriter> writer;
  std::string writer_rel;
  int64_t in_file = 0;
  int part = 0;
  auto finish = [&]() -> absl::Status {
    if (writer == nullptr) return absl::OkStatus();
    auto summary = writer->Finish();
    writer.reset();
    if (!summary.ok()) return summary.status();
    result->files.push_back(
        {writer_rel, "readings", summary->rows, summary->bytes, summary->sha256_hex});
    result->readings += summary->rows;
    result->bytes += summary->bytes;
    return absl::OkStatus();
  };
  // The last reading of each series (note 000's hourly dataset).
  std::vector<std::pair<SeriesNames, RawRow>> last;
  RETURN_IF_ERROR(store_->ReadTenantHour(
      tenant_id, hour_ns, [&](const SeriesNames& series, std::vector<RawRow>&& readings) {
        if (readings.empty()) return absl::OkStatus();
        if (writer != nullptr && in_file >= options_.max_readings_per_file) {
          RETURN_IF_ERROR(finish());
        }
        if (writer == nullptr) {
          writer_rel = absl::StrFormat("%s/readings-v%d-%04d.parquet", rel_dir, version, part++);
          auto w = archive::ParquetReadingsWriter::Create(fs_, Staged(writer_rel), info,
                                                          options_.parquet);
          if (!w.ok()) return w.status();
          writer = std::move(*w);
          in_file = 0;
        }
        RETURN_IF_ERROR(writer->Append(series, readings));
        in_file += static_cast<int64_t>(readings.size());
        last.emplace_back(series, readings.back());
        return absl::OkStatus();
      }));
  RETURN_IF_ERROR(finish());
  if (!last.empty()) {
    const std::string rel = absl::StrFormat("%s/last-v%d.parquet", rel_dir, version);
    auto w = archive::ParquetReadingsWriter::Create(fs_, Staged(rel), info, options_.parquet);
    if (!w.ok()) return w.status();
    for (const auto& [series, reading] : last) RETURN_IF_ERROR((*w)->Append(series, {reading}));
    auto summary = (*w)->Finish();
    if (!summary.ok()) return summary.status();
    result->files.push_back({rel, "last", summary->rows, summary->bytes, summary->sha256_hex});
    result->bytes += summary->bytes;
  }
  return absl::OkStatus();
}

}  // namespace telemetry
