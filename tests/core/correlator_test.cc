#include "server/core/correlator.h"

#include <atomic>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/in_memory_store.h"
#include "tests/fakes/flaky_store.h"
#include "tests/fakes/gated_store.h"

namespace rampart::server {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());

IpPrefix Prefix(const char* s) { return *IpPrefix::FromString(s); }

std::vector<AuthEvent> Failures(const char* ip, int n, absl::Time t,
                                const char* server = "mail1") {
  std::vector<AuthEvent> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(AuthEvent{.agent_id = server,
                            .kind = EventKind::kAuthFailure,
                            .protocol = Protocol::kSmtp,
                            .ip = IpAddress::Parse(ip),
                            .user = "admin",
                            .time = t});
  }
  return out;
}

CorrelatorOptions Options() {
  CorrelatorOptions o;
  o.policy.ban_jitter = 0;
  return o;
}

class CorrelatorTest : public ::testing::Test {
 protected:
  std::unique_ptr<Correlator> Make() {
    absl::StatusOr<std::unique_ptr<Correlator>> c =
        Correlator::Create(Options(), flaky_, clock_, publisher_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  BatchId Batch(uint64_t seq) {
    return BatchId{.agent_id = "mail1", .spool_epoch = 7, .sequence = seq};
  }

  SimulatedClock clock_{kT0};
  InMemoryStore store_;
  FlakyStore flaky_{store_};
  RecordingPublisher publisher_;
};

TEST_F(CorrelatorTest, BanIsDurableBeforeItIsPublished) {
  auto c = Make();
  absl::StatusOr<IngestResult> r =
      c->Ingest(Batch(1), Failures("198.51.100.7", 10, kT0));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->new_bans, 1u);
  EXPECT_EQ(r->revision, 1u);
  ASSERT_THAT(publisher_.published, SizeIs(1));
  // What was published is in the store's journal, with the events.
  absl::StatusOr<std::vector<JournalEntry>> journal =
      store_.JournalSince(0, 10);
  ASSERT_TRUE(journal.ok());
  EXPECT_EQ(*journal, publisher_.published);
  int events = 0;
  ASSERT_TRUE(store_
                  .ForEachEvent(kT0 - absl::Hours(1), kT0 + absl::Hours(1),
                                [&](const AuthEvent&) {
                                  ++events;
                                  return absl::OkStatus();
                                })
                  .ok());
  EXPECT_EQ(events, 10);
}

TEST_F(CorrelatorTest, FailedCommitPublishesNothingAndRecovers) {
  auto c = Make();
  ASSERT_TRUE(c->Ingest(Batch(1), Failures("198.51.100.7", 9, kT0)).ok());
  flaky_.FailNextCommits(1);
  absl::StatusOr<IngestResult> r =
      c->Ingest(Batch(2), Failures("198.51.100.7", 5, kT0));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(publisher_.published, IsEmpty());
  EXPECT_TRUE(c->degraded());
  // While the database is down, the correlator says so clearly.
  flaky_.SetDown(true);
  r = c->Ingest(Batch(2), Failures("198.51.100.7", 5, kT0));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("degraded"));
  // Back up: the agent retries batch 2. The failed attempt left no trace:
  // 9 + 1 = 10 bans, not 9 + 5 + 1.
  flaky_.SetDown(false);
  r = c->Ingest(Batch(2), Failures("198.51.100.7", 1, kT0));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(c->degraded());
  EXPECT_EQ(r->new_bans, 1u);
  ASSERT_THAT(publisher_.published, SizeIs(1));
  EXPECT_EQ(publisher_.published[0].revision, 1u);
}

TEST_F(CorrelatorTest, DuplicateBatchesDoNotDoubleCount) {
  auto c = Make();
  ASSERT_TRUE(c->Ingest(Batch(1), Failures("198.51.100.7", 6, kT0)).ok());
  absl::StatusOr<IngestResult> again =
      c->Ingest(Batch(1), Failures("198.51.100.7", 6, kT0));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_NEAR(c->Explain(*IpAddress::Parse("198.51.100.7")).score, 6, 1e-6);
  EXPECT_THAT(publisher_.published, IsEmpty());
}

