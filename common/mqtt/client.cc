#include "common/mqtt/client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace telemetry::mqtt {
namespace {

using SteadyClock = std::chrono::steady_clock;

// How long Disconnect() spends writing what is queued and DISCONNECT, then waiting for the
// broker to close its side.
constexpr auto kGracefulCloseTime = std::chrono::seconds(1);
constexpr size_t kReadChunk = 64 * 1024;

std::string ErrnoText(int err) { return std::strerror(err); }

// Milliseconds from now until `deadline` for poll(): at least 0, rounded up.
int MsUntil(SteadyClock::time_point deadline) {
  const auto left = deadline - SteadyClock::now();
  if (left <= SteadyClock::duration::zero()) return 0;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(left).count() + 1;
  return ms > 1'000'000 ? 1'000'000 : static_cast<int>(ms);
}

absl::Status ProtocolViolation(absl::string_view what) {
  return absl::InternalError(absl::StrCat("MQTT protocol violation by the broker: ", what));
}

// A PacketReader error as the status a caller sees: an oversized packet is RESOURCE_EXHAUSTED,
// anything malformed a protocol violation.
absl::Status ReaderError(const absl::Status& st) {
  if (st.code() == absl::StatusCode::kResourceExhausted) {
    return absl::ResourceExhaustedError(
        absl::StrCat("closing the connection: ", st.message(),
                     " (ConnectOptions::max_packet_size; the broker's max_packet_size should not "
                     "exceed it)"));
  }
  return ProtocolViolation(st.message());
}

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// A connected non-blocking TCP socket to host:port (every address getaddrinfo gives, in order).
absl::StatusOr<int> OpenSocket(const std::string& host, int port,
                               SteadyClock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const int gai = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (gai != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve MQTT broker host '", host, "': ", gai_strerror(gai)));
  }
  std::string last_error = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    ScopedFd fd(
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() < 0) {
      last_error = ErrnoText(errno);
      continue;
    }
    int rc = connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
      last_error = ErrnoText(errno);
      continue;
    }
    if (rc != 0) {
      pollfd p{fd.get(), POLLOUT, 0};
      do {
        rc = poll(&p, 1, MsUntil(deadline));
      } while (rc < 0 && errno == EINTR);
      if (rc == 0) {
        freeaddrinfo(found);
        return absl::DeadlineExceededError(
            absl::StrCat("connecting to the MQTT broker at ", host, ":", port, " timed out"));
      }
      int err = 0;
      socklen_t len = sizeof(err);
      if (rc < 0)
        err = errno;
      else if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
      if (err != 0) {
        last_error = ErrnoText(err);
        continue;
      }
    }
    const int one = 1;
    // PUBACKs and PINGREQs are a few bytes each: no Nagle delay on them.
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    freeaddrinfo(found);
    return fd.release();
  }
  freeaddrinfo(found);
  return absl::UnavailableError(
      absl::StrCat("cannot connect to the MQTT broker at ", host, ":", port, ": ", last_error));
}

