// Device credentials (deploy/mosquitto/mosquitto.sh add-device / remove-device) against the local
// stack's Mosquitto (deploy/mosquitto): a device of tenant A publishes only to its own topics,
// never into tenant B or onto another device of A; a gateway covers its tenant only; a device
// reads only its own error topic; a wrong or replaced password and a removed device are refused;
// a name that is not one topic level is refused and changes nothing. The tool runs as an operator
// runs it, with the stack's env file (TELEMETRY_MQTT_PASSWORD_FILE, ..._ACL_FILE, ..._PID_FILE).
//
// Mosquitto drops a publish its ACL denies without telling the publisher: an MQTT 3.1.1 QoS 1
// publish still gets its PUBACK. (Mosquitto 2.0.11 then closes the connection, for QoS 0 too, so
// every publish here goes over a connection of its own.) "Never reaches" is checked with a
// marker: published after the broker acknowledged the denied messages, it reaches the subscriber
// after anything they could have delivered, and the subscriber gets the marker and nothing else.
//
// Every test issues credentials for tenants of its own (unique names) and removes them at the end.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/mqtt/client.h"
#include "tests/integration/harness.h"

namespace telemetry::mqtt {
namespace {

using telemetry::testing::RequireEnv;
using telemetry::testing::SourceDir;

std::string Tool() { return SourceDir() + "/deploy/mosquitto/mosquitto.sh"; }

std::string Unique(const std::string& prefix) {
  std::random_device rd;
  return absl::StrCat(prefix, "-", getpid(), "-", rd() % 1000000);
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct ToolResult {
  int exit_code = -1;
  std::string out;  // stdout; stderr goes to the test's log
};

// mosquitto.sh with `args` (each one word).
ToolResult RunTool(const std::vector<std::string>& args) {
  std::string cmd = ShellQuote(Tool());
  for (const std::string& a : args) absl::StrAppend(&cmd, " ", ShellQuote(a));
  auto [out, code] = telemetry::testing::Shell(cmd);
  ToolResult r;
  r.out = std::move(out);
  r.exit_code = code;
  return r;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// user -> its topic lines, from an ACL file in mosquitto.sh's block form; also counts the user
// lines per user (a well-formed file has one).
struct AclBlocks {
  std::map<std::string, std::vector<std::string>> topics;
  std::map<std::string, int> user_lines;
};
AclBlocks ParseAcl(const std::string& text) {
  AclBlocks acl;
  std::string current;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    if (absl::StartsWith(line, "user ")) {
      current = std::string(line.substr(5));
      ++acl.user_lines[current];
      acl.topics[current];
    } else {
      acl.topics[current].push_back(std::string(line));
    }
  }
  return acl;
}

// What a client's callbacks saw.
class Inbox {
 public:
  Callbacks callbacks() {
    Callbacks cb;
    cb.on_message = [this](Message m) {
      absl::MutexLock lock(&mu_);
      messages_.push_back(std::move(m));
    };
    return cb;
  }
  // Waits for a message with this payload; false after the timeout.
  bool WaitForPayload(const std::string& payload, int timeout_ms) {
    absl::MutexLock lock(&mu_);
    auto seen = [this, &payload]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      for (const Message& m : messages_) {
        if (m.payload == payload) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), absl::Milliseconds(timeout_ms));
  }
  // (topic, payload) of everything received.
  std::vector<std::pair<std::string, std::string>> received() {
    absl::MutexLock lock(&mu_);
    std::vector<std::pair<std::string, std::string>> out;
    for (const Message& m : messages_) out.emplace_back(m.topic, m.payload);
    return out;
  }

 private:
  absl::Mutex mu_;
  std::vector<Message> messages_ ABSL_GUARDED_BY(mu_);
};

using Received = std::vector<std::pair<std::string, std::string>>;

#define EXPECT_OK(expr)                            \
  do {                                             \
    const absl::Status st_ = (expr);               \
    EXPECT_TRUE(st_.ok()) << #expr << ": " << st_; \
  } while (0)

class MqttAclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = RequireEnv("TELEMETRY_MQTT_HOST");
    const std::string port = RequireEnv("TELEMETRY_MQTT_PORT");
    port_ = port.empty() ? 0 : std::atoi(port.c_str());
    bridge_user_ = RequireEnv("TELEMETRY_MQTT_BRIDGE_USER");
    bridge_password_ = RequireEnv("TELEMETRY_MQTT_BRIDGE_PASSWORD");
    tenant_a_ = Unique("acl-a");
    tenant_b_ = Unique("acl-b");
  }

