#include "services/writer/writer.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/kafka/codec.h"
#include "common/logging.h"
#include "common/rollup.h"

namespace telemetry::writer {

WriterMetrics::WriterMetrics(MetricsRegistry* r)
    : applied(r->AddCounter("writer_readings_applied_total", "New raw rows stored")),
      duplicates(r->AddCounter("writer_readings_duplicate_total",
                               "Readings dropped as already stored (same series and time)")),
      expired(r->AddCounter("writer_readings_expired_total",
                            "Readings not stored: their hour was dropped by retention (older "
                            "than the tenant's raw retention when they reached the store)")),
      batches(r->AddCounter("writer_batches_total", "Store transactions committed")),
      bulk_batches(r->AddCounter("writer_bulk_batches_total",
                                 "Batches applied by the bulk path (none of their readings"
                                 " was stored before)")),
      dead_letters(r->AddCounter(
          "writer_dead_letters_total",
          "Messages sent to the dead-letter topic (skipped, where the writer has none)")),
      gap_messages(r->AddCounter("writer_log_gap_messages_total",
                                 "Messages dropped by the broker before they were applied")),
      log_resets(r->AddCounter("writer_log_resets_total",
                               "Partitions whose log restarted below the applied offset")),
      store_failures(r->AddCounter("writer_store_failures_total", "Failed store transactions")),
      cache_failures(
          r->AddCounter("writer_cache_failures_total", "Failed latest-value cache updates")),
      batch_seconds(
          r->AddHistogram("writer_batch_seconds", "Store transaction time", LatencyBuckets())),
      produce_to_apply_seconds(r->AddHistogram("writer_produce_to_apply_seconds",
                                               "From ingest acceptance to stored",
                                               LatencyBuckets())) {}

Writer::Writer(WriterOptions options, EventConsumer* consumer, EventPublisher* dead_letters,
               ReadingWriter* store, MetadataStore* metadata, LatestCache* cache,
               const Clock* clock, WriterMetrics* metrics)
    : options_(std::move(options)),
      consumer_(consumer),
      dead_letters_(dead_letters),
      store_(store),
      metadata_(metadata),
      cache_(cache),
      clock_(clock),
      metrics_(metrics) {
  consumer_->SetRebalanceCallbacks(
      [this](const std::vector<int32_t>& parts) { return OnAssign(parts); },
      [this](const std::vector<int32_t>& parts) { OnRevoke(parts); });
}

std::map<int32_t, int64_t> Writer::OnAssign(const std::vector<int32_t>& partitions) {
  auto log = GetLogger("writer");
  std::map<int32_t, int64_t> start;
  // The store is the source of truth for progress; keep trying while it is
  // down (a partition must not start from a guess).
  while (true) {
    auto applied = store_->AppliedOffsets(options_.topic);
    if (applied.ok()) {
      for (int32_t p : partitions) {
        auto it = applied->find(p);
        start[p] = it == applied->end() ? 0 : it->second;
        // A log that now ends below what was applied was re-created (topic
        // deleted and created again, a broker's data lost): the stored position means
        // nothing there. Start over at its beginning, loudly.
        int64_t low = 0, high = 0;
        if (start[p] > 0 && consumer_->Watermarks(p, &low, &high, 5000).ok() && start[p] > high) {
          metrics_->log_resets->Inc();
          log->error(
              "partition {}: log ends at {} but {} was applied: the log was reset; "
              "restarting at {}",
              p, high, start[p], low);
          absl::Status st = store_->ResetOffset(options_.topic, p, start[p], low);
          if (!st.ok()) log->error("cannot record the reset: {}", st.ToString());
          start[p] = low;
        }
        expected_[p] = start[p];
        applied_next_[p] = start[p];
        log_ends_.erase(p);
      }
      break;
    }
    metrics_->store_failures->Inc();
    log->warn("cannot read applied offsets ({}); retrying", applied.status().ToString());
    if (!Backoff()) {
      // Stopping before the store answered: consume nothing from these
      // partitions (no start offset is known).
      log->warn("stopping before the applied offsets could be read; not consuming");
      halted_ = true;
      return start;
    }
  }
  log->info("assigned {} partitions of {}", partitions.size(), options_.topic);
  assigned_ = !partitions.empty();
  return start;
}

void Writer::OnRevoke(const std::vector<int32_t>& partitions) {
  // Apply what is pending while we still own it; if that fails, drop it: the
  // next owner starts from the offsets in the store, so nothing is lost.
  absl::Status st = Flush();
  if (!st.ok()) {
    GetLogger("writer")->warn("dropping unapplied batch on revoke: {}", st.ToString());
    pending_rows_.clear();
    pending_next_offsets_.clear();
  }
  for (int32_t p : partitions) {
    expected_.erase(p);
    applied_next_.erase(p);
    log_ends_.erase(p);
    fresh_through_.erase(p);  // its new owner records it from now on
  }
  assigned_ = !expected_.empty();
}

absl::Status Writer::DeadLetter(const ConsumedMessage& m, const std::string& reason) {
  if (options_.dead_letter_topic.empty()) {
    // No topic of its own (the warehouse loader: the writer on the same topic
    // parks the message already).
    metrics_->dead_letters->Inc();
    GetLogger("writer")->warn("message {}/{}@{} skipped: {}", m.topic, m.partition, m.offset,
                              reason);
    return absl::OkStatus();
  }
  telemetry::v1::DeadLetter dl;
  dl.set_source_topic(m.topic);
  dl.set_source_partition(m.partition);
  dl.set_source_offset(m.offset);
  dl.set_reason(reason);
  dl.set_payload(m.payload);
  dl.set_failed_at_ns(clock_->NowNs());
  auto promise = std::make_shared<std::promise<absl::Status>>();
  auto future = promise->get_future();
  dead_letters_->Publish(
      options_.dead_letter_topic, 0, absl::StrCat(m.topic, "/", m.partition, "/", m.offset),
      dl.SerializeAsString(), [promise](const DeliveryReport& r) { promise->set_value(r.status); });
  absl::Status st = future.get();
  if (st.ok()) {
    metrics_->dead_letters->Inc();
    GetLogger("writer")->warn("message {}/{}@{} sent to {}: {}", m.topic, m.partition, m.offset,
                              options_.dead_letter_topic, reason);
  }
  return st;
}

bool Writer::Backoff() { return SleepUnlessStopped(options_.retry_backoff_ns, stop_); }

void Writer::Accept(const ConsumedMessage& m) {
  if (halted_) return;
  auto exp = expected_.find(m.partition);
  if (exp != expected_.end()) {
    if (m.offset < exp->second) return;  // already applied (redelivery)
    if (m.offset > exp->second) {
      int64_t lost = m.offset - exp->second;
      metrics_->gap_messages->Inc(lost);
      GetLogger("writer")->error(
          "partition {}: offsets [{}, {}) were dropped by the broker before being applied",
          m.partition, exp->second, m.offset);
      absl::Status st = store_->RecordLogGap(m.topic, m.partition, exp->second, m.offset);
      if (!st.ok()) GetLogger("writer")->error("cannot record the log gap: {}", st.ToString());
    }
  }
  expected_[m.partition] = m.offset + 1;

  telemetry::v1::ReadingBatch batch;
  std::string problem;
  std::vector<DecodedReading> decoded;
  if (!batch.ParseFromString(m.payload)) {
    problem = "payload is not a telemetry.v1.ReadingBatch";
  } else {
    auto d = DecodeBatch(batch);
    if (!d.ok()) {
      problem = std::string(d.status().message());
    } else {
      std::optional<bool> known = KnownTenant(batch.tenant_id());
      if (!known.has_value()) {
        halted_ = true;  // stopping: this message stays unapplied
        return;
      }
      if (!*known) {
        problem = absl::StrCat("tenant ", batch.tenant_id(), " does not exist in this store");
      } else {
        decoded = std::move(*d);
      }
    }
  }
  if (!problem.empty()) {
    // Never stall the partition: park the message, then move on. If even the
    // dead-letter topic is unavailable, retry until it is (the offset must
    // not advance past a message that is neither applied nor parked).
    while (true) {
      absl::Status st = DeadLetter(m, problem);
      if (st.ok()) break;
      GetLogger("writer")->warn("dead-letter publish failed: {}; retrying", st.ToString());
      if (!Backoff()) {
        halted_ = true;  // stopping: this message is neither parked nor skipped
        return;
      }
    }
  } else {
    // A block's readings are contiguous: render its labels once, not per reading.
    const telemetry::v1::SeriesBlock* labels_of = nullptr;
    std::string labels_json;
    for (auto& d : decoded) {
      if (d.block != labels_of) {
        labels_of = d.block;
        labels_json = LabelsJson(d.block->labels());
      }
      Pending p;
      p.tenant_id = batch.tenant_id();
      p.device = d.block->device_id();
      p.sensor = d.block->sensor();
      p.unit = d.block->unit();
      p.labels_json = labels_json;
      p.row = std::move(d.row);
      p.produced_at_ns = batch.produced_at_ns();
      pending_rows_.push_back(std::move(p));
    }
  }
  pending_next_offsets_[m.partition] = m.offset + 1;
}

std::optional<bool> Writer::KnownTenant(int64_t tenant_id) {
  auto it = tenant_known_.find(tenant_id);
  if (it != tenant_known_.end()) return it->second;
  while (true) {
    auto exists = metadata_->TenantExists(tenant_id);
    if (exists.ok()) {
      // Only remember tenants that exist: one created later is then seen.
      if (*exists) tenant_known_[tenant_id] = true;
      return *exists;
    }
    metrics_->store_failures->Inc();
    GetLogger("writer")->warn("cannot check tenant {}: {}; retrying", tenant_id,
                              exists.status().ToString());
    if (!Backoff()) return std::nullopt;
  }
}

absl::Status Writer::ResolveSeriesIds() {
  // Group the specs not in the cache by tenant.
  std::map<int64_t, std::vector<size_t>> missing;
  for (size_t i = 0; i < pending_rows_.size(); ++i) {
    Pending& p = pending_rows_[i];
    std::string key = absl::StrCat(p.tenant_id, "\x1f", p.device, "\x1f", p.sensor, "\x1f", p.unit);
    auto it = series_cache_.find(key);
    if (it != series_cache_.end() &&
        (p.labels_json.empty() || p.labels_json == it->second.second)) {
      p.row.series_id = it->second.first;
    } else {
      missing[p.tenant_id].push_back(i);
    }
  }
  for (auto& [tenant, idx] : missing) {
    std::vector<SeriesSpec> specs;
    std::map<std::string, size_t> spec_of;
    std::vector<size_t> slot(idx.size());
    for (size_t j = 0; j < idx.size(); ++j) {
      const Pending& p = pending_rows_[idx[j]];
      std::string key = absl::StrCat(p.device, "\x1f", p.sensor, "\x1f", p.unit);
      auto [it, fresh] = spec_of.emplace(key, specs.size());
      if (fresh) specs.push_back(SeriesSpec{p.device, p.sensor, p.unit, p.labels_json});
      // The newest labels in the batch win.
      if (!p.labels_json.empty()) specs[it->second].labels_json = p.labels_json;
      slot[j] = it->second;
    }
    auto ids = metadata_->ResolveSeries(tenant, specs);
    if (!ids.ok()) return ids.status();
    if (series_cache_.size() > 2'000'000) series_cache_.clear();
    for (size_t k = 0; k < specs.size(); ++k) {
      series_cache_[absl::StrCat(tenant, "\x1f", specs[k].device, "\x1f", specs[k].sensor, "\x1f",
                                 specs[k].unit)] = {(*ids)[k], specs[k].labels_json};
    }
    for (size_t j = 0; j < idx.size(); ++j) pending_rows_[idx[j]].row.series_id = (*ids)[slot[j]];
  }
  return absl::OkStatus();
}

void Writer::UpdateCache() {
  if (cache_ == nullptr) return;
  // Newest reading per (tenant, device, sensor) in this batch; on equal
  // timestamps the first wins, as in the raw table.
  std::map<std::tuple<int64_t, std::string, std::string>, const Pending*> newest;
  for (const Pending& p : pending_rows_) {
    auto key = std::make_tuple(p.tenant_id, p.device, p.sensor);
    auto [it, fresh] = newest.emplace(key, &p);
    if (!fresh && p.row.ts_ns > it->second->row.ts_ns) it->second = &p;
  }
  std::map<int64_t, std::vector<ReadingRow>> by_tenant;
  for (const auto& [key, p] : newest) {
    ReadingRow r;
    r.device = p->device;
    r.sensor = p->sensor;
    r.unit = p->unit;
    r.ts_ns = p->row.ts_ns;
    r.kind = p->row.kind;
    r.d = p->row.d;
    r.s = p->row.s;
    r.b = p->row.b;
    r.status = p->row.status;
    by_tenant[p->tenant_id].push_back(std::move(r));
  }
  for (const auto& [tenant, rows] : by_tenant) {
    absl::Status st = cache_->UpdateIfNewer(tenant, rows);
    if (!st.ok()) {
      metrics_->cache_failures->Inc();
      GetLogger("writer")->warn("latest-value cache update failed: {}", st.ToString());
      return;
    }
  }
}

absl::Status Writer::Flush() {
  if (pending_rows_.empty() && pending_next_offsets_.empty()) return absl::OkStatus();
  const int64_t t0 = clock_->MonotonicNs();
  absl::Status st = ResolveSeriesIds();
  std::vector<RawRow> rows;
  int64_t repeated = 0;  // readings repeated within the batch
  int64_t batch_from_ns = 0, batch_to_ns = -1;
  if (st.ok()) {
    rows.reserve(pending_rows_.size());
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (const Pending& p : pending_rows_) {
      rows.push_back(p.row);
      lo = std::min(lo, p.row.ts_ns);
      hi = std::max(hi, p.row.ts_ns);
    }
    // Series order, each (series, time) once (the first to arrive is the one
    // stored, as the cache assumes): consecutive inserts touch the same index
    // leaf and heap pages, a series' rows end up together on disk (faster
    // ranges), and the store can take its bulk path.
    repeated = SortAndDropRepeatedKeys(&rows);
    if (!rows.empty()) st = store_->EnsurePartitions(lo, hi);
    batch_from_ns = lo;
    batch_to_ns = hi;
  }
  std::vector<PartitionOffset> offsets;
  for (const auto& [p, o] : pending_next_offsets_) offsets.push_back({p, o});
  if (st.ok()) {
    auto result = store_->Apply(rows, options_.topic, offsets);
    if (result.ok()) {
      metrics_->applied->Inc(result->inserted);
      metrics_->duplicates->Inc(result->duplicates + repeated);
      metrics_->expired->Inc(result->expired);
      if (result->bulk) metrics_->bulk_batches->Inc();
    } else {
      st = result.status();
    }
  }
  if (!st.ok()) {
    metrics_->store_failures->Inc();
    return st;
  }
  metrics_->batches->Inc();
  if (compactor_ != nullptr) compactor_->Touched(batch_from_ns, batch_to_ns);
  const int64_t now_wall = clock_->NowNs();
  metrics_->batch_seconds->Observe(static_cast<double>(clock_->MonotonicNs() - t0) / 1e9);
  if (!pending_rows_.empty()) {
    metrics_->produce_to_apply_seconds->Observe(
        static_cast<double>(now_wall - pending_rows_.front().produced_at_ns) / 1e9);
  }
  UpdateCache();
  for (const auto& [p, o] : pending_next_offsets_) {
    auto it = applied_next_.find(p);
    if (it != applied_next_.end()) it->second = std::max(it->second, o);
  }
  absl::Status commit = consumer_->Commit(offsets);
  if (!commit.ok()) GetLogger("writer")->debug("kafka commit: {}", commit.ToString());
  pending_rows_.clear();
  pending_next_offsets_.clear();
  return absl::OkStatus();
}

absl::Status Writer::RunOnce() {
  const int64_t now = clock_->MonotonicNs();
  if (now >= next_partition_check_ns_) {
    // Create the coming days' partitions ahead of time; a batch with older
    // or later data still ensures its own days before inserting.
    const int64_t wall = clock_->NowNs();
    absl::Status st = store_->EnsurePartitions(wall, wall + options_.partitions_ahead_ns);
    if (st.ok()) {
      next_partition_check_ns_ = now + options_.partition_check_interval_ns;
    } else {
      GetLogger("writer")->warn("cannot create partitions ahead: {}", st.ToString());
      next_partition_check_ns_ = now + 10 * kNsPerSec;
    }
  }
  const bool have_pending = !pending_rows_.empty() || !pending_next_offsets_.empty();
  int timeout_ms = 100;
  if (have_pending) {
    int64_t left = batch_started_ns_ + options_.max_batch_delay_ns - now;
    timeout_ms = static_cast<int>(std::max<int64_t>(0, left / kNsPerMs));
  }
  if (pending_rows_.size() < options_.max_batch_readings) {
    auto msgs = consumer_->Poll(options_.poll_max_messages, timeout_ms);
    if (!msgs.ok()) {
      GetLogger("writer")->warn("poll: {}", msgs.status().ToString());
    } else {
      for (const auto& m : *msgs) {
        if (pending_rows_.empty() && pending_next_offsets_.empty()) {
          batch_started_ns_ = clock_->MonotonicNs();
        }
        Accept(m);
      }
    }
  }
  const bool full = pending_rows_.size() >= options_.max_batch_readings;
  const bool old = (!pending_rows_.empty() || !pending_next_offsets_.empty()) &&
                   clock_->MonotonicNs() - batch_started_ns_ >= options_.max_batch_delay_ns;
  if (full || old) {
    absl::Status st = Flush();
    if (!st.ok()) {
      GetLogger("writer")->warn("store apply failed ({} readings pending): {}",
                                pending_rows_.size(), st.ToString());
      std::this_thread::sleep_for(std::chrono::nanoseconds(options_.retry_backoff_ns));
      return st;
    }
  }
  if (options_.freshness_interval_ns > 0) TrackFreshness();
  return absl::OkStatus();
}

void Writer::TrackFreshness() {
  const int64_t mono = clock_->MonotonicNs();
  if (mono < next_freshness_ns_) return;
  next_freshness_ns_ = mono + options_.freshness_interval_ns;
  // Asked before the broker answers: whatever was produced before this time
  // lies below the end it reports.
  const int64_t asked_at = clock_->NowNs();
  for (const auto& [p, next] : expected_) {
    int64_t low = 0, high = 0;
    // A broker that does not answer: no note this round (and no waiting on
    // every partition in turn).
    if (!consumer_->Watermarks(p, &low, &high, 1000).ok()) break;
    std::deque<LogEnd>& ends = log_ends_[p];
    ends.push_back({asked_at, high});
    // A writer far behind keeps its oldest notes (freshness moves on when it
    // reaches them) and skips new ones.
    if (ends.size() > 600) ends.pop_back();
  }
  for (auto& [p, ends] : log_ends_) {
    auto applied = applied_next_.find(p);
    if (applied == applied_next_.end()) continue;
    while (!ends.empty() && ends.front().end <= applied->second) {
      int64_t& f = fresh_through_[p];
      if (ends.front().at_ns > f) {
        f = ends.front().at_ns;
        fresh_unrecorded_ = true;
      }
      ends.pop_front();
    }
  }
  if (!fresh_unrecorded_) return;
  absl::Status st = store_->RecordFreshness(options_.topic, fresh_through_);
  if (st.ok()) {
    fresh_unrecorded_ = false;
  } else {
    GetLogger("writer")->warn("cannot record freshness: {}", st.ToString());
  }
}

void Writer::Run(const std::atomic<bool>& stop) {
  stop_ = &stop;
  while (!stop.load()) RunOnce().IgnoreError();
  // Apply what was accepted before the stop; a store that stays down gets a
  // few tries (its rows are read again by the next owner, nothing is lost).
  for (int i = 0; i < 10 && !Flush().ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(options_.retry_backoff_ns));
  }
  consumer_->Close();
  stop_ = nullptr;
}

}  // namespace telemetry::writer