TEST_F(CorrelatorTest, RestartContinuesRevisionsScoresAndBans) {
  {
    auto c = Make();
    ASSERT_TRUE(c->Ingest(Batch(1), Failures("198.51.100.7", 10, kT0)).ok());
    ASSERT_TRUE(
        c->AddBan(Prefix("203.0.113.0/24"), absl::Hours(2), "abuse", "alice")
            .ok());
    ASSERT_TRUE(c->Ingest(Batch(2), Failures("198.51.100.8", 9, kT0)).ok());
    EXPECT_EQ(c->revision(), 2u);
  }
  clock_.Advance(absl::Seconds(1));
  auto c = Make();
  EXPECT_EQ(c->revision(), 2u);
  ASSERT_THAT(c->ActiveBans(), SizeIs(2));
  // The score of .8 was rebuilt from stored events (9, decayed for 1 s):
  // two more failures ban it.
  EXPECT_NEAR(c->Explain(*IpAddress::Parse("198.51.100.8")).score, 8.9965,
              1e-3);
  absl::StatusOr<IngestResult> r =
      c->Ingest(Batch(3), Failures("198.51.100.8", 2, clock_.Now()));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->new_bans, 1u);
  EXPECT_EQ(r->revision, 3u);
  // .7 was banned before the restart: its score started afresh then, and
  // the rebuild reproduces that instead of a score of 10.
  EXPECT_LT(c->Explain(*IpAddress::Parse("198.51.100.7")).score, 0.5);
}

