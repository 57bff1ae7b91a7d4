#include "server/core/detector.h"

#include <random>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());

IpAddress Ip(const char* s) { return *IpAddress::Parse(s); }
IpPrefix Prefix(const char* s) { return *IpPrefix::FromString(s); }

AuthEvent Failure(const char* ip, absl::Time t, const char* server = "mail1",
                  const char* user = "admin",
                  EventKind kind = EventKind::kAuthFailure) {
  return AuthEvent{.agent_id = server,
                   .kind = kind,
                   .protocol = Protocol::kSmtp,
                   .ip = Ip(ip),
                   .user = user,
                   .time = t};
}

// No jitter, round numbers: base 30 min, x4, cap 30 days.
Policy TestPolicy() {
  Policy p;
  p.ban_jitter = 0;
  return p;
}

// Feeds `n` failures from `ip`, one every `gap`, starting at *t (advanced).
Decisions Feed(Detector& d, const char* ip, int n, absl::Time* t,
               absl::Duration gap, const char* server = "mail1") {
  Decisions out;
  for (int i = 0; i < n; ++i) {
    d.Observe(Failure(ip, *t, server), *t, true, &out);
    *t += gap;
  }
  return out;
}

TEST(DetectorTest, ThresholdBansAtTheTenthFailure) {
  Detector d(TestPolicy());
  absl::Time t = kT0;
  Decisions out = Feed(d, "198.51.100.7", 9, &t, absl::ZeroDuration());
  EXPECT_THAT(out.journal, IsEmpty());
  EXPECT_NEAR(d.Explain(Ip("198.51.100.7"), t).score, 9, 1e-9);
  out = Feed(d, "198.51.100.7", 1, &t, absl::ZeroDuration());
  ASSERT_THAT(out.journal, SizeIs(1));
  const Ban& ban = out.journal[0].ban;
  EXPECT_EQ(out.journal[0].op, JournalEntry::Op::kAdd);
  EXPECT_EQ(out.journal[0].revision, 1u);
  EXPECT_EQ(ban.prefix.ToString(), "198.51.100.7");
  EXPECT_EQ(ban.origin, BanOrigin::kAuto);
  EXPECT_EQ(ban.level, 0);
  EXPECT_EQ(ban.expires - ban.created, absl::Minutes(30));
  EXPECT_THAT(ban.reason, HasSubstr("1 server(s): mail1"));
  EXPECT_TRUE(d.CoveringBan(Ip("198.51.100.7"), t).has_value());
}

TEST(DetectorTest, ScoresDecayWithTheHalfLife) {
  Detector d(TestPolicy());
  absl::Time t = kT0;
  Feed(d, "198.51.100.7", 8, &t, absl::ZeroDuration());
  EXPECT_NEAR(d.Explain(Ip("198.51.100.7"), t).score, 8, 1e-9);
  EXPECT_NEAR(d.Explain(Ip("198.51.100.7"), t + absl::Minutes(30)).score, 4,
              1e-9);
  EXPECT_NEAR(d.Explain(Ip("198.51.100.7"), t + absl::Minutes(60)).score, 2,
              1e-9);
  // 8 failures, an hour of quiet, then 7 more: 2 + 7 = 9 < 10, no ban.
  t += absl::Minutes(60);
  Decisions out = Feed(d, "198.51.100.7", 7, &t, absl::ZeroDuration());
  EXPECT_THAT(out.journal, IsEmpty());
  out = Feed(d, "198.51.100.7", 1, &t, absl::ZeroDuration());
  EXPECT_THAT(out.journal, SizeIs(1));
}

TEST(DetectorTest, LateEventsCountWithTheirAge) {
  Detector d(TestPolicy());
  Decisions out;
  // An event an hour old (spooled by an agent) weighs 1/4 at arrival.
  d.Observe(Failure("198.51.100.7", kT0 - absl::Minutes(60)), kT0, true, &out);
  EXPECT_NEAR(d.Explain(Ip("198.51.100.7"), kT0).score, 0.25, 1e-9);
  // Events "from the future" (agent clock ahead) count as now.
  d.Observe(Failure("198.51.100.7", kT0 + absl::Hours(5)), kT0, true, &out);
  EXPECT_NEAR(d.Explain(Ip("198.51.100.7"), kT0).score, 1.25, 1e-9);
}

