#include "common/mqtt/packet.h"

#include "absl/strings/str_cat.h"

namespace telemetry::mqtt {
namespace {

constexpr uint8_t kFirstByteFlagsMask = 0x0F;

void AppendU16(uint16_t v, std::string* out) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v & 0xFF));
}

// A length-prefixed field (1.5.3); the caller checked the length.
void AppendField(absl::string_view s, std::string* out) {
  AppendU16(static_cast<uint16_t>(s.size()), out);
  out->append(s.data(), s.size());
}

// Reads the body of a packet front to back, every read checked against what is left.
class BodyReader {
 public:
  explicit BodyReader(absl::string_view body) : rest_(body) {}
  bool ReadU16(uint16_t* v) {
    if (rest_.size() < 2) return false;
    *v = static_cast<uint16_t>((static_cast<uint8_t>(rest_[0]) << 8) |
                               static_cast<uint8_t>(rest_[1]));
    rest_.remove_prefix(2);
    return true;
  }
  bool ReadField(absl::string_view* s) {
    uint16_t n = 0;
    if (!ReadU16(&n) || rest_.size() < n) return false;
    *s = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return true;
  }
  absl::string_view rest() const { return rest_; }

 private:
  absl::string_view rest_;
};

// 2.2.2: the flags of every type but PUBLISH are fixed.
bool FixedFlagsValid(PacketType type, uint8_t flags) {
  switch (type) {
    case PacketType::kPublish:
      return true;  // DUP, QoS, RETAIN: checked by DecodePublish
    case PacketType::kPubRel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      return flags == 0x2;
    case PacketType::kConnect:
    case PacketType::kConnAck:
    case PacketType::kPubAck:
    case PacketType::kPubRec:
    case PacketType::kPubComp:
    case PacketType::kSubAck:
    case PacketType::kUnsubAck:
    case PacketType::kPingReq:
    case PacketType::kPingResp:
    case PacketType::kDisconnect:
      return flags == 0;
  }
  return false;
}

absl::Status ExpectType(const Packet& packet, PacketType want) {
  if (packet.type == want) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("expected a ", PacketTypeName(want),
                                                 " packet, got ", PacketTypeName(packet.type)));
}

// A fixed header and `body` as one packet; INVALID_ARGUMENT when the body is too long for MQTT.
absl::StatusOr<std::string> Frame(uint8_t first_byte, absl::string_view what,
                                  const std::string& body) {
  if (body.size() > kMaxRemainingLength) {
    return absl::InvalidArgumentError(absl::StrCat(what, " of ", body.size(),
                                                   " bytes is over MQTT's maximum of ",
                                                   kMaxRemainingLength, " bytes"));
  }
  std::string out;
  out.reserve(body.size() + 5);
  out.push_back(static_cast<char>(first_byte));
  AppendRemainingLength(static_cast<uint32_t>(body.size()), &out);
  out.append(body.data(), body.size());
  return out;
}

std::string FixedPacket(PacketType type, uint8_t flags, absl::string_view body) {
  std::string out;
  out.push_back(static_cast<char>((static_cast<uint8_t>(type) << 4) | flags));
  AppendRemainingLength(static_cast<uint32_t>(body.size()), &out);
  out.append(body.data(), body.size());
  return out;
}

}  // namespace

const char* PacketTypeName(PacketType type) {
  switch (type) {
    case PacketType::kConnect:
      return "CONNECT";
    case PacketType::kConnAck:
      return "CONNACK";
    case PacketType::kPublish:
      return "PUBLISH";
    case PacketType::kPubAck:
      return "PUBACK";
    case PacketType::kPubRec:
      return "PUBREC";
    case PacketType::kPubRel:
      return "PUBREL";
    case PacketType::kPubComp:
      return "PUBCOMP";
    case PacketType::kSubscribe:
      return "SUBSCRIBE";
    case PacketType::kSubAck:
      return "SUBACK";
    case PacketType::kUnsubscribe:
      return "UNSUBSCRIBE";
    case PacketType::kUnsubAck:
      return "UNSUBACK";
    case PacketType::kPingReq:
      return "PINGREQ";
    case PacketType::kPingResp:
      return "PINGRESP";
    case PacketType::kDisconnect:
      return "DISCONNECT";
  }
  return "?";
}

void AppendRemainingLength(uint32_t length, std::string* out) {
  do {
    uint8_t byte = static_cast<uint8_t>(length % 128);
    length /= 128;
    if (length > 0) byte |= 0x80;
    out->push_back(static_cast<char>(byte));
  } while (length > 0);
}

