// The MQTT client (common/mqtt/client.h) against a scripted broker on a loopback socket: what a
// real Mosquitto cannot be made to do on demand (stay silent on PINGREQ, refuse a subscription
// with 0x80, send QoS 2) and the exact bytes the client writes (PUBACKs in arrival order, the
// DISCONNECT after them). tests/integration/mqtt_client_test.cc covers the real broker.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/mqtt/client.h"
#include "common/mqtt/packet.h"

namespace telemetry::mqtt {
namespace {

std::string Bytes(std::initializer_list<int> b) {
  std::string out;
  for (int v : b) out.push_back(static_cast<char>(v));
  return out;
}

// One client connection, driven by the test: reads the client's packets, writes raw bytes.
class ScriptedBroker {
 public:
  ScriptedBroker() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listen_fd_, 4), 0);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~ScriptedBroker() {
    if (conn_fd_ >= 0) close(conn_fd_);
    close(listen_fd_);
  }
  int port() const { return port_; }

  // Connects `options` to this broker, answering its CONNECT with `connack`.
  absl::StatusOr<std::unique_ptr<Client>> Connect(ConnectOptions options, Callbacks callbacks,
                                                  const std::string& connack) {
    options.host = "127.0.0.1";
    options.port = port_;
    std::thread broker([&] {
      conn_fd_ = accept(listen_fd_, nullptr, nullptr);
      auto connect = Read(2000);
      EXPECT_TRUE(connect.has_value() && connect->type == PacketType::kConnect);
      Send(connack);
    });
    auto client = Client::Connect(options, std::move(callbacks));
    broker.join();
    return client;
  }
  void Send(const std::string& bytes) {
    ASSERT_EQ(send(conn_fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // The client's next packet; nullopt on timeout or EOF.
  std::optional<Packet> Read(int timeout_ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      auto next = reader_.Next();
      EXPECT_TRUE(next.ok()) << next.status();
      if (!next.ok()) return std::nullopt;
      if (next->has_value()) return std::move(**next);
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            until - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return std::nullopt;
      pollfd p{conn_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) return std::nullopt;
      char buf[4096];
      const ssize_t n = recv(conn_fd_, buf, sizeof(buf), 0);
      if (n <= 0) return std::nullopt;
      reader_.Append(absl::string_view(buf, static_cast<size_t>(n)));
    }
  }
  std::string Publish(const std::string& topic, const std::string& payload, int qos, uint16_t id,
                      bool dup = false) {
    PublishFields f;
    f.topic = topic;
    f.payload = payload;
    f.qos = qos;
    f.packet_id = id;
    f.dup = dup;
    return *EncodePublish(f);
  }

 private:
  int listen_fd_ = -1;
  int conn_fd_ = -1;
  int port_ = 0;
  PacketReader reader_{1 << 20};
};

const std::string kAccepted = Bytes({0x20, 0x02, 0x00, 0x00});

struct Recorder {
  absl::Mutex mu;
  std::vector<Message> messages ABSL_GUARDED_BY(mu);
  std::vector<absl::Status> disconnects ABSL_GUARDED_BY(mu);
  Callbacks callbacks() {
    Callbacks cb;
    cb.on_message = [this](Message m) {
      absl::MutexLock lock(&mu);
      messages.push_back(std::move(m));
    };
    cb.on_disconnect = [this](absl::Status st) {
      absl::MutexLock lock(&mu);
      disconnects.push_back(std::move(st));
    };
    return cb;
  }
  bool WaitForMessages(size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return messages.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(5));
  }
  std::optional<absl::Status> WaitForDisconnect(int timeout_ms) {
    absl::MutexLock lock(&mu);
    auto any = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return !disconnects.empty(); };
    if (!mu.AwaitWithTimeout(absl::Condition(&any), absl::Milliseconds(timeout_ms))) {
      return std::nullopt;
    }
    return disconnects.front();
  }
};

ConnectOptions Options() {
  ConnectOptions o;
  o.client_id = "bridge";
  o.clean_session = false;
  o.keepalive_s = 60;
  return o;
}

