// Abuse limits in the domain core (docs/security.md "Abuse limits"): the
// per-agent event token bucket, protected addresses, the per-agent new-ban
// cap and the prefix-width limit of automatic bans.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/agent_rate_limiter.h"
#include "server/core/correlator.h"
#include "server/core/protected_addresses.h"
#include "server/store/in_memory_store.h"
#include "tests/fakes/flaky_store.h"

namespace rampart::server {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());

IpPrefix Prefix(const char* s) { return *IpPrefix::FromString(s); }

std::vector<AuthEvent> Failures(const std::string& ip, int n, absl::Time t,
                                const char* agent) {
  std::vector<AuthEvent> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(AuthEvent{.agent_id = agent,
                            .kind = EventKind::kAuthFailure,
                            .protocol = Protocol::kSmtp,
                            .ip = IpAddress::Parse(ip),
                            .user = "admin",
                            .time = t});
  }
  return out;
}

// --- AgentRateLimiter
// ----------------------------------------------------------

TEST(AgentRateLimiterTest, BucketRefillsAtTheRateAndAgentsAreIndependent) {
  AgentRateLimiter limiter({.events_per_second = 100, .burst = 1000});
  EXPECT_EQ(limiter.TryAcquire("flood", 1000, kT0), absl::ZeroDuration());
  // Empty now: 500 more need 5 s of refill; nothing is taken on refusal.
  EXPECT_EQ(limiter.TryAcquire("flood", 500, kT0), absl::Seconds(5));
  EXPECT_EQ(limiter.TryAcquire("flood", 500, kT0 + absl::Seconds(4)),
            absl::Seconds(1));
  EXPECT_EQ(limiter.TryAcquire("flood", 500, kT0 + absl::Seconds(5)),
            absl::ZeroDuration());
  // Another agent has its own full bucket.
  EXPECT_EQ(limiter.TryAcquire("quiet", 1000, kT0), absl::ZeroDuration());
  // A batch larger than the burst costs the whole burst (never starves).
  EXPECT_EQ(limiter.TryAcquire("big", 5000, kT0), absl::ZeroDuration());
  EXPECT_GT(limiter.TryAcquire("big", 1, kT0), absl::ZeroDuration());
}

TEST(AgentRateLimiterTest, TrackedAgentsStayBounded) {
  AgentRateLimiter limiter(
      {.events_per_second = 10, .burst = 10, .max_agents = 4});
  for (int i = 0; i < 100; ++i) {
    // Each agent's bucket is full again a second later and may be dropped.
    EXPECT_EQ(limiter.TryAcquire(absl::StrFormat("a%d", i), 10,
                                 kT0 + absl::Seconds(i)),
              absl::ZeroDuration());
  }
}

TEST(AgentRateLimiterTest, NewKeysAreRefusedWhileEveryTrackedOneIsBusy) {
  // A flood of distinct keys (admin auth keys buckets by source address)
  // must not grow the table when no tracked bucket has refilled.
  AgentRateLimiter limiter(
      {.events_per_second = 1, .burst = 10, .max_agents = 4});
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(limiter.TryAcquire(absl::StrFormat("k%d", i), 1, kT0),
              absl::ZeroDuration());
  }
  for (int i = 4; i < 1000; ++i) {
    EXPECT_GT(limiter.TryAcquire(absl::StrFormat("k%d", i), 1, kT0),
              absl::ZeroDuration());
  }
  EXPECT_EQ(limiter.TryAcquire("k0", 1, kT0), absl::ZeroDuration());
  // Once a tracked bucket is full again, it makes room.
  EXPECT_EQ(limiter.TryAcquire("k9999", 1, kT0 + absl::Seconds(2)),
            absl::ZeroDuration());
}

// --- ProtectedAddresses
// --------------------------------------------------------

TEST(ProtectedAddressesTest, LoopbackServerAndAgentAddresses) {
  ProtectedAddresses p({Prefix("192.0.2.1")});
  EXPECT_THAT(p.Overlap(Prefix("127.0.0.1")).value_or(""),
              HasSubstr("127.0.0.0/8"));
  EXPECT_TRUE(p.Overlap(Prefix("::1")).has_value());
  EXPECT_THAT(p.Overlap(Prefix("192.0.2.0/24")).value_or(""),
              HasSubstr("192.0.2.1"));
  EXPECT_FALSE(p.Overlap(Prefix("198.51.100.7")).has_value());
  ASSERT_TRUE(
      p.AgentConnected("mx1", *IpAddress::Parse("198.51.100.7"), {}, kT0).ok());
  EXPECT_THAT(p.Overlap(Prefix("198.51.100.0/24")).value_or(""),
              HasSubstr("agent mx1's address 198.51.100.7"));
  ASSERT_TRUE(p.AgentConnected("mx1", std::nullopt, {}, kT0).ok());
  EXPECT_FALSE(p.Overlap(Prefix("198.51.100.7")).has_value());
}

// --- Correlator with limits
// ------------------------------------------------------