// Failures (one every `gap`) until the first ban, spreading them round-robin
// over `servers`; 0 if none within `limit`.
int FailuresUntilBan(int servers, absl::Duration gap, int limit = 200) {
  Detector d(TestPolicy());
  const char* names[] = {"mail1", "mail2", "hub", "app1", "app2", "app3"};
  absl::Time t = kT0;
  for (int i = 1; i <= limit; ++i) {
    Decisions out;
    d.Observe(Failure("203.0.113.9", t, names[i % servers]), t, true, &out);
    if (!out.journal.empty()) {
      return i;
    }
    t += gap;
  }
  return 0;
}

TEST(DetectorTest, AttackSpreadOverServersIsBannedAtLeastAsFast) {
  for (absl::Duration gap :
       {absl::Seconds(5), absl::Minutes(2), absl::Minutes(4)}) {
    const int single = FailuresUntilBan(1, gap);
    const int spread = FailuresUntilBan(4, gap);
    SCOPED_TRACE(absl::FormatDuration(gap));
    ASSERT_GT(spread, 0);
    EXPECT_LE(spread, 5);
    if (single != 0) {
      EXPECT_LT(spread, single);
    }
  }
  // A slow attack (one failure every 6 minutes) never reaches the threshold
  // on one server (steady state 1 / (1 - 2^(-6/30)) = 7.7) but is banned
  // at the 5th failure when spread over 4 servers.
  EXPECT_EQ(FailuresUntilBan(1, absl::Minutes(6)), 0);
  EXPECT_EQ(FailuresUntilBan(4, absl::Minutes(6)), 5);
}

TEST(DetectorTest, BanReasonNamesTheServers) {
  Detector d(TestPolicy());
  Decisions out;
  for (const char* server : {"mail1", "mail2", "hub", "app1", "mail1"}) {
    d.Observe(Failure("203.0.113.9", kT0, server), kT0, true, &out);
  }
  ASSERT_THAT(out.journal, SizeIs(1));
  EXPECT_THAT(out.journal[0].ban.reason,
              HasSubstr("4 server(s): app1, hub, mail1, mail2"));
}

TEST(DetectorTest, ServersOutsideTheWindowDoNotMultiply) {
  Detector d(TestPolicy());
  Decisions out;
  d.Observe(Failure("203.0.113.9", kT0, "mail1"), kT0, true, &out);
  const absl::Time later = kT0 + absl::Hours(2);  // window is 1 h
  d.Observe(Failure("203.0.113.9", later, "mail2"), later, true, &out);
  EXPECT_EQ(d.Explain(Ip("203.0.113.9"), later).servers_in_window, 1);
  // 1/16 (decayed) + 1 (not multiplied by 2).
  EXPECT_NEAR(d.Explain(Ip("203.0.113.9"), later).score, 1.0625, 1e-9);
}

TEST(DetectorTest, BansEscalateAndHistoryFades) {
  Policy p = TestPolicy();
  p.ban_max = absl::Hours(24);
  Detector d(p);
  absl::Time t = kT0;
  const absl::Duration want[] = {absl::Minutes(30), absl::Hours(2),
                                 absl::Hours(8), absl::Hours(24),
                                 absl::Hours(24)};
  for (int n = 0; n < 5; ++n) {
    Decisions out = Feed(d, "198.51.100.7", 10, &t, absl::ZeroDuration());
    ASSERT_THAT(out.journal, SizeIs(1)) << n;
    EXPECT_EQ(out.journal[0].ban.level, n);
    EXPECT_EQ(out.journal[0].ban.expires - out.journal[0].ban.created, want[n])
        << n;
    t = out.journal[0].ban.expires + absl::Seconds(1);
    d.Expire(t);
  }
  // Level 4 ended at t. Two clean weeks forgive two levels: next is 5-2 = 3.
  t += absl::Hours(24 * 14);
  EXPECT_EQ(d.Explain(Ip("198.51.100.7"), t).next_ban_level, 3);
  Decisions out = Feed(d, "198.51.100.7", 10, &t, absl::ZeroDuration());
  ASSERT_THAT(out.journal, SizeIs(1));
  EXPECT_EQ(out.journal[0].ban.level, 3);
  // Long enough clean: back to a first offence.
  t = out.journal[0].ban.expires + absl::Hours(24 * 7 * 10);
  d.Expire(t);
  EXPECT_EQ(d.Explain(Ip("198.51.100.7"), t).next_ban_level, 0);
}