TEST(MqttClient, ConnackRefusalsBecomeStatuses) {
  {
    ScriptedBroker broker;
    auto c = broker.Connect(Options(), {}, Bytes({0x20, 0x02, 0x00, 0x04}));
    EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated) << c.status();
  }
  {
    ScriptedBroker broker;
    auto c = broker.Connect(Options(), {}, Bytes({0x20, 0x02, 0x00, 0x03}));
    EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  }
  {
    // A first packet that is not a CONNACK.
    ScriptedBroker broker;
    auto c = broker.Connect(Options(), {}, Bytes({0xD0, 0x00}));
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInternal) << c.status();
  }
  {
    // Session present on a clean session ([MQTT-3.2.2-1]).
    ScriptedBroker broker;
    ConnectOptions clean = Options();
    clean.clean_session = true;
    auto c = broker.Connect(clean, {}, Bytes({0x20, 0x02, 0x01, 0x00}));
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInternal) << c.status();
  }
  auto nothing = Client::Connect(
      [] {
        ConnectOptions o = Options();
        o.port = 1;  // nothing listens on port 1
        return o;
      }(),
      {});
  EXPECT_EQ(nothing.status().code(), absl::StatusCode::kUnavailable) << nothing.status();
}

TEST(MqttClient, PubacksGoOutInArrivalOrderWhateverTheAckOrder) {
  ScriptedBroker broker;
  Recorder rec;
  auto c = broker.Connect(Options(), rec.callbacks(), kAccepted);
  ASSERT_TRUE(c.ok()) << c.status();
  Client& client = **c;
  broker.Send(broker.Publish("t/a", "1", 1, 10) + broker.Publish("t/a", "2", 1, 11) +
              broker.Publish("t/a", "3", 1, 12) + broker.Publish("t/a", "q0", 0, 0));
  ASSERT_TRUE(rec.WaitForMessages(4));
  // A resend of a pending message (DUP) is not delivered again.
  broker.Send(broker.Publish("t/a", "2", 1, 11, /*dup=*/true));
  ASSERT_TRUE(client.Ack(12).ok());
  ASSERT_TRUE(client.Ack(10).ok());  // releases 10 only: 11 is not acknowledged
  EXPECT_EQ(client.Ack(0).code(), absl::StatusCode::kNotFound);
  auto first = broker.Read(2000);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->type, PacketType::kPubAck);
  EXPECT_EQ(*DecodePacketId(*first), 10);
  EXPECT_FALSE(broker.Read(200).has_value()) << "12 must wait for 11";
  ASSERT_TRUE(client.Ack(11).ok());
  for (uint16_t want : std::vector<uint16_t>{11, 12}) {
    auto p = broker.Read(2000);
    ASSERT_TRUE(p.has_value());
    ASSERT_EQ(p->type, PacketType::kPubAck);
    EXPECT_EQ(*DecodePacketId(*p), want);
  }
  {
    absl::MutexLock lock(&rec.mu);
    ASSERT_EQ(rec.messages.size(), 4u);
    EXPECT_EQ(rec.messages[3].qos, 0);
    EXPECT_EQ(rec.messages[3].packet_id, 0);
  }
  EXPECT_EQ(client.stats().duplicates_skipped, 1u);
  EXPECT_EQ(client.stats().pubacks_sent, 3u);
  // Disconnect: DISCONNECT is the last packet, and no on_disconnect.
  client.Disconnect();
  auto last = broker.Read(2000);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->type, PacketType::kDisconnect);
  absl::MutexLock lock(&rec.mu);
  EXPECT_TRUE(rec.disconnects.empty());
}

