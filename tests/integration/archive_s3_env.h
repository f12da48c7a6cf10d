// Included once by a test binary that opens S3 archive roots: shuts the S3
// client library down after the last test (Arrow requires it before exit;
// the sanitizer pass's leak check sees the SDK's memory otherwise).
#pragma once

#include <gtest/gtest.h>

#include "common/archive/archive_fs.h"

namespace telemetry::testing {

class ShutdownArchiveFsEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { archive::ShutdownArchiveFs(); }
};

[[maybe_unused]] inline ::testing::Environment* const kShutdownArchiveFs =
    ::testing::AddGlobalTestEnvironment(new ShutdownArchiveFsEnvironment);

}  // namespace telemetry::testing
