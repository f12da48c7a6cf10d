#include "common/config.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace telemetry {

std::string EnvVarForFlag(const std::string& name) {
  std::string env = "TELEMETRY_";
  for (char c : name) env.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return env;
}

absl::StatusOr<std::map<std::string, std::string>> ParseKeyValues(const std::string& text) {
  std::map<std::string, std::string> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    size_t eq = item.find('=');
    absl::string_view name = absl::StripAsciiWhitespace(item.substr(0, eq));
    if (eq == absl::string_view::npos || name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", absl::StripAsciiWhitespace(item), "': want name=value"));
    }
    std::string value(absl::StripAsciiWhitespace(item.substr(eq + 1)));
    if (!out.emplace(std::string(name), std::move(value)).second) {
      return absl::InvalidArgumentError(absl::StrCat("'", name, "' is given twice"));
    }
  }
  return out;
}

std::vector<char*> InitFlags(int argc, char** argv, const char* usage) {
  absl::SetProgramUsageMessage(usage);
  // --help lists every flag of this project's sources. Abseil's default
  // lists only those of a file named like the binary, which here matched
  // none ("No flags matched.").
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return !absl::StrContains(file, "absl/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  absl::SetFlagsUsageConfig(config);
  for (auto& [name, flag] : absl::GetAllFlags()) {
    const char* value = std::getenv(EnvVarForFlag(std::string(name)).c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      std::fprintf(stderr, "bad value in %s for --%s: %s\n",
                   EnvVarForFlag(std::string(name)).c_str(), std::string(name).c_str(),
                   error.c_str());
      std::exit(2);
    }
  }
  return absl::ParseCommandLine(argc, argv);
}

}  // namespace telemetry
