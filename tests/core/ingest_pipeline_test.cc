#include "server/core/ingest_pipeline.h"

#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/in_memory_store.h"
#include "tests/fakes/flaky_store.h"
#include "tests/fakes/gated_store.h"

namespace rampart::server {
namespace {

using ::testing::ElementsAre;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());
constexpr absl::Duration kWait = absl::Seconds(20);

std::vector<AuthEvent> Events(int n, Protocol protocol = Protocol::kSmtp,
                              EventKind kind = EventKind::kAuthFailure,
                              const char* ip = "198.51.100.7") {
  std::vector<AuthEvent> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(AuthEvent{.agent_id = "mail1",
                            .kind = kind,
                            .protocol = protocol,
                            .ip = IpAddress::Parse(ip),
                            .user = "admin",
                            .time = kT0});
  }
  return out;
}

BatchId Batch(uint64_t seq) {
  return BatchId{.agent_id = "mail1", .spool_epoch = 7, .sequence = seq};
}

// Collects `done` outcomes; waits for them without sleeping.
class Outcomes {
 public:
  IngestPipeline::Done Callback(uint64_t seq) {
    return [this, seq](absl::StatusOr<IngestResult> r) {
      absl::MutexLock lock(&mu_);
      results_.emplace_back(seq, std::move(r));
    };
  }
  bool WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    const auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return results_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kWait);
  }
  std::vector<std::pair<uint64_t, absl::StatusOr<IngestResult>>> Take() {
    absl::MutexLock lock(&mu_);
    return results_;
  }
  std::vector<uint64_t> Sequences() {
    absl::MutexLock lock(&mu_);
    std::vector<uint64_t> out;
    for (const auto& [seq, r] : results_) {
      out.push_back(seq);
    }
    return out;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::pair<uint64_t, absl::StatusOr<IngestResult>>> results_
      ABSL_GUARDED_BY(mu_);
};

class IngestPipelineTest : public ::testing::Test {
 protected:
  void Start(IngestPipelineOptions options = {}) {
    CorrelatorOptions co;
    co.policy.ban_jitter = 0;
    absl::StatusOr<std::unique_ptr<Correlator>> c =
        Correlator::Create(co, gated_, clock_, publisher_);
    ASSERT_TRUE(c.ok()) << c.status();
    correlator_ = std::move(*c);
    pipeline_ = std::make_unique<IngestPipeline>(options, *correlator_, clock_,
                                                 registry_);
  }
  void TearDown() override {
    gated_.Open();
    if (pipeline_) {
      pipeline_->Stop();
    }
  }
  IngestPipeline::Item Item(uint64_t seq, std::vector<AuthEvent> events) {
    return IngestPipeline::Item{.id = Batch(seq),
                                .events = std::move(events),
                                .done = outcomes_.Callback(seq)};
  }
  double Metric(std::string_view name, const metrics::Labels& labels = {}) {
    absl::StatusOr<metrics::ParsedMetrics> parsed =
        metrics::ParsePrometheusText(registry_.Render());
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return parsed.ok() ? parsed->Value(name, labels) : -1;
  }
  int StoredEvents() {
    int n = 0;
    EXPECT_TRUE(store_
                    .ForEachEvent(kT0 - absl::Hours(1), kT0 + absl::Hours(1),
                                  [&](const AuthEvent&) {
                                    ++n;
                                    return absl::OkStatus();
                                  })
                    .ok());
    return n;
  }

  SimulatedClock clock_{kT0};
  InMemoryStore store_;
  FlakyStore flaky_{store_};
  GatedStore gated_{flaky_};
  RecordingPublisher publisher_;
  metrics::Registry registry_;
  std::unique_ptr<Correlator> correlator_;
  std::unique_ptr<IngestPipeline> pipeline_;
  Outcomes outcomes_;
};

