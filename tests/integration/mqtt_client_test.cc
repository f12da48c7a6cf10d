// The MQTT client (common/mqtt/client.h) against the local stack's Mosquitto (deploy/mosquitto):
// the broker refuses bad credentials with a clear status; a QoS 1 message the subscriber did not
// acknowledge comes again (DUP) after the connection drops and an acknowledged one does not, so
// the PUBACK is ours to send; messages queued for an offline persistent session survive a broker
// restart; a burst of 50,000 QoS 1 messages arrives whole; the $SYS dropped-messages counter is
// readable. Endpoints and users come from the env file of deploy/local/up.sh (TELEMETRY_MQTT_*).
//
// Every test uses client ids and topics of its own (the stack may be shared) and removes its
// persistent sessions at the end (a clean_session connection with the same id).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/mqtt/client.h"
#include "common/mqtt/sys_topics.h"
#include "tests/integration/harness.h"

namespace telemetry::mqtt {
namespace {

using telemetry::testing::RequireEnv;
using telemetry::testing::SourceDir;

std::string Unique(const std::string& prefix) {
  std::random_device rd;
  return absl::StrCat(prefix, "-", getpid(), "-", rd() % 1000000);
}

// What a subscriber's callbacks saw.
class Inbox {
 public:
  Callbacks callbacks() {
    Callbacks cb;
    cb.on_message = [this](Message m) {
      absl::MutexLock lock(&mu_);
      messages_.push_back(std::move(m));
    };
    cb.on_disconnect = [this](absl::Status st) {
      absl::MutexLock lock(&mu_);
      disconnects_.push_back(std::move(st));
    };
    return cb;
  }
  // Waits until at least `n` messages arrived; returns how many did.
  size_t WaitFor(size_t n, int timeout_ms) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return messages_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Milliseconds(timeout_ms));
    return messages_.size();
  }
  // Waits for a message on `topic`.
  std::optional<Message> WaitForTopic(const std::string& topic, int timeout_ms) {
    absl::MutexLock lock(&mu_);
    auto seen = [this, &topic]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return std::any_of(messages_.begin(), messages_.end(),
                         [&topic](const Message& m) { return m.topic == topic; });
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&seen), absl::Milliseconds(timeout_ms))) {
      return std::nullopt;
    }
    for (auto it = messages_.rbegin(); it != messages_.rend(); ++it) {
      if (it->topic == topic) return *it;
    }
    return std::nullopt;
  }
  std::vector<Message> messages() {
    absl::MutexLock lock(&mu_);
    return messages_;
  }
  void Clear() {
    absl::MutexLock lock(&mu_);
    messages_.clear();
  }
  size_t disconnects() {
    absl::MutexLock lock(&mu_);
    return disconnects_.size();
  }

 private:
  absl::Mutex mu_;
  std::vector<Message> messages_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Status> disconnects_ ABSL_GUARDED_BY(mu_);
};

class MqttClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = RequireEnv("TELEMETRY_MQTT_HOST");
    const std::string port = RequireEnv("TELEMETRY_MQTT_PORT");
    port_ = port.empty() ? 0 : std::atoi(port.c_str());
    bridge_user_ = RequireEnv("TELEMETRY_MQTT_BRIDGE_USER");
    bridge_password_ = RequireEnv("TELEMETRY_MQTT_BRIDGE_PASSWORD");
    device_user_ = RequireEnv("TELEMETRY_MQTT_DEVICE_USER");
    device_password_ = RequireEnv("TELEMETRY_MQTT_DEVICE_PASSWORD");
    // Readings topics are under telemetry/ (the bridge's ACL); each test gets its own subtree.
    topic_root_ = absl::StrCat("telemetry/", Unique("mqtt-test"));
  }

  void TearDown() override {
    // Drop the persistent sessions this test made: a clean session with the same id replaces
    // the old one, and is itself discarded at its disconnect.
    for (const std::string& id : sessions_) {
      auto c = Client::Connect(BridgeOptions(id, /*clean_session=*/true), {});
      EXPECT_TRUE(c.ok()) << c.status();
    }
  }

  ConnectOptions BridgeOptions(const std::string& client_id, bool clean_session) {
    ConnectOptions o;
    o.host = host_;
    o.port = port_;
    o.client_id = client_id;
    o.username = bridge_user_;
    o.password = bridge_password_;
    o.clean_session = clean_session;
    o.keepalive_s = 10;
    if (!clean_session) sessions_.insert(client_id);
    return o;
  }
  ConnectOptions DeviceOptions() {
    ConnectOptions o;
    o.host = host_;
    o.port = port_;
    o.client_id = Unique("device");
    o.username = device_user_;
    o.password = device_password_;
    return o;
  }
  std::unique_ptr<Client> MustConnect(const ConnectOptions& o, Inbox* inbox = nullptr) {
    auto c = Client::Connect(o, inbox != nullptr ? inbox->callbacks() : Callbacks{});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  // A persistent session subscribed to topic_root_/# that starts empty.
  std::unique_ptr<Client> FreshSubscriber(const std::string& id, Inbox* inbox) {
    { auto wipe = Client::Connect(BridgeOptions(id, true), {}); }
    auto sub = MustConnect(BridgeOptions(id, false), inbox);
    if (sub == nullptr) return nullptr;
    EXPECT_FALSE(sub->session_present());
    auto granted = sub->Subscribe({{topic_root_ + "/#", 1}});
    EXPECT_TRUE(granted.ok()) << granted.status();
    if (granted.ok()) {
      EXPECT_EQ(*granted, std::vector<int>{1});
    }
    return sub;
  }
  // Runs deploy/mosquitto/mosquitto.sh `what` (found as harness.cc's KafkaCtl finds
  // deploy/local/kafka.sh); its exit status.
  int Ctl(const std::string& what) {
    const std::string cmd =
        SourceDir() + "/deploy/mosquitto/mosquitto.sh " + what + " >/dev/null 2>&1";
    return std::system(cmd.c_str());
  }

  std::string host_;
  int port_ = 0;
  std::string bridge_user_, bridge_password_, device_user_, device_password_;
  std::string topic_root_;
  std::set<std::string> sessions_;
};

TEST_F(MqttClientTest, WrongCredentialsAreRefusedWithAClearStatus) {
  ConnectOptions wrong = BridgeOptions(Unique("bridge"), true);
  wrong.password = "not-the-password";
  auto refused = Client::Connect(wrong, {});
  ASSERT_FALSE(refused.ok());
  // Mosquitto 2.0 answers a bad password of an MQTT 3.1.1 client with CONNACK 5, "not
  // authorized", not 4, "bad user name or password".
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << refused.status();
  EXPECT_NE(refused.status().message().find("(CONNACK return code 5)"), std::string::npos)
      << refused.status();

  ConnectOptions unknown = wrong;
  unknown.username = "nobody-" + Unique("user");
  auto unknown_user = Client::Connect(unknown, {});
  EXPECT_EQ(unknown_user.status().code(), refused.status().code()) << unknown_user.status();

  ConnectOptions anonymous = wrong;
  anonymous.username.clear();
  anonymous.password.clear();
  auto anon = Client::Connect(anonymous, {});
  EXPECT_EQ(anon.status().code(), refused.status().code()) << anon.status();

  auto ok = Client::Connect(BridgeOptions(Unique("bridge"), true), {});
  ASSERT_TRUE(ok.ok()) << ok.status();
}

