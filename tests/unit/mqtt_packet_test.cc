// The MQTT 3.1.1 wire format (common/mqtt/packet.h), the in-order PUBACK bookkeeping
// (puback_queue.h) and the $SYS counter parser, without a socket. The byte strings are written
// out from the standard's figures (OASIS MQTT 3.1.1, sections 2.2.3, 3.1, 3.3, 3.8).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "common/mqtt/packet.h"
#include "common/mqtt/puback_queue.h"
#include "common/mqtt/sys_topics.h"

namespace telemetry::mqtt {
namespace {

std::string Bytes(std::initializer_list<int> b) {
  std::string out;
  for (int v : b) out.push_back(static_cast<char>(v));
  return out;
}

std::string EncodedLength(uint32_t n) {
  std::string out;
  AppendRemainingLength(n, &out);
  return out;
}

TEST(MqttRemainingLength, EncodesTheStandardsBoundaries) {
  // Table 2.4: the first and last value of each encoded size.
  EXPECT_EQ(EncodedLength(0), Bytes({0x00}));
  EXPECT_EQ(EncodedLength(127), Bytes({0x7F}));
  EXPECT_EQ(EncodedLength(128), Bytes({0x80, 0x01}));
  EXPECT_EQ(EncodedLength(16'383), Bytes({0xFF, 0x7F}));
  EXPECT_EQ(EncodedLength(16'384), Bytes({0x80, 0x80, 0x01}));
  EXPECT_EQ(EncodedLength(2'097'151), Bytes({0xFF, 0xFF, 0x7F}));
  EXPECT_EQ(EncodedLength(2'097'152), Bytes({0x80, 0x80, 0x80, 0x01}));
  EXPECT_EQ(EncodedLength(kMaxRemainingLength), Bytes({0xFF, 0xFF, 0xFF, 0x7F}));
}

TEST(MqttRemainingLength, DecodesWhatItEncodesAndAsksForMoreOnAPrefix) {
  for (uint32_t n :
       {0u, 1u, 127u, 128u, 321u, 16'383u, 16'384u, 2'097'151u, 2'097'152u, kMaxRemainingLength}) {
    const std::string enc = EncodedLength(n);
    auto dec = DecodeRemainingLength(enc + "trailing");
    ASSERT_TRUE(dec.ok()) << dec.status();
    ASSERT_TRUE(dec->has_value()) << n;
    EXPECT_EQ((*dec)->value, n);
    EXPECT_EQ((*dec)->size, enc.size());
    for (size_t cut = 0; cut < enc.size(); ++cut) {
      auto partial = DecodeRemainingLength(enc.substr(0, cut));
      ASSERT_TRUE(partial.ok());
      EXPECT_FALSE(partial->has_value()) << n << " cut at " << cut;
    }
  }
}

TEST(MqttRemainingLength, AFifthByteIsMalformed) {
  auto dec = DecodeRemainingLength(Bytes({0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
  EXPECT_EQ(dec.status().code(), absl::StatusCode::kInvalidArgument);
  // Decided on the fourth byte already: no need to wait for the fifth.
  EXPECT_EQ(DecodeRemainingLength(Bytes({0x80, 0x80, 0x80, 0x80})).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MqttPacketReader, SplitsAStreamFedByteByByte) {
  PublishFields a;
  a.topic = "telemetry/t1/d1";
  a.payload = std::string(300, 'x');  // a two-byte remaining length
  a.qos = 1;
  a.packet_id = 7;
  PublishFields b;
  b.topic = "telemetry/t1/d2";
  b.payload = "";
  const std::string stream = *EncodePublish(a) + EncodePubAck(9) + *EncodePublish(b);
  PacketReader reader(1 << 20);
  std::vector<Packet> got;
  for (char c : stream) {
    reader.Append(absl::string_view(&c, 1));
    while (true) {
      auto next = reader.Next();
      ASSERT_TRUE(next.ok()) << next.status();
      if (!next->has_value()) break;
      got.push_back(std::move(**next));
    }
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(reader.buffered(), 0u);
  auto pa = DecodePublish(got[0]);
  ASSERT_TRUE(pa.ok()) << pa.status();
  EXPECT_EQ(pa->topic, a.topic);
  EXPECT_EQ(pa->payload, a.payload);
  EXPECT_EQ(pa->qos, 1);
  EXPECT_EQ(pa->packet_id, 7);
  EXPECT_EQ(got[1].type, PacketType::kPubAck);
  EXPECT_EQ(*DecodePacketId(got[1]), 9);
  auto pb = DecodePublish(got[2]);
  ASSERT_TRUE(pb.ok()) << pb.status();
  EXPECT_EQ(pb->qos, 0);
  EXPECT_EQ(pb->packet_id, 0);
  EXPECT_EQ(pb->payload, "");
}

TEST(MqttPacketReader, RefusesAnOversizedPacketFromItsHeaderAlone) {
  PacketReader reader(1024);
  // PUBLISH QoS 0 announcing 2000 bytes: known too big before any of the body arrives.
  reader.Append(Bytes({0x30, 0xD0, 0x0F}));
  auto next = reader.Next();
  EXPECT_EQ(next.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(next.status().message().find("2003 bytes"), std::string::npos)
      << next.status().message();
  // Exactly the limit passes: 1 + 2 + 1021 = 1024.
  PacketReader fits(1024);
  fits.Append(Bytes({0x30, 0xFD, 0x07}) + std::string(2, '\0'));
  auto partial = fits.Next();
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_FALSE(partial->has_value());
}

TEST(MqttPacketReader, RefusesReservedTypesAndFlags) {
  for (const std::string& bad : {Bytes({0x00, 0x00}), Bytes({0xF0, 0x00}),
                                 Bytes({0x41, 0x02, 0x00, 0x01}),  // PUBACK with flags 1
                                 Bytes({0x60, 0x02, 0x00, 0x01}),  // PUBREL without flags 2
                                 Bytes({0x92, 0x03, 0x00, 0x01, 0x01})}) {  // SUBACK flags 2
    PacketReader reader(1024);
    reader.Append(bad);
    EXPECT_EQ(reader.Next().status().code(), absl::StatusCode::kInvalidArgument)
        << static_cast<int>(static_cast<uint8_t>(bad[0]));
  }
  PacketReader pubrel(1024);
  pubrel.Append(Bytes({0x62, 0x02, 0x00, 0x01}));
  auto next = pubrel.Next();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(next->has_value());
}

// Random bytes never crash the reader or the decoders, nor make them read past the input (run
// under ASan by scripts/test.sh's sanitizer pass). A cheap stand-in for a fuzzer.
TEST(MqttPacketReader, RandomInputIsRefusedOrDecodedNeverOverread) {
  std::mt19937 rng(18);
  for (int round = 0; round < 20'000; ++round) {
    std::string junk(1 + rng() % 40, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    // Make the header plausible half of the time, so the decoders see bodies too.
    if (round % 2 == 0) {
      static constexpr uint8_t kTypes[] = {0x20, 0x30, 0x32, 0x33, 0x3A, 0x40, 0x90, 0xD0};
      junk[0] = static_cast<char>(kTypes[rng() % 8]);
      if (junk.size() > 1) junk[1] = static_cast<char>(junk.size() - 2);
    }
    PacketReader reader(64);
    reader.Append(junk);
    auto next = reader.Next();
    if (!next.ok() || !next->has_value()) continue;
    const Packet& p = **next;
    switch (p.type) {
      case PacketType::kPublish:
        (void)DecodePublish(p);
        break;
      case PacketType::kConnAck:
        (void)DecodeConnAck(p);
        break;
      case PacketType::kSubAck:
        (void)DecodeSubAck(p);
        break;
      default:
        (void)DecodePacketId(p);
    }
  }
}

TEST(MqttConnect, EncodesFigure3_1WithUserPasswordAndPersistentSession) {
  ConnectFields f;
  f.client_id = "bridge";
  f.username = "u";
  f.password = "pw";
  f.clean_session = false;
  f.keepalive_s = 30;
  auto enc = EncodeConnect(f);
  ASSERT_TRUE(enc.ok()) << enc.status();
  const std::string body = Bytes({0x00, 0x04}) + "MQTT" + Bytes({0x04, 0xC0, 0x00, 0x1E}) +
                           Bytes({0x00, 0x06}) + "bridge" + Bytes({0x00, 0x01}) + "u" +
                           Bytes({0x00, 0x02}) + "pw";
  EXPECT_EQ(*enc, Bytes({0x10, static_cast<int>(body.size())}) + body);

  ConnectFields clean;
  clean.client_id = "c";
  clean.keepalive_s = 0;
  auto c = EncodeConnect(clean);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(static_cast<uint8_t>((*c)[9]), 0x02);  // clean session only
}

TEST(MqttConnect, RefusesWhatMqttCannotCarry) {
  ConnectFields no_id;
  no_id.clean_session = false;
  EXPECT_EQ(EncodeConnect(no_id).status().code(), absl::StatusCode::kInvalidArgument);
  ConnectFields password_only;
  password_only.client_id = "c";
  password_only.password = "pw";
  EXPECT_EQ(EncodeConnect(password_only).status().code(), absl::StatusCode::kInvalidArgument);
  ConnectFields long_id;
  long_id.client_id = std::string(70'000, 'a');
  EXPECT_EQ(EncodeConnect(long_id).status().code(), absl::StatusCode::kInvalidArgument);
  ConnectFields nul;
  nul.client_id = std::string("a\0b", 3);
  EXPECT_EQ(EncodeConnect(nul).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MqttPublish, EncodesFlagsAndPacketIdAndRoundTrips) {
  PublishFields f;
  f.topic = "a/b";
  f.payload = "hi";
  f.qos = 1;
  f.dup = true;
  f.retain = true;
  f.packet_id = 0x1234;
  auto enc = EncodePublish(f);
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ(*enc, Bytes({0x3B, 0x09, 0x00, 0x03}) + "a/b" + Bytes({0x12, 0x34}) + "hi");
  PacketReader reader(1024);
  reader.Append(*enc);
  auto packet = reader.Next();
  ASSERT_TRUE(packet.ok() && packet->has_value());
  auto dec = DecodePublish(**packet);
  ASSERT_TRUE(dec.ok()) << dec.status();
  EXPECT_EQ(dec->topic, "a/b");
  EXPECT_EQ(dec->payload, "hi");
  EXPECT_EQ(dec->qos, 1);
  EXPECT_TRUE(dec->dup);
  EXPECT_TRUE(dec->retain);
  EXPECT_EQ(dec->packet_id, 0x1234);
}

TEST(MqttPublish, RefusesMalformedPublishes) {
  auto decode = [](uint8_t flags, const std::string& body) {
    Packet p;
    p.type = PacketType::kPublish;
    p.flags = flags;
    p.body = body;
    return DecodePublish(p).status();
  };
  const std::string topic = Bytes({0x00, 0x01}) + "t";
  EXPECT_TRUE(decode(0x0, topic + "payload").ok());
  EXPECT_EQ(decode(0x6, topic + Bytes({0x00, 0x01})).code(), absl::StatusCode::kInvalidArgument)
      << "QoS 3";
  EXPECT_EQ(decode(0x8, topic).code(), absl::StatusCode::kInvalidArgument) << "DUP on QoS 0";
  EXPECT_EQ(decode(0x2, topic + Bytes({0x00, 0x00})).code(), absl::StatusCode::kInvalidArgument)
      << "packet id 0";
  EXPECT_EQ(decode(0x2, topic + Bytes({0x00})).code(), absl::StatusCode::kInvalidArgument)
      << "half a packet id";
  EXPECT_EQ(decode(0x0, Bytes({0x00, 0x09}) + "t").code(), absl::StatusCode::kInvalidArgument)
      << "topic longer than the body";
  EXPECT_EQ(decode(0x0, Bytes({0x00, 0x03}) + "a/#").code(), absl::StatusCode::kInvalidArgument)
      << "wildcard in a topic name";
  EXPECT_EQ(decode(0x0, Bytes({0x00, 0x02, 0xC0, 0x80})).code(), absl::StatusCode::kInvalidArgument)
      << "overlong UTF-8";
  EXPECT_EQ(decode(0x0, Bytes({0x00, 0x00})).code(), absl::StatusCode::kInvalidArgument)
      << "empty topic";

  PublishFields f;
  f.topic = "t";
  f.qos = 1;  // no packet id
  EXPECT_EQ(EncodePublish(f).status().code(), absl::StatusCode::kInvalidArgument);
  f.packet_id = 1;
  f.topic = "t/+";
  EXPECT_EQ(EncodePublish(f).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MqttSubscribe, EncodesFigure3_20AndChecksFilters) {
  auto enc = EncodeSubscribe(10, {{"a/b", 1}, {"c/+/#", 0}});
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ(*enc, Bytes({0x82, 0x10, 0x00, 0x0A, 0x00, 0x03}) + "a/b" + Bytes({0x01, 0x00, 0x05}) +
                      "c/+/#" + Bytes({0x00}));
  EXPECT_EQ(EncodeSubscribe(1, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeSubscribe(0, {{"a", 1}}).status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* bad : {"", "a/#/b", "a#", "a/b+", "+a"}) {
    EXPECT_EQ(ValidateTopicFilter(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  for (const char* good : {"#", "+", "a/+/b", "a/#", "$SYS/broker/#", "/", "+/+"}) {
    EXPECT_TRUE(ValidateTopicFilter(good).ok()) << good;
  }
}

TEST(MqttAcks, DecodesConnAckAndSubAckAndMapsRefusals) {
  Packet connack;
  connack.type = PacketType::kConnAck;
  connack.body = Bytes({0x01, 0x00});
  auto ack = DecodeConnAck(connack);
  ASSERT_TRUE(ack.ok());
  EXPECT_TRUE(ack->session_present);
  EXPECT_EQ(ack->return_code, 0);
  connack.body = Bytes({0x02, 0x00});
  EXPECT_EQ(DecodeConnAck(connack).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_TRUE(ConnAckStatus(0).ok());
  EXPECT_EQ(ConnAckStatus(1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ConnAckStatus(2).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConnAckStatus(3).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ConnAckStatus(4).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ConnAckStatus(5).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ConnAckStatus(6).code(), absl::StatusCode::kInternal);
  EXPECT_NE(ConnAckStatus(4).message().find("bad user name or password"), std::string::npos);

  Packet suback;
  suback.type = PacketType::kSubAck;
  suback.body = Bytes({0x00, 0x0A, 0x01, 0x80, 0x00});
  auto sub = DecodeSubAck(suback);
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(sub->packet_id, 10);
  EXPECT_EQ(sub->return_codes, (std::vector<uint8_t>{1, kSubAckFailure, 0}));
  suback.body = Bytes({0x00, 0x0A, 0x03});
  EXPECT_EQ(DecodeSubAck(suback).status().code(), absl::StatusCode::kInvalidArgument);
  suback.body = Bytes({0x00, 0x0A});
  EXPECT_EQ(DecodeSubAck(suback).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(EncodePubAck(0x0102), Bytes({0x40, 0x02, 0x01, 0x02}));
  EXPECT_EQ(EncodePingReq(), Bytes({0xC0, 0x00}));
  EXPECT_EQ(EncodeDisconnect(), Bytes({0xE0, 0x00}));
}

TEST(MqttUtf8, AcceptsWellFormedAndRefusesTheRest) {
  EXPECT_TRUE(ValidateUtf8String("Grüße/温度/🌡", "t").ok());
  for (const std::string& bad :
       {Bytes({0xC3}), Bytes({0xE2, 0x82}), Bytes({0xED, 0xA0, 0x80}) /* surrogate */,
        Bytes({0xF4, 0x90, 0x80, 0x80}) /* > U+10FFFF */, Bytes({0xE0, 0x80, 0x80}) /* overlong */,
        Bytes({0xFF}), Bytes({0x80})}) {
    EXPECT_EQ(ValidateUtf8String(bad, "t").code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(MqttPubackQueue, ReleasesOnlyTheContiguousAcknowledgedPrefixInArrivalOrder) {
  PubackQueue q;
  for (uint16_t id : std::vector<uint16_t>{5, 3, 4, 9}) {
    ASSERT_EQ(*q.OnPublish(id, false), PubackQueue::Arrival::kNew);
  }
  EXPECT_EQ(q.pending(), 4u);
  // 9 and 3 are acknowledged first: 5 arrived before both, so nothing goes out yet.
  EXPECT_TRUE(q.Ack(9)->empty());
  EXPECT_TRUE(q.Ack(3)->empty());
  EXPECT_EQ(q.held(), 2u);
  // 5 releases 5 and 3 (arrival order), and stops before 4, which is not acknowledged.
  EXPECT_EQ(*q.Ack(5), (std::vector<uint16_t>{5, 3}));
  EXPECT_EQ(q.held(), 1u);
  EXPECT_EQ(q.pending(), 2u);
  EXPECT_EQ(*q.Ack(4), (std::vector<uint16_t>{4, 9}));
  EXPECT_EQ(q.pending(), 0u);
  EXPECT_EQ(q.held(), 0u);
}

TEST(MqttPubackQueue, RefusesUnknownAndRepeatedAcksAndReusedIds) {
  PubackQueue q;
  EXPECT_EQ(q.Ack(1).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(q.OnPublish(1, false).ok());
  ASSERT_TRUE(q.OnPublish(2, false).ok());
  EXPECT_TRUE(q.Ack(2)->empty());
  EXPECT_EQ(q.Ack(2).status().code(), absl::StatusCode::kFailedPrecondition);
  // A resend of a pending message (DUP) is recognised, in place; a new message reusing a
  // pending id is the broker breaking [MQTT-2.3.1-2].
  EXPECT_EQ(*q.OnPublish(1, true), PubackQueue::Arrival::kDuplicate);
  EXPECT_EQ(*q.OnPublish(2, true), PubackQueue::Arrival::kDuplicate);
  EXPECT_EQ(q.OnPublish(1, false).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*q.Ack(1), (std::vector<uint16_t>{1, 2}));
  // Released ids are free again, and a released id acknowledged twice is unknown.
  EXPECT_EQ(q.Ack(1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*q.OnPublish(1, false), PubackQueue::Arrival::kNew);
}

TEST(MqttPubackQueue, ClearForgetsEverythingForTheNextConnection) {
  PubackQueue q;
  ASSERT_TRUE(q.OnPublish(7, false).ok());
  ASSERT_TRUE(q.OnPublish(8, false).ok());
  ASSERT_TRUE(q.Ack(8).ok());
  q.Clear();
  EXPECT_EQ(q.pending(), 0u);
  EXPECT_EQ(q.held(), 0u);
  EXPECT_EQ(q.Ack(7).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*q.OnPublish(8, true), PubackQueue::Arrival::kNew);
}

// Every id acknowledged in a random order comes out exactly once, in arrival order.
TEST(MqttPubackQueue, AnyAckOrderYieldsArrivalOrder) {
  std::mt19937 rng(4);
  for (int round = 0; round < 50; ++round) {
    PubackQueue q;
    std::vector<uint16_t> arrival;
    for (int i = 0; i < 500; ++i) {
      const auto id = static_cast<uint16_t>(1 + (round * 1000 + i * 7) % 65535);
      ASSERT_TRUE(q.OnPublish(id, false).ok());
      arrival.push_back(id);
    }
    std::vector<uint16_t> acks = arrival;
    std::shuffle(acks.begin(), acks.end(), rng);
    std::vector<uint16_t> released;
    for (uint16_t id : acks) {
      auto out = q.Ack(id);
      ASSERT_TRUE(out.ok()) << out.status();
      released.insert(released.end(), out->begin(), out->end());
    }
    EXPECT_EQ(released, arrival);
  }
}

TEST(MqttSys, ParsesCountersAndRefusesTheRest) {
  EXPECT_EQ(*ParseSysCounter("13056"), 13056u);
  EXPECT_EQ(*ParseSysCounter(" 0\n"), 0u);
  for (const char* bad : {"", "-1", "+1", "12.5", "abc", "1 2", "99999999999999999999999"}) {
    EXPECT_EQ(ParseSysCounter(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace telemetry::mqtt
