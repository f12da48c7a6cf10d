// A small HTTP client for notifications (webhooks, Alertmanager): one POST,
// its status code. The implementation wraps cpp-httplib; fakes implement
// the interface in tests.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace telemetry {

class HttpPoster {
 public:
  virtual ~HttpPoster() = default;
  // POSTs `body` as application/json to `url` (http://host[:port][/path]);
  // returns the response's status code, UNAVAILABLE when no response came.
  virtual absl::StatusOr<int> Post(const std::string& url, const std::string& body,
                                   const std::vector<std::pair<std::string, std::string>>& headers,
                                   int timeout_ms) = 0;
};

std::unique_ptr<HttpPoster> NewHttpPoster();

}  // namespace telemetry