absl::Status WriteAll(int fd, absl::string_view data, SteadyClock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      const int rc = poll(&p, 1, MsUntil(deadline));
      if (rc == 0) return absl::DeadlineExceededError("writing to the MQTT broker timed out");
      continue;
    }
    return absl::UnavailableError(absl::StrCat("writing to the MQTT broker: ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

// Reads until `reader` has a whole packet (the CONNACK, during Connect).
absl::StatusOr<Packet> ReadPacket(int fd, PacketReader* reader, SteadyClock::time_point deadline) {
  std::string buf(kReadChunk, '\0');
  while (true) {
    auto next = reader->Next();
    if (!next.ok()) return ReaderError(next.status());
    if (next->has_value()) return std::move(**next);
    pollfd p{fd, POLLIN, 0};
    const int rc = poll(&p, 1, MsUntil(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) {
      return absl::DeadlineExceededError("the MQTT broker sent no CONNACK in time");
    }
    const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n == 0) {
      return absl::UnavailableError("the MQTT broker closed the connection before its CONNACK");
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      return absl::UnavailableError(
          absl::StrCat("reading from the MQTT broker: ", ErrnoText(errno)));
    }
    reader->Append(absl::string_view(buf.data(), static_cast<size_t>(n)));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ConnectOptions& options,
                                                        Callbacks callbacks) {
  if (options.keepalive_s < 0 || options.keepalive_s > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("keepalive_s ", options.keepalive_s, " is not within 0-65535"));
  }
  if (options.port <= 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port ", options.port, " is not a TCP port"));
  }
  if (options.connect_timeout_ms <= 0) {
    return absl::InvalidArgumentError("connect_timeout_ms must be positive");
  }
  if (options.max_packet_size < 5) {
    return absl::InvalidArgumentError("max_packet_size below 5 bytes cannot hold a SUBACK");
  }
  ConnectFields fields;
  fields.client_id = options.client_id;
  if (!options.username.empty()) {
    fields.username = options.username;
    fields.password = options.password;
  } else if (!options.password.empty()) {
    return absl::InvalidArgumentError("MQTT 3.1.1 sends a password only with a user name");
  }
  fields.clean_session = options.clean_session;
  fields.keepalive_s = static_cast<uint16_t>(options.keepalive_s);
  absl::StatusOr<std::string> connect_packet = EncodeConnect(fields);
  if (!connect_packet.ok()) return connect_packet.status();

  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(options.connect_timeout_ms);
  absl::StatusOr<int> opened = OpenSocket(options.host, options.port, deadline);
  if (!opened.ok()) return opened.status();
  ScopedFd fd(*opened);
  RETURN_IF_ERROR(WriteAll(fd.get(), *connect_packet, deadline));
  PacketReader reader(options.max_packet_size);
  absl::StatusOr<Packet> packet = ReadPacket(fd.get(), &reader, deadline);
  if (!packet.ok()) return packet.status();
  // [MQTT-3.2.0-1]: the first packet from the server is the CONNACK.
  if (packet->type != PacketType::kConnAck) {
    return ProtocolViolation(
        absl::StrCat("its first packet was ", PacketTypeName(packet->type), ", not CONNACK"));
  }
  absl::StatusOr<ConnAck> ack = DecodeConnAck(*packet);
  if (!ack.ok()) return ProtocolViolation(ack.status().message());
  RETURN_IF_ERROR(ConnAckStatus(ack->return_code));
  if (options.clean_session && ack->session_present) {
    return ProtocolViolation("session present on a clean session ([MQTT-3.2.2-1])");
  }
  ScopedFd wake(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (wake.get() < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", ErrnoText(errno)));
  }
  std::unique_ptr<Client> client(new Client(options, std::move(callbacks), fd.release(),
                                            std::move(reader), ack->session_present));
  client->wake_fd_ = wake.release();
  client->Start();
  return client;
}

Client::Client(const ConnectOptions& options, Callbacks callbacks, int fd, PacketReader reader,
               bool session_present)
    : options_(options),
      callbacks_(std::move(callbacks)),
      session_present_(session_present),
      fd_(fd),
      reader_(std::move(reader)),
      last_send_(SteadyClock::now()),
      last_recv_(last_send_) {}

void Client::Start() {
  // The I/O thread waits for mu_ so that it sees io_thread_id_ set; every other thread calls in
  // after Connect() returned.
  absl::MutexLock lock(&mu_);
  if (session_present_) {
    // Mosquitto 2.0.11 resends the messages a resumed session had in flight only once it reads
    // something from the new connection: without this PINGREQ they came keepalive/2 later
    // (5 s with keepalive 10, measured by tests/integration/mqtt_client_test.cc).
    outbox_.append(EncodePingReq());
    ping_sent_ = SteadyClock::now();
  }
  io_thread_ = std::thread([this] {
    { absl::MutexLock started(&mu_); }
    IoLoop();
  });
  io_thread_id_ = io_thread_.get_id();
}

Client::~Client() {
  if (OnIoThread()) {
    // Joining itself is impossible and returning would free what the I/O thread still uses.
    GetLogger("mqtt")->critical("an MQTT client was destroyed from its own callback");
    std::abort();
  }
  Close(CloseRequest::kDisconnect);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Client::Disconnect() { Close(CloseRequest::kDisconnect); }

void Client::Abort() { Close(CloseRequest::kAbort); }

void Client::Close(CloseRequest how) {
  {
    absl::MutexLock lock(&mu_);
    if (close_request_ == CloseRequest::kNone) close_request_ = how;
  }
  Wake();
  if (OnIoThread()) return;  // the loop ends once the callback returns
  absl::MutexLock lock(&join_mu_);
  if (io_thread_.joinable()) io_thread_.join();
}

void Client::Wake() {
  if (wake_pending_.exchange(true)) return;
  const uint64_t one = 1;
  // Only fails when the counter would overflow, which a pending wake-up makes impossible.
  [[maybe_unused]] const ssize_t n = write(wake_fd_, &one, sizeof(one));
}

bool Client::connected() const {
  absl::MutexLock lock(&mu_);
  return open_ && close_request_ == CloseRequest::kNone;
}

ClientStats Client::stats() const {
  absl::MutexLock lock(&mu_);
  ClientStats out = stats_;
  out.pending_acks = acks_.pending();
  out.held_acks = acks_.held();
  return out;
}

uint16_t Client::NextPacketIdLocked() {
  // 2.3.1: our ids are independent of the broker's; skip the ones still awaiting an answer.
  for (int i = 0; i < 65535; ++i) {
    last_packet_id_ = static_cast<uint16_t>(last_packet_id_ == 65535 ? 1 : last_packet_id_ + 1);
    if (!waiters_.contains(last_packet_id_)) return last_packet_id_;
  }
  return 0;
}

absl::StatusOr<std::shared_ptr<Client::Waiter>> Client::SendAndWait(
    const std::function<absl::StatusOr<std::string>(uint16_t)>& encode, int timeout_ms,
    uint16_t* packet_id) {
  if (OnIoThread()) {
    return absl::FailedPreconditionError(
        "Subscribe and QoS 1 Publish wait for the I/O thread: not callable from a callback");
  }
  auto waiter = std::make_shared<Waiter>();
  uint16_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!open_ || close_request_ != CloseRequest::kNone) {
      return absl::UnavailableError("the MQTT connection is closed");
    }
    id = NextPacketIdLocked();
    if (id == 0) {
      return absl::ResourceExhaustedError("65535 MQTT requests await an answer: no packet id left");
    }
    absl::StatusOr<std::string> bytes = encode(id);
    if (!bytes.ok()) return bytes.status();
    if (outbox_.size() + bytes->size() > options_.max_unsent_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "more than ", options_.max_unsent_bytes, " bytes wait to be written to the MQTT broker"));
    }
    outbox_.append(*bytes);
    waiters_[id] = waiter;
  }
  Wake();
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&waiter->done), absl::Milliseconds(timeout_ms));
  if (!waiter->done) {
    waiters_.erase(id);
    return absl::DeadlineExceededError(
        absl::StrCat("the MQTT broker did not answer packet ", id, " within ", timeout_ms, " ms"));
  }
  *packet_id = id;
  return waiter;
}

