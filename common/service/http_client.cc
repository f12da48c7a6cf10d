// HttpPoster over cpp-httplib (plain http only).
#include "common/service/http_client.h"

#include <httplib.h>

#include "absl/strings/str_cat.h"

namespace telemetry {
namespace {

class HttplibPoster final : public HttpPoster {
 public:
  absl::StatusOr<int> Post(const std::string& url, const std::string& body,
                           const std::vector<std::pair<std::string, std::string>>& headers,
                           int timeout_ms) override {
    // http://host[:port][/path]
    constexpr std::string_view kScheme = "http://";
    if (url.rfind(kScheme, 0) != 0) {
      return absl::InvalidArgumentError("not an http:// URL: " + url);
    }
    const size_t slash = url.find('/', kScheme.size());
    const std::string origin = slash == std::string::npos ? url : url.substr(0, slash);
    const std::string path = slash == std::string::npos ? "/" : url.substr(slash);
    httplib::Client client(origin);
    const time_t sec = timeout_ms / 1000;
    const time_t usec = static_cast<time_t>(timeout_ms % 1000) * 1000;
    client.set_connection_timeout(sec, usec);
    client.set_read_timeout(sec, usec);
    client.set_write_timeout(sec, usec);
    httplib::Headers h;
    for (const auto& [k, v] : headers) h.emplace(k, v);
    auto res = client.Post(path.c_str(), h, body, "application/json");
    if (!res) {
      return absl::UnavailableError(absl::StrCat(url, ": ", httplib::to_string(res.error())));
    }
    return res->status;
  }
};

}  // namespace

std::unique_ptr<HttpPoster> NewHttpPoster() { return std::make_unique<HttplibPoster>(); }

}  // namespace telemetry