  void TearDown() override {
    for (const auto& [tenant, device] : issued_) {
      RunTool({"remove-device", tenant, device});  // some tests removed theirs already
    }
  }

  // add-device; the password (given, or the one the tool printed).
  std::string AddDevice(const std::string& tenant, const std::string& device,
                        std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"add-device", tenant, device};
    args.insert(args.end(), extra.begin(), extra.end());
    issued_.emplace_back(tenant, device);
    const ToolResult r = RunTool(args);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    const std::string user_line = absl::StrCat("user=", tenant, "/", device);
    for (size_t i = 0; i + 1 < extra.size(); ++i) {
      if (extra[i] == "--password") {
        EXPECT_EQ(r.out, user_line + "\n");
        return extra[i + 1];
      }
    }
    // One line: user=T/D password=P, the password generated.
    const std::string prefix = user_line + " password=";
    EXPECT_TRUE(absl::StartsWith(r.out, prefix)) << r.out;
    EXPECT_TRUE(absl::EndsWith(r.out, "\n")) << r.out;
    if (!absl::StartsWith(r.out, prefix) || r.out.size() <= prefix.size() + 1) return "";
    const std::string password = r.out.substr(prefix.size(), r.out.size() - prefix.size() - 1);
    EXPECT_GE(password.size(), 20u) << password;
    return password;
  }

  ConnectOptions Options(const std::string& user, const std::string& password) {
    ConnectOptions o;
    o.host = host_;
    o.port = port_;
    o.client_id = Unique("acl");
    o.username = user;
    o.password = password;
    o.keepalive_s = 10;
    return o;
  }
  ConnectOptions BridgeOptions() { return Options(bridge_user_, bridge_password_); }

  // Mosquitto applies a SIGHUP in its main loop, a moment after the tool returned: connects until
  // the broker takes the credentials (at most 10 s). The last status when it never does.
  absl::StatusOr<std::unique_ptr<Client>> ConnectOnceReloaded(const ConnectOptions& o,
                                                              Inbox* inbox = nullptr) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      auto c = Client::Connect(o, inbox != nullptr ? inbox->callbacks() : Callbacks{});
      if (c.ok() || c.status().code() != absl::StatusCode::kPermissionDenied ||
          std::chrono::steady_clock::now() > until) {
        return c;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // The refusal once the broker applied a removal or a new password (at most 10 s).
  absl::Status RefusedOnceReloaded(const ConnectOptions& o) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      auto c = Client::Connect(o, {});
      if (!c.ok()) return c.status();
      if (std::chrono::steady_clock::now() > until) return absl::OkStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // A QoS 1 publish over a connection of its own, closed afterwards: OK once the broker
  // acknowledged it, whether its ACL let it through or not.
  absl::Status PublishAs(const ConnectOptions& o, const std::string& topic,
                         const std::string& payload) {
    ConnectOptions own_id = o;
    own_id.client_id = Unique("acl-pub");  // not the id of a connection that is open
    auto c = ConnectOnceReloaded(own_id);
    if (!c.ok()) return c.status();
    return (*c)->Publish(topic, payload, 1);
  }

  // The bridge's view of both tenants' readings topics.
  std::unique_ptr<Client> Subscriber(Inbox* inbox) {
    auto sub = Client::Connect(BridgeOptions(), inbox->callbacks());
    EXPECT_TRUE(sub.ok()) << sub.status();
    if (!sub.ok()) return nullptr;
    auto granted = (*sub)->Subscribe({{absl::StrCat("telemetry/", tenant_a_, "/#"), 0},
                                      {absl::StrCat("telemetry/", tenant_b_, "/#"), 0}});
    EXPECT_TRUE(granted.ok()) << granted.status();
    return std::move(*sub);
  }

  std::string T(const std::string& tenant, const std::string& rest) {
    return absl::StrCat("telemetry/", tenant, "/", rest);
  }

  std::string host_;
  int port_ = 0;
  std::string bridge_user_, bridge_password_;
  std::string tenant_a_, tenant_b_;
  std::vector<std::pair<std::string, std::string>> issued_;
};

