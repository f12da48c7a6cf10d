// ArchiveFs over Arrow's LocalFileSystem and S3FileSystem (archive_fs.h).
#include "common/archive/archive_fs.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "arrow/buffer.h"
#include "arrow/filesystem/localfs.h"
#include "arrow/filesystem/s3fs.h"
#include "arrow/io/interfaces.h"
#include "common/archive/archive_fs_internal.h"
#include "common/status_macros.h"

namespace telemetry::archive {
namespace {

namespace afs = arrow::fs;

// S3's process-wide state (the AWS SDK): initialized by the first S3 root,
// finalized by ShutdownArchiveFs.
absl::Mutex s3_mu;
bool s3_initialized ABSL_GUARDED_BY(s3_mu) = false;
bool s3_finalized ABSL_GUARDED_BY(s3_mu) = false;

absl::Status EnsureS3() {
  absl::MutexLock lock(&s3_mu);
  if (s3_initialized) return absl::OkStatus();
  if (s3_finalized) return absl::FailedPreconditionError("S3 was shut down in this process");
  // The wheel's TLS library is built for another distribution's CA path:
  // point it at Debian's bundle (https endpoints, AWS itself).
  static constexpr char kDebianCaBundle[] = "/etc/ssl/certs/ca-certificates.crt";
  std::error_code ec;
  if (std::filesystem::exists(kDebianCaBundle, ec)) {
    afs::FileSystemGlobalOptions global;
    global.tls_ca_file_path = kDebianCaBundle;
    RETURN_IF_ARROW(afs::Initialize(global), "configure TLS for S3");
  }
  // This AWS SDK adds a CRC checksum to every upload by default, sent as a
  // trailer of an aws-chunked body, which S3-compatible servers do not all
  // accept (S3Proxy 3.1 answers 400 to a PutObject or a small UploadPart).
  // Only where an operation requires one, unless the operator chose
  // otherwise. (Integrity: TLS on the wire, SigV4 signs the payload's hash
  // over plain HTTP, and the manifest holds each file's SHA-256.) Set before
  // the first client exists, in the main thread at start-up.
  setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required", /*overwrite=*/0);
  auto options = afs::S3GlobalOptions::Defaults();
  // The SDK would otherwise abort the process on a peer's reset (SIGPIPE is
  // blocked in our mains, but not in every caller's).
  options.install_sigpipe_handler = false;
  RETURN_IF_ARROW(afs::InitializeS3(options), "initialize S3");
  s3_initialized = true;
  return absl::OkStatus();
}

// An s3:// root, parsed without touching the AWS SDK (not initialized yet).
struct S3Root {
  std::string bucket;
  std::string prefix;  // no leading or trailing '/'
  std::string scheme = "https";
  std::string endpoint_override;  // host[:port]
  std::string region;
};

absl::StatusOr<S3Root> ParseS3Root(const std::string& root) {
  absl::string_view rest = root;
  if (!absl::ConsumePrefix(&rest, "s3://")) {
    return absl::InvalidArgumentError(absl::StrCat("archive root '", root, "' is not s3://"));
  }
  absl::string_view query;
  if (size_t q = rest.find('?'); q != absl::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  S3Root out;
  const size_t slash = rest.find('/');
  out.bucket = std::string(rest.substr(0, slash));
  if (slash != absl::string_view::npos) {
    absl::string_view prefix = rest.substr(slash + 1);
    while (absl::ConsumeSuffix(&prefix, "/")) {
    }
    out.prefix = std::string(prefix);
  }
  if (out.bucket.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("archive root '", root, "': no bucket"));
  }
  if (absl::StrContains(out.bucket, "@") || absl::StrContains(out.bucket, ":")) {
    return absl::InvalidArgumentError(
        absl::StrCat("archive root: credentials do not belong in the URL (use "
                     "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS config)"));
  }
  std::map<std::string, std::string> params;
  for (absl::string_view kv : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (p.first != "endpoint" && p.first != "region") {
      return absl::InvalidArgumentError(absl::StrCat("archive root: unknown parameter '", p.first,
                                                     "' (known: endpoint, region)"));
    }
    params[p.first] = p.second;
  }
  if (auto it = params.find("endpoint"); it != params.end()) {
    absl::string_view ep = it->second;
    if (absl::ConsumePrefix(&ep, "http://")) {
      out.scheme = "http";
    } else if (absl::ConsumePrefix(&ep, "https://")) {
      out.scheme = "https";
    } else {
      return absl::InvalidArgumentError(absl::StrCat("archive root: endpoint '", it->second,
                                                     "' must start with http:// or https://"));
    }
    while (absl::ConsumeSuffix(&ep, "/")) {
    }
    if (ep.empty() || absl::StrContains(ep, "/")) {
      return absl::InvalidArgumentError(
          absl::StrCat("archive root: endpoint '", it->second, "' must be scheme://host[:port]"));
    }
    out.endpoint_override = std::string(ep);
    out.region = "us-east-1";
  }
  if (auto it = params.find("region"); it != params.end()) out.region = it->second;
  return out;
}

absl::StatusOr<std::unique_ptr<ArchiveFs>> OpenS3(const std::string& root) {
  auto parsed = ParseS3Root(root);
  if (!parsed.ok()) return parsed.status();
  RETURN_IF_ERROR(EnsureS3());
  afs::S3Options options = afs::S3Options::Defaults();  // the AWS default credentials chain
  options.scheme = parsed->scheme;
  options.endpoint_override = parsed->endpoint_override;
  options.region = parsed->region;
  if (options.region.empty()) {
    auto region = afs::ResolveS3BucketRegion(parsed->bucket);
    if (!region.ok()) {
      return FromArrow(region.status(), absl::StrCat("region of bucket ", parsed->bucket));
    }
    options.region = *region;
  }
  // A small file goes up in one PutObject instead of a multipart upload of
  // one part (errors surface at close, which the writers check).
  options.allow_delayed_open = true;
  auto s3 = afs::S3FileSystem::Make(options);
  if (!s3.ok()) return FromArrow(s3.status(), absl::StrCat("open ", root));
  auto bucket = (*s3)->GetFileInfo(parsed->bucket);
  if (!bucket.ok()) return FromArrow(bucket.status(), absl::StrCat("bucket ", parsed->bucket));
  if (bucket->type() != afs::FileType::Directory) {
    return absl::FailedPreconditionError(
        absl::StrCat("bucket '", parsed->bucket, "' does not exist (create it first)"));
  }
  auto impl = std::make_unique<ArchiveFs::Impl>();
  impl->root = root;
  impl->s3 = true;
  std::string base = parsed->bucket;
  if (!parsed->prefix.empty()) absl::StrAppend(&base, "/", parsed->prefix);
  impl->fs = std::make_shared<afs::SubTreeFileSystem>(base, *s3);
  return std::make_unique<ArchiveFs>(std::move(impl));
}

absl::StatusOr<std::unique_ptr<ArchiveFs>> OpenLocal(const std::string& root,
                                                     const std::string& dir, bool create) {
  std::error_code ec;
  const std::filesystem::path abs = std::filesystem::absolute(dir, ec);
  if (ec || dir.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("archive root '", root, "': bad path"));
  }
  if (create) {
    std::filesystem::create_directories(abs, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("create ", abs.string(), ": ", ec.message()));
    }
  }
  auto impl = std::make_unique<ArchiveFs::Impl>();
  impl->root = root;
  impl->fs = std::make_shared<afs::SubTreeFileSystem>(abs.lexically_normal().string(),
                                                      std::make_shared<afs::LocalFileSystem>());
  return std::make_unique<ArchiveFs>(std::move(impl));
}

}  // namespace