absl::StatusOr<std::optional<RemainingLength>> DecodeRemainingLength(absl::string_view in) {
  uint32_t value = 0;
  uint32_t multiplier = 1;
  for (size_t i = 0; i < 4; ++i) {
    if (i >= in.size()) return std::nullopt;
    const auto byte = static_cast<uint8_t>(in[i]);
    value += (byte & 0x7Fu) * multiplier;
    if ((byte & 0x80) == 0) return RemainingLength{value, i + 1};
    multiplier *= 128;
  }
  return absl::InvalidArgumentError(
      "malformed remaining length: the fourth byte has the continuation bit set");
}

void PacketReader::Append(absl::string_view bytes) {
  // Drop what was consumed before growing (amortised: at most once per buffer's worth).
  if (offset_ > 0 && offset_ >= buffer_.size() / 2) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(bytes.data(), bytes.size());
}

absl::StatusOr<std::optional<Packet>> PacketReader::Next() {
  const absl::string_view avail = absl::string_view(buffer_).substr(offset_);
  if (avail.empty()) return std::nullopt;
  const auto first = static_cast<uint8_t>(avail[0]);
  const uint8_t type_bits = first >> 4;
  const uint8_t flags = first & kFirstByteFlagsMask;
  if (type_bits == 0 || type_bits == 15) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed fixed header: reserved packet type ", type_bits));
  }
  const auto type = static_cast<PacketType>(type_bits);
  if (!FixedFlagsValid(type, flags)) {
    return absl::InvalidArgumentError(absl::StrCat("malformed fixed header: ", PacketTypeName(type),
                                                   " with reserved flags ",
                                                   static_cast<int>(flags)));
  }
  auto length = DecodeRemainingLength(avail.substr(1));
  if (!length.ok()) return length.status();
  if (!length->has_value()) return std::nullopt;
  const size_t header = 1 + (*length)->size;
  const size_t total = header + (*length)->value;
  if (total > max_packet_size_) {
    return absl::ResourceExhaustedError(absl::StrCat("a ", PacketTypeName(type), " packet of ",
                                                     total, " bytes is over the maximum of ",
                                                     max_packet_size_, " bytes"));
  }
  if (avail.size() < total) return std::nullopt;
  Packet packet;
  packet.type = type;
  packet.flags = flags;
  packet.body.assign(avail.data() + header, (*length)->value);
  offset_ += total;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  return packet;
}

absl::Status ValidateUtf8String(absl::string_view s, absl::string_view what) {
  if (s.size() > kMaxStringLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", s.size(), " bytes: MQTT allows at most ", kMaxStringLength));
  }
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    if (b0 == 0) return absl::InvalidArgumentError(absl::StrCat(what, " contains U+0000"));
    size_t n = 0;
    uint32_t cp = 0;
    if (b0 < 0x80) {
      ++i;
      continue;
    } else if ((b0 & 0xE0) == 0xC0) {
      n = 1;
      cp = b0 & 0x1Fu;
    } else if ((b0 & 0xF0) == 0xE0) {
      n = 2;
      cp = b0 & 0x0Fu;
    } else if ((b0 & 0xF8) == 0xF0) {
      n = 3;
      cp = b0 & 0x07u;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(what, " is not valid UTF-8 (byte ", i, ")"));
    }
    if (i + n >= s.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is not valid UTF-8 (truncated sequence at byte ", i, ")"));
    }
    for (size_t k = 1; k <= n; ++k) {
      const auto b = static_cast<uint8_t>(s[i + k]);
      if ((b & 0xC0) != 0x80) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " is not valid UTF-8 (byte ", i + k, ")"));
      }
      cp = (cp << 6) | (b & 0x3Fu);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " is not valid UTF-8 (overlong, surrogate or out of range at byte ", i, ")"));
    }
    i += n + 1;
  }
  return absl::OkStatus();
}

absl::Status ValidateTopicName(absl::string_view topic) {
  if (topic.empty()) return absl::InvalidArgumentError("topic name is empty");
  if (topic.find_first_of("+#") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("topic name '", topic, "' contains a wildcard ('+' or '#')"));
  }
  return ValidateUtf8String(topic, "topic name");
}

