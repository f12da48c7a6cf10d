#include "services/writer/writer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "common/kafka/codec.h"
#include "common/testing/fakes.h"
#include "common/testing/kafka_fake.h"

namespace telemetry::writer {
namespace {

using telemetry::v1::Reading;

constexpr char kTopic[] = "telemetry.readings.v1";
constexpr char kDlq[] = "telemetry.readings.dlq.v1";

class WriterTest : public ::testing::Test {
 protected:
  WriterTest()
      : clock_(1'000'000 * kNsPerSec),
        kafka_({{kTopic, 2}, {kDlq, 1}}),
        publisher_(&kafka_),
        metrics_(&registry_) {
    NewTenant t;
    t.name = "a";
    tenant_ = *metadata_.CreateTenant(t);
  }

  std::unique_ptr<Writer> MakeWriter(FakeConsumer* consumer) {
    WriterOptions o;
    o.max_batch_delay_ns = 0;  // apply every poll
    o.retry_backoff_ns = 0;
    return std::make_unique<Writer>(o, consumer, &publisher_, &store_, &metadata_, &cache_, &clock_,
                                    &metrics_);
  }

  // Produces readings (device, sensor, ts, value) as ingest would.
  void Produce(const std::vector<std::tuple<std::string, std::string, int64_t, double>>& rs,
               int64_t tenant = 0) {
    std::vector<Reading> readings;
    for (const auto& [d, s, ts, v] : rs) {
      Reading r;
      r.set_device_id(d);
      r.set_sensor(s);
      r.set_timestamp_ns(ts);
      r.set_double_value(v);
      readings.push_back(r);
    }
    std::vector<const Reading*> ptrs;
    for (const auto& r : readings) ptrs.push_back(&r);
    for (auto& [p, batch] : EncodeReadings(tenant ? tenant : tenant_, ptrs, 2, clock_.NowNs())) {
      publisher_.Publish(kTopic, p, "k", batch.SerializeAsString(), [](const DeliveryReport&) {});
    }
  }

  void Drain(Writer& w) {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(w.RunOnce().ok());
  }