TEST_F(CorrelatorTest, AdminActionsAreAuditedWithBeforeAndAfter) {
  auto c = Make();
  ASSERT_TRUE(c->AddAllow(AllowEntry{.prefix = Prefix("192.0.2.0/28"),
                                     .comment = "admins"},
                          "alice")
                  .ok());
  ASSERT_TRUE(
      c->AddBan(Prefix("203.0.113.9"), absl::Hours(1), "manual", "bob").ok());
  ASSERT_TRUE(c->RemoveBan(Prefix("203.0.113.9"), "oops", "carol").ok());
  ASSERT_TRUE(c->RemoveAllow(Prefix("192.0.2.0/28"), "dave").ok());
  EXPECT_EQ(c->RemoveAllow(Prefix("192.0.2.0/28"), "dave").code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<std::vector<AuditRecord>> audit =
      store_.ListAudit(kT0 - absl::Hours(1), 10);
  ASSERT_TRUE(audit.ok());
  ASSERT_THAT(*audit, SizeIs(4));
  // Newest first.
  EXPECT_EQ((*audit)[0].action, "allow.remove");
  EXPECT_EQ((*audit)[0].actor, "dave");
  EXPECT_THAT((*audit)[0].before, HasSubstr("\"comment\":\"admins\""));
  EXPECT_EQ((*audit)[1].action, "ban.remove");
  EXPECT_THAT((*audit)[1].before, HasSubstr("\"prefix\":\"203.0.113.9\""));
  EXPECT_EQ((*audit)[2].action, "ban.add");
  EXPECT_EQ((*audit)[2].after.empty(), false);
  EXPECT_EQ((*audit)[3].action, "allow.add");
  // The allowlist is durable.
  absl::StatusOr<DurableState> state = store_.LoadState(clock_.Now());
  ASSERT_TRUE(state.ok());
  EXPECT_THAT(state->allowlist, IsEmpty());
}

TEST_F(CorrelatorTest, JournalResumeReturnsExactlyTheMissingEntries) {
  auto c = Make();
  for (int i = 1; i <= 5; ++i) {
    // Separate /48s, so no prefix ban covers the next address.
    const std::string ip = "2001:db8:" + std::to_string(i) + "::1";
    ASSERT_TRUE(c->Ingest(Batch(i), Failures(ip.c_str(), 10, kT0)).ok());
  }
  // An agent that enforced revision 3 needs 4 and 5.
  absl::StatusOr<std::vector<JournalEntry>> missing =
      store_.JournalSince(3, 100);
  ASSERT_TRUE(missing.ok());
  ASSERT_THAT(*missing, SizeIs(2));
  EXPECT_EQ((*missing)[0].revision, 4u);
  EXPECT_EQ((*missing)[1].revision, 5u);
  EXPECT_EQ((*missing)[1].ban.prefix.ToString(), "2001:db8:5::/64");
}

TEST_F(CorrelatorTest, DryRunReportsBansThatDifferBetweenPolicies) {
  auto c = Make();
  // Stored history: .1 fails 12 times, .2 six times, .3 twice.
  ASSERT_TRUE(c->Ingest(Batch(1), Failures("198.51.100.1", 12, kT0)).ok());
  ASSERT_TRUE(c->Ingest(Batch(2), Failures("198.51.100.2", 6, kT0)).ok());
  ASSERT_TRUE(c->Ingest(Batch(3), Failures("198.51.100.3", 2, kT0)).ok());
  Policy live = Options().policy;
  Policy candidate = live;
  candidate.ban_threshold = 5;
  candidate.prefix_k = 64;  // isolate the threshold change
  live.prefix_k = 64;
  absl::StatusOr<ReplayReport> report = ReplayPolicies(
      store_, kT0 - absl::Hours(1), kT0 + absl::Hours(1), live, candidate, {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->events, 20u);
  EXPECT_EQ(report->both, 1u);
  ASSERT_THAT(report->only_candidate, SizeIs(1));
  EXPECT_EQ(report->only_candidate[0].prefix.ToString(), "198.51.100.2");
  EXPECT_THAT(report->only_live, IsEmpty());
  // And the reverse direction.
  report = ReplayPolicies(store_, kT0 - absl::Hours(1), kT0 + absl::Hours(1),
                          candidate, live, {});
  ASSERT_TRUE(report.ok());
  ASSERT_THAT(report->only_live, SizeIs(1));
  EXPECT_THAT(report->only_candidate, IsEmpty());
  // Empty range is an error.
  EXPECT_FALSE(ReplayPolicies(store_, kT0, kT0, live, candidate, {}).ok());
}

TEST_F(CorrelatorTest, RetentionNeverCutsIntoTheRebuildHorizon) {
  auto c = Make();
  ASSERT_TRUE(c->Ingest(Batch(1), Failures("198.51.100.7", 3, kT0)).ok());
  clock_.Advance(absl::Hours(3));
  ASSERT_TRUE(
      c->Ingest(Batch(2), Failures("198.51.100.8", 2, clock_.Now())).ok());
  // Asked to keep 1 hour; the default horizon (24 h windows) wins.
  absl::StatusOr<int64_t> pruned = c->PruneEvents(absl::Hours(1));
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(*pruned, 0);
  clock_.Advance(absl::Hours(23));  // the first batch is now 26 h old
  pruned = c->PruneEvents(absl::Hours(1));
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(*pruned, 3);
}

// --- Group commit (IngestMany) ---------------------------------------------

size_t StoredEvents(Store& store) {
  size_t n = 0;
  EXPECT_TRUE(store
                  .ForEachEvent(absl::InfinitePast(), absl::InfiniteFuture(),
                                [&](const AuthEvent&) {
                                  ++n;
                                  return absl::OkStatus();
                                })
                  .ok());
  return n;
}

TEST_F(CorrelatorTest, IngestManyCommitsOnceAndAnswersInInputOrder) {
  auto c = Make();
  const int commits_before = flaky_.commits();
  std::vector<IngestBatch> batches;
  batches.push_back({Batch(1), Failures("198.51.100.7", 10, kT0)});
  batches.push_back({Batch(2), Failures("198.51.100.8", 3, kT0, "mail2")});
  batches.push_back({std::nullopt, Failures("2001:db8::1", 2, kT0)});
  batches.push_back({Batch(3), {}});
  const std::vector<absl::StatusOr<IngestResult>> results =
      c->IngestMany(std::move(batches));
  ASSERT_THAT(results, SizeIs(4));
  for (const absl::StatusOr<IngestResult>& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->duplicate);
    EXPECT_EQ(r->revision, 1u);
  }
  EXPECT_EQ(results[0]->events, 10u);
  EXPECT_EQ(results[0]->new_bans, 1u);
  EXPECT_EQ(results[1]->events, 3u);
  EXPECT_EQ(results[1]->new_bans, 0u);
  EXPECT_EQ(results[2]->events, 2u);
  EXPECT_EQ(results[3]->events, 0u);
  // One transaction, one publication, everything stored.
  EXPECT_EQ(flaky_.commits(), commits_before + 1);
  ASSERT_THAT(publisher_.published, SizeIs(1));
  EXPECT_EQ(publisher_.published[0].ban.prefix, Prefix("198.51.100.7"));
  EXPECT_THAT(*store_.HasBatches({Batch(1), Batch(2), Batch(3)}),
              ::testing::ElementsAre(true, true, true));
  EXPECT_EQ(StoredEvents(store_), 15u);
  EXPECT_THAT(c->IngestMany({}), IsEmpty());
}

TEST_F(CorrelatorTest, IngestManySkipsStoredAndRepeatedBatches) {
  auto c = Make();
  ASSERT_TRUE(c->Ingest(Batch(1), Failures("198.51.100.7", 4, kT0)).ok());
  std::vector<IngestBatch> batches;
  batches.push_back({Batch(2), Failures("198.51.100.7", 2, kT0)});
  batches.push_back({Batch(1), Failures("198.51.100.7", 4, kT0)});  // stored
  batches.push_back({Batch(2), Failures("198.51.100.7", 2, kT0)});  // repeat
  batches.push_back({Batch(3), Failures("198.51.100.7", 1, kT0)});
  const std::vector<absl::StatusOr<IngestResult>> results =
      c->IngestMany(std::move(batches));
  ASSERT_THAT(results, SizeIs(4));
  for (const absl::StatusOr<IngestResult>& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
  }
  EXPECT_FALSE(results[0]->duplicate);
  EXPECT_TRUE(results[1]->duplicate);
  EXPECT_TRUE(results[2]->duplicate);
  EXPECT_FALSE(results[3]->duplicate);
  EXPECT_EQ(results[1]->events, 0u);
  // Counted once each: 4 + 2 + 1.
  EXPECT_NEAR(c->Explain(*IpAddress::Parse("198.51.100.7")).score, 7, 1e-6);
  EXPECT_EQ(StoredEvents(store_), 7u);
  // All duplicates: nothing to commit, nothing changes.
  const int commits = flaky_.commits();
  std::vector<IngestBatch> again;
  again.push_back({Batch(3), Failures("198.51.100.7", 1, kT0)});
  const auto dup = c->IngestMany(std::move(again));
  ASSERT_THAT(dup, SizeIs(1));
  ASSERT_TRUE(dup[0].ok());
  EXPECT_TRUE(dup[0]->duplicate);
  EXPECT_EQ(flaky_.commits(), commits);  // nothing to commit
  EXPECT_EQ(StoredEvents(store_), 7u);
}

TEST_F(CorrelatorTest, IngestManyStoreFailureFailsEveryBatch) {
  auto c = Make();
  ASSERT_TRUE(c->Ingest(Batch(1), Failures("198.51.100.7", 9, kT0)).ok());
  const auto make_batches = [&] {
    std::vector<IngestBatch> batches;
    batches.push_back({Batch(2), Failures("198.51.100.7", 1, kT0)});
    batches.push_back({Batch(1), Failures("198.51.100.7", 9, kT0)});  // stored
    batches.push_back({Batch(3), Failures("198.51.100.8", 2, kT0)});
    return batches;
  };
  flaky_.FailNextCommits(1);
  std::vector<absl::StatusOr<IngestResult>> results =
      c->IngestMany(make_batches());
  ASSERT_THAT(results, SizeIs(3));
  for (const absl::StatusOr<IngestResult>& r : results) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  }
  EXPECT_THAT(publisher_.published, IsEmpty());
  EXPECT_TRUE(c->degraded());
  EXPECT_THAT(*store_.HasBatches({Batch(2), Batch(3)}),
              ::testing::ElementsAre(false, false));
  // The duplicate look-up failing fails everything too.
  flaky_.SetDown(true);
  results = c->IngestMany(make_batches());
  for (const absl::StatusOr<IngestResult>& r : results) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  }
  // Retried after recovery: counted exactly once.
  flaky_.SetDown(false);
  results = c->IngestMany(make_batches());
  ASSERT_THAT(results, SizeIs(3));
  ASSERT_TRUE(results[0].ok()) << results[0].status();
  EXPECT_EQ(results[0]->new_bans, 1u);
  EXPECT_TRUE(results[1]->duplicate);
  EXPECT_TRUE(results[2].ok());
  ASSERT_THAT(publisher_.published, SizeIs(1));
  EXPECT_EQ(publisher_.published[0].revision, 1u);
  EXPECT_EQ(StoredEvents(store_), 12u);
}