TEST(DetectorTest, JitterIsBoundedAndDeterministic) {
  Policy p;  // jitter 0.1
  Detector a(p), b(p);
  absl::Time ta = kT0, tb = kT0;
  Decisions da = Feed(a, "198.51.100.7", 10, &ta, absl::ZeroDuration());
  Decisions db = Feed(b, "198.51.100.7", 10, &tb, absl::ZeroDuration());
  ASSERT_THAT(da.journal, SizeIs(1));
  const absl::Duration len =
      da.journal[0].ban.expires - da.journal[0].ban.created;
  EXPECT_GE(len, absl::Minutes(27));
  EXPECT_LE(len, absl::Minutes(33));
  EXPECT_EQ(da.journal, db.journal);
}

TEST(DetectorTest, Ipv4PrefixIsBannedAfterKBadAddresses) {
  Detector d(TestPolicy());
  absl::Time t = kT0;
  Feed(d, "198.51.100.1", 10, &t, absl::ZeroDuration());
  Feed(d, "198.51.100.2", 10, &t, absl::ZeroDuration());
  // Third address only scoring (5 >= 0.5 * 10), not banned yet.
  Decisions out = Feed(d, "198.51.100.3", 5, &t, absl::ZeroDuration());
  ASSERT_THAT(out.journal, SizeIs(1));
  EXPECT_EQ(out.journal[0].ban.prefix.ToString(), "198.51.100.0/24");
  EXPECT_EQ(out.journal[0].ban.origin, BanOrigin::kPrefix);
  EXPECT_THAT(out.journal[0].ban.reason,
              HasSubstr("198.51.100.1, 198.51.100.2, 198.51.100.3"));
  // Now the whole /24 is covered, and a new address there is not banned
  // again on its own.
  EXPECT_TRUE(d.CoveringBan(Ip("198.51.100.200"), t).has_value());
  out = Feed(d, "198.51.100.3", 10, &t, absl::ZeroDuration());
  EXPECT_THAT(out.journal, IsEmpty());
}

TEST(DetectorTest, Ipv6IsScoredPerSlash64AndWidensTo48) {
  Detector d(TestPolicy());
  absl::Time t = kT0;
  // Rotating addresses inside one /64 share one score.
  Decisions out;
  for (int i = 1; i <= 10; ++i) {
    const std::string ip = "2001:db8:1:1::" + std::to_string(i);
    d.Observe(Failure(ip.c_str(), t), t, true, &out);
  }
  ASSERT_THAT(out.journal, SizeIs(1));
  EXPECT_EQ(out.journal[0].ban.prefix.ToString(), "2001:db8:1:1::/64");
  // Two more bad /64s in the same /56 → the /56, as soon as the third one
  // is scoring (its own /64 ban is then covered).
  Feed(d, "2001:db8:1:2::1", 10, &t, absl::ZeroDuration());
  out = Feed(d, "2001:db8:1:3::1", 10, &t, absl::ZeroDuration());
  ASSERT_THAT(out.journal, SizeIs(1));
  EXPECT_EQ(out.journal[0].ban.prefix.ToString(), "2001:db8:1::/56");
  // Two more bad /56s in the same /48 (three bad /64s each) → the /48.
  for (const char* slash56 : {"2001:db8:1:1", "2001:db8:1:2"}) {
    for (const char* sub : {"01", "02", "03"}) {
      const std::string ip = std::string(slash56) + sub + "::1";
      out = Feed(d, ip.c_str(), 10, &t, absl::ZeroDuration());
    }
  }
  ASSERT_THAT(out.journal, SizeIs(2));
  EXPECT_EQ(out.journal[0].ban.prefix.ToString(), "2001:db8:1:200::/56");
  EXPECT_EQ(out.journal[1].ban.prefix.ToString(), "2001:db8:1::/48");
  EXPECT_THAT(
      out.journal[1].ban.reason,
      HasSubstr("3 blocks in 2001:db8:1::/48 banned or scoring within 24h: "
                "2001:db8:1::/56, 2001:db8:1:100::/56, "
                "2001:db8:1:200::/56"));
  EXPECT_TRUE(d.CoveringBan(Ip("2001:db8:1:ffff::1"), t).has_value());
  EXPECT_FALSE(d.CoveringBan(Ip("2001:db8:2::1"), t).has_value());
}