TEST(MqttClient, ASilentBrokerIsDetectedByTheKeepalive) {
  ScriptedBroker broker;
  Recorder rec;
  ConnectOptions o = Options();
  o.keepalive_s = 1;  // PINGREQ after 0.5 s idle, lost 0.5 s later
  const auto start = std::chrono::steady_clock::now();
  auto c = broker.Connect(o, rec.callbacks(), kAccepted);
  ASSERT_TRUE(c.ok()) << c.status();
  auto ping = broker.Read(2000);
  ASSERT_TRUE(ping.has_value());
  EXPECT_EQ(ping->type, PacketType::kPingReq);
  auto lost = rec.WaitForDisconnect(3000);
  ASSERT_TRUE(lost.has_value());
  EXPECT_EQ(lost->code(), absl::StatusCode::kUnavailable) << *lost;
  EXPECT_NE(lost->message().find("PINGRESP"), std::string::npos) << *lost;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2500));
  EXPECT_FALSE((*c)->connected());
  EXPECT_EQ((*c)->Ack(1).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(MqttClient, APingrespKeepsTheConnection) {
  ScriptedBroker broker;
  Recorder rec;
  ConnectOptions o = Options();
  o.keepalive_s = 1;
  auto c = broker.Connect(o, rec.callbacks(), kAccepted);
  ASSERT_TRUE(c.ok()) << c.status();
  for (int i = 0; i < 3; ++i) {
    auto ping = broker.Read(2000);
    ASSERT_TRUE(ping.has_value());
    ASSERT_EQ(ping->type, PacketType::kPingReq);
    broker.Send(Bytes({0xD0, 0x00}));
  }
  EXPECT_FALSE(rec.WaitForDisconnect(100).has_value());
  EXPECT_TRUE((*c)->connected());
}

TEST(MqttClient, ARefusedSubscriptionIsPermissionDenied) {
  ScriptedBroker broker;
  auto c = broker.Connect(Options(), {}, kAccepted);
  ASSERT_TRUE(c.ok()) << c.status();
  auto result = std::async(std::launch::async, [&] {
    return (*c)->Subscribe({{"telemetry/#", 1}, {"secret/#", 1}});
  });
  auto sub = broker.Read(2000);
  ASSERT_TRUE(sub.has_value());
  ASSERT_EQ(sub->type, PacketType::kSubscribe);
  const std::string id = sub->body.substr(0, 2);
  broker.Send(Bytes({0x90, 0x04}) + id + Bytes({0x01, 0x80}));
  auto granted = result.get();
  EXPECT_EQ(granted.status().code(), absl::StatusCode::kPermissionDenied) << granted.status();
  EXPECT_NE(granted.status().message().find("'secret/#'"), std::string::npos);
  EXPECT_EQ((*c)->Subscribe({{"t", 2}}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MqttClient, AQos2PublishEndsTheConnectionOnce) {
  ScriptedBroker broker;
  Recorder rec;
  auto c = broker.Connect(Options(), rec.callbacks(), kAccepted);
  ASSERT_TRUE(c.ok()) << c.status();
  broker.Send(broker.Publish("t/a", "x", 2, 5));
  auto lost = rec.WaitForDisconnect(3000);
  ASSERT_TRUE(lost.has_value());
  EXPECT_EQ(lost->code(), absl::StatusCode::kInternal) << *lost;
  EXPECT_NE(lost->message().find("QoS 2"), std::string::npos) << *lost;
  EXPECT_EQ((*c)->Publish("t/b", "y", 1).code(), absl::StatusCode::kUnavailable);
  c->reset();
  absl::MutexLock lock(&rec.mu);
  EXPECT_EQ(rec.disconnects.size(), 1u);
  EXPECT_TRUE(rec.messages.empty());
}

TEST(MqttClient, APublishWaitsForItsPuback) {
  ScriptedBroker broker;
  auto c = broker.Connect(Options(), {}, kAccepted);
  ASSERT_TRUE(c.ok()) << c.status();
  auto result = std::async(std::launch::async,
                           [&] { return (*c)->Publish("telemetry-errors/x", "report", 1); });
  auto pub = broker.Read(2000);
  ASSERT_TRUE(pub.has_value());
  auto fields = DecodePublish(*pub);
  ASSERT_TRUE(fields.ok()) << fields.status();
  EXPECT_EQ(fields->payload, "report");
  EXPECT_EQ(fields->qos, 1);
  EXPECT_EQ(result.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  broker.Send(EncodePubAck(fields->packet_id));
  EXPECT_TRUE(result.get().ok());
  // No PUBACK: DEADLINE_EXCEEDED after the timeout.
  EXPECT_EQ((*c)->Publish("telemetry-errors/x", "again", 1, /*timeout_ms=*/200).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*c)->Publish("a/#", "bad topic", 1).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace telemetry::mqtt