TEST_F(MqttClientTest, WithoutAckTheMessageComesBackWithDupAndAfterAckItDoesNot) {
  const std::string id = Unique("bridge");
  const std::string topic = topic_root_ + "/dev1";
  Inbox first;
  auto sub = FreshSubscriber(id, &first);
  ASSERT_NE(sub, nullptr);
  auto device = MustConnect(DeviceOptions());
  ASSERT_NE(device, nullptr);
  ASSERT_TRUE(device->Publish(topic, "reading-1", 1).ok());

  ASSERT_EQ(first.WaitFor(1, 10000), 1u);
  const Message m1 = first.messages()[0];
  EXPECT_EQ(m1.topic, topic);
  EXPECT_EQ(m1.payload, "reading-1");
  EXPECT_EQ(m1.qos, 1);
  EXPECT_FALSE(m1.dup);
  EXPECT_EQ(sub->stats().pending_acks, 1u);
  // No Ack: the connection drops abruptly (as when the bridge crashes before Kafka answered).
  sub->Abort();
  EXPECT_EQ(sub->Ack(m1.packet_id).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(first.disconnects(), 0u) << "Abort() is not a lost connection";

  Inbox second;
  auto again = MustConnect(BridgeOptions(id, false), &second);
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(again->session_present());
  // Within 2 s, less than keepalive/2 (5 s): the client's PINGREQ right after the CONNACK makes
  // Mosquitto 2.0.11 resend at once (client.cc, Start).
  ASSERT_EQ(second.WaitFor(1, 2000), 1u) << "the unacknowledged message was not redelivered";
  const Message m1_again = second.messages()[0];
  EXPECT_EQ(m1_again.payload, "reading-1");
  EXPECT_TRUE(m1_again.dup);
  ASSERT_TRUE(again->Ack(m1_again.packet_id).ok());
  EXPECT_EQ(again->Ack(m1_again.packet_id).code(), absl::StatusCode::kNotFound);
  again->Disconnect();  // the PUBACK goes before the DISCONNECT

  // Acknowledged: a new connection gets only what was published since. A marker published
  // after the reconnect arrives after anything the broker would resend, so seeing the marker
  // alone proves reading-1 is not coming.
  Inbox third;
  auto third_conn = MustConnect(BridgeOptions(id, false), &third);
  ASSERT_NE(third_conn, nullptr);
  EXPECT_TRUE(third_conn->session_present());
  ASSERT_TRUE(device->Publish(topic, "marker", 1).ok());
  ASSERT_TRUE(third.WaitForTopic(topic, 10000).has_value());
  const auto got = third.messages();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "marker");
  EXPECT_FALSE(got[0].dup);
  ASSERT_TRUE(third_conn->Ack(got[0].packet_id).ok());
}