// Commits one batch "from another process" just before the first Commit it
// forwards, so the correlator's duplicate check is stale by commit time.
class RacingStore final : public StoreWrapper {
 public:
  RacingStore(Store& inner, BatchId racer)
      : StoreWrapper(inner), racer_(racer) {}
  absl::Status Commit(const CommitRecord& r) override {
    if (!raced_) {
      raced_ = true;
      EXPECT_TRUE(StoreWrapper::Commit({.batches = {racer_}}).ok());
    }
    return StoreWrapper::Commit(r);
  }

 private:
  const BatchId racer_;
  bool raced_ = false;
};

TEST_F(CorrelatorTest, IngestManyBatchCommittedConcurrentlyIsADuplicate) {
  RacingStore racing(store_, Batch(2));
  absl::StatusOr<std::unique_ptr<Correlator>> c =
      Correlator::Create(Options(), racing, clock_, publisher_);
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<IngestBatch> batches;
  batches.push_back({Batch(1), Failures("198.51.100.7", 10, kT0)});
  batches.push_back({Batch(2), Failures("198.51.100.8", 1, kT0)});
  const std::vector<absl::StatusOr<IngestResult>> results =
      (*c)->IngestMany(std::move(batches));
  ASSERT_THAT(results, SizeIs(2));
  EXPECT_EQ(results[0].status().code(), absl::StatusCode::kAborted)
      << results[0].status();
  ASSERT_TRUE(results[1].ok()) << results[1].status();
  EXPECT_TRUE(results[1]->duplicate);
  EXPECT_THAT(publisher_.published, IsEmpty());
  EXPECT_TRUE((*c)->degraded());
  // The agent retries batch 1: it is applied once, after a rebuild.
  absl::StatusOr<IngestResult> retry =
      (*c)->Ingest(Batch(1), Failures("198.51.100.7", 10, kT0));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->new_bans, 1u);
  EXPECT_FALSE((*c)->degraded());
}

