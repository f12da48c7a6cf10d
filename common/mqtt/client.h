// An MQTT 3.1.1 client over plain TCP (POSIX sockets) whose QoS 1 acknowledgements are the
// application's to give: a PUBACK goes to the broker only after Ack(packet_id), which the MQTT
// bridge calls once Kafka has acknowledged the readings of that message. libmosquitto 2.0 and
// Eclipse Paho C 1.3 send the PUBACK before the application has seen the message, so a crash
// between the two loses a message the broker considers delivered; this client cannot lose it:
// whatever was not acknowledged is resent by the broker to the persistent session (DUP set) on
// the next connection.
//
// One Client is one network connection (one attachment to the broker's session): Connect()
// returns a connected client or the reason it is not; after the connection is lost (OnDisconnect)
// or closed (Disconnect, Abort) the object only reports errors, and the owner reconnects by
// calling Connect() again with the same client id and clean_session false. That keeps packet ids
// of two connections apart: an Ack meant for a message of the old connection can never
// acknowledge a different message that reuses the id on the new one.
//
// Scope: QoS 0 and 1. Subscribe refuses to ask for QoS 2, and a QoS 2 PUBLISH from the broker
// closes the connection with an error. No will message, no TLS, no MQTT 5. An unacknowledged
// QoS 1 Publish of ours is not resent by this client on a later connection ([MQTT-4.4.0-1] asks a
// client to): Publish returns an error instead and the caller publishes again (at least once).
//
// Threads. Each client runs one I/O thread: it reads, writes everything (PUBACKs, PINGREQs,
// PUBLISHes, SUBSCRIBEs are queued to it), keeps the connection alive and calls the callbacks.
//  - Callbacks run on the I/O thread, one at a time, messages in arrival order. While a callback
//    runs nothing is read or written: hand work off quickly (the bridge hands readings to the
//    Kafka producer, which is asynchronous). A callback may call Ack, Publish with QoS 0,
//    Disconnect and Abort; Subscribe and QoS 1 Publish wait for the I/O thread and return
//    FAILED_PRECONDITION when called from it. A callback must not destroy the client.
//  - Every public method is thread-safe. Ack, Publish and Subscribe may be called from any
//    thread at any time, also concurrently; after the connection ended they return
//    FAILED_PRECONDITION (Ack) or UNAVAILABLE (Publish, Subscribe).
//  - The destructor disconnects (DISCONNECT, like Disconnect()) and joins the I/O thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/mqtt/packet.h"
#include "common/mqtt/puback_queue.h"

namespace telemetry::mqtt {

struct ConnectOptions {
  std::string host = "127.0.0.1";
  int port = 1883;
  // The session's name at the broker. The bridge uses a fixed id with clean_session false, so
  // the broker keeps its subscriptions and queues its messages while it is away.
  std::string client_id;
  std::string username;  // empty: none (and no password either)
  std::string password;
  bool clean_session = true;
  // The broker closes a connection it heard nothing on for 1.5 keepalives; the client sends a
  // PINGREQ after keepalive/2 without sending anything, and declares the connection lost when the
  // PINGRESP has not come keepalive/2 later. 0: no keepalive. At most 65535.
  int keepalive_s = 30;
  // TCP connect plus CONNACK.
  int connect_timeout_ms = 5000;
  // The largest packet accepted from the broker (fixed header included). A bigger one closes the
  // connection with RESOURCE_EXHAUSTED. Keep the broker's max_packet_size at or below it
  // (deploy/mosquitto/mosquitto.conf does): the broker would otherwise resend an oversized QoS 1
  // message to the persistent session on every connection.
  size_t max_packet_size = 1 << 20;
  // Bytes of PUBLISH and SUBSCRIBE packets queued for the I/O thread and not written yet; a
  // Publish over it gets RESOURCE_EXHAUSTED. (PUBACKs are always queued: they are few.)
  size_t max_unsent_bytes = 8 << 20;
};

struct Message {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool dup = false;        // the broker sent it before (on an earlier connection, for example)
  bool retain = false;     // sent from the broker's retained store, not as a new publication
  uint16_t packet_id = 0;  // QoS 1: what Ack takes; 0 for QoS 0
};

struct Callbacks {
  // Each PUBLISH the broker sends, in arrival order. QoS 1: call Ack(packet_id) once the message
  // is safe (from any thread); until then the broker considers it undelivered.
  std::function<void(Message)> on_message;
  // The connection was lost: read or write error, EOF, no PINGRESP, a protocol violation or an
  // oversized packet (the status says which). Called at most once and never after Disconnect()
  // or Abort(). When it runs, the pending acknowledgements are dropped already and every other
  // call fails; reconnect from another thread (a new Connect()).
  std::function<void(absl::Status)> on_disconnect;
};

struct ClientStats {
  uint64_t messages_received = 0;   // PUBLISHes delivered to on_message
  uint64_t duplicates_skipped = 0;  // DUP resends of a message still pending here
  uint64_t pubacks_sent = 0;        // PUBACKs queued for the broker
  size_t pending_acks = 0;          // QoS 1 messages received without PUBACK
  size_t held_acks = 0;             // acknowledged, held behind an earlier unacknowledged one
};

class Client {
 public:
  // Opens the connection, sends CONNECT and waits for the CONNACK. Errors:
  //  - INVALID_ARGUMENT: options MQTT cannot carry (client id, user name, keepalive);
  //  - UNAVAILABLE: the broker cannot be reached or closed the connection, or refused it with
  //    "server unavailable";
  //  - DEADLINE_EXCEEDED: no CONNACK within connect_timeout_ms;
  //  - UNAUTHENTICATED (bad user name or password), PERMISSION_DENIED (not authorized), and the
  //    other CONNACK refusals as ConnAckStatus() maps them (packet.h);
  //  - INTERNAL: the broker broke the protocol.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ConnectOptions& options,
                                                         Callbacks callbacks);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The CONNACK's session present flag: the broker had a session for this client id (always
  // false with clean_session).
  bool session_present() const { return session_present_; }