TEST(DetectorTest, AllowlistWinsOverAnyScore) {
  Detector d(TestPolicy());
  d.PutAllow({.prefix = Prefix("192.0.2.0/28"), .comment = "admins"});
  absl::Time t = kT0;
  Decisions out = Feed(d, "192.0.2.5", 500, &t, absl::ZeroDuration());
  EXPECT_THAT(out.journal, IsEmpty());
  EXPECT_GT(d.Explain(Ip("192.0.2.5"), t).score, 100);
  EXPECT_TRUE(d.Explain(Ip("192.0.2.5"), t).allowed_by.has_value());
  // A /24 that would contain allowlisted hosts is never banned either.
  Feed(d, "192.0.2.100", 10, &t, absl::ZeroDuration());
  Feed(d, "192.0.2.101", 10, &t, absl::ZeroDuration());
  out = Feed(d, "192.0.2.102", 10, &t, absl::ZeroDuration());
  ASSERT_THAT(out.journal, SizeIs(1));
  EXPECT_EQ(out.journal[0].ban.prefix.ToString(), "192.0.2.102");
  EXPECT_FALSE(d.CoveringBan(Ip("192.0.2.5"), t).has_value());
  // Manual bans cannot override the allowlist.
  absl::StatusOr<Ban> manual =
      d.AddBan(Prefix("192.0.2.0/24"), t + absl::Hours(1), BanOrigin::kManual,
               "test", "alice", t, &out);
  EXPECT_EQ(manual.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(manual.status().message()), HasSubstr("admins"));
}

TEST(DetectorTest, ExpiredAllowEntryNoLongerProtects) {
  Detector d(TestPolicy());
  d.PutAllow(
      {.prefix = Prefix("192.0.2.5"), .expires = kT0 + absl::Minutes(5)});
  absl::Time t = kT0 + absl::Minutes(10);
  Decisions out = Feed(d, "192.0.2.5", 10, &t, absl::ZeroDuration());
  EXPECT_THAT(out.journal, SizeIs(1));
}

TEST(DetectorTest, AccountUnderAttackFromManyAddresses) {
  Detector d(TestPolicy());
  Decisions out;
  absl::Time t = kT0;
  for (int i = 1; i <= 5; ++i) {
    const std::string ip = "203.0.113." + std::to_string(i);
    d.Observe(Failure(ip.c_str(), t, i % 2 ? "mail1" : "mail2", "  J.Doe "), t,
              true, &out);
    t += absl::Minutes(1);
  }
  ASSERT_THAT(out.accounts, SizeIs(1));
  const AccountAttack& a = out.accounts[0];
  EXPECT_EQ(a.user, "j.doe");
  EXPECT_EQ(a.distinct_ips, 5);
  EXPECT_EQ(a.distinct_servers, 2);
  EXPECT_EQ(a.failures, 5);
  EXPECT_THAT(a.servers, ElementsAre("mail1", "mail2"));
  EXPECT_THAT(a.sample_ips, SizeIs(5));
  // No address is banned for it: one failure each.
  EXPECT_THAT(out.journal, IsEmpty());
}

TEST(DetectorTest, AccountUnderAttackFromManyServers) {
  Detector d(TestPolicy());
  Decisions out;
  for (const char* s : {"mail1", "mail2", "hub"}) {
    d.Observe(Failure("203.0.113.1", kT0, s, "ceo"), kT0, true, &out);
  }
  ASSERT_THAT(out.accounts, SizeIs(1));
  EXPECT_EQ(out.accounts[0].distinct_servers, 3);
}

TEST(DetectorTest, SuccessAfterFailuresRaisesACompromiseAlert) {
  Detector d(TestPolicy());
  absl::Time t = kT0;
  Feed(d, "198.51.100.7", 3, &t, absl::Seconds(10));
  Decisions out;
  AuthEvent ok =
      Failure("198.51.100.7", t, "mail1", "jdoe", EventKind::kAuthSuccess);
  d.Observe(ok, t, true, &out);
  ASSERT_THAT(out.alerts, SizeIs(1));
  EXPECT_EQ(out.alerts[0].user, "jdoe");
  EXPECT_EQ(out.alerts[0].recent_failures, 3);
  EXPECT_THAT(out.alerts[0].evidence,
              HasSubstr("3 failure(s) from 198.51.100.7"));
  // A success from a clean address is no alert.
  Decisions clean;
  d.Observe(Failure("192.0.2.50", t, "mail1", "jdoe", EventKind::kAuthSuccess),
            t, true, &clean);
  EXPECT_THAT(clean.alerts, IsEmpty());
  // Failures older than the lookback no longer count.
  Decisions late;
  const absl::Time much_later = t + absl::Hours(25);
  ok.time = much_later;
  d.Observe(ok, much_later, true, &late);
  EXPECT_THAT(late.alerts, IsEmpty());
}