  FakeClock clock_;
  FakeKafka kafka_;
  FakePublisher publisher_;
  testing::FakeMetadataStore metadata_;
  testing::FakeReadingWriter store_;
  testing::FakeLatestCache cache_;
  MetricsRegistry registry_;
  WriterMetrics metrics_;
  int64_t tenant_ = 0;
};

TEST_F(WriterTest, DuplicatesAreStoredOnceAndRollupsCountOnlyNewRows) {
  Produce({{"d1", "t", 60'000'000'000, 1},
           {"d1", "t", 61'000'000'000, 3},
           {"d1", "t", 60'000'000'000, 1}});
  Produce({{"d1", "t", 61'000'000'000, 3}, {"d1", "t", 62'000'000'000, 5}});
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeWriter(&consumer);
  Drain(*w);
  EXPECT_EQ(store_.raw_count(), 3u);
  EXPECT_EQ(metrics_.applied->Value(), 3);
  EXPECT_EQ(metrics_.duplicates->Value(), 2);
  auto agg = store_.agg_1m();
  ASSERT_EQ(agg.size(), 1u);
  const auto& a = agg.begin()->second;
  EXPECT_EQ(a.cnt, 3);
  EXPECT_DOUBLE_EQ(a.sum, 9);
  EXPECT_DOUBLE_EQ(a.min, 1);
  EXPECT_DOUBLE_EQ(a.max, 5);
  EXPECT_DOUBLE_EQ(a.last_value, 5);
}

TEST_F(WriterTest, ReplayFromOffsetZeroChangesNothing) {
  Produce({{"d1", "t", 1'000, 1}, {"d2", "t", 2'000, 2}});
  {
    FakeConsumer consumer(&kafka_, kTopic);
    auto w = MakeWriter(&consumer);
    Drain(*w);
  }
  auto raw_before = store_.raw();
  auto agg_before = store_.agg_1m();
  // A consumer that ignores the stored offsets re-reads everything.
  FakeConsumer replay(&kafka_, kTopic);
  WriterOptions o;
  o.max_batch_delay_ns = 0;
  Writer w(o, &replay, &publisher_, &store_, &metadata_, &cache_, &clock_, &metrics_);
  replay.SetRebalanceCallbacks(
      [](const std::vector<int32_t>&) { return std::map<int32_t, int64_t>(); }, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(w.RunOnce().ok());
  EXPECT_EQ(store_.raw().size(), raw_before.size());
  auto agg_after = store_.agg_1m();
  ASSERT_EQ(agg_after.size(), agg_before.size());
  for (const auto& [k, a] : agg_before) EXPECT_EQ(agg_after[k].cnt, a.cnt);
}

TEST_F(WriterTest, StartsFromTheStoredOffsetsNotFromTheGroup) {
  Produce({{"d1", "t", 1'000, 1}});
  {
    FakeConsumer consumer(&kafka_, kTopic);
    auto w = MakeWriter(&consumer);
    Drain(*w);
  }
  int applies = store_.applies();
  FakeConsumer again(&kafka_, kTopic);
  auto w = MakeWriter(&again);
  Drain(*w);
  EXPECT_EQ(store_.applies(), applies);  // nothing new to apply
}

TEST_F(WriterTest, UndecodableMessageGoesToDeadLetterAndDoesNotStall) {
  publisher_.Publish(kTopic, 0, "k", "\xff\xff not protobuf", [](const DeliveryReport&) {});
  Produce({{"d1", "t", 1'000, 1}, {"d9", "t", 1'000, 1}});
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeWriter(&consumer);
  Drain(*w);
  EXPECT_EQ(store_.raw_count(), 2u);
  auto dl = kafka_.Messages(kDlq);
  ASSERT_EQ(dl.size(), 1u);
  telemetry::v1::DeadLetter d;
  ASSERT_TRUE(d.ParseFromString(dl[0].payload));
  EXPECT_EQ(d.source_partition(), 0);
  EXPECT_EQ(d.source_offset(), 0);
  EXPECT_FALSE(d.reason().empty());
  EXPECT_EQ(metrics_.dead_letters->Value(), 1);
  auto applied = store_.AppliedOffsets(kTopic);
  EXPECT_GE((*applied)[0], 1);  // moved past the poison message
}

// Without a dead-letter topic (the warehouse loader), an unreadable message
// is skipped and counted; nothing is published and the partition moves on.
TEST_F(WriterTest, WithoutADeadLetterTopicAnUnreadableMessageIsSkippedAndCounted) {
  publisher_.Publish(kTopic, 0, "k", "\xff\xff not protobuf", [](const DeliveryReport&) {});
  Produce({{"d1", "t", 1'000, 1}});
  FakeConsumer consumer(&kafka_, kTopic);
  WriterOptions o;
  o.max_batch_delay_ns = 0;
  o.retry_backoff_ns = 0;
  o.dead_letter_topic = "";
  Writer w(o, &consumer, /*dead_letters=*/nullptr, &store_, &metadata_, &cache_, &clock_,
           &metrics_);
  Drain(w);
  EXPECT_EQ(store_.raw_count(), 1u);
  EXPECT_TRUE(kafka_.Messages(kDlq).empty());
  EXPECT_EQ(metrics_.dead_letters->Value(), 1);
  EXPECT_GE((*store_.AppliedOffsets(kTopic))[0], 1);
}

TEST_F(WriterTest, UnknownTenantGoesToDeadLetter) {
  Produce({{"d1", "t", 1'000, 1}}, /*tenant=*/999);
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeWriter(&consumer);
  Drain(*w);
  EXPECT_EQ(store_.raw_count(), 0u);
  EXPECT_EQ(kafka_.Messages(kDlq).size(), 1u);
}

TEST_F(WriterTest, DataDroppedByTheBrokerIsDetectedAndRecorded) {
  for (int i = 0; i < 5; ++i) {
    publisher_.Publish(kTopic, 0, "k", "", [](const DeliveryReport&) {});
  }
  kafka_.Truncate(kTopic, 0, 3);  // offsets 0..2 gone before anyone read them
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeWriter(&consumer);
  Drain(*w);
  EXPECT_EQ(metrics_.gap_messages->Value(), 3);
  auto gaps = store_.gaps();
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0], std::make_tuple(0, int64_t{0}, int64_t{3}));
}

TEST_F(WriterTest, ALogThatRestartedBelowTheAppliedOffsetIsReadFromItsStart) {
  // The store says 50 messages of each partition were applied, but the log
  // (re-created) holds only one or two: they must be applied, not skipped.
  ASSERT_TRUE(store_.Apply({}, kTopic, {{0, 50}, {1, 50}}).ok());
  Produce({{"d1", "t", 1'000, 1}, {"d2", "t", 1'000, 1}});
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeWriter(&consumer);
  Drain(*w);
  EXPECT_EQ(store_.raw_count(), 2u);
  EXPECT_EQ(metrics_.log_resets->Value(), 2);
  ASSERT_EQ(store_.resets().size(), 2u);
  EXPECT_EQ(store_.resets()[0], std::make_tuple(0, int64_t{50}, int64_t{0}));
  EXPECT_LT((*store_.AppliedOffsets(kTopic))[0], 50);
}

TEST_F(WriterTest, StoreOutageKeepsTheBatchAndRetries) {
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeWriter(&consumer);
  ASSERT_TRUE(w->RunOnce().ok());  // assignment reads the offsets while the store is up
  Produce({{"d1", "t", 1'000, 1}});
  store_.SetUp(false);
  EXPECT_FALSE(w->RunOnce().ok());
  EXPECT_EQ(w->pending_readings(), 1u);
  EXPECT_GE(metrics_.store_failures->Value(), 1);
  store_.SetUp(true);
  Drain(*w);
  EXPECT_EQ(store_.raw_count(), 1u);
  EXPECT_EQ(w->pending_readings(), 0u);
}

// Freshness (the warehouse's lag): the time the log ends were noted, once
// everything below them is stored; never moved by a batch that did not reach
// them, and never backwards.
TEST_F(WriterTest, RecordsFreshnessOnceTheNotedLogEndsAreApplied) {
  FakeConsumer consumer(&kafka_, kTopic);
  WriterOptions o;
  o.max_batch_delay_ns = 5 * kNsPerSec;  // a batch waits: the log ends are noted before it is
  o.retry_backoff_ns = 0;
  o.freshness_interval_ns = kNsPerSec;
  Writer w(o, &consumer, &publisher_, &store_, &metadata_, &cache_, &clock_, &metrics_);
  ASSERT_TRUE(w.RunOnce().ok());  // assigned: nothing in the log, so fresh through now
  const int64_t t0 = clock_.NowNs();
  EXPECT_EQ(*store_.FreshThrough(kTopic), std::optional<int64_t>(t0));

  // Polled but not applied yet when the ends are noted: freshness stays.
  clock_.Advance(kNsPerSec);
  Produce({{"d1", "t", 1'000, 1}, {"d2", "t", 1'000, 2}});
  ASSERT_TRUE(w.RunOnce().ok());
  EXPECT_EQ(w.pending_readings(), 2u);
  EXPECT_EQ(*store_.FreshThrough(kTopic), std::optional<int64_t>(t0));
  // Applied (the store down first: nothing moves while it is), then the next
  // note: fresh through the time of that note.
  clock_.Advance(5 * kNsPerSec);
  store_.SetUp(false);
  EXPECT_FALSE(w.RunOnce().ok());
  store_.SetUp(true);
  EXPECT_EQ(*store_.FreshThrough(kTopic), std::optional<int64_t>(t0));
  ASSERT_TRUE(w.RunOnce().ok());
  EXPECT_EQ(store_.raw_count(), 2u);
  EXPECT_EQ(*store_.FreshThrough(kTopic), std::optional<int64_t>(clock_.NowNs()));
  // Idle: every tick moves it on.
  clock_.Advance(3 * kNsPerSec);
  ASSERT_TRUE(w.RunOnce().ok());
  EXPECT_EQ(*store_.FreshThrough(kTopic), std::optional<int64_t>(clock_.NowNs()));
}

TEST_F(WriterTest, CacheKeepsTheNewestEvenWhenOlderDataArrivesLater) {
  Produce({{"d1", "t", 5'000, 5}});
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeWriter(&consumer);
  Drain(*w);
  Produce({{"d1", "t", 3'000, 3}});  // late reading
  Drain(*w);
  auto latest = cache_.Get(tenant_, {"d1"}, {});
  ASSERT_TRUE(latest.ok());
  ASSERT_EQ(latest->size(), 1u);
  EXPECT_EQ((*latest)[0].ts_ns, 5'000);
  EXPECT_DOUBLE_EQ((*latest)[0].d, 5);
}

TEST_F(WriterTest, CreatesTheComingDaysPartitionsAhead) {
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeWriter(&consumer);
  ASSERT_TRUE(w->RunOnce().ok());
  auto days = store_.days();
  const int64_t today = DayOf(clock_.NowNs());
  EXPECT_EQ(days.count(today), 1u);
  EXPECT_EQ(days.count(today + 1), 1u);
  EXPECT_EQ(days.count(today + 2), 1u);
}

TEST_F(WriterTest, CacheOutageDoesNotBlockStorage) {
  cache_.SetUp(false);
  Produce({{"d1", "t", 5'000, 5}});
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeWriter(&consumer);
  Drain(*w);
  EXPECT_EQ(store_.raw_count(), 1u);
  EXPECT_EQ(metrics_.cache_failures->Value(), 1);
}

TEST_F(WriterTest, CompactorRewritesClosedHoursThisWriterNoLongerWrites) {
  constexpr int64_t kHour = 3600 * kNsPerSec;
  const int64_t now_hour = clock_.NowNs() - clock_.NowNs() % kHour;
  clock_.Set(now_hour + kHour / 2);  // half past
  CompactorOptions o;
  o.grace_ns = kHour;
  o.quiet_ns = 300 * kNsPerSec;
  CompactorMetrics cm(&registry_);
  Compactor compactor(o, &store_, &clock_, &cm);
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeWriter(&consumer);
  w->SetCompactor(&compactor);
  // Rows three and two hours ago (closed more than an hour ago), and in the
  // current hour (open).
  Produce({{"d1", "t", now_hour - 3 * kHour + 1, 1}});
  Drain(*w);
  clock_.Advance(400 * kNsPerSec);  // that batch is now quiet
  Produce({{"d1", "t", now_hour - 2 * kHour + 1, 1}, {"d1", "t", now_hour + 1, 1}});
  Drain(*w);
  // Three hours ago: due and quiet. Two hours ago: written just now. This
  // hour: not closed.
  auto n = compactor.RunOnce();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(store_.compacted(), (std::set<int64_t>{now_hour - 3 * kHour}));
  // Once the writer left it alone for the quiet period, the second is done,
  // and nothing is done twice.
  clock_.Advance(400 * kNsPerSec);
  n = compactor.RunOnce();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(store_.compacted(), (std::set<int64_t>{now_hour - 3 * kHour, now_hour - 2 * kHour}));
  EXPECT_EQ(cm.hours->Value(), 2);
  EXPECT_EQ(cm.rows->Value(), 2);
  // Each round vacuums what the previous one rewrote (first round: nothing
  // to vacuum yet), and a round with nothing rewritten before it does not.
  EXPECT_EQ(store_.vacuums(), 1);
  n = compactor.RunOnce();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  EXPECT_EQ(store_.vacuums(), 2);
  n = compactor.RunOnce();
  EXPECT_EQ(store_.vacuums(), 2);
  // A store outage is an error of the round (retried next round), not a crash.
  store_.SetUp(false);
  clock_.Advance(4 * kHour);
  EXPECT_FALSE(compactor.RunOnce().ok());
  EXPECT_EQ(cm.failures->Value(), 1);
}

TEST_F(WriterTest, CompactorPacksRawHoursUnlessTurnedOffAndOnlyQuietClosedOnes) {
  constexpr int64_t kHour = 3600 * kNsPerSec;
  const int64_t now_hour = clock_.NowNs() - clock_.NowNs() % kHour;
  clock_.Set(now_hour + kHour / 2);
  CompactorOptions o;
  EXPECT_TRUE(o.pack_raw);  // on by default
  o.grace_ns = kHour;
  o.quiet_ns = 300 * kNsPerSec;
  CompactorMetrics cm(&registry_);
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeWriter(&consumer);
  Produce({{"d1", "t", now_hour - 3 * kHour + 1, 1},
           {"d1", "t", now_hour - 3 * kHour + 2, 2},
           {"d2", "t", now_hour - 3 * kHour + 1, 3},
           {"d1", "t", now_hour + 1, 4}});
  Drain(*w);
  // Turned off (--pack_raw=false): the rollups are compacted, raw rows stay.
  o.pack_raw = false;
  Compactor off(o, &store_, &clock_, &cm);
  ASSERT_TRUE(off.RunOnce().ok());
  EXPECT_TRUE(store_.packed_hours().empty());
  // On: the closed hour is packed (its three readings, two series); the
  // open one is not. The writer wrote the closed hour just now: first quiet.
  o.pack_raw = true;
  Compactor on(o, &store_, &clock_, &cm);
  w->SetCompactor(&on);
  Produce({{"d3", "t", now_hour - 3 * kHour + 5, 5}});
  Drain(*w);
  ASSERT_TRUE(on.RunOnce().ok());
  EXPECT_TRUE(store_.packed_hours().empty());
  clock_.Advance(400 * kNsPerSec);
  ASSERT_TRUE(on.RunOnce().ok());
  EXPECT_EQ(store_.packed_hours(), (std::set<int64_t>{now_hour - 3 * kHour}));
  EXPECT_EQ(cm.raw_hours->Value(), 1);
  EXPECT_EQ(cm.raw_readings->Value(), 4);
  EXPECT_EQ(cm.raw_segments->Value(), 3);
  // Nothing left: a further round packs nothing.
  ASSERT_TRUE(on.RunOnce().ok());
  EXPECT_EQ(cm.raw_hours->Value(), 1);
  // A store outage fails the round and is counted.
  store_.SetUp(false);
  EXPECT_FALSE(on.PackRawOnce().ok());
  EXPECT_EQ(cm.raw_failures->Value(), 1);
}

// SIGTERM must end a writer whose dependencies are down: each retry loop
// gives up on stop without moving an offset past an unhandled message.
class WriterStopTest : public WriterTest {
 protected:
  // Runs `w` on a thread, asks it to stop after 100 ms and returns how long
  // it then took to return.
  std::chrono::milliseconds StopAfterAWhile(Writer& w) {
    std::atomic<bool> stop{false};
    std::thread t([&] { w.Run(stop); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto asked = std::chrono::steady_clock::now();
    stop = true;
    t.join();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 asked);
  }
  std::unique_ptr<Writer> MakeSlowRetryWriter(FakeConsumer* consumer, EventPublisher* dlq) {
    WriterOptions o;
    o.max_batch_delay_ns = 0;
    o.retry_backoff_ns = 10 * kNsPerSec;  // a stop must not wait for a backoff
    return std::make_unique<Writer>(o, consumer, dlq, &store_, &metadata_, &cache_, &clock_,
                                    &metrics_);
  }
};

TEST_F(WriterStopTest, StopsWhileTheStoreCannotGiveTheStartOffsets) {
  Produce({{"d1", "t", 1'000, 1}});
  store_.SetUp(false);
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeSlowRetryWriter(&consumer, &publisher_);
  EXPECT_LT(StopAfterAWhile(*w).count(), 2000);
  store_.SetUp(true);
  EXPECT_EQ(store_.raw_count(), 0u);
  EXPECT_TRUE(store_.AppliedOffsets(kTopic)->empty());
}

TEST_F(WriterStopTest, StopsWhileTheTenantCannotBeChecked) {
  Produce({{"d1", "t", 1'000, 1}});
  metadata_.SetUp(false);
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeSlowRetryWriter(&consumer, &publisher_);
  EXPECT_LT(StopAfterAWhile(*w).count(), 2000);
  // Neither applied nor dead-lettered, and its offset was not stored: the
  // next owner reads it again.
  EXPECT_EQ(store_.raw_count(), 0u);
  EXPECT_TRUE(kafka_.Messages(kDlq).empty());
  const auto applied = store_.AppliedOffsets(kTopic);
  ASSERT_TRUE(applied.ok());
  for (const auto& [partition, next] : *applied) EXPECT_EQ(next, 0) << partition;
  // A writer started after the outage applies it.
  metadata_.SetUp(true);
  FakeConsumer again(&kafka_, kTopic);
  auto w2 = MakeWriter(&again);
  Drain(*w2);
  EXPECT_EQ(store_.raw_count(), 1u);
}

TEST_F(WriterStopTest, StopsWhileTheDeadLetterTopicIsDown) {
  publisher_.Publish(kTopic, 0, "k", "\xff\xff not protobuf", [](const DeliveryReport&) {});
  FakeKafka dlq_kafka({{kDlq, 1}});
  dlq_kafka.SetAvailable(false);
  FakePublisher dlq(&dlq_kafka);
  FakeConsumer consumer(&kafka_, kTopic);
  auto w = MakeSlowRetryWriter(&consumer, &dlq);
  EXPECT_LT(StopAfterAWhile(*w).count(), 2000);
  EXPECT_TRUE(dlq_kafka.Messages(kDlq).empty());
  const auto applied = store_.AppliedOffsets(kTopic);
  ASSERT_TRUE(applied.ok());
  for (const auto& [partition, next] : *applied) EXPECT_EQ(next, 0) << partition;
}

}  // namespace
}  // namespace telemetry::writer
