// One named spdlog logger per module.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace telemetry {

// Returns the logger `name`, creating it (stderr, shared format) if needed.
std::shared_ptr<spdlog::logger> GetLogger(const std::string& name);

// Sets the level of every logger ("debug", "info", "warn", ...).
void SetLogLevel(const std::string& level);

}  // namespace telemetry