absl::Status FromArrow(const arrow::Status& st, absl::string_view what) {
  if (st.ok()) return absl::OkStatus();
  if (st.IsIOError()) return absl::UnavailableError(absl::StrCat(what, ": ", st.ToString()));
  if (st.IsInvalid() || st.IsTypeError()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", st.ToString()));
  }
  return absl::InternalError(absl::StrCat(what, ": ", st.ToString()));
}

absl::StatusOr<std::unique_ptr<ArchiveFs>> LocalDirFs(const std::string& dir) {
  return OpenLocal(dir, dir, /*create=*/false);
}

absl::StatusOr<std::unique_ptr<ArchiveFs>> ArchiveFs::Open(const std::string& root) {
  if (absl::StartsWith(root, "s3://")) return OpenS3(root);
  absl::string_view dir = root;
  absl::ConsumePrefix(&dir, "file://");
  if (absl::StrContains(dir, "://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("archive root '", root, "': a local directory, file:// or s3:// URL"));
  }
  return OpenLocal(root, std::string(dir), /*create=*/true);
}

ArchiveFs::ArchiveFs(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ArchiveFs::~ArchiveFs() = default;

const std::string& ArchiveFs::root() const { return impl_->root; }
bool ArchiveFs::is_s3() const { return impl_->s3; }

absl::Status ArchiveFs::CreateDirs(const std::string& rel_dir) {
  if (impl_->s3) return absl::OkStatus();
  return FromArrow(impl_->fs->CreateDir(rel_dir, /*recursive=*/true),
                   absl::StrCat("create ", rel_dir));
}

absl::StatusOr<std::vector<std::string>> ArchiveFs::ListFiles(const std::string& rel_dir) {
  afs::FileSelector sel;
  sel.base_dir = rel_dir;
  sel.allow_not_found = true;
  sel.recursive = false;
  auto infos = impl_->fs->GetFileInfo(sel);
  if (!infos.ok()) return FromArrow(infos.status(), absl::StrCat("list ", rel_dir));
  std::vector<std::string> names;
  for (const afs::FileInfo& info : *infos) {
    if (info.type() == afs::FileType::File) names.push_back(info.base_name());
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::Status ArchiveFs::Delete(const std::string& rel) {
  auto info = impl_->fs->GetFileInfo(rel);
  if (!info.ok()) return FromArrow(info.status(), absl::StrCat("delete ", rel));
  if (info->type() == afs::FileType::NotFound) {
    return absl::NotFoundError(absl::StrCat("delete ", rel, ": no such file"));
  }
  return FromArrow(impl_->fs->DeleteFile(rel), absl::StrCat("delete ", rel));
}

absl::StatusOr<int64_t> ArchiveFs::FileSize(const std::string& rel) {
  auto info = impl_->fs->GetFileInfo(rel);
  if (!info.ok()) return FromArrow(info.status(), absl::StrCat("stat ", rel));
  if (info->type() != afs::FileType::File) {
    return absl::NotFoundError(absl::StrCat(rel, ": no such file"));
  }
  return info->size();
}

absl::Status ArchiveFs::Move(const std::string& from_rel, const std::string& to_rel) {
  return FromArrow(impl_->fs->Move(from_rel, to_rel),
                   absl::StrCat("move ", from_rel, " -> ", to_rel));
}

absl::Status ArchiveFs::DeleteFilesUnder(const std::string& rel_dir) {
  afs::FileSelector sel;
  sel.base_dir = rel_dir;
  sel.allow_not_found = true;
  sel.recursive = true;
  auto infos = impl_->fs->GetFileInfo(sel);
  if (!infos.ok()) return FromArrow(infos.status(), absl::StrCat("list ", rel_dir));
  // One DeleteObject per file, not a DeleteObjects batch: a batch names the
  // directory markers too, which servers keeping objects as files (S3Proxy's
  // filesystem backend) refuse while the directory still holds files.
  for (const afs::FileInfo& info : *infos) {
    if (info.type() != afs::FileType::File) continue;
    RETURN_IF_ARROW(impl_->fs->DeleteFile(info.path()), absl::StrCat("delete ", info.path()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ArchiveFs::Read(const std::string& rel) {
  auto in = impl_->fs->OpenInputStream(rel);
  if (!in.ok()) return FromArrow(in.status(), absl::StrCat("open ", rel));
  std::string out;
  for (;;) {
    auto chunk = (*in)->Read(1 << 20);
    if (!chunk.ok()) return FromArrow(chunk.status(), absl::StrCat("read ", rel));
    if ((*chunk)->size() == 0) break;
    out.append(reinterpret_cast<const char*>((*chunk)->data()),
               static_cast<size_t>((*chunk)->size()));
  }
  return out;
}

absl::Status ArchiveFs::Write(const std::string& rel, const std::string& data) {
  auto out = impl_->fs->OpenOutputStream(rel);
  if (!out.ok()) return FromArrow(out.status(), absl::StrCat("create ", rel));
  RETURN_IF_ARROW((*out)->Write(data.data(), static_cast<int64_t>(data.size())),
                  absl::StrCat("write ", rel));
  return FromArrow((*out)->Close(), absl::StrCat("close ", rel));
}

void ShutdownArchiveFs() {
  absl::MutexLock lock(&s3_mu);
  if (!s3_initialized) return;
  (void)afs::FinalizeS3();
  s3_initialized = false;
  s3_finalized = true;
}

}  // namespace telemetry::archive