// Overlapping groups (IngestMany from two threads, as the ingest pipeline's
// two workers do): the first group's commit is held at a gate while a
// second group is observed and committed.
class CorrelatorOverlapTest : public CorrelatorTest {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Correlator>> c =
        Correlator::Create(Options(), gated_, clock_, publisher_);
    ASSERT_TRUE(c.ok()) << c.status();
    correlator_ = std::move(*c);
  }
  // Runs IngestMany(batches) on a thread; `finished` is set when it returns.
  std::thread Start(std::vector<IngestBatch> batches,
                    std::vector<absl::StatusOr<IngestResult>>* results,
                    std::atomic<bool>* finished) {
    return std::thread(
        [this, b = std::move(batches), results, finished]() mutable {
          *results = correlator_->IngestMany(std::move(b));
          finished->store(true);
        });
  }

  GatedStore gated_{flaky_};
  std::unique_ptr<Correlator> correlator_;
};

TEST_F(CorrelatorOverlapTest, LaterGroupCommitsMeanwhileButAnswersAfter) {
  gated_.HoldNextCommit();
  std::vector<absl::StatusOr<IngestResult>> a, b;
  std::atomic<bool> a_done{false}, b_done{false};
  std::vector<IngestBatch> first;
  first.push_back({Batch(1), Failures("198.51.100.7", 5, kT0)});
  std::thread ta = Start(std::move(first), &a, &a_done);
  ASSERT_TRUE(gated_.WaitForCommitsEntered(1, absl::Seconds(30)));
  std::vector<IngestBatch> second;
  second.push_back({Batch(2), Failures("198.51.100.8", 3, kT0)});
  std::thread tb = Start(std::move(second), &b, &b_done);
  // The second group (no ban-list change) is durable while the first is
  // still held, but its answer waits for the first group's.
  ASSERT_TRUE(gated_.WaitForCommitsDone(1, absl::Seconds(30)));
  EXPECT_THAT(*store_.HasBatches({Batch(1), Batch(2)}),
              ::testing::ElementsAre(false, true));
  EXPECT_FALSE(b_done.load());
  EXPECT_FALSE(a_done.load());
  gated_.ReleaseHeld();
  ta.join();
  tb.join();
  ASSERT_THAT(a, SizeIs(1));
  ASSERT_THAT(b, SizeIs(1));
  ASSERT_TRUE(a[0].ok()) << a[0].status();
  ASSERT_TRUE(b[0].ok()) << b[0].status();
  EXPECT_EQ(StoredEvents(store_), 8u);
  EXPECT_FALSE(correlator_->degraded());
}