absl::Status ValidateTopicFilter(absl::string_view filter) {
  if (filter.empty()) return absl::InvalidArgumentError("topic filter is empty");
  if (absl::Status st = ValidateUtf8String(filter, "topic filter"); !st.ok()) return st;
  size_t level_start = 0;
  for (size_t i = 0; i <= filter.size(); ++i) {
    if (i < filter.size() && filter[i] != '/') continue;
    const absl::string_view level = filter.substr(level_start, i - level_start);
    const bool has_plus = level.find('+') != absl::string_view::npos;
    const bool has_hash = level.find('#') != absl::string_view::npos;
    if ((has_plus && level != "+") || (has_hash && level != "#")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "topic filter '", filter, "': a wildcard must be a whole level ('a/+/b', 'a/#')"));
    }
    if (has_hash && i != filter.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("topic filter '", filter, "': '#' must be the last level"));
    }
    level_start = i + 1;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeConnect(const ConnectFields& fields) {
  if (absl::Status st = ValidateUtf8String(fields.client_id, "client id"); !st.ok()) return st;
  if (fields.client_id.empty() && !fields.clean_session) {
    return absl::InvalidArgumentError(
        "an empty client id needs clean_session (the broker could not find the session again)");
  }
  if (fields.password.has_value() && !fields.username.has_value()) {
    return absl::InvalidArgumentError("MQTT 3.1.1 sends a password only with a user name");
  }
  if (fields.username.has_value()) {
    if (absl::Status st = ValidateUtf8String(*fields.username, "user name"); !st.ok()) return st;
  }
  if (fields.password.has_value() && fields.password->size() > kMaxStringLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "password is ", fields.password->size(), " bytes: MQTT allows at most ", kMaxStringLength));
  }
  std::string body;
  AppendField("MQTT", &body);
  body.push_back(4);  // protocol level 3.1.1
  uint8_t flags = 0;
  if (fields.username.has_value()) flags |= 0x80;
  if (fields.password.has_value()) flags |= 0x40;
  if (fields.clean_session) flags |= 0x02;
  body.push_back(static_cast<char>(flags));
  AppendU16(fields.keepalive_s, &body);
  AppendField(fields.client_id, &body);
  if (fields.username.has_value()) AppendField(*fields.username, &body);
  if (fields.password.has_value()) AppendField(*fields.password, &body);
  return Frame(static_cast<uint8_t>(PacketType::kConnect) << 4, "CONNECT", body);
}

absl::StatusOr<std::string> EncodePublish(const PublishFields& fields) {
  if (absl::Status st = ValidateTopicName(fields.topic); !st.ok()) return st;
  if (fields.qos < 0 || fields.qos > 2) {
    return absl::InvalidArgumentError(absl::StrCat("QoS ", fields.qos, " is not 0, 1 or 2"));
  }
  if ((fields.qos == 0) != (fields.packet_id == 0)) {
    return absl::InvalidArgumentError(
        "a PUBLISH carries a non-zero packet id exactly when its QoS is above 0");
  }
  if (fields.qos == 0 && fields.dup) {
    return absl::InvalidArgumentError("DUP must be 0 on a QoS 0 PUBLISH");
  }
  std::string body;
  body.reserve(2 + fields.topic.size() + 2 + fields.payload.size());
  AppendField(fields.topic, &body);
  if (fields.qos > 0) AppendU16(fields.packet_id, &body);
  body.append(fields.payload);
  const auto first = static_cast<uint8_t>((static_cast<uint8_t>(PacketType::kPublish) << 4) |
                                          (fields.dup ? 0x08 : 0) | (fields.qos << 1) |
                                          (fields.retain ? 0x01 : 0));
  return Frame(first, "PUBLISH", body);
}

absl::StatusOr<PublishFields> DecodePublish(const Packet& packet) {
  if (absl::Status st = ExpectType(packet, PacketType::kPublish); !st.ok()) return st;
  PublishFields out;
  out.qos = (packet.flags >> 1) & 0x3;
  out.dup = (packet.flags & 0x08) != 0;
  out.retain = (packet.flags & 0x01) != 0;
  if (out.qos == 3) return absl::InvalidArgumentError("malformed PUBLISH: QoS 3");
  if (out.qos == 0 && out.dup) return absl::InvalidArgumentError("malformed PUBLISH: DUP on QoS 0");
  BodyReader reader(packet.body);
  absl::string_view topic;
  if (!reader.ReadField(&topic)) {
    return absl::InvalidArgumentError("malformed PUBLISH: the topic is longer than the packet");
  }
  if (absl::Status st = ValidateTopicName(topic); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed PUBLISH: ", st.message()));
  }
  out.topic.assign(topic.data(), topic.size());
  if (out.qos > 0) {
    if (!reader.ReadU16(&out.packet_id)) {
      return absl::InvalidArgumentError("malformed PUBLISH: no packet id");
    }
    if (out.packet_id == 0) return absl::InvalidArgumentError("malformed PUBLISH: packet id 0");
  }
  out.payload.assign(reader.rest().data(), reader.rest().size());
  return out;
}