  // Sends SUBSCRIBE and waits for the SUBACK; returns the QoS granted per filter. QoS 2 is not
  // supported (INVALID_ARGUMENT). A filter the broker refused (0x80, e.g. its ACL) fails the call
  // with PERMISSION_DENIED naming the filter (the others are subscribed). DEADLINE_EXCEEDED when
  // no SUBACK came within `timeout_ms`.
  absl::StatusOr<std::vector<int>> Subscribe(const std::vector<Subscription>& subscriptions,
                                             int timeout_ms = 10000);

  // QoS 0: queued for sending, returns at once. QoS 1: waits for the broker's PUBACK;
  // DEADLINE_EXCEEDED after `timeout_ms` (the broker may still have it), UNAVAILABLE when the
  // connection ended first (it may have it too). INVALID_ARGUMENT for a bad topic or QoS.
  absl::Status Publish(absl::string_view topic, absl::string_view payload, int qos,
                       int timeout_ms = 10000, bool retain = false);

  // The application has handled the QoS 1 message `packet_id`: its PUBACK goes out as soon as
  // every message that arrived before it is acknowledged too ([MQTT-4.6.0-2]). NOT_FOUND: no
  // such message pending on this connection; FAILED_PRECONDITION: acknowledged already, or the
  // connection ended (the broker resends the message to the session).
  absl::Status Ack(uint16_t packet_id);

  // Sends DISCONNECT (after what is queued, PUBACKs included, within a second), closes the
  // connection and, unless called from a callback, waits for the I/O thread. on_disconnect is not
  // called. The session stays at the broker when it was opened with clean_session false.
  void Disconnect();
  // Closes the connection without DISCONNECT and without writing what is queued (a crash, as the
  // broker sees it). on_disconnect is not called.
  void Abort();

  bool connected() const;
  ClientStats stats() const;

 private:
  struct Waiter {
    bool done = false;
    absl::Status status;
    std::vector<uint8_t> suback_codes;
  };
  enum class CloseRequest { kNone, kDisconnect, kAbort };

  Client(const ConnectOptions& options, Callbacks callbacks, int fd, PacketReader reader,
         bool session_present);
  void Start();
  void Close(CloseRequest how);
  void Wake();
  bool OnIoThread() const { return std::this_thread::get_id() == io_thread_id_; }
  // Queues a PUBLISH/SUBSCRIBE with a fresh packet id and waits for its acknowledgement.
  absl::StatusOr<std::shared_ptr<Waiter>> SendAndWait(
      const std::function<absl::StatusOr<std::string>(uint16_t)>& encode, int timeout_ms,
      uint16_t* packet_id);
  uint16_t NextPacketIdLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void IoLoop();
  absl::Status RunIo();
  absl::Status HandlePacket(Packet packet);
  absl::Status HandlePublish(const Packet& packet);
  void CompleteWaiter(uint16_t packet_id, absl::Status status, std::vector<uint8_t> codes);
  void EndConnection(const absl::Status& status);

  const ConnectOptions options_;
  const Callbacks callbacks_;
  const bool session_present_;
  int fd_;            // owned by the I/O thread once Start() ran; closed by it
  int wake_fd_ = -1;  // eventfd: wakes the I/O thread for queued bytes and close requests
  // I/O thread only.
  PacketReader reader_;
  std::chrono::steady_clock::time_point last_send_;
  std::chrono::steady_clock::time_point last_recv_;
  std::optional<std::chrono::steady_clock::time_point> ping_sent_;

  std::atomic<bool> wake_pending_{false};
  absl::Mutex join_mu_;
  std::thread io_thread_;
  std::thread::id io_thread_id_;  // set under mu_ before the I/O thread runs

  mutable absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  CloseRequest close_request_ ABSL_GUARDED_BY(mu_) = CloseRequest::kNone;
  std::string outbox_ ABSL_GUARDED_BY(mu_);  // bytes for the I/O thread to write, in order
  PubackQueue acks_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint16_t, std::shared_ptr<Waiter>> waiters_ ABSL_GUARDED_BY(mu_);
  uint16_t last_packet_id_ ABSL_GUARDED_BY(mu_) = 0;
  ClientStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace telemetry::mqtt