// An Ack of a later message is held behind an earlier unacknowledged one: the broker gets no
// PUBACK for either and resends both.
TEST_F(MqttClientTest, AnAckOutOfOrderIsHeldUntilTheEarlierMessagesAreAcked) {
  const std::string id = Unique("bridge");
  Inbox first;
  auto sub = FreshSubscriber(id, &first);
  ASSERT_NE(sub, nullptr);
  auto device = MustConnect(DeviceOptions());
  ASSERT_NE(device, nullptr);
  for (const char* p : {"a", "b", "c"}) ASSERT_TRUE(device->Publish(topic_root_ + "/d", p, 1).ok());
  ASSERT_EQ(first.WaitFor(3, 10000), 3u);
  auto msgs = first.messages();
  ASSERT_EQ(msgs[0].payload, "a");
  ASSERT_EQ(msgs[2].payload, "c");
  ASSERT_TRUE(sub->Ack(msgs[2].packet_id).ok());  // c: held behind a and b
  ASSERT_TRUE(sub->Ack(msgs[1].packet_id).ok());  // b: held behind a
  EXPECT_EQ(sub->stats().held_acks, 2u);
  EXPECT_EQ(sub->stats().pubacks_sent, 0u);
  sub->Disconnect();  // flushes whatever PUBACKs were queued: none

  Inbox second;
  auto again = MustConnect(BridgeOptions(id, false), &second);
  ASSERT_NE(again, nullptr);
  ASSERT_EQ(second.WaitFor(3, 10000), 3u);
  msgs = second.messages();
  std::vector<std::string> payloads;
  for (const Message& m : msgs) {
    payloads.push_back(m.payload);
    EXPECT_TRUE(m.dup) << m.payload;
  }
  EXPECT_EQ(payloads, (std::vector<std::string>{"a", "b", "c"}));
  // Now a first: all three PUBACKs go out, in order.
  ASSERT_TRUE(again->Ack(msgs[1].packet_id).ok());
  ASSERT_TRUE(again->Ack(msgs[2].packet_id).ok());
  EXPECT_EQ(again->stats().pubacks_sent, 0u);
  ASSERT_TRUE(again->Ack(msgs[0].packet_id).ok());
  EXPECT_EQ(again->stats().pubacks_sent, 3u);
  again->Disconnect();

  Inbox third;
  auto third_conn = MustConnect(BridgeOptions(id, false), &third);
  ASSERT_NE(third_conn, nullptr);
  ASSERT_TRUE(device->Publish(topic_root_ + "/d", "marker", 1).ok());
  ASSERT_EQ(third.WaitFor(1, 10000), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_EQ(third.messages().size(), 1u);
  EXPECT_EQ(third.messages()[0].payload, "marker");
}

// Mosquitto keeps the session and its queue in memory and on disk: SIGTERM saves it, so every
// message queued for the offline subscriber arrives after the restart; after a crash (SIGKILL)
// what was saved by the autosave (every second) arrives too.
TEST_F(MqttClientTest, QueuedMessagesOfAnOfflineSessionSurviveABrokerRestart) {
  constexpr int kMessages = 300;
  const std::string id = Unique("bridge");
  const std::string topic = topic_root_ + "/restart";
  for (const bool crash : {false, true}) {
    SCOPED_TRACE(crash ? "SIGKILL after an autosave" : "SIGTERM");
    {
      Inbox none;
      auto sub = FreshSubscriber(id, &none);
      ASSERT_NE(sub, nullptr);
      sub->Disconnect();  // offline: the broker queues for it
    }
    {
      auto device = MustConnect(DeviceOptions());
      ASSERT_NE(device, nullptr);
      for (int i = 0; i < kMessages; ++i) {
        ASSERT_TRUE(device->Publish(topic, absl::StrCat("m", i), 1).ok()) << i;
      }
    }
    if (crash) {
      // autosave_interval 1: wait for a save to cover the queue, then crash.
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      ASSERT_EQ(Ctl("kill"), 0);
      ASSERT_EQ(Ctl("start"), 0);
    } else {
      ASSERT_EQ(Ctl("restart"), 0);
    }

    Inbox inbox;
    auto back = MustConnect(BridgeOptions(id, false), &inbox);
    ASSERT_NE(back, nullptr);
    EXPECT_TRUE(back->session_present()) << "the session did not survive the restart";
    EXPECT_EQ(inbox.WaitFor(kMessages, 20000), static_cast<size_t>(kMessages));
    std::set<std::string> payloads;
    for (const Message& m : inbox.messages()) {
      payloads.insert(m.payload);
      EXPECT_TRUE(back->Ack(m.packet_id).ok());
    }
    EXPECT_EQ(payloads.size(), static_cast<size_t>(kMessages));
    EXPECT_EQ(*payloads.begin(), "m0");
    back->Disconnect();
  }
}

// The broker must not drop what it acknowledged to devices. 50,000 QoS 1 messages, published as
// fast as four publishers can: the first half while the persistent subscriber is connected and
// acknowledging from another thread (as the bridge does once Kafka answered), the second half
// while it is away (a bridge restart mid-burst), so the broker has to queue 25,000 for it. All
// arrive, once each, and the broker's dropped counter does not move. With Mosquitto's default
// max_queued_messages (1000) the second half loses 24,000 and this test fails.
TEST_F(MqttClientTest, ABurstOf50000QoS1MessagesArrivesWholeAcrossABridgeRestart) {
  constexpr int kMessages = 50'000;
  constexpr int kHalf = kMessages / 2;
  constexpr int kPublishers = 4;
  const std::string id = Unique("bridge");

  // The acker plays the bridge: what arrived during one "Kafka round trip" (5 ms) is
  // acknowledged after it, the newest first, so most Acks are held behind an earlier one for a
  // moment.
  absl::Mutex mu;
  std::deque<uint16_t> to_ack;
  std::set<std::string> seen;
  size_t received = 0, duplicates = 0;
  bool stop = false;
  Client* current = nullptr;  // the connection the acker acknowledges on
  Callbacks cb;
  cb.on_message = [&](Message m) {
    absl::MutexLock lock(&mu);
    ++received;
    if (!seen.insert(m.payload).second) ++duplicates;
    to_ack.push_back(m.packet_id);
  };
  std::atomic<int> disconnects{0};
  cb.on_disconnect = [&](absl::Status) { ++disconnects; };
  { auto wipe = Client::Connect(BridgeOptions(id, true), {}); }
  auto first_or = Client::Connect(BridgeOptions(id, false), cb);
  ASSERT_TRUE(first_or.ok()) << first_or.status();
  std::unique_ptr<Client> first = std::move(*first_or);
  ASSERT_TRUE(first->Subscribe({{topic_root_ + "/#", 1}}).ok());
  {
    absl::MutexLock lock(&mu);
    current = first.get();
  }
  std::atomic<int> ack_errors{0};
  std::atomic<size_t> acked{0};
  std::thread acker([&] {
    while (true) {
      std::vector<uint16_t> batch;
      Client* client = nullptr;
      {
        absl::MutexLock lock(&mu);
        auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return stop || !to_ack.empty(); };
        mu.Await(absl::Condition(&ready));
        if (stop && to_ack.empty()) return;
        batch.assign(to_ack.begin(), to_ack.end());
        to_ack.clear();
        client = current;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
        if (!client->Ack(*it).ok()) ++ack_errors;
      }
      acked += batch.size();
    }
  });

  // Mosquitto publishes the dropped counter when it changes (checked every sys_interval, 1 s).
  // A subscriber gets the retained value at once (if it changed within the last minute: the
  // retained copy expires after 60 s) and then every change as a live, non-retained message.
  Inbox sys;
  auto watcher = MustConnect(BridgeOptions(Unique("sys"), true), &sys);
  ASSERT_NE(watcher, nullptr);
  ASSERT_TRUE(watcher->Subscribe({{std::string(kSysPublishDropped), 0}}).ok());

  const auto start = std::chrono::steady_clock::now();
  auto device = MustConnect(DeviceOptions());
  ASSERT_NE(device, nullptr);
  std::atomic<int> publish_errors{0};
  auto publish = [&](int from, int to) {
    std::vector<std::thread> publishers;
    for (int p = 0; p < kPublishers; ++p) {
      publishers.emplace_back([&, p] {
        for (int i = from + p; i < to; i += kPublishers) {
          if (!device->Publish(absl::StrCat(topic_root_, "/d", p), absl::StrCat("m", i), 1).ok()) {
            ++publish_errors;
          }
        }
      });
    }
    for (auto& t : publishers) t.join();
  };
  auto wait_for_acked = [&](size_t n) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (acked.load() < n && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return acked.load();
  };

  publish(0, kHalf);
  ASSERT_EQ(wait_for_acked(kHalf), static_cast<size_t>(kHalf));
  EXPECT_EQ(first->stats().pubacks_sent, static_cast<uint64_t>(kHalf));
  first->Disconnect();  // its PUBACKs go out first

  publish(kHalf, kMessages);  // queued by the broker for the offline session
  const double publish_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto second_or = Client::Connect(BridgeOptions(id, false), cb);
  ASSERT_TRUE(second_or.ok()) << second_or.status();
  std::unique_ptr<Client> second = std::move(*second_or);
  EXPECT_TRUE(second->session_present());
  {
    absl::MutexLock lock(&mu);
    current = second.get();
  }
  EXPECT_EQ(wait_for_acked(kMessages), static_cast<size_t>(kMessages));
  {
    absl::MutexLock lock(&mu);
    stop = true;
  }
  acker.join();
  const double total_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(publish_errors.load(), 0);
  EXPECT_EQ(ack_errors.load(), 0);
  EXPECT_EQ(disconnects.load(), 0);
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(seen.size(), static_cast<size_t>(kMessages));
    EXPECT_EQ(duplicates, 0u);
    EXPECT_EQ(received, static_cast<size_t>(kMessages));
  }
  const ClientStats stats = second->stats();
  EXPECT_EQ(stats.pending_acks, 0u);
  EXPECT_EQ(stats.pubacks_sent, static_cast<uint64_t>(kMessages - kHalf));
  std::cerr << "burst: " << kMessages << " published in " << publish_s << " s, all received in "
            << total_s << " s\n";

  // One more $SYS refresh: a live update of the dropped counter means the broker dropped
  // messages during the burst.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  for (const Message& m : sys.messages()) {
    ASSERT_TRUE(ParseSysCounter(m.payload).ok()) << m.payload;
    EXPECT_TRUE(m.retain) << "the broker's dropped-messages counter moved to " << m.payload;
  }
}

