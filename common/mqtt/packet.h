// MQTT 3.1.1 control packets (OASIS Standard, 29 October 2014) as bytes, without a socket: what
// the client in client.h sends and receives, so that every rule of the wire format is unit-tested
// (tests/unit/mqtt_packet_test.cc). Section numbers ("2.2.3") and normative statements
// ("[MQTT-3.1.3-7]") refer to that standard.
//
// Only what a subscribing and publishing client needs is here: CONNECT, SUBSCRIBE, PUBLISH,
// PUBACK, PINGREQ and DISCONNECT are encoded; CONNACK, SUBACK, PUBLISH and the packets that carry
// only a packet identifier are decoded. Decoders take bytes from the network: they check every
// length against the bytes present and return INVALID_ARGUMENT for anything malformed, never
// read past the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace telemetry::mqtt {

// 2.2.1: the control packet type, the high nibble of the first byte.
enum class PacketType : uint8_t {
  kConnect = 1,
  kConnAck = 2,
  kPublish = 3,
  kPubAck = 4,
  kPubRec = 5,
  kPubRel = 6,
  kPubComp = 7,
  kSubscribe = 8,
  kSubAck = 9,
  kUnsubscribe = 10,
  kUnsubAck = 11,
  kPingReq = 12,
  kPingResp = 13,
  kDisconnect = 14,
};
const char* PacketTypeName(PacketType type);

// 2.2.3: the largest remaining length four bytes of seven bits can carry (256 MiB - 1).
inline constexpr uint32_t kMaxRemainingLength = 268'435'455;
// 1.5.3: UTF-8 strings and binary fields carry a two-byte length.
inline constexpr size_t kMaxStringLength = 65'535;

// 2.2.3: appends `length` as one to four bytes, seven bits each, least significant group first,
// the high bit saying another byte follows. `length` must be <= kMaxRemainingLength (the encoders
// below check that before calling).
void AppendRemainingLength(uint32_t length, std::string* out);

struct RemainingLength {
  uint32_t value = 0;
  size_t size = 0;  // bytes the encoding took (1-4)
};
// Decodes a remaining length at the start of `in`. nullopt: `in` ends before the last byte of the
// encoding. INVALID_ARGUMENT: a fifth byte would be needed (more than four bytes is malformed).
// An encoding longer than needed (0x80 0x00 for 0) is accepted: 3.1.1 does not forbid it.
absl::StatusOr<std::optional<RemainingLength>> DecodeRemainingLength(absl::string_view in);

// One whole packet as it came off the wire.
struct Packet {
  PacketType type = PacketType::kConnect;
  uint8_t flags = 0;  // the low nibble of the first byte
  std::string body;   // the variable header and the payload (remaining-length bytes)
};

// Splits a byte stream into packets. Not thread-safe.
class PacketReader {
 public:
  // `max_packet_size` bounds a whole packet (fixed header included).
  explicit PacketReader(size_t max_packet_size) : max_packet_size_(max_packet_size) {}

  void Append(absl::string_view bytes);
  // The next whole packet; nullopt while its bytes have not all arrived. Errors, after which the
  // stream is unusable (the connection must be closed, [MQTT-4.8.0-1]):
  //  - INVALID_ARGUMENT: a malformed fixed header (packet type 0 or 15, a remaining length over
  //    four bytes, reserved flag bits that 2.2.2 fixes but are not as fixed, [MQTT-2.2.2-2]);
  //  - RESOURCE_EXHAUSTED: a packet larger than max_packet_size, known from its fixed header
  //    (nothing of its body is buffered first).
  absl::StatusOr<std::optional<Packet>> Next();
  // Bytes received and not yet returned as a packet.
  size_t buffered() const { return buffer_.size() - offset_; }

 private:
  size_t max_packet_size_;
  std::string buffer_;
  size_t offset_ = 0;  // bytes of buffer_ already returned as packets
};