TEST_F(MqttAclTest, ADeviceOfTenantAPublishesOnlyToItsOwnTopics) {
  const ConnectOptions d1 = Options(tenant_a_ + "/d1", AddDevice(tenant_a_, "d1"));
  const ConnectOptions d2 =
      Options(tenant_b_ + "/d2", AddDevice(tenant_b_, "d2", {"--password", "d2-secret-pw"}));
  Inbox seen;
  auto sub = Subscriber(&seen);
  ASSERT_NE(sub, nullptr);

  // Allowed: the document topic and a sensor topic of its own.
  EXPECT_OK(PublishAs(d1, T(tenant_a_, "d1"), "a-d1-document"));
  // Denied, each acknowledged by the broker as if delivered: another tenant's device, its own
  // name in another tenant, another device of its own tenant (document and sensor), a topic
  // deeper than a sensor, the tenant's level itself.
  EXPECT_OK(PublishAs(d1, T(tenant_b_, "d2"), "a-d1-into-b"));
  EXPECT_OK(PublishAs(d1, T(tenant_b_, "d1"), "a-d1-as-b-d1"));
  EXPECT_OK(PublishAs(d1, T(tenant_a_, "other"), "a-d1-as-other"));
  EXPECT_OK(PublishAs(d1, T(tenant_a_, "other/temp"), "a-d1-as-other-sensor"));
  EXPECT_OK(PublishAs(d1, T(tenant_a_, "d1/temp/x"), "a-d1-too-deep"));
  EXPECT_OK(PublishAs(d1, T(tenant_a_, ""), "a-d1-tenant-level"));
  // And the other way round.
  EXPECT_OK(PublishAs(d2, T(tenant_a_, "d1"), "b-d2-into-a"));
  EXPECT_OK(PublishAs(d1, T(tenant_a_, "d1/temp"), "a-d1-marker"));
  EXPECT_OK(PublishAs(d2, T(tenant_b_, "d2"), "b-d2-marker"));

  ASSERT_TRUE(seen.WaitForPayload("a-d1-marker", 10000));
  ASSERT_TRUE(seen.WaitForPayload("b-d2-marker", 10000));
  EXPECT_EQ(seen.received(), (Received{{T(tenant_a_, "d1"), "a-d1-document"},
                                       {T(tenant_a_, "d1/temp"), "a-d1-marker"},
                                       {T(tenant_b_, "d2"), "b-d2-marker"}}));
}

TEST_F(MqttAclTest, ADeviceReadsOnlyItsOwnErrorTopic) {
  const ConnectOptions d1_options = Options(tenant_a_ + "/d1", AddDevice(tenant_a_, "d1"));
  AddDevice(tenant_b_, "d2");
  Inbox d1_inbox;
  auto d1 = ConnectOnceReloaded(d1_options, &d1_inbox);
  ASSERT_TRUE(d1.ok()) << d1.status();
  const std::string own = absl::StrCat("telemetry-errors/", tenant_a_, "/d1");
  auto granted = (*d1)->Subscribe({{own, 1}});
  ASSERT_TRUE(granted.ok()) << granted.status();
  // Mosquitto 2.0.11 grants a subscription its ACL does not allow and then delivers nothing on
  // it; a broker that refuses it (0x80) is just as good.
  for (const std::string& other : {absl::StrCat("telemetry-errors/", tenant_b_, "/d2"),
                                   absl::StrCat("telemetry-errors/", tenant_a_, "/other"),
                                   std::string("telemetry-errors/#")}) {
    auto st = (*d1)->Subscribe({{other, 1}});
    EXPECT_TRUE(st.ok() || st.status().code() == absl::StatusCode::kPermissionDenied)
        << other << ": " << st.status();
  }

  auto bridge = Client::Connect(BridgeOptions(), {});
  ASSERT_TRUE(bridge.ok()) << bridge.status();
  EXPECT_OK(
      (*bridge)->Publish(absl::StrCat("telemetry-errors/", tenant_b_, "/d2"), "error-of-b-d2", 1));
  EXPECT_OK((*bridge)->Publish(absl::StrCat("telemetry-errors/", tenant_a_, "/other"),
                               "error-of-a-other", 1));
  EXPECT_OK((*bridge)->Publish(own, "error-of-a-d1", 1));
  ASSERT_TRUE(d1_inbox.WaitForPayload("error-of-a-d1", 10000));
  EXPECT_EQ(d1_inbox.received(), (Received{{own, "error-of-a-d1"}}));

  // A device cannot write error reports, not even its own (the bridge's user cannot read them:
  // the device's own subscription above is the witness).
  EXPECT_OK(PublishAs(d1_options, own, "forged-by-d1"));
  EXPECT_OK((*bridge)->Publish(own, "error-marker", 1));
  ASSERT_TRUE(d1_inbox.WaitForPayload("error-marker", 10000));
  EXPECT_EQ(d1_inbox.received(), (Received{{own, "error-of-a-d1"}, {own, "error-marker"}}));
}