absl::StatusOr<std::vector<int>> Client::Subscribe(const std::vector<Subscription>& subscriptions,
                                                   int timeout_ms) {
  for (const Subscription& s : subscriptions) {
    if (s.qos == 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("QoS 2 for '", s.filter, "': this client receives QoS 0 and 1 only"));
    }
  }
  uint16_t id = 0;
  auto waiter = SendAndWait(
      [&subscriptions](uint16_t packet_id) { return EncodeSubscribe(packet_id, subscriptions); },
      timeout_ms, &id);
  if (!waiter.ok()) return waiter.status();
  RETURN_IF_ERROR((*waiter)->status);
  const std::vector<uint8_t>& codes = (*waiter)->suback_codes;
  if (codes.size() != subscriptions.size()) {
    return ProtocolViolation(absl::StrCat("SUBACK with ", codes.size(), " return codes for ",
                                          subscriptions.size(), " topic filters"));
  }
  std::vector<int> granted;
  std::vector<std::string> refused;
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] == kSubAckFailure) {
      refused.push_back(absl::StrCat("'", subscriptions[i].filter, "'"));
      granted.push_back(-1);
    } else if (codes[i] > subscriptions[i].qos) {
      return ProtocolViolation(absl::StrCat("granted QoS ", codes[i], " for '",
                                            subscriptions[i].filter, "' when ",
                                            subscriptions[i].qos, " was asked for"));
    } else {
      granted.push_back(codes[i]);
    }
  }
  if (!refused.empty()) {
    return absl::PermissionDeniedError(absl::StrCat("the MQTT broker refused the subscription to ",
                                                    absl::StrJoin(refused, ", "),
                                                    " (SUBACK 0x80: its ACL, for example)"));
  }
  return granted;
}

