#include "server/core/ban_distributor.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromUnixSeconds(1709719200);

JournalEntry Entry(uint64_t rev, const char* prefix,
                   JournalEntry::Op op = JournalEntry::Op::kAdd,
                   absl::Time at = kT0) {
  return JournalEntry{.revision = rev,
                      .op = op,
                      .ban = Ban{.id = rev,
                                 .prefix = *IpPrefix::FromString(prefix),
                                 .created = at,
                                 .expires = at + absl::Hours(1)},
                      .at = at};
}

std::vector<uint64_t> Revisions(const std::vector<JournalEntry>& v) {
  std::vector<uint64_t> out;
  for (const auto& e : v) out.push_back(e.revision);
  return out;
}

class BanDistributorTest : public ::testing::Test {
 protected:
  SimulatedClock clock_{kT0};
  BanDistributor d_{BanDistributor::Options{.journal_window = 5}, clock_};
};

TEST_F(BanDistributorTest, ExactDeltaWhileJournaledElseSnapshot) {
  for (uint64_t r = 1; r <= 8; ++r) {
    d_.Publish(
        {Entry(r, r % 2 ? "198.51.100.1" : "203.0.113.0/24",
               r == 8 ? JournalEntry::Op::kRemove : JournalEntry::Op::kAdd)});
  }
  EXPECT_EQ(d_.revision(), 8u);
  // Window holds revisions 4..8: an agent at 3..7 gets the exact delta.
  CatchUpPlan p = d_.PlanFor(6);
  EXPECT_EQ(p.kind, CatchUpPlan::Kind::kDelta);
  EXPECT_THAT(Revisions(p.delta), ElementsAre(7, 8));
  p = d_.PlanFor(3);
  EXPECT_EQ(p.kind, CatchUpPlan::Kind::kDelta);
  EXPECT_THAT(Revisions(p.delta), ElementsAre(4, 5, 6, 7, 8));
  // Older than the window: snapshot of what is active now (r8 removed the
  // /24, leaving the host ban of r7).
  p = d_.PlanFor(2);
  EXPECT_EQ(p.kind, CatchUpPlan::Kind::kSnapshot);
  ASSERT_THAT(p.snapshot, SizeIs(1));
  EXPECT_EQ(p.snapshot[0].ban.prefix.ToString(), "198.51.100.1");
  EXPECT_EQ(p.snapshot[0].revision, 7u);
  // A fresh agent, and one "from the future" (restored database): snapshot.
  EXPECT_EQ(d_.PlanFor(0).kind, CatchUpPlan::Kind::kSnapshot);
  EXPECT_EQ(d_.PlanFor(99).kind, CatchUpPlan::Kind::kSnapshot);
  EXPECT_EQ(d_.PlanFor(8).kind, CatchUpPlan::Kind::kUpToDate);
}

TEST_F(BanDistributorTest, SnapshotLeavesOutExpiredBans) {
  d_.Publish({Entry(1, "198.51.100.1"), Entry(2, "198.51.100.2")});
  clock_.Advance(absl::Hours(2));
  d_.Publish({Entry(3, "198.51.100.3", JournalEntry::Op::kAdd, clock_.Now())});
  CatchUpPlan p = d_.PlanFor(0);
  ASSERT_THAT(p.snapshot, SizeIs(1));
  EXPECT_EQ(p.snapshot[0].ban.prefix.ToString(), "198.51.100.3");
}

TEST_F(BanDistributorTest, ConnectedAgentsReceiveNewEntries) {
  std::vector<uint64_t> a, b;
  const uint64_t ha = d_.Connect("mail1", [&](const auto& e) {
    for (const auto& x : e) a.push_back(x.revision);
  });
  d_.Connect("mail2", [&](const auto& e) {
    for (const auto& x : e) b.push_back(x.revision);
  });
  d_.Publish({Entry(1, "198.51.100.1"), Entry(2, "198.51.100.2")});
  d_.Disconnect(ha);
  d_.Publish({Entry(3, "198.51.100.3")});
  EXPECT_THAT(a, ElementsAre(1, 2));
  EXPECT_THAT(b, ElementsAre(1, 2, 3));
}

TEST_F(BanDistributorTest, LagAndLiveOn) {
  d_.Connect("mail1", nullptr);
  d_.Connect("mail2", nullptr);
  d_.Publish({Entry(1, "198.51.100.1", JournalEntry::Op::kAdd, kT0)});
  clock_.Advance(absl::Seconds(30));
  d_.Publish({Entry(2, "198.51.100.2", JournalEntry::Op::kAdd, clock_.Now())});
  d_.ReportEnforced("mail1", 2);
  d_.ReportEnforced("mail2", 0);
  clock_.Advance(absl::Seconds(10));
  std::vector<AgentStatus> agents = d_.Agents();
  ASSERT_THAT(agents, SizeIs(2));
  EXPECT_EQ(agents[0].agent_id, "mail1");
  EXPECT_EQ(agents[0].lag_revisions, 0u);
  EXPECT_EQ(agents[0].lag_time, absl::ZeroDuration());
  EXPECT_EQ(agents[1].lag_revisions, 2u);
  EXPECT_EQ(agents[1].lag_time, absl::Seconds(40));
  EXPECT_EQ(d_.LiveOn(2), std::make_pair(1, 2));
  d_.ReportEnforced("mail2", 2);
  EXPECT_EQ(d_.LiveOn(2), std::make_pair(2, 2));
  // A report beyond what exists is clamped.
  d_.ReportEnforced("mail2", 1000);
  EXPECT_EQ(d_.Agents()[1].enforced_revision, 2u);
}

TEST_F(BanDistributorTest, ResetFromStoreAndIgnoreReplays) {
  d_.Reset(10, {VersionedBan{Entry(9, "198.51.100.9").ban, 9}},
           {Entry(9, "198.51.100.9"),
            Entry(10, "198.51.100.10", JournalEntry::Op::kRemove)});
  EXPECT_EQ(d_.revision(), 10u);
  d_.Publish({Entry(10, "198.51.100.10")});  // stale replay: ignored
  EXPECT_THAT(d_.Active(), SizeIs(1));
  EXPECT_EQ(d_.PlanFor(8).kind, CatchUpPlan::Kind::kDelta);
  EXPECT_EQ(d_.PlanFor(7).kind, CatchUpPlan::Kind::kSnapshot);
  EXPECT_THAT(d_.PlanFor(10).delta, IsEmpty());
}

TEST(BanDistributorLimitsTest, HugeDeltaBecomesSnapshot) {
  SimulatedClock clock(kT0);
  BanDistributor d(
      BanDistributor::Options{.journal_window = 100000, .max_delta = 100},
      clock);
  std::vector<JournalEntry> many;
  for (uint64_t r = 1; r <= 500; ++r) {
    many.push_back(Entry(r, "198.51.100.1"));
  }
  d.Publish(many);
  EXPECT_EQ(d.PlanFor(450).kind, CatchUpPlan::Kind::kDelta);
  EXPECT_EQ(d.PlanFor(300).kind, CatchUpPlan::Kind::kSnapshot);
}

}  // namespace
}  // namespace rampart::server