TEST_F(MqttAclTest, AGatewayPublishesForEveryDeviceOfItsTenantOnly) {
  const ConnectOptions gw = Options(tenant_a_ + "/gw", AddDevice(tenant_a_, "gw", {"--gateway"}));
  Inbox seen;
  auto sub = Subscriber(&seen);
  ASSERT_NE(sub, nullptr);
  EXPECT_OK(PublishAs(gw, T(tenant_a_, "meter-1"), "a-meter-1"));
  EXPECT_OK(PublishAs(gw, T(tenant_a_, "meter-2/power"), "a-meter-2-power"));
  EXPECT_OK(PublishAs(gw, T(tenant_b_, "meter-1"), "into-b"));
  EXPECT_OK(PublishAs(gw, T(tenant_b_, "meter-1/power"), "into-b-sensor"));
  EXPECT_OK(PublishAs(gw, T(tenant_a_, "meter-1/power/x"), "too-deep"));
  EXPECT_OK(PublishAs(gw, T(tenant_a_, "gw"), "gw-marker"));
  ASSERT_TRUE(seen.WaitForPayload("gw-marker", 10000));
  EXPECT_EQ(seen.received(), (Received{{T(tenant_a_, "meter-1"), "a-meter-1"},
                                       {T(tenant_a_, "meter-2/power"), "a-meter-2-power"},
                                       {T(tenant_a_, "gw"), "gw-marker"}}));
}

