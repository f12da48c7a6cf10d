#include "common/token.h"

#include "absl/strings/escaping.h"
#include "telemetry/v1/common.pb.h"

namespace telemetry {

std::string EncodeConsistencyToken(const ConsistencyPositions& positions) {
  telemetry::v1::ConsistencyToken t;
  t.set_topic(positions.topic);
  for (const auto& [p, o] : positions.offsets) {
    auto* po = t.add_positions();
    po->set_partition(p);
    po->set_offset(o);
  }
  return absl::WebSafeBase64Escape(t.SerializeAsString());
}

absl::StatusOr<ConsistencyPositions> DecodeConsistencyToken(const std::string& token) {
  std::string raw;
  telemetry::v1::ConsistencyToken t;
  if (!absl::WebSafeBase64Unescape(token, &raw) || !t.ParseFromString(raw) || t.topic().empty()) {
    return absl::InvalidArgumentError("consistency_token: not a token returned by a write");
  }
  ConsistencyPositions out;
  out.topic = t.topic();
  for (const auto& po : t.positions()) {
    if (po.partition() < 0 || po.offset() < 0) {
      return absl::InvalidArgumentError("consistency_token: negative partition or offset");
    }
    auto& o = out.offsets[po.partition()];
    o = std::max(o, po.offset());
  }
  return out;
}

bool TokenSatisfied(const ConsistencyPositions& positions,
                    const std::map<int32_t, int64_t>& applied) {
  for (const auto& [p, o] : positions.offsets) {
    auto it = applied.find(p);
    if (it == applied.end() || it->second <= o) return false;
  }
  return true;
}

}  // namespace telemetry
