#include "common/mqtt/sys_topics.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace telemetry::mqtt {

absl::StatusOr<uint64_t> ParseSysCounter(absl::string_view payload) {
  const absl::string_view digits = absl::StripAsciiWhitespace(payload);
  uint64_t value = 0;
  // SimpleAtoi alone would take a sign; a counter has none.
  if (digits.empty() || !absl::ascii_isdigit(static_cast<unsigned char>(digits[0])) ||
      !absl::SimpleAtoi(digits, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", payload.substr(0, 40), "' is not a $SYS counter (decimal digits)"));
  }
  return value;
}

}  // namespace telemetry::mqtt