TEST_F(MqttAclTest, AWrongOrReplacedPasswordIsRefused) {
  const std::string password = AddDevice(tenant_a_, "d1");
  const ConnectOptions right = Options(tenant_a_ + "/d1", password);
  auto ok = ConnectOnceReloaded(right);
  ASSERT_TRUE(ok.ok()) << ok.status();

  ConnectOptions wrong = right;
  wrong.password = password + "x";
  // Mosquitto 2.0 answers a bad password with CONNACK 5, not authorized.
  EXPECT_EQ(Client::Connect(wrong, {}).status().code(), absl::StatusCode::kPermissionDenied);
  // The same device name in the other tenant is another user, unknown to the broker.
  EXPECT_EQ(Client::Connect(Options(tenant_b_ + "/d1", password), {}).status().code(),
            absl::StatusCode::kPermissionDenied);

  // add-device again replaces the password: the old one is refused, the new one accepted.
  const std::string replaced = AddDevice(tenant_a_, "d1", {"--password", "replaced-pw-1"});
  EXPECT_EQ(RefusedOnceReloaded(right).code(), absl::StatusCode::kPermissionDenied);
  auto again = ConnectOnceReloaded(Options(tenant_a_ + "/d1", replaced));
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST_F(MqttAclTest, ARemovedDeviceCanNoLongerConnect) {
  const std::string password = AddDevice(tenant_a_, "d1");
  AddDevice(tenant_a_, "d2", {"--password", "stays-pw-123"});
  const ConnectOptions d1 = Options(tenant_a_ + "/d1", password);
  {
    auto c = ConnectOnceReloaded(d1);
    ASSERT_TRUE(c.ok()) << c.status();
  }
  const ToolResult r = RunTool({"remove-device", tenant_a_, "d1"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(RefusedOnceReloaded(d1).code(), absl::StatusCode::kPermissionDenied);
  // The other device of the tenant is untouched; removing d1 again is an error.
  auto d2 = Client::Connect(Options(tenant_a_ + "/d2", "stays-pw-123"), {});
  EXPECT_TRUE(d2.ok()) << d2.status();
  EXPECT_EQ(RunTool({"remove-device", tenant_a_, "d1"}).exit_code, 1);
}

// The file form on its own, without a broker: files a container mounts (--password-file,
// --acl-file, no pid file). Replacing and removing keep one block per user, hand-written blocks
// stay, and the password file has exactly the users added.
TEST(MqttAclFiles, ReplaceAndRemoveKeepOneBlockPerUser) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / Unique("mqtt-acl-files");
  std::filesystem::create_directories(dir);
  const std::string pw = (dir / "passwd").string(), acl = (dir / "acl").string();
  {
    std::ofstream(pw) << "";
    std::ofstream(acl) << "# some header\n\n# the bridge, by hand\nuser telemetry-bridge\n"
                          "topic read telemetry/#\n\n\n";
  }
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--password-file", pw, "--acl-file", acl});
    return RunTool(args);
  };
  EXPECT_EQ(run({"add-device", "t1", "d1", "--password", "p1-123456"}).exit_code, 0);
  EXPECT_EQ(run({"add-device", "t1", "gw", "--gateway"}).exit_code, 0);
  EXPECT_EQ(run({"add-device", "t2", "d1"}).exit_code, 0);
  EXPECT_EQ(run({"add-device", "t1", "d1", "--gateway", "--password", "p2-123456"}).exit_code, 0);
  EXPECT_EQ(run({"remove-device", "t2", "d1"}).exit_code, 0);
  EXPECT_EQ(run({"remove-device", "t2", "d1"}).exit_code, 1);
  EXPECT_EQ(run({"add-device", "t3", "d1", "--password", ""}).exit_code, 1);
  EXPECT_EQ(run({"add-device", "t3", "d1", "extra"}).exit_code, 1);

  // A name that is not one topic level (or not a platform name, or holds ':', which
  // mosquitto_passwd refuses) is refused, prints nothing and changes neither file.
  const std::string pw_before = ReadFile(pw), acl_before = ReadFile(acl);
  for (const std::string& bad :
       {std::string("a/b"), std::string("a+b"), std::string("#"), std::string("+"),
        std::string("a b"), std::string("a:b"), std::string(""), std::string("caf\xc3\xa9"),
        std::string("a\nuser x"), std::string(129, 'x')}) {
    SCOPED_TRACE(bad);
    const ToolResult as_tenant = run({"add-device", bad, "d9", "--password", "pw-123456"});
    EXPECT_EQ(as_tenant.exit_code, 1);
    EXPECT_EQ(as_tenant.out, "");
    const ToolResult as_device = run({"add-device", "t1", bad, "--password", "pw-123456"});
    EXPECT_EQ(as_device.exit_code, 1);
    EXPECT_EQ(as_device.out, "");
  }
  // 128 bytes is allowed.
  EXPECT_EQ(run({"add-device", std::string(128, 't'), "d1", "--password", "p3-123456"}).exit_code,
            0);
  EXPECT_EQ(run({"remove-device", std::string(128, 't'), "d1"}).exit_code, 0);
  EXPECT_EQ(ReadFile(pw), pw_before);
  EXPECT_EQ(ReadFile(acl), acl_before);

  const AclBlocks blocks = ParseAcl(ReadFile(acl));
  EXPECT_EQ(blocks.user_lines,
            (std::map<std::string, int>{{"telemetry-bridge", 1}, {"t1/d1", 1}, {"t1/gw", 1}}));
  EXPECT_EQ(blocks.topics.at("telemetry-bridge"),
            std::vector<std::string>{"topic read telemetry/#"});
  EXPECT_EQ(blocks.topics.at("t1/gw"),
            (std::vector<std::string>{"topic write telemetry/t1/+", "topic write telemetry/t1/+/+",
                                      "topic read telemetry-errors/t1/#"}));
  // t1/d1 became a gateway: its device block is gone.
  EXPECT_EQ(blocks.topics.at("t1/d1"), blocks.topics.at("t1/gw"));
  EXPECT_EQ(blocks.topics.count(""), 0u) << "a topic line outside any block";

  std::vector<std::string> users;
  for (absl::string_view line : absl::StrSplit(ReadFile(pw), '\n', absl::SkipEmpty())) {
    users.push_back(std::string(line.substr(0, line.find(':'))));
  }
  std::sort(users.begin(), users.end());
  EXPECT_EQ(users, (std::vector<std::string>{"t1/d1", "t1/gw"}));
  // Nothing left behind: no temporary files of the tool or of mosquitto_passwd.
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 2u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace telemetry::mqtt