TEST_F(CorrelatorOverlapTest, BatchStillCommittingIsSettledByItsGroup) {
  gated_.HoldNextCommit();
  std::vector<absl::StatusOr<IngestResult>> a, b;
  std::atomic<bool> a_done{false}, b_done{false};
  std::vector<IngestBatch> first;
  first.push_back({Batch(1), Failures("198.51.100.7", 5, kT0)});
  std::thread ta = Start(std::move(first), &a, &a_done);
  ASSERT_TRUE(gated_.WaitForCommitsEntered(1, absl::Seconds(30)));
  // The agent resent batch 1 (say after a reconnect) with a new batch 3.
  std::vector<IngestBatch> second;
  second.push_back({Batch(1), Failures("198.51.100.7", 5, kT0)});
  second.push_back({Batch(3), Failures("198.51.100.9", 2, kT0)});
  std::thread tb = Start(std::move(second), &b, &b_done);
  ASSERT_TRUE(gated_.WaitForCommitsDone(1, absl::Seconds(30)));
  gated_.ReleaseHeld();
  ta.join();
  tb.join();
  ASSERT_TRUE(a[0].ok()) << a[0].status();
  ASSERT_THAT(b, SizeIs(2));
  ASSERT_TRUE(b[0].ok()) << b[0].status();
  EXPECT_TRUE(b[0]->duplicate);
  ASSERT_TRUE(b[1].ok()) << b[1].status();
  EXPECT_FALSE(b[1]->duplicate);
  EXPECT_EQ(StoredEvents(store_), 7u);  // batch 1 counted once
  EXPECT_NEAR(correlator_->Explain(*IpAddress::Parse("198.51.100.7")).score, 5,
              1e-6);
}

TEST_F(CorrelatorOverlapTest, BatchOfAFailedGroupIsNotAckedAsDuplicate) {
  gated_.HoldNextCommit();
  std::vector<absl::StatusOr<IngestResult>> a, b;
  std::atomic<bool> a_done{false}, b_done{false};
  std::vector<IngestBatch> first;
  first.push_back({Batch(1), Failures("198.51.100.7", 5, kT0)});
  std::thread ta = Start(std::move(first), &a, &a_done);
  ASSERT_TRUE(gated_.WaitForCommitsEntered(1, absl::Seconds(30)));
  std::vector<IngestBatch> second;
  second.push_back({Batch(1), Failures("198.51.100.7", 5, kT0)});
  second.push_back({Batch(3), Failures("198.51.100.9", 2, kT0)});
  std::thread tb = Start(std::move(second), &b, &b_done);
  ASSERT_TRUE(gated_.WaitForCommitsDone(1, absl::Seconds(30)));
  flaky_.FailNextCommits(1);  // the held commit of the first group fails
  gated_.ReleaseHeld();
  ta.join();
  tb.join();
  EXPECT_EQ(a[0].status().code(), absl::StatusCode::kUnavailable);
  ASSERT_THAT(b, SizeIs(2));
  // Batch 1 was never stored: the agent must resend it, not drop it.
  EXPECT_EQ(b[0].status().code(), absl::StatusCode::kUnavailable)
      << b[0].status();
  ASSERT_TRUE(b[1].ok()) << b[1].status();
  EXPECT_TRUE(correlator_->degraded());
  // The resend is applied exactly once, after a rebuild from the store.
  absl::StatusOr<IngestResult> retry =
      correlator_->Ingest(Batch(1), Failures("198.51.100.7", 5, kT0));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_FALSE(retry->duplicate);
  EXPECT_FALSE(correlator_->degraded());
  EXPECT_EQ(StoredEvents(store_), 7u);
  EXPECT_NEAR(correlator_->Explain(*IpAddress::Parse("198.51.100.7")).score, 5,
              1e-6);
}

