#include "services/alert/subscriptions.h"

#include <algorithm>
#include <deque>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/deadline.h"
#include "services/alert/rule.h"

namespace telemetry::alert {

using telemetry::v1::AlertEvent;
using telemetry::v1::SubscribeRequest;

bool SubscriptionMatches(const SubscribeRequest& request, const AlertEvent& event) {
  if (!request.severities().empty() &&
      std::find(request.severities().begin(), request.severities().end(), event.severity()) ==
          request.severities().end()) {
    return false;
  }
  if (!request.states().empty() && std::find(request.states().begin(), request.states().end(),
                                             event.state()) == request.states().end()) {
    return false;
  }
  return request.project().empty() || GlobMatch(request.project(), event.project());
}

namespace {

absl::Status CheckRequest(const SubscribeRequest& request) {
  if (request.after_event_id() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("after_event_id: must be >= 0, got ", request.after_event_id()));
  }
  if (request.since_ns() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("since_ns: must be >= 0, got ", request.since_ns()));
  }
  for (int s : request.severities()) {
    if (!telemetry::v1::Severity_IsValid(s)) {
      return absl::InvalidArgumentError(absl::StrCat("severities: unknown value ", s));
    }
  }
  for (int s : request.states()) {
    if (!telemetry::v1::AlertState_IsValid(s)) {
      return absl::InvalidArgumentError(absl::StrCat("states: unknown value ", s));
    }
  }
  return absl::OkStatus();
}

absl::Status ShuttingDown() {
  return absl::UnavailableError(
      "alert service is shutting down; subscribe again with after_event_id = the last event_id "
      "received");
}

}  // namespace

// One Subscribe call. Its state is guarded by mu_; what it decides under the
// lock (write, read, finish) it does after releasing it, because gRPC may run
// a reaction (OnWriteDone, OnDone) on the calling thread. At most one of a
// read (`reading_`) and a write (`writing_`) is in flight, and Finish comes
// only when neither is: after Finish nothing touches the call. The object
// lives while gRPC holds it (self_, released in OnDone) or a queued read or
// the poller holds a reference.
class Subscriptions::Stream final : public grpc::ServerWriteReactor<AlertEvent>,
                                    public std::enable_shared_from_this<Stream> {
 public:
  Stream(Subscriptions* hub, grpc::CallbackServerContext* ctx, const SubscribeRequest* request)
      : hub_(hub), ctx_(ctx), request_(request) {}

  // Authenticates and reads the first batch on the pool.
  void Start() {
    self_ = shared_from_this();
    const CallInfo call = hub_->kit_->Begin(ctx_);
    {
      absl::MutexLock l(&mu_);
      reading_ = true;
    }
    const bool queued = hub_->kit_->Submit(
        call, [self = shared_from_this()](const absl::StatusOr<HandlerKit::Tenant>& tenant) {
          self->Established(tenant);
        });
    if (!queued) {
      {
        absl::MutexLock l(&mu_);
        reading_ = false;
        finished_ = true;
      }
      Finish(hub_->kit_->Saturated(ctx_));
    }
  }

  // The poller's tick: reads again when idle.
  void Tick() {
    Step step;
    {
      absl::MutexLock l(&mu_);
      poll_due_ = true;
      step = NextLocked();
    }
    Do(step);
  }

  // Ends the stream with `status` (once nothing is in flight).
  void End(const absl::Status& status) {
    Step step;
    {
      absl::MutexLock l(&mu_);
      EndLocked(status);
      step = NextLocked();
    }
    Do(step);
  }

  bool ended() {
    absl::MutexLock l(&mu_);
    return ending_ || finished_;
  }

  void OnWriteDone(bool ok) override {
    Step step;
    {
      absl::MutexLock l(&mu_);
      writing_ = false;
      if (!ok) EndLocked(absl::CancelledError("the client went away"));
      step = NextLocked();
    }
    Do(step);
  }

  void OnCancel() override { End(absl::CancelledError("cancelled by the client")); }

  void OnDone() override {
    // The last thing gRPC does with this call; `this` may go with it.
    std::shared_ptr<Stream> last = std::move(self_);
  }

 private:
  enum class Step { kNone, kWrite, kRead, kFinish };

  void EndLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (ending_) return;
    ending_ = true;
    end_status_ = status;
  }

  // What to do next, claimed under the lock (the flags say it is under way).
  Step NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || reading_ || writing_) return Step::kNone;
    if (ending_) {
      finished_ = true;
      return Step::kFinish;
    }
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      return Step::kWrite;
    }
    if (more_ || poll_due_) {
      more_ = false;
      poll_due_ = false;
      reading_ = true;
      return Step::kRead;
    }
    return Step::kNone;
  }

  void Do(Step step) {
    switch (step) {
      case Step::kNone:
        return;
      case Step::kWrite:
        StartWrite(&current_);  // current_ is not touched until OnWriteDone
        return;
      case Step::kRead: {
        const bool queued =
            hub_->kit_->pool()->Submit([self = shared_from_this()] { self->Read(); });
        if (!queued) {
          // The pool is saturated: the next tick tries again.
          Step next;
          {
            absl::MutexLock l(&mu_);
            reading_ = false;
            next = ending_ ? NextLocked() : Step::kNone;
          }
          Do(next);
        }
        return;
      }
      case Step::kFinish: {
        absl::Status status;
        {
          absl::MutexLock l(&mu_);
          status = end_status_;
        }
        Finish(HandlerKit::Answer(ctx_, status));
        return;
      }
    }
  }

  // On the pool: the authentication result; the starting point; the first
  // read.
  void Established(const absl::StatusOr<HandlerKit::Tenant>& tenant) {
    absl::Status st = tenant.status();
    if (st.ok()) st = CheckRequest(*request_);
    if (st.ok()) {
      tenant_id_ = (*tenant)->id;
      since_ns_ = request_->since_ns();
      after_ = request_->after_event_id();
      if (after_ == 0 && since_ns_ == 0) {
        // Neither: only transitions recorded from now on.
        absl::StatusOr<int64_t> last = hub_->store_->LastEventId(tenant_id_);
        if (last.ok()) {
          after_ = *last;
        } else {
          st = Unavailable(last.status());
        }
      }
    }
    if (st.ok() && !hub_->Add(shared_from_this())) st = ShuttingDown();
    if (!st.ok()) {
      Step step;
      {
        absl::MutexLock l(&mu_);
        reading_ = false;
        EndLocked(st);
        step = NextLocked();
      }
      Do(step);
      return;
    }
    Read();
  }

  // On the pool (reading_ is set): one bounded read after the cursor.
  void Read() {
    absl::StatusOr<std::vector<AlertEvent>> got;
    {
      ScopedCallDeadline deadline(hub_->kit_->SteadyDeadline(hub_->kit_->clock()->MonotonicNs() +
                                                             hub_->options_.read_timeout_ns));
      got = hub_->store_->HistoryAfter(tenant_id_, after_, since_ns_, hub_->options_.batch);
    }
    Step step;
    {
      absl::MutexLock l(&mu_);
      reading_ = false;
      if (!got.ok()) {
        EndLocked(Unavailable(got.status()));
      } else if (!ending_) {
        for (AlertEvent& e : *got) {
          // The cursor passes filtered-out transitions too.
          after_ = std::max(after_, e.event_id());
          if (SubscriptionMatches(*request_, e)) queue_.push_back(std::move(e));
        }
        more_ = got->size() == static_cast<size_t>(hub_->options_.batch);
      }
      step = NextLocked();
    }
    Do(step);
  }

  static absl::Status Unavailable(const absl::Status& st) {
    return absl::UnavailableError(
        absl::StrCat("reading the alert history failed (", st.ToString(),
                     "); subscribe again with after_event_id = the last event_id received"));
  }

  Subscriptions* const hub_;
  grpc::CallbackServerContext* const ctx_;
  const SubscribeRequest* const request_;
  std::shared_ptr<Stream> self_;  // gRPC's reference, until OnDone
  // Set before the first read, then only read by reads (one at a time).
  int64_t tenant_id_ = 0;
  int64_t since_ns_ = 0;
  int64_t after_ = 0;  // the cursor: the last event_id read

  absl::Mutex mu_;
  std::deque<AlertEvent> queue_ ABSL_GUARDED_BY(mu_);
  AlertEvent current_;  // being written (owned by the write until OnWriteDone)
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool more_ ABSL_GUARDED_BY(mu_) = false;      // the last read was a full batch
  bool poll_due_ ABSL_GUARDED_BY(mu_) = false;  // a tick came: read when idle
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status end_status_ ABSL_GUARDED_BY(mu_);
};