absl::Status Client::Publish(absl::string_view topic, absl::string_view payload, int qos,
                             int timeout_ms, bool retain) {
  if (qos != 0 && qos != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("QoS ", qos, ": this client publishes with QoS 0 or 1"));
  }
  PublishFields fields;
  fields.topic.assign(topic.data(), topic.size());
  fields.payload.assign(payload.data(), payload.size());
  fields.qos = qos;
  fields.retain = retain;
  if (qos == 0) {
    absl::StatusOr<std::string> bytes = EncodePublish(fields);
    if (!bytes.ok()) return bytes.status();
    {
      absl::MutexLock lock(&mu_);
      if (!open_ || close_request_ != CloseRequest::kNone) {
        return absl::UnavailableError("the MQTT connection is closed");
      }
      if (outbox_.size() + bytes->size() > options_.max_unsent_bytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("more than ", options_.max_unsent_bytes,
                         " bytes wait to be written to the MQTT broker"));
      }
      outbox_.append(*bytes);
    }
    if (!OnIoThread()) Wake();
    return absl::OkStatus();
  }
  // Validate before taking a packet id, so a bad topic is INVALID_ARGUMENT, not a timeout.
  RETURN_IF_ERROR(ValidateTopicName(fields.topic));
  uint16_t id = 0;
  auto waiter = SendAndWait(
      [&fields](uint16_t packet_id) {
        fields.packet_id = packet_id;
        return EncodePublish(fields);
      },
      timeout_ms, &id);
  if (!waiter.ok()) return waiter.status();
  return (*waiter)->status;
}

absl::Status Client::Ack(uint16_t packet_id) {
  bool wake = false;
  {
    absl::MutexLock lock(&mu_);
    if (!open_ || close_request_ != CloseRequest::kNone) {
      return absl::FailedPreconditionError(
          absl::StrCat("the MQTT connection ended before packet id ", packet_id,
                       " was acknowledged: the broker resends it to the session"));
    }
    absl::StatusOr<std::vector<uint16_t>> release = acks_.Ack(packet_id);
    if (!release.ok()) return release.status();
    for (uint16_t id : *release) outbox_.append(EncodePubAck(id));
    stats_.pubacks_sent += release->size();
    wake = !release->empty();
  }
  if (wake && !OnIoThread()) Wake();
  return absl::OkStatus();
}

void Client::CompleteWaiter(uint16_t packet_id, absl::Status status, std::vector<uint8_t> codes) {
  absl::MutexLock lock(&mu_);
  auto it = waiters_.find(packet_id);
  if (it == waiters_.end()) return;  // its caller gave up waiting
  it->second->status = std::move(status);
  it->second->suback_codes = std::move(codes);
  it->second->done = true;
  waiters_.erase(it);
}