TEST_F(CorrelatorOverlapTest, BanWaitsForEarlierGroupAndGivesUpIfItFailed) {
  gated_.HoldNextCommit();
  std::vector<absl::StatusOr<IngestResult>> a, b;
  std::atomic<bool> a_done{false}, b_done{false};
  std::vector<IngestBatch> first;
  first.push_back({Batch(1), Failures("198.51.100.7", 5, kT0)});
  std::thread ta = Start(std::move(first), &a, &a_done);
  ASSERT_TRUE(gated_.WaitForCommitsEntered(1, absl::Seconds(30)));
  std::vector<IngestBatch> second;  // crosses the threshold: a ban
  second.push_back({Batch(2), Failures("198.51.100.8", 10, kT0)});
  std::thread tb = Start(std::move(second), &b, &b_done);
  // The ban's group must not reach the store before the earlier group ends
  // (revisions are written in order): nothing else enters meanwhile.
  EXPECT_FALSE(gated_.WaitForCommitsEntered(2, absl::Milliseconds(200)));
  flaky_.FailNextCommits(1);
  gated_.ReleaseHeld();
  ta.join();
  tb.join();
  EXPECT_EQ(a[0].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(b[0].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(gated_.commits_entered(), 1);
  EXPECT_THAT(publisher_.published, IsEmpty());
  // Both resent: one ban, revision 1, published once.
  std::vector<IngestBatch> again;
  again.push_back({Batch(1), Failures("198.51.100.7", 5, kT0)});
  again.push_back({Batch(2), Failures("198.51.100.8", 10, kT0)});
  std::vector<absl::StatusOr<IngestResult>> r =
      correlator_->IngestMany(std::move(again));
  ASSERT_TRUE(r[0].ok()) << r[0].status();
  ASSERT_TRUE(r[1].ok()) << r[1].status();
  EXPECT_EQ(r[1]->new_bans, 1u);
  ASSERT_THAT(publisher_.published, SizeIs(1));
  EXPECT_EQ(publisher_.published[0].revision, 1u);
}

TEST_F(CorrelatorOverlapTest, AdminCallWaitsForGroupsInFlight) {
  gated_.HoldNextCommit();
  std::vector<absl::StatusOr<IngestResult>> a;
  std::atomic<bool> a_done{false};
  std::vector<IngestBatch> first;
  first.push_back({Batch(1), Failures("198.51.100.7", 10, kT0)});  // ban, r1
  std::thread ta = Start(std::move(first), &a, &a_done);
  ASSERT_TRUE(gated_.WaitForCommitsEntered(1, absl::Seconds(30)));
  std::atomic<bool> admin_done{false};
  absl::StatusOr<Ban> manual;
  std::thread admin([&] {
    manual = correlator_->AddBan(Prefix("203.0.113.0/24"), absl::Hours(1),
                                 "manual", "test");
    admin_done.store(true);
  });
  EXPECT_FALSE(gated_.WaitForCommitsEntered(2, absl::Milliseconds(200)));
  EXPECT_FALSE(admin_done.load());
  gated_.ReleaseHeld();
  ta.join();
  admin.join();
  ASSERT_TRUE(a[0].ok()) << a[0].status();
  ASSERT_TRUE(manual.ok()) << manual.status();
  ASSERT_THAT(publisher_.published, SizeIs(2));
  EXPECT_EQ(publisher_.published[0].revision, 1u);
  EXPECT_EQ(publisher_.published[1].revision, 2u);
  EXPECT_EQ(publisher_.published[1].ban.prefix, Prefix("203.0.113.0/24"));
}

TEST_F(CorrelatorTest, InvalidPolicyIsRejectedAtCreation) {
  CorrelatorOptions o = Options();
  o.policy.half_life = absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<Correlator>> c =
      Correlator::Create(o, store_, clock_, publisher_);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("half_life"));
}

}  // namespace
}  // namespace rampart::server
