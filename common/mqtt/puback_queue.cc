#include "common/mqtt/puback_queue.h"

#include "absl/strings/str_cat.h"

namespace telemetry::mqtt {

PubackQueue::PubackQueue() : state_(65536, kNone) {}

absl::StatusOr<PubackQueue::Arrival> PubackQueue::OnPublish(uint16_t packet_id, bool dup) {
  if (packet_id == 0) return absl::InvalidArgumentError("packet id 0");
  if (state_[packet_id] != kNone) {
    if (dup) return Arrival::kDuplicate;
    return absl::FailedPreconditionError(
        absl::StrCat("the broker sent a new PUBLISH with packet id ", packet_id,
                     " before that id was acknowledged"));
  }
  state_[packet_id] = kPending;
  order_.push_back(packet_id);
  return Arrival::kNew;
}

absl::StatusOr<std::vector<uint16_t>> PubackQueue::Ack(uint16_t packet_id) {
  switch (state_[packet_id]) {
    case kNone:
      return absl::NotFoundError(absl::StrCat(
          "packet id ", packet_id, " is not awaiting an acknowledgement on this connection"));
    case kAcked:
      return absl::FailedPreconditionError(
          absl::StrCat("packet id ", packet_id, " was acknowledged already"));
    case kPending:
      break;
  }
  state_[packet_id] = kAcked;
  ++held_;
  std::vector<uint16_t> release;
  while (!order_.empty() && state_[order_.front()] == kAcked) {
    release.push_back(order_.front());
    state_[order_.front()] = kNone;
    order_.pop_front();
    --held_;
  }
  return release;
}

void PubackQueue::Clear() {
  for (uint16_t id : order_) state_[id] = kNone;
  order_.clear();
  held_ = 0;
}

}  // namespace telemetry::mqtt
