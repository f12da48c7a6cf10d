// In-memory Kafka for unit tests: a log per partition, a publisher that can be
// switched to failing, and a consumer that owns every partition.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/kafka/kafka.h"

namespace telemetry {

class FakeKafka {
 public:
  explicit FakeKafka(std::map<std::string, int32_t> topics) {
    for (const auto& [t, n] : topics) logs_[t].resize(static_cast<size_t>(n));
  }
  std::vector<ConsumedMessage> Messages(const std::string& topic) {
    absl::MutexLock l(&mu_);
    std::vector<ConsumedMessage> all;
    for (const auto& p : logs_[topic]) all.insert(all.end(), p.begin(), p.end());
    return all;
  }
  // Drops the oldest `n` messages of a partition, as retention would.
  void Truncate(const std::string& topic, int32_t partition, size_t n) {
    absl::MutexLock l(&mu_);
    auto& log = logs_[topic][static_cast<size_t>(partition)];
    log.erase(log.begin(), log.begin() + static_cast<long>(std::min(n, log.size())));
  }
  void SetAvailable(bool up) {
    absl::MutexLock l(&mu_);
    up_ = up;
  }
  // While held, published messages are neither stored nor acknowledged (a
  // broker that accepted the connection and never answers); releasing
  // reports them failed, as librdkafka does when their timeout passes.
  void HoldDeliveries(bool hold) {
    std::vector<EventPublisher::DeliveryCallback> held;
    {
      absl::MutexLock l(&mu_);
      hold_ = hold;
      if (!hold) held.swap(held_);
    }
    DeliveryReport timed_out;
    timed_out.status = absl::DeadlineExceededError("fake kafka: message timed out");
    for (auto& done : held) done(timed_out);
  }
  // Watermark queries asked so far (answered or not).
  int watermark_queries() {
    absl::MutexLock l(&mu_);
    return watermark_queries_;
  }

 private:
  friend class FakePublisher;
  friend class FakeConsumer;
  absl::Mutex mu_;
  bool up_ ABSL_GUARDED_BY(mu_) = true;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<EventPublisher::DeliveryCallback> held_ ABSL_GUARDED_BY(mu_);
  int watermark_queries_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::vector<std::vector<ConsumedMessage>>> logs_ ABSL_GUARDED_BY(mu_);
};

class FakePublisher final : public EventPublisher {
 public:
  explicit FakePublisher(FakeKafka* kafka) : kafka_(kafka) {}
  void Publish(const std::string& topic, int32_t partition, const std::string& key,
               std::string payload, DeliveryCallback done) override {
    DeliveryReport report;
    {
      absl::MutexLock l(&kafka_->mu_);
      if (kafka_->hold_) {
        kafka_->held_.push_back(std::move(done));
        return;
      }
      auto it = kafka_->logs_.find(topic);
      if (!kafka_->up_) {
        report.status = absl::UnavailableError("fake kafka is down");
      } else if (it == kafka_->logs_.end() || partition < 0 ||
                 static_cast<size_t>(partition) >= it->second.size()) {
        report.status = absl::NotFoundError("unknown topic or partition");
      } else {
        auto& log = it->second[static_cast<size_t>(partition)];
        ConsumedMessage m{topic, partition, log.empty() ? 0 : log.back().offset + 1, key,
                          std::move(payload)};
        report.partition = partition;
        report.offset = m.offset;
        log.push_back(std::move(m));
      }
    }
    done(report);
  }
  absl::StatusOr<int32_t> PartitionCount(const std::string& topic) override {
    absl::MutexLock l(&kafka_->mu_);
    auto it = kafka_->logs_.find(topic);
    if (it == kafka_->logs_.end()) return absl::NotFoundError("unknown topic " + topic);
    return static_cast<int32_t>(it->second.size());
  }
  absl::Status Watermarks(const std::string& topic, int32_t partition, int64_t* low, int64_t* high,
                          int) override {
    absl::MutexLock l(&kafka_->mu_);
    ++kafka_->watermark_queries_;
    if (!kafka_->up_) return absl::UnavailableError("fake kafka is down");
    const auto& log = kafka_->logs_[topic][static_cast<size_t>(partition)];
    *low = log.empty() ? 0 : log.front().offset;
    *high = log.empty() ? 0 : log.back().offset + 1;
    return absl::OkStatus();
  }
  absl::Status Flush(int) override { return absl::OkStatus(); }

 private:
  FakeKafka* kafka_;
};

// Consumes every partition of one topic; calls the assign callback on the
// first Poll.
class FakeConsumer final : public EventConsumer {
 public:
  FakeConsumer(FakeKafka* kafka, std::string topic) : kafka_(kafka), topic_(std::move(topic)) {}
  void SetRebalanceCallbacks(AssignCallback on_assign, RevokeCallback on_revoke) override {
    on_assign_ = std::move(on_assign);
    on_revoke_ = std::move(on_revoke);
  }
  absl::StatusOr<std::vector<ConsumedMessage>> Poll(size_t max, int) override {
    if (!assigned_) {
      assigned_ = true;
      std::vector<int32_t> parts;
      {
        absl::MutexLock l(&kafka_->mu_);
        for (size_t i = 0; i < kafka_->logs_[topic_].size(); ++i)
          parts.push_back(static_cast<int32_t>(i));
      }
      std::map<int32_t, int64_t> start;
      if (on_assign_) start = on_assign_(parts);
      for (int32_t p : parts) position_[p] = start.count(p) ? start[p] : 0;
    }
    std::vector<ConsumedMessage> out;
    absl::MutexLock l(&kafka_->mu_);
    auto& logs = kafka_->logs_[topic_];
    for (auto& [p, pos] : position_) {
      for (const auto& m : logs[static_cast<size_t>(p)]) {
        if (out.size() >= max) return out;
        if (m.offset < pos) continue;
        out.push_back(m);
        pos = m.offset + 1;
      }
    }
    return out;
  }
  absl::Status Commit(const std::vector<PartitionOffset>& offsets) override {
    for (const auto& o : offsets) committed_[o.partition] = o.offset;
    return absl::OkStatus();
  }
  absl::Status Watermarks(int32_t partition, int64_t* low, int64_t* high, int) override {
    absl::MutexLock l(&kafka_->mu_);
    ++kafka_->watermark_queries_;
    if (!kafka_->up_) return absl::UnavailableError("fake kafka is down");
    const auto& log = kafka_->logs_[topic_][static_cast<size_t>(partition)];
    *low = log.empty() ? 0 : log.front().offset;
    *high = log.empty() ? 0 : log.back().offset + 1;
    return absl::OkStatus();
  }
  void Close() override {}
  const std::map<int32_t, int64_t>& committed() const { return committed_; }

 private:
  FakeKafka* kafka_;
  std::string topic_;
  bool assigned_ = false;
  std::map<int32_t, int64_t> position_;
  std::map<int32_t, int64_t> committed_;
  AssignCallback on_assign_;
  RevokeCallback on_revoke_;
};

}  // namespace telemetry