// 1.5.3 and 4.7: a UTF-8 string MQTT allows: well-formed UTF-8 (no surrogates, no overlong
// forms), no U+0000, at most kMaxStringLength bytes. `what` names the field in the error.
absl::Status ValidateUtf8String(absl::string_view s, absl::string_view what);
// 4.7.3: a topic name to publish to: a valid string, not empty, no wildcard ('+', '#').
absl::Status ValidateTopicName(absl::string_view topic);
// 4.7.1: a topic filter to subscribe to: a valid string, not empty, '#' only as the whole last
// level, '+' only as a whole level.
absl::Status ValidateTopicFilter(absl::string_view filter);

struct ConnectFields {
  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;  // 3.1.1 allows a password only with a user name
  bool clean_session = true;
  uint16_t keepalive_s = 60;  // 0: no keepalive
};
// 3.1: protocol name "MQTT", level 4. INVALID_ARGUMENT for a field MQTT cannot carry: a client id
// or user name that is not a valid string, an empty client id with clean_session false
// ([MQTT-3.1.3-7]), a password without a user name ([MQTT-3.1.2-22]), a password over 65535
// bytes.
absl::StatusOr<std::string> EncodeConnect(const ConnectFields& fields);

// A PUBLISH either way (3.3).
struct PublishFields {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool dup = false;
  bool retain = false;
  uint16_t packet_id = 0;  // non-zero exactly when qos > 0 (2.3.1)
};
// INVALID_ARGUMENT for an invalid topic name, a QoS outside 0-2, a packet id that is zero for
// QoS > 0 or set for QoS 0, DUP on QoS 0 ([MQTT-3.3.1-2]), or a packet over kMaxRemainingLength.
absl::StatusOr<std::string> EncodePublish(const PublishFields& fields);
// INVALID_ARGUMENT: a flags QoS of 3 ([MQTT-3.3.1-4]), DUP on QoS 0, a body shorter than its
// lengths, a topic that is not a valid topic name ([MQTT-3.3.2-2]), a zero packet id.
absl::StatusOr<PublishFields> DecodePublish(const Packet& packet);

struct Subscription {
  std::string filter;
  int qos = 1;  // the maximum QoS requested
};
// 3.8: INVALID_ARGUMENT for an empty list ([MQTT-3.8.3-3]), an invalid filter, a QoS outside
// 0-2, packet id 0.
absl::StatusOr<std::string> EncodeSubscribe(uint16_t packet_id,
                                            const std::vector<Subscription>& subscriptions);

// 3.2: the session present flag and the return code.
struct ConnAck {
  bool session_present = false;
  uint8_t return_code = 0;
};
// INVALID_ARGUMENT unless the body is exactly two bytes with the reserved bits of the first clear
// ([MQTT-3.2.2-1] allows only bit 0).
absl::StatusOr<ConnAck> DecodeConnAck(const Packet& packet);
// 3.2.2.3: OK for 0; otherwise the refusal as a status that says what to fix:
// 1 unacceptable protocol version → FAILED_PRECONDITION, 2 identifier rejected → INVALID_ARGUMENT,
// 3 server unavailable → UNAVAILABLE, 4 bad user name or password → UNAUTHENTICATED,
// 5 not authorized → PERMISSION_DENIED, anything else (reserved) → INTERNAL.
absl::Status ConnAckStatus(uint8_t return_code);

// 3.9: one return code per subscription, in order: 0-2 the QoS granted, 0x80 failure.
inline constexpr uint8_t kSubAckFailure = 0x80;
struct SubAck {
  uint16_t packet_id = 0;
  std::vector<uint8_t> return_codes;
};
// INVALID_ARGUMENT for a body without a packet id or codes, or a code other than 0, 1, 2, 0x80
// ([MQTT-3.9.3-2]).
absl::StatusOr<SubAck> DecodeSubAck(const Packet& packet);

// PUBACK (3.4), PUBREC, PUBREL, PUBCOMP, UNSUBACK: a body of exactly a non-zero packet id.
absl::StatusOr<uint16_t> DecodePacketId(const Packet& packet);

std::string EncodePubAck(uint16_t packet_id);
std::string EncodePingReq();
std::string EncodeDisconnect();

}  // namespace telemetry::mqtt