TEST_F(IngestPipelineTest, IngestsBatchesAndReportsEachOutcome) {
  // One worker: outcomes come in queue order only from one worker (with two,
  // batch 2 may be settled by the second worker before batch 1).
  Start(IngestPipelineOptions{.workers = 1});
  ASSERT_TRUE(pipeline_->TryPush(Item(1, Events(4))));
  ASSERT_TRUE(pipeline_->TryPush(
      Item(2, Events(3, Protocol::kImap, EventKind::kLockout))));
  ASSERT_TRUE(outcomes_.WaitFor(2));
  auto results = outcomes_.Take();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].first, 1u);  // in queue order
  ASSERT_TRUE(results[0].second.ok()) << results[0].second.status();
  EXPECT_EQ(results[0].second->events, 4u);
  EXPECT_FALSE(results[0].second->duplicate);
  EXPECT_EQ(StoredEvents(), 7);
  EXPECT_EQ(Metric("rampart_events_total",
                   {{"protocol", "smtp"}, {"kind", "auth_failure"}}),
            4);
  EXPECT_EQ(Metric("rampart_events_total",
                   {{"protocol", "imap"}, {"kind", "lockout"}}),
            3);
  EXPECT_EQ(Metric("rampart_ingest_batches_total"), 2);
  EXPECT_EQ(Metric("rampart_ingest_latency_seconds_count"), 2);
  EXPECT_GE(Metric("rampart_store_commit_seconds_count"), 1);
}

TEST_F(IngestPipelineTest, DuplicateBatchIsReportedAndNotCountedTwice) {
  // One worker, so the second copy is the one settled second (see above).
  Start(IngestPipelineOptions{.workers = 1});
  ASSERT_TRUE(pipeline_->TryPush(Item(1, Events(6))));
  ASSERT_TRUE(pipeline_->TryPush(Item(1, Events(6))));
  ASSERT_TRUE(outcomes_.WaitFor(2));
  auto results = outcomes_.Take();
  ASSERT_TRUE(results[1].second.ok());
  EXPECT_TRUE(results[1].second->duplicate);
  EXPECT_EQ(StoredEvents(), 6);
  EXPECT_NEAR(correlator_->Explain(*IpAddress::Parse("198.51.100.7")).score, 6,
              1e-6);
  EXPECT_EQ(Metric("rampart_ingest_duplicate_batches_total"), 1);
  EXPECT_EQ(Metric("rampart_events_total",
                   {{"protocol", "smtp"}, {"kind", "auth_failure"}}),
            6);
}

