// The storage writer: a Kafka consumer group that applies ReadingBatch
// messages to the ReadingWriter exactly once in effect (offsets stored in the
// same transaction as the rows), updates the latest-value cache, sends
// undecodable messages to the dead-letter topic and accounts for data the
// broker dropped before it was applied.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "common/clock.h"
#include "common/kafka/kafka.h"
#include "common/latest_cache.h"
#include "common/metadata_store.h"
#include "common/metrics.h"
#include "common/reading_writer.h"
#include "services/writer/compactor.h"
#include "telemetry/v1/events.pb.h"

namespace telemetry::writer {

struct WriterOptions {
  std::string topic = "telemetry.readings.v1";
  // Empty: an unreadable message is skipped and logged, not parked.
  std::string dead_letter_topic = "telemetry.readings.dlq.v1";
  size_t max_batch_readings = 400'000;
  int64_t max_batch_delay_ns = 100 * kNsPerMs;
  size_t poll_max_messages = 1000;
  // Day partitions are created this far ahead of now, checked this often.
  int64_t partitions_ahead_ns = 2 * 86'400 * kNsPerSec;
  int64_t partition_check_interval_ns = 3600 * kNsPerSec;
  // Backoff between retries of a failed store transaction.
  int64_t retry_backoff_ns = 200 * kNsPerMs;
  // Every this often the writer notes where each assigned partition's log
  // ends (the broker's high watermark) and the time it asked; once everything
  // below such an end is applied, every reading produced to the partition
  // before that time is stored, and the writer records that time
  // (ReadingWriter::RecordFreshness): the warehouse's freshness. 0: never.
  int64_t freshness_interval_ns = 0;
};

struct WriterMetrics {
  explicit WriterMetrics(MetricsRegistry* r);
  Counter* applied;
  Counter* duplicates;
  Counter* expired;
  Counter* batches;
  Counter* bulk_batches;
  Counter* dead_letters;
  Counter* gap_messages;
  Counter* log_resets;
  Counter* store_failures;
  Counter* cache_failures;
  Histogram* batch_seconds;
  Histogram* produce_to_apply_seconds;
};

class Writer {
 public:
  Writer(WriterOptions options, EventConsumer* consumer, EventPublisher* dead_letters,
         ReadingWriter* store, MetadataStore* metadata, LatestCache* cache, const Clock* clock,
         WriterMetrics* metrics);

  // One polling round; applies the pending batch when it is full or old
  // enough. Returns the store's error after a failed apply (the batch stays
  // pending and is retried on the next call).
  absl::Status RunOnce();
  // Loops until `stop`, then applies what is pending and leaves the group.
  void Run(const std::atomic<bool>& stop);
  // Applies the pending batch now.
  absl::Status Flush();

  // Tells `compactor` (optional, outlives the writer) which hours each
  // applied batch wrote to, so it leaves them alone while they are written.
  void SetCompactor(Compactor* compactor) { compactor_ = compactor; }

  size_t pending_readings() const { return pending_rows_.size(); }
  // True while the group has assigned partitions to this member (readiness).
  bool assigned() const { return assigned_.load(); }

 private:
  struct Pending {
    int64_t tenant_id;
    std::string device, sensor, unit, labels_json;
    RawRow row;
    int64_t produced_at_ns;
  };

  std::map<int32_t, int64_t> OnAssign(const std::vector<int32_t>& partitions);
  void OnRevoke(const std::vector<int32_t>& partitions);
  void Accept(const ConsumedMessage& m);
  absl::Status DeadLetter(const ConsumedMessage& m, const std::string& reason);
  absl::Status ResolveSeriesIds();
  // Whether the batch's tenant exists here (cached); retries while the
  // store is unreachable; nullopt when asked to stop before it answered.
  std::optional<bool> KnownTenant(int64_t tenant_id);
  // Waits the retry backoff; false (at once) when Run was asked to stop.
  // The retry loops use it so that SIGTERM ends a writer whose store or
  // dead-letter topic is down instead of leaving it waiting for them.
  bool Backoff();
  bool Stopping() const { return stop_ != nullptr && stop_->load(); }
  void UpdateCache();
  // Notes the log ends and records the partitions' freshness (every
  // freshness_interval_ns).
  void TrackFreshness();

  WriterOptions options_;
  EventConsumer* consumer_;
  EventPublisher* dead_letters_;
  ReadingWriter* store_;
  MetadataStore* metadata_;
  LatestCache* cache_;
  const Clock* clock_;
  WriterMetrics* metrics_;

  std::vector<Pending> pending_rows_;
  std::map<int32_t, int64_t> pending_next_offsets_;
  int64_t batch_started_ns_ = 0;
  int64_t next_partition_check_ns_ = 0;
  std::atomic<bool> assigned_{false};
  Compactor* compactor_ = nullptr;
  // Run's stop flag (null outside Run).
  const std::atomic<bool>* stop_ = nullptr;
  // Set when a retry loop gave up because of a stop: from then on nothing is
  // consumed, so no offset moves past a message that was neither applied nor
  // parked (the next owner reads it again from the stored offsets).
  bool halted_ = false;
  // Next offset expected per assigned partition (gap detection).
  std::map<int32_t, int64_t> expected_;
  // Freshness (options_.freshness_interval_ns): per assigned partition, the
  // next offset stored, the log ends noted (wall time asked, end offset) and
  // not yet reached, and the newest such time reached.
  struct LogEnd {
    int64_t at_ns, end;
  };
  std::map<int32_t, int64_t> applied_next_;
  std::map<int32_t, std::deque<LogEnd>> log_ends_;
  std::map<int32_t, int64_t> fresh_through_;
  bool fresh_unrecorded_ = false;
  int64_t next_freshness_ns_ = 0;
  // (tenant, device, sensor, unit) → (series id, labels json).
  absl::flat_hash_map<std::string, std::pair<int32_t, std::string>> series_cache_;
  absl::flat_hash_map<int64_t, bool> tenant_known_;
};

}  // namespace telemetry::writer
