// Flags with environment-variable fallbacks. ABSL_FLAG lives only in main.cc;
// this fills each flag `foo_bar` from TELEMETRY_FOO_BAR when the command line
// does not set it, so containers configure services through the environment.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace telemetry {

// Applies environment fallbacks, then parses the command line (which wins).
// Exits with a message on a bad value. Returns the positional arguments.
std::vector<char*> InitFlags(int argc, char** argv, const char* usage);

// The environment variable that backs flag `name`: TELEMETRY_<NAME>.
std::string EnvVarForFlag(const std::string& name);

// Parses "name=value,name=value" (e.g. extra librdkafka properties from a
// --kafka_config flag). Blank input gives an empty map. A value may contain
// '=' but not ','; names are trimmed and must be unique.
absl::StatusOr<std::map<std::string, std::string>> ParseKeyValues(const std::string& text);

}  // namespace telemetry