// The broker's counters are readable by the bridge user: the dropped-messages counter above all.
// Mosquitto 2.0 publishes a counter only when it changed and its retained copy expires after
// 60 s, so a new subscriber is sure to read the dropped counter (0 while nothing is dropped) only
// within a minute of the broker's start: the test restarts it first.
TEST_F(MqttClientTest, SysCountersAreReadableAfterABrokerRestart) {
  ASSERT_EQ(Ctl("restart"), 0);
  Inbox inbox;
  auto c = MustConnect(BridgeOptions(Unique("sys"), true), &inbox);
  ASSERT_NE(c, nullptr);
  auto granted = c->Subscribe({{"$SYS/broker/#", 0}});
  ASSERT_TRUE(granted.ok()) << granted.status();
  auto dropped = inbox.WaitForTopic(std::string(kSysPublishDropped), 5000);
  ASSERT_TRUE(dropped.has_value()) << "no " << kSysPublishDropped << " within 5 s";
  auto value = ParseSysCounter(dropped->payload);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, 0u);
  auto stored = inbox.WaitForTopic(std::string(kSysStoredMessages), 5000);
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(ParseSysCounter(stored->payload).ok()) << stored->payload;
  // A counter is a number; the load averages beside it are not.
  auto load = inbox.WaitForTopic("$SYS/broker/load/publish/received/1min", 5000);
  if (load.has_value() && load->payload.find('.') != std::string::npos) {
    EXPECT_EQ(ParseSysCounter(load->payload).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// A packet over max_packet_size ends the connection with RESOURCE_EXHAUSTED through
// on_disconnect, once.
TEST_F(MqttClientTest, AnOversizedPacketClosesTheConnectionWithAClearStatus) {
  absl::Mutex mu;
  std::vector<absl::Status> lost;
  Callbacks cb;
  cb.on_disconnect = [&](absl::Status st) {
    absl::MutexLock lock(&mu);
    lost.push_back(std::move(st));
  };
  ConnectOptions o = BridgeOptions(Unique("bridge"), true);
  o.max_packet_size = 1024;
  auto small = Client::Connect(o, cb);
  ASSERT_TRUE(small.ok()) << small.status();
  ASSERT_TRUE((*small)->Subscribe({{topic_root_ + "/#", 1}}).ok());
  auto device = MustConnect(DeviceOptions());
  ASSERT_NE(device, nullptr);
  ASSERT_TRUE(device->Publish(topic_root_ + "/big", std::string(4000, 'x'), 1).ok());
  {
    absl::MutexLock lock(&mu);
    auto any = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return !lost.empty(); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&any), absl::Seconds(10)));
    EXPECT_EQ(lost[0].code(), absl::StatusCode::kResourceExhausted) << lost[0];
  }
  EXPECT_FALSE((*small)->connected());
  EXPECT_EQ((*small)->Publish(topic_root_ + "/x", "y", 1).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*small)->Ack(1).code(), absl::StatusCode::kFailedPrecondition);
  small->reset();  // joins the I/O thread
  absl::MutexLock lock(&mu);
  EXPECT_EQ(lost.size(), 1u);
}

}  // namespace
}  // namespace telemetry::mqtt