absl::Status Client::HandlePublish(const Packet& packet) {
  absl::StatusOr<PublishFields> publish = DecodePublish(packet);
  if (!publish.ok()) return ProtocolViolation(publish.status().message());
  if (publish->qos == 2) {
    return ProtocolViolation(absl::StrCat("a QoS 2 PUBLISH on '", publish->topic,
                                          "' although no subscription was granted QoS 2"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (publish->qos == 1) {
      absl::StatusOr<PubackQueue::Arrival> arrival =
          acks_.OnPublish(publish->packet_id, publish->dup);
      if (!arrival.ok()) return ProtocolViolation(arrival.status().message());
      if (*arrival == PubackQueue::Arrival::kDuplicate) {
        ++stats_.duplicates_skipped;
        return absl::OkStatus();
      }
    }
    ++stats_.messages_received;
  }
  if (callbacks_.on_message) {
    Message message;
    message.topic = std::move(publish->topic);
    message.payload = std::move(publish->payload);
    message.qos = publish->qos;
    message.dup = publish->dup;
    message.retain = publish->retain;
    message.packet_id = publish->packet_id;
    callbacks_.on_message(std::move(message));
  }
  return absl::OkStatus();
}

absl::Status Client::HandlePacket(Packet packet) {
  switch (packet.type) {
    case PacketType::kPublish:
      return HandlePublish(packet);
    case PacketType::kPubAck: {
      absl::StatusOr<uint16_t> id = DecodePacketId(packet);
      if (!id.ok()) return ProtocolViolation(id.status().message());
      CompleteWaiter(*id, absl::OkStatus(), {});
      return absl::OkStatus();
    }
    case PacketType::kSubAck: {
      absl::StatusOr<SubAck> ack = DecodeSubAck(packet);
      if (!ack.ok()) return ProtocolViolation(ack.status().message());
      CompleteWaiter(ack->packet_id, absl::OkStatus(), std::move(ack->return_codes));
      return absl::OkStatus();
    }
    case PacketType::kPingResp:
      if (!packet.body.empty()) return ProtocolViolation("PINGRESP with a body");
      ping_sent_.reset();
      return absl::OkStatus();
    case PacketType::kConnAck:
      return ProtocolViolation("a second CONNACK");
    case PacketType::kPubRec:
    case PacketType::kPubRel:
    case PacketType::kPubComp:
      return ProtocolViolation(
          absl::StrCat(PacketTypeName(packet.type), " although this client uses no QoS 2"));
    case PacketType::kUnsubAck:
      return ProtocolViolation("UNSUBACK although this client never unsubscribes");
    case PacketType::kConnect:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
    case PacketType::kPingReq:
    case PacketType::kDisconnect:
      return ProtocolViolation(
          absl::StrCat(PacketTypeName(packet.type), " is a packet only clients send"));
  }
  return ProtocolViolation("unknown packet type");
}

void Client::IoLoop() {
  const absl::Status status = RunIo();
  EndConnection(status);
}

absl::Status Client::RunIo() {
  const auto half_keepalive = std::chrono::milliseconds(options_.keepalive_s * 500);
  std::string writing;  // taken from outbox_, being written
  size_t written = 0;
  std::string chunk(kReadChunk, '\0');
  while (true) {
    CloseRequest request = CloseRequest::kNone;
    wake_pending_.store(false);
    {
      absl::MutexLock lock(&mu_);
      request = close_request_;
      if (written == writing.size() && !outbox_.empty()) {
        writing.swap(outbox_);
        outbox_.clear();
        written = 0;
      }
    }
    if (request == CloseRequest::kAbort) return absl::OkStatus();
    if (request == CloseRequest::kDisconnect) {
      // What is queued (PUBACKs above all), then DISCONNECT; then the broker closes its side.
      std::string rest = writing.substr(written);
      {
        absl::MutexLock lock(&mu_);
        rest.append(outbox_);
        outbox_.clear();
      }
      rest.append(EncodeDisconnect());
      const auto deadline = SteadyClock::now() + kGracefulCloseTime;
      if (WriteAll(fd_, rest, deadline).ok()) {
        shutdown(fd_, SHUT_WR);
        // Read until EOF (discarding: what is not acknowledged is resent to the session), so
        // the close does not turn into a reset that could cost the broker our last bytes.
        while (true) {
          pollfd p{fd_, POLLIN, 0};
          if (poll(&p, 1, MsUntil(deadline)) <= 0) break;
          const ssize_t n = recv(fd_, chunk.data(), chunk.size(), 0);
          if (n == 0 || (n < 0 && errno != EINTR) || SteadyClock::now() >= deadline) break;
        }
      }
      return absl::OkStatus();
    }

    if (written < writing.size()) {
      const ssize_t n = send(fd_, writing.data() + written, writing.size() - written, MSG_NOSIGNAL);
      if (n > 0) {
        written += static_cast<size_t>(n);
        last_send_ = SteadyClock::now();
        if (written == writing.size()) {
          writing.clear();
          written = 0;
        }
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return absl::UnavailableError(
            absl::StrCat("writing to the MQTT broker: ", ErrnoText(errno)));
      }
    }

    int timeout_ms = -1;
    if (options_.keepalive_s > 0) {
      const auto next = ping_sent_.has_value() ? std::max(*ping_sent_, last_recv_) + half_keepalive
                                               : last_send_ + half_keepalive;
      timeout_ms = MsUntil(next);
    }
    pollfd fds[2] = {
        {fd_, static_cast<short>(POLLIN | (written < writing.size() ? POLLOUT : 0)), 0},
        {wake_fd_, POLLIN, 0}};
    const int rc = poll(fds, 2, timeout_ms);
    if (rc < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll: ", ErrnoText(errno)));
    }
    if (rc > 0 && (fds[1].revents & POLLIN) != 0) {
      uint64_t count = 0;
      [[maybe_unused]] const ssize_t n = read(wake_fd_, &count, sizeof(count));
    }
    if (rc > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t n = recv(fd_, chunk.data(), chunk.size(), 0);
      if (n == 0) return absl::UnavailableError("the MQTT broker closed the connection");
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return absl::UnavailableError(
            absl::StrCat("reading from the MQTT broker: ", ErrnoText(errno)));
      }
      if (n > 0) {
        last_recv_ = SteadyClock::now();
        reader_.Append(absl::string_view(chunk.data(), static_cast<size_t>(n)));
        while (true) {
          {
            absl::MutexLock lock(&mu_);
            if (close_request_ != CloseRequest::kNone) break;  // no callbacks after a close
          }
          absl::StatusOr<std::optional<Packet>> packet = reader_.Next();
          if (!packet.ok()) return ReaderError(packet.status());
          if (!packet->has_value()) break;
          RETURN_IF_ERROR(HandlePacket(std::move(**packet)));
        }
      }
    }

    if (options_.keepalive_s > 0) {
      const auto now = SteadyClock::now();
      if (ping_sent_.has_value()) {
        // Anything received counts as a sign of life: a PINGRESP may queue behind a backlog.
        if (now - std::max(*ping_sent_, last_recv_) >= half_keepalive) {
          return absl::UnavailableError(
              absl::StrCat("no PINGRESP from the MQTT broker within ", half_keepalive.count(),
                           " ms and nothing else received: the broker or the network is gone"));
        }
      } else if (now - last_send_ >= half_keepalive) {
        absl::MutexLock lock(&mu_);
        outbox_.append(EncodePingReq());
        ping_sent_ = now;
      }
    }
  }
}

void Client::EndConnection(const absl::Status& status) {
  bool notify = false;
  bool abort = false;
  {
    absl::MutexLock lock(&mu_);
    open_ = false;
    notify = close_request_ == CloseRequest::kNone;
    abort = close_request_ == CloseRequest::kAbort;
    acks_.Clear();
    outbox_.clear();
    const absl::Status ended = absl::UnavailableError(
        absl::StrCat("the MQTT connection ended before the broker answered",
                     status.ok() ? std::string() : absl::StrCat(": ", status.message())));
    for (auto& [id, waiter] : waiters_) {
      waiter->status = ended;
      waiter->done = true;
    }
    waiters_.clear();
  }
  if (abort) {
    // A reset instead of an orderly close: what a crash or a pulled cable looks like.
    const linger hard{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  }
  close(fd_);
  fd_ = -1;
  if (notify) {
    GetLogger("mqtt")->warn("MQTT connection of client '{}' to {}:{} lost: {}", options_.client_id,
                            options_.host, options_.port, status.ToString());
    if (callbacks_.on_disconnect) callbacks_.on_disconnect(status);
  }
}

}  // namespace telemetry::mqtt