absl::StatusOr<std::string> EncodeSubscribe(uint16_t packet_id,
                                            const std::vector<Subscription>& subscriptions) {
  if (packet_id == 0) return absl::InvalidArgumentError("SUBSCRIBE needs a non-zero packet id");
  if (subscriptions.empty()) {
    return absl::InvalidArgumentError("SUBSCRIBE needs at least one topic filter");
  }
  std::string body;
  AppendU16(packet_id, &body);
  for (const Subscription& s : subscriptions) {
    if (absl::Status st = ValidateTopicFilter(s.filter); !st.ok()) return st;
    if (s.qos < 0 || s.qos > 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("QoS ", s.qos, " for '", s.filter, "' is not 0, 1 or 2"));
    }
    AppendField(s.filter, &body);
    body.push_back(static_cast<char>(s.qos));
  }
  return Frame((static_cast<uint8_t>(PacketType::kSubscribe) << 4) | 0x2, "SUBSCRIBE", body);
}

absl::StatusOr<ConnAck> DecodeConnAck(const Packet& packet) {
  if (absl::Status st = ExpectType(packet, PacketType::kConnAck); !st.ok()) return st;
  if (packet.body.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed CONNACK: ", packet.body.size(), " bytes instead of 2"));
  }
  const auto ack_flags = static_cast<uint8_t>(packet.body[0]);
  if ((ack_flags & 0xFE) != 0) {
    return absl::InvalidArgumentError("malformed CONNACK: reserved acknowledge flags set");
  }
  return ConnAck{(ack_flags & 0x01) != 0, static_cast<uint8_t>(packet.body[1])};
}

absl::Status ConnAckStatus(uint8_t return_code) {
  const std::string suffix = absl::StrCat(" (CONNACK return code ", return_code, ")");
  switch (return_code) {
    case 0:
      return absl::OkStatus();
    case 1:
      return absl::FailedPreconditionError(
          absl::StrCat("the broker refused the connection: it does not speak MQTT 3.1.1", suffix));
    case 2:
      return absl::InvalidArgumentError(
          absl::StrCat("the broker refused the connection: client id rejected", suffix));
    case 3:
      return absl::UnavailableError(
          absl::StrCat("the broker refused the connection: server unavailable", suffix));
    case 4:
      return absl::UnauthenticatedError(
          absl::StrCat("the broker refused the connection: bad user name or password", suffix));
    case 5:
      return absl::PermissionDeniedError(
          absl::StrCat("the broker refused the connection: not authorized", suffix));
    default:
      return absl::InternalError(
          absl::StrCat("the broker refused the connection with a reserved code", suffix));
  }
}

absl::StatusOr<SubAck> DecodeSubAck(const Packet& packet) {
  if (absl::Status st = ExpectType(packet, PacketType::kSubAck); !st.ok()) return st;
  BodyReader reader(packet.body);
  SubAck out;
  if (!reader.ReadU16(&out.packet_id) || reader.rest().empty()) {
    return absl::InvalidArgumentError("malformed SUBACK: no packet id or no return code");
  }
  for (char c : reader.rest()) {
    const auto code = static_cast<uint8_t>(c);
    if (code > 2 && code != kSubAckFailure) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed SUBACK: return code ", static_cast<int>(code)));
    }
    out.return_codes.push_back(code);
  }
  return out;
}

absl::StatusOr<uint16_t> DecodePacketId(const Packet& packet) {
  BodyReader reader(packet.body);
  uint16_t id = 0;
  if (packet.body.size() != 2 || !reader.ReadU16(&id) || id == 0) {
    return absl::InvalidArgumentError(absl::StrCat("malformed ", PacketTypeName(packet.type),
                                                   ": the body is not one non-zero packet id"));
  }
  return id;
}

std::string EncodePubAck(uint16_t packet_id) {
  std::string body;
  AppendU16(packet_id, &body);
  return FixedPacket(PacketType::kPubAck, 0, body);
}

std::string EncodePingReq() { return FixedPacket(PacketType::kPingReq, 0, ""); }

std::string EncodeDisconnect() { return FixedPacket(PacketType::kDisconnect, 0, ""); }

}  // namespace telemetry::mqtt