class AbuseLimitsTest : public ::testing::Test {
 protected:
  std::unique_ptr<Correlator> Make(int bans_per_minute) {
    CorrelatorOptions o;
    o.policy.ban_jitter = 0;
    o.agent_new_bans_per_minute = bans_per_minute;
    o.protected_addresses = &protect_;
    absl::StatusOr<std::unique_ptr<Correlator>> c =
        Correlator::Create(o, store_, clock_, publisher_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  SimulatedClock clock_{kT0};
  InMemoryStore store_;
  RecordingPublisher publisher_;
  ProtectedAddresses protect_{{Prefix("203.0.113.1")}};
};

TEST_F(AbuseLimitsTest, ForgedFloodFromProtectedAddressesNeverBans) {
  ASSERT_TRUE(
      protect_
          .AgentConnected("mx2", *IpAddress::Parse("198.51.100.20"), {}, kT0)
          .ok());
  auto c = Make(/*bans_per_minute=*/0);
  // A compromised agent forges thousands of failures "from" the server, the
  // other agent and loopback.
  for (const char* ip : {"203.0.113.1", "198.51.100.20", "127.0.0.1", "::1"}) {
    absl::StatusOr<IngestResult> r =
        c->Ingest(std::nullopt, Failures(ip, 2000, kT0, "mx1"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->new_bans, 0u) << ip;
  }
  EXPECT_THAT(c->ActiveBans(), IsEmpty());
  EXPECT_GT(c->abuse_stats().bans_refused_protected, 0u);
  // Prefix aggregation cannot sneak a covering ban in either: three bad
  // neighbours of the server's /24 would make a /24 ban, which overlaps it.
  for (const char* ip : {"203.0.113.7", "203.0.113.8", "203.0.113.9"}) {
    ASSERT_TRUE(c->Ingest(std::nullopt, Failures(ip, 20, kT0, "mx1")).ok());
  }
  for (const Ban& b : c->ActiveBans()) {
    EXPECT_FALSE(b.prefix.Contains(*IpAddress::Parse("203.0.113.1")))
        << b.prefix.ToString();
  }
  // Ordinary offenders are still banned.
  absl::StatusOr<IngestResult> r =
      c->Ingest(std::nullopt, Failures("192.0.2.66", 20, kT0, "mx1"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->new_bans, 1u);
}

TEST_F(AbuseLimitsTest, OneAgentAloneCannotExceedItsNewBanCap) {
  auto c = Make(/*bans_per_minute=*/5);
  // mx1 alone reports 20 distinct offenders (one per /48 of the
  // documentation range, so no prefix aggregation kicks in).
  size_t bans = 0;
  for (int i = 0; i < 20; ++i) {
    const std::string ip = absl::StrFormat("2001:db8:%x::1", i);
    absl::StatusOr<IngestResult> r =
        c->Ingest(std::nullopt, Failures(ip, 20, kT0, "mx1"));
    ASSERT_TRUE(r.ok()) << r.status();
    bans += r->new_bans;
  }
  EXPECT_EQ(bans, 5u);
  // Every further attempt (each event past the threshold) is counted.
  EXPECT_GE(c->abuse_stats().bans_capped, 15u);
  // Another agent's bans are not affected by mx1's cap.
  absl::StatusOr<IngestResult> other =
      c->Ingest(std::nullopt, Failures("192.0.2.99", 20, kT0, "mx2"));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->new_bans, 1u);
  // Corroborated evidence (a second agent saw an offender mx1 reported) is
  // not "that agent alone": the withheld ban is made.
  absl::StatusOr<IngestResult> corroborated =
      c->Ingest(std::nullopt, Failures("2001:db8:13::1", 1, kT0, "mx2"));
  ASSERT_TRUE(corroborated.ok());
  EXPECT_EQ(corroborated->new_bans, 1u);
  // A minute later mx1 may cause new bans again.
  clock_.Advance(absl::Seconds(61));
  absl::StatusOr<IngestResult> later = c->Ingest(
      std::nullopt, Failures("2001:db8:12::1", 1, clock_.Now(), "mx1"));
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->new_bans, 1u);
}

TEST_F(AbuseLimitsTest, CorrelatorNeverAutoBansWiderThanSlash16) {
  CorrelatorOptions o;
  o.policy.ban_jitter = 0;
  o.policy.v6_ladder = {56, 24};  // a misconfigured rung
  o.policy.prefix_k = 2;
  absl::StatusOr<std::unique_ptr<Correlator>> c =
      Correlator::Create(o, store_, clock_, publisher_);
  ASSERT_TRUE(c.ok()) << c.status();
  for (const char* ip : {"2001:db8:0:0::1", "2001:db8:0:1::1",
                         "2001:db8:0:100::1", "2001:db8:0:101::1"}) {
    ASSERT_TRUE((*c)->Ingest(std::nullopt, Failures(ip, 20, kT0, "mx1")).ok());
  }
  for (const Ban& b : (*c)->ActiveBans()) {
    EXPECT_GE(b.prefix.length(), 32) << b.prefix.ToString();
  }
  EXPECT_GT((*c)->abuse_stats().bans_refused_broad, 0u);
}

}  // namespace
}  // namespace rampart::server
