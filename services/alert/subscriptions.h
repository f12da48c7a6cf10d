// AlertService.Subscribe: server streams of a tenant's alert transitions, in
// event_id order, read from the alert history (AlertStateStore::HistoryAfter).
//
// A stream holds no thread while it waits: one small poller thread wakes
// every `poll_interval_ns` and queues a bounded read (`batch` transitions) on
// the handler kit's pool for each idle stream; what a read returns is written
// one message at a time (flow control: the next read starts only once the
// client took everything), and a full batch is followed by the next read at
// once. A stream ends when the client cancels, when a read fails
// (UNAVAILABLE: the client resumes with after_event_id = the last event_id it
// got and misses nothing) or when Stop() is called (server shutdown: the
// streams end at once instead of holding the drain).
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/alert_state.h"
#include "common/clock.h"
#include "common/grpc/handler.h"
#include "telemetry/v1/alert.pb.h"

namespace telemetry::alert {

struct SubscriptionOptions {
  // How often an idle stream asks the store for new transitions.
  int64_t poll_interval_ns = 200 * kNsPerMs;
  // Transitions read (and at most buffered) per stream and read.
  int batch = 100;
  // The deadline of one read.
  int64_t read_timeout_ns = 5 * kNsPerSec;
};

// Whether a transition passes a SubscribeRequest's filters (severities,
// states, the project glob).
bool SubscriptionMatches(const telemetry::v1::SubscribeRequest& request,
                         const telemetry::v1::AlertEvent& event);

class Subscriptions {
 public:
  Subscriptions(AlertStateStore* store, const HandlerKit* kit, SubscriptionOptions options);
  // Stop(), then waits for the poller thread. The gRPC server must have
  // ended every stream before (Server::Shutdown does).
  ~Subscriptions();

  // The reactor of one Subscribe call.
  grpc::ServerWriteReactor<telemetry::v1::AlertEvent>* Open(
      grpc::CallbackServerContext* ctx, const telemetry::v1::SubscribeRequest* request);

  // Ends every open stream with UNAVAILABLE (as soon as its read or write in
  // flight completes) and every later one at once. Idempotent.
  void Stop();

  // Streams registered and not yet ended (for tests and metrics).
  int open_streams();

 private:
  class Stream;

  // Registers an authenticated stream with the poller; false after Stop().
  bool Add(const std::shared_ptr<Stream>& stream);
  void Loop();

  AlertStateStore* const store_;
  const HandlerKit* const kit_;
  const SubscriptionOptions options_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::weak_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  std::thread poller_;
};

}  // namespace telemetry::alert
