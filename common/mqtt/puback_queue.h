// The QoS 1 PUBLISHes one connection received and has not acknowledged yet, in arrival order,
// and which of them the application has handled: the bookkeeping that lets the client send a
// PUBACK only after the application says so (client.h) while keeping [MQTT-4.6.0-2]: PUBACKs go
// out in the order the PUBLISHes arrived. An application acknowledgement of a later message is
// held until every earlier one is acknowledged too; then the whole acknowledged prefix is
// released at once.
//
// Not thread-safe: the client guards it with its lock. Tested in tests/unit/mqtt_packet_test.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "absl/status/statusor.h"

namespace telemetry::mqtt {

class PubackQueue {
 public:
  enum class Arrival {
    kNew,        // deliver it to the application
    kDuplicate,  // a resend (DUP) of a message still pending here: the application has it already
  };

  PubackQueue();

  // A QoS 1 PUBLISH with `packet_id` (non-zero) arrived. An id that is pending and arrives again
  // with DUP set is a resend of the same message: kDuplicate, and it keeps its place. An id that
  // is pending and arrives without DUP is the broker reusing an id it has not had acknowledged,
  // which [MQTT-2.3.1-2] forbids: FAILED_PRECONDITION (the client closes the connection).
  absl::StatusOr<Arrival> OnPublish(uint16_t packet_id, bool dup);

  // The application handled `packet_id`. Returns the packet ids whose PUBACK can be sent now, in
  // the order they are to be sent: empty while an earlier message is still unacknowledged.
  // NOT_FOUND when the id is not pending here (never received, or released already);
  // FAILED_PRECONDITION when it was acknowledged already and is held.
  absl::StatusOr<std::vector<uint16_t>> Ack(uint16_t packet_id);

  // Received and without PUBACK (acknowledged-and-held ones included).
  size_t pending() const { return order_.size(); }
  // Acknowledged by the application, held behind an earlier unacknowledged one.
  size_t held() const { return held_; }
  // Forgets everything (the connection is gone: the broker resends them with DUP).
  void Clear();

 private:
  enum State : uint8_t { kNone = 0, kPending = 1, kAcked = 2 };
  std::deque<uint16_t> order_;  // arrival order of the ids without PUBACK
  std::vector<uint8_t> state_;  // by packet id, 65536 entries
  size_t held_ = 0;
};

}  // namespace telemetry::mqtt