Subscriptions::Subscriptions(AlertStateStore* store, const HandlerKit* kit,
                             SubscriptionOptions options)
    : store_(store), kit_(kit), options_(options) {
  poller_ = std::thread([this] { Loop(); });
}

Subscriptions::~Subscriptions() { Stop(); }

grpc::ServerWriteReactor<AlertEvent>* Subscriptions::Open(grpc::CallbackServerContext* ctx,
                                                          const SubscribeRequest* request) {
  auto stream = std::make_shared<Stream>(this, ctx, request);
  stream->Start();
  return stream.get();  // kept alive by its self_ until OnDone
}

bool Subscriptions::Add(const std::shared_ptr<Stream>& stream) {
  absl::MutexLock l(&mu_);
  if (stopped_) return false;
  streams_.push_back(stream);
  return true;
}

int Subscriptions::open_streams() {
  std::vector<std::shared_ptr<Stream>> live;
  {
    absl::MutexLock l(&mu_);
    for (const auto& w : streams_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  int n = 0;
  for (const auto& s : live) n += s->ended() ? 0 : 1;
  return n;
}

void Subscriptions::Stop() {
  std::vector<std::shared_ptr<Stream>> live;
  {
    absl::MutexLock l(&mu_);
    if (!stopped_) {
      stopped_ = true;
      for (const auto& w : streams_) {
        if (auto s = w.lock()) live.push_back(std::move(s));
      }
      streams_.clear();
    }
  }
  for (const auto& s : live) s->End(ShuttingDown());
  if (poller_.joinable() && poller_.get_id() != std::this_thread::get_id()) poller_.join();
}

void Subscriptions::Loop() {
  std::vector<std::shared_ptr<Stream>> live;
  absl::MutexLock l(&mu_);
  while (!stopped_) {
    mu_.AwaitWithTimeout(absl::Condition(&stopped_), absl::Nanoseconds(options_.poll_interval_ns));
    if (stopped_) break;
    // Drop the streams that are gone; tick the others outside the lock (a
    // tick may queue a read or start a write).
    streams_.erase(std::remove_if(streams_.begin(), streams_.end(),
                                  [&live](const std::weak_ptr<Stream>& w) {
                                    auto s = w.lock();
                                    if (!s || s->ended()) return true;
                                    live.push_back(std::move(s));
                                    return false;
                                  }),
                   streams_.end());
    mu_.Unlock();
    for (const auto& s : live) s->Tick();
    live.clear();
    mu_.Lock();
  }
}

}  // namespace telemetry::alert
