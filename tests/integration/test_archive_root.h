// An archive root of a test's own, for tests parameterised by "local" / "s3":
// a fresh temporary directory, or a prefix of the stack's S3 bucket
// (harness S3ArchiveRoot), named after the running test; emptied when
// destroyed. Header-only: its users link telemetry_archive.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/archive/archive_fs.h"
#include "tests/integration/harness.h"

namespace telemetry::testing {

class TestArchiveRoot {
 public:
  TestArchiveRoot(const std::string& kind, const std::string& prefix) {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '-');
    const std::string leaf = absl::StrCat(prefix, "_", getpid(), "_", name);
    std::string root;
    if (kind == "s3") {
      root = S3ArchiveRoot(leaf);
    } else {
      local_ = std::filesystem::temp_directory_path() / leaf;
      std::filesystem::remove_all(local_);
      root = local_.string();
    }
    auto opened = archive::ArchiveFs::Open(root);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (opened.ok()) fs_ = std::move(*opened);
  }
  ~TestArchiveRoot() {
    if (fs_ != nullptr && fs_->is_s3()) {
      absl::Status st = fs_->DeleteFilesUnder("");
      EXPECT_TRUE(st.ok()) << st;
    }
    if (!local_.empty()) std::filesystem::remove_all(local_);
  }
  TestArchiveRoot(const TestArchiveRoot&) = delete;
  TestArchiveRoot& operator=(const TestArchiveRoot&) = delete;

  // Null when it could not be opened (the constructor's failure says why).
  archive::ArchiveFs* fs() const { return fs_.get(); }
  // The local directory ("" on S3).
  const std::filesystem::path& local() const { return local_; }

 private:
  std::filesystem::path local_;
  std::unique_ptr<archive::ArchiveFs> fs_;
};

}  // namespace telemetry::testing