TEST_F(IngestPipelineTest, FullQueueRefusesAndCallsBackWhenThereIsRoom) {
  // One worker: with two, the second would take batch 2 off the queue and
  // the third push would find room.
  Start(IngestPipelineOptions{.capacity_events = 4, .workers = 1});
  gated_.Close();
  ASSERT_TRUE(pipeline_->TryPush(Item(1, Events(4))));
  // The worker holds batch 1 at the gate: the queue is empty again.
  ASSERT_TRUE(gated_.WaitForCommitsEntered(1, kWait));
  ASSERT_TRUE(pipeline_->TryPush(Item(2, Events(3))));
  absl::Notification room;
  IngestPipeline::Item third = Item(3, Events(2));
  EXPECT_FALSE(pipeline_->TryPush(std::move(third), [&] { room.Notify(); }));
  // Refused items are left untouched with the caller.
  EXPECT_EQ(third.events.size(), 2u);
  EXPECT_EQ(pipeline_->queued_events(), 3u);
  EXPECT_EQ(Metric("rampart_ingest_queue_events"), 3);
  gated_.Open();
  ASSERT_TRUE(room.WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(pipeline_->TryPush(std::move(third)));
  ASSERT_TRUE(outcomes_.WaitFor(3));
  EXPECT_THAT(outcomes_.Sequences(), ElementsAre(1, 2, 3));
  EXPECT_EQ(StoredEvents(), 9);
}

TEST_F(IngestPipelineTest, QueuedBatchesAreCommittedAsOneGroup) {
  // One worker, so the grouping is deterministic (with two, the second
  // worker may take batch 2 alone while batch 1 is held at the gate).
  Start(IngestPipelineOptions{.workers = 1});
  std::vector<size_t> observed;
  pipeline_->SetCommitObserver(
      [&](const IngestResult& r) { observed.push_back(r.events); });
  gated_.Close();
  ASSERT_TRUE(pipeline_->TryPush(Item(1, Events(1))));
  ASSERT_TRUE(gated_.WaitForCommitsEntered(1, kWait));
  for (uint64_t seq = 2; seq <= 4; ++seq) {
    ASSERT_TRUE(pipeline_->TryPush(Item(seq, Events(2))));
  }
  gated_.Open();
  ASSERT_TRUE(outcomes_.WaitFor(4));
  // Batch 1 alone, then 2..4 in one transaction.
  EXPECT_EQ(gated_.commits_entered(), 2);
  EXPECT_THAT(outcomes_.Sequences(), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(observed, ElementsAre(1, 2, 2, 2));
  EXPECT_EQ(StoredEvents(), 7);
}

TEST_F(IngestPipelineTest, OversizedBatchIsAcceptedIntoAnEmptyQueue) {
  Start(IngestPipelineOptions{.capacity_events = 2});
  ASSERT_TRUE(pipeline_->TryPush(Item(1, Events(5))));
  ASSERT_TRUE(outcomes_.WaitFor(1));
  EXPECT_EQ(StoredEvents(), 5);
}

TEST_F(IngestPipelineTest, StoreUnavailableIsReportedToTheProducer) {
  Start();
  flaky_.FailNextCommits(1);
  ASSERT_TRUE(pipeline_->TryPush(Item(1, Events(2))));
  ASSERT_TRUE(outcomes_.WaitFor(1));
  // The agent resends the batch; the correlator has recovered.
  ASSERT_TRUE(pipeline_->TryPush(Item(1, Events(2))));
  ASSERT_TRUE(outcomes_.WaitFor(2));
  auto results = outcomes_.Take();
  EXPECT_EQ(results[0].second.status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(results[1].second.ok()) << results[1].second.status();
  EXPECT_FALSE(results[1].second->duplicate);
  EXPECT_EQ(StoredEvents(), 2);
  EXPECT_EQ(Metric("rampart_ingest_failed_batches_total"), 1);
}

TEST_F(IngestPipelineTest, StopFlushesEverythingQueuedThenRefuses) {
  Start(IngestPipelineOptions{.max_group_batches = 2});
  gated_.Close();
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    ASSERT_TRUE(pipeline_->TryPush(Item(seq, Events(1))));
  }
  ASSERT_TRUE(gated_.WaitForCommitsEntered(1, kWait));
  std::thread stopper([&] { pipeline_->Stop(); });
  // Stop() must wait for the workers, which wait at the gate.
  gated_.Open();
  stopper.join();
  // Two workers settle their groups concurrently: any order, all of them.
  EXPECT_THAT(outcomes_.Sequences(),
              ::testing::UnorderedElementsAre(1, 2, 3, 4, 5));
  EXPECT_EQ(StoredEvents(), 5);
  EXPECT_TRUE(pipeline_->stopping());
  bool called = false;
  EXPECT_FALSE(pipeline_->TryPush(Item(6, Events(1)), [&] { called = true; }));
  EXPECT_FALSE(called);
  pipeline_->Stop();  // idempotent
}

TEST_F(IngestPipelineTest, RejectedEventsAreCountedOncePerCommittedBatch) {
  Start();
  IngestPipeline::Item item = Item(1, Events(2));
  item.rejected_events = 3;
  ASSERT_TRUE(pipeline_->TryPush(std::move(item)));
  IngestPipeline::Item again = Item(1, Events(2));
  again.rejected_events = 3;
  ASSERT_TRUE(pipeline_->TryPush(std::move(again)));
  ASSERT_TRUE(outcomes_.WaitFor(2));
  EXPECT_EQ(Metric("rampart_ingest_rejected_events_total"), 3);
}

}  // namespace
}  // namespace rampart::server