TEST(DetectorTest, SuccessFromCleanAddressWhileAccountUnderAttack) {
  Detector d(TestPolicy());
  Decisions out;
  for (int i = 1; i <= 5; ++i) {
    const std::string ip = "203.0.113." + std::to_string(i);
    d.Observe(Failure(ip.c_str(), kT0, "mail1", "ceo"), kT0, true, &out);
  }
  Decisions alert;
  d.Observe(Failure("192.0.2.77", kT0 + absl::Minutes(1), "mail2", "CEO",
                    EventKind::kAuthSuccess),
            kT0 + absl::Minutes(1), true, &alert);
  ASSERT_THAT(alert.alerts, SizeIs(1));
  EXPECT_TRUE(alert.alerts[0].account_under_attack);
}

TEST(DetectorTest, ManualBanExtendAndUnbanForgives) {
  Detector d(TestPolicy());
  Decisions out;
  absl::StatusOr<Ban> b =
      d.AddBan(Prefix("203.0.113.0/24"), kT0 + absl::Hours(1),
               BanOrigin::kManual, "abuse report", "alice", kT0, &out);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(d.AddBan(Prefix("203.0.113.0/24"), kT0 + absl::Minutes(30),
                     BanOrigin::kManual, "x", "alice", kT0, &out)
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(d.AddBan(Prefix("203.0.113.0/24"), kT0 + absl::Hours(3),
                       BanOrigin::kManual, "longer", "bob", kT0, &out)
                  .ok());
  absl::Time t = kT0;
  Feed(d, "198.51.100.7", 9, &t, absl::ZeroDuration());
  absl::StatusOr<Ban> auto_ban =
      d.AddBan(Prefix("198.51.100.7"), t + absl::Hours(1), BanOrigin::kManual,
               "m", "alice", t, &out);
  ASSERT_TRUE(auto_ban.ok());
  ASSERT_TRUE(
      d.RemoveBan(Prefix("198.51.100.7"), "false positive", "alice", t, &out)
          .ok());
  EXPECT_EQ(d.Explain(Ip("198.51.100.7"), t).score, 0);  // forgiven
  EXPECT_EQ(d.RemoveBan(Prefix("198.51.100.7"), "again", "alice", t, &out)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  ASSERT_THAT(out.journal, SizeIs(4));
  EXPECT_EQ(out.journal[1].op, JournalEntry::Op::kUpdate);
  EXPECT_EQ(out.journal[1].ban.actor, "bob");
  EXPECT_EQ(out.journal[3].op, JournalEntry::Op::kRemove);
  for (size_t i = 0; i < out.journal.size(); ++i) {
    EXPECT_EQ(out.journal[i].revision, i + 1);
  }
}

TEST(DetectorTest, NonActionableAndContextEventsNeverScore) {
  Detector d(TestPolicy());
  Decisions out;
  AuthEvent no_ip = Failure("198.51.100.7", kT0);
  no_ip.ip.reset();
  for (int i = 0; i < 100; ++i) {
    d.Observe(no_ip, kT0, true, &out);
    d.Observe(Failure("198.51.100.8", kT0, "mail1", "", EventKind::kConnect),
              kT0, true, &out);
    d.Observe(Failure("198.51.100.9", kT0, "mail1", "", EventKind::kTlsFailure),
              kT0, true, &out);
  }
  EXPECT_THAT(out.journal, IsEmpty());
  EXPECT_EQ(d.tracked_keys(), 0u);
}

TEST(DetectorTest, ExpireDropsIdleState) {
  Detector d(TestPolicy());
  absl::Time t = kT0;
  Feed(d, "198.51.100.7", 3, &t, absl::ZeroDuration());
  EXPECT_EQ(d.tracked_keys(), 1u);
  EXPECT_EQ(d.tracked_accounts(), 1u);
  d.Expire(t + absl::Hours(48));
  EXPECT_EQ(d.tracked_keys(), 0u);
  EXPECT_EQ(d.tracked_accounts(), 0u);
}

// Property: random event streams never produce a ban that overlaps an
// allowlisted range, and replaying the journal reproduces the active list.
TEST(DetectorPropertyTest, RandomStreamsRespectAllowlistAndJournalReplays) {
  const unsigned seed = ::testing::UnitTest::GetInstance()->random_seed();
  std::mt19937_64 rng(seed);
  const std::vector<IpPrefix> allow = {Prefix("198.51.100.0/26"),
                                       Prefix("203.0.113.77"),
                                       Prefix("2001:db8:0:5::/64")};
  for (int round = 0; round < 20; ++round) {
    Policy p;
    p.prefix_k = 2 + static_cast<int>(rng() % 3);
    p.ban_threshold = 3 + static_cast<double>(rng() % 8);
    Detector d(p);
    for (const IpPrefix& a : allow) {
      d.PutAllow({.prefix = a, .comment = "prop"});
    }
    Decisions all;
    absl::Time t = kT0;
    for (int i = 0; i < 3000; ++i) {
      std::string ip;
      if (rng() % 3 == 0) {
        ip = "2001:db8:0:" + std::to_string(rng() % 8) +
             "::" + std::to_string(1 + rng() % 50);
      } else {
        ip = (rng() % 2 ? "198.51.100." : "203.0.113.") +
             std::to_string(rng() % 256);
      }
      const char* servers[] = {"a", "b", "c", "d"};
      d.Observe(
          Failure(ip.c_str(), t, servers[rng() % 4],
                  rng() % 2 ? "admin" : "info",
                  rng() % 10 ? EventKind::kAuthFailure : EventKind::kLockout),
          t, true, &all);
      if (rng() % 50 == 0) {
        // Occasionally an admin unban.
        const auto active = d.ActiveBans(t);
        if (!active.empty()) {
          ASSERT_TRUE(d.RemoveBan(active[rng() % active.size()].prefix, "p",
                                  "prop", t, &all)
                          .ok());
        }
      }
      t += absl::Seconds(static_cast<int64_t>(rng() % 120));
    }
    // Allowlist property.
    for (const JournalEntry& e : all.journal) {
      for (const IpPrefix& a : allow) {
        EXPECT_FALSE(a.Contains(e.ban.prefix) || e.ban.prefix.Contains(a))
            << "seed " << seed << " banned " << e.ban.prefix.ToString();
      }
    }
    // Journal replay property.
    absl::flat_hash_map<IpPrefix, Ban> replay;
    uint64_t rev = 0;
    for (const JournalEntry& e : all.journal) {
      ASSERT_EQ(e.revision, ++rev) << "seed " << seed;
      if (e.op == JournalEntry::Op::kRemove) {
        replay.erase(e.ban.prefix);
      } else {
        replay[e.ban.prefix] = e.ban;
      }
    }
    std::vector<Ban> replayed;
    for (const auto& [prefix, ban] : replay) {
      if (ban.ActiveAt(t)) {
        replayed.push_back(ban);
      }
    }
    std::sort(replayed.begin(), replayed.end(),
              [](const Ban& a, const Ban& b) { return a.id < b.id; });
    std::vector<Ban> active = d.ActiveBans(t);
    // The journal carries the ban as of its last change; removal reasons are
    // not part of the active list, so compare identities and expiries.
    ASSERT_EQ(replayed.size(), active.size()) << "seed " << seed;
    for (size_t i = 0; i < active.size(); ++i) {
      EXPECT_EQ(replayed[i].id, active[i].id);
      EXPECT_EQ(replayed[i].prefix, active[i].prefix);
      EXPECT_EQ(replayed[i].expires, active[i].expires);
    }
  }
}

// --- Memory budget (issue 16 item 5) ----------------------------------------

// A distinct documentation IPv6 /64 (one score key each) for flood event i.
std::string FloodAddress(int i) {
  return absl::StrFormat("2001:db8:%x:%x::1", (i >> 16) & 0xffff, i & 0xffff);
}

AuthEvent FloodFailure(int i, absl::Time t, const char* agent = "flood") {
  const std::string user = absl::StrFormat("user%d", i);
  return AuthEvent{.agent_id = agent,
                   .kind = EventKind::kAuthFailure,
                   .protocol = Protocol::kImap,
                   .ip = Ip(FloodAddress(i).c_str()),
                   .user = user,
                   .time = t};
}

// Score and account entries were keyed by any address and user name an
// attacker sends, with no global cap. With caps, a flood of distinct keys
// evicts the lowest decayed scores, memory stays within the caps, and a real
// attack interleaved in the flood is still banned.
TEST(DetectorTest, MemoryBudgetEvictsTheLowestScoresAndStillBans) {
  constexpr size_t kCap = 1000;
  Detector d(TestPolicy(), DetectorLimits{.max_score_entries = kCap,
                                          .max_account_entries = kCap});
  absl::Time t = kT0;
  Decisions out;
  for (int i = 0; i < 20'000; ++i) {
    d.Observe(FloodFailure(i, t), t, true, &out);
    if (i % 20 == 0) {  // the real attack: one failure every 20 flood events
      d.Observe(Failure("203.0.113.66", t, "mail1", "Administrator"), t, true,
                &out);
    }
    ASSERT_LE(d.tracked_keys(), kCap) << i;
    ASSERT_LE(d.tracked_accounts(), kCap) << i;
    t += absl::Seconds(1);
  }
  EXPECT_GE(d.stats().score_evictions, 19'000u - kCap);
  EXPECT_GE(d.stats().account_evictions, 19'000u - kCap);
  EXPECT_EQ(d.stats().score_keys_refused, 0u);
  // The attacker is banned (and banned again as its bans lapse); no flood
  // address (one failure each) ever is.
  ASSERT_FALSE(out.journal.empty());
  for (const JournalEntry& j : out.journal) {
    EXPECT_EQ(j.ban.prefix.ToString(), "203.0.113.66") << j.ban.reason;
  }
  // Its account, under heavy attack, survived every eviction.
  EXPECT_GT(d.Explain(Ip("203.0.113.66"), t).events, 0u);
}

TEST(DetectorTest, NewKeysPerAgentMinuteAreCapped) {
  Detector d(TestPolicy(), DetectorLimits{.agent_new_keys_per_minute = 100});
  absl::Time t = kT0;
  Decisions out;
  for (int i = 0; i < 1000; ++i) {  // all within one minute
    d.Observe(FloodFailure(i, t), t, true, &out);
  }
  EXPECT_EQ(d.tracked_keys(), 100u);
  EXPECT_EQ(d.tracked_accounts(), 100u);
  EXPECT_EQ(d.stats().score_keys_refused, 900u);
  EXPECT_EQ(d.stats().account_keys_refused, 900u);
  // Another agent's new keys are its own budget; a known key still scores.
  out = Feed(d, "203.0.113.66", 10, &t, absl::ZeroDuration(), "mail1");
  ASSERT_THAT(out.journal, SizeIs(1));
  EXPECT_EQ(out.journal[0].ban.prefix.ToString(), "203.0.113.66");
  d.Observe(FloodFailure(5, t), t, true, &out);
  EXPECT_EQ(d.Explain(Ip(FloodAddress(5).c_str()), t).events, 2u);
  // The flood agent's budget is back the next minute.
  t += absl::Minutes(1);
  d.Observe(FloodFailure(5000, t), t, true, &out);
  EXPECT_EQ(d.tracked_keys(), 102u);
  // An event time in another minute does not buy a fresh budget: the rate
  // goes by the server's clock.
  for (int i = 0; i < 200; ++i) {
    d.Observe(FloodFailure(6000 + i, t - absl::Minutes(i)), t, true, &out);
  }
  EXPECT_EQ(d.tracked_keys(), 201u);
}

// Prefix evidence is keyed by attacker-chosen blocks too: an agent that
// scores five failures in each of many IPv6 /56s filled the ladder
// registries without bound. They share the score cap.
TEST(DetectorTest, PrefixEvidenceSharesTheScoreCap) {
  constexpr size_t kCap = 100;
  Detector d(TestPolicy(), DetectorLimits{.max_score_entries = kCap});
  absl::Time t = kT0;
  Decisions out;
  for (int i = 0; i < 1000; ++i) {
    // A distinct /48 (and so /56 and /64) each, five failures: bad member.
    const std::string ip = absl::StrFormat("2001:db8:%x::1", i);
    for (int k = 0; k < 5; ++k) {
      d.Observe(Failure(ip.c_str(), t), t, true, &out);
    }
    t += absl::Seconds(1);
  }
  EXPECT_LE(d.tracked_keys(), kCap);
  EXPECT_GE(d.stats().score_evictions, 2 * (1000 - kCap));
  EXPECT_THAT(out.journal, IsEmpty());
}
}  // namespace
}  // namespace rampart::server
