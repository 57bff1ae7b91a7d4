// IpsetFirewall: script rendering and `ipset save` parsing (no privileges),
// then real enforcement with ipset + iptables/ip6tables inside network
// namespaces the test creates (testing::TwoHostTopology). Needs root and
// the ipset and iptables packages; without them the namespace tests are
// skipped, except under CI (environment variable CI set), where they fail.

#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "agent/firewall/enforcer.h"
#include "agent/firewall/guard.h"
#include "agent/firewall/host_address_source.h"
#include "agent/firewall/ipset_firewall.h"
#include "agent/firewall/subprocess.h"
#include "agent/firewall/testing/netns.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::ScopedNetns;
using ::testing::UnorderedElementsAre;

IpPrefix P(std::string_view text) { return *IpPrefix::FromString(text); }

const absl::Time kT0 = absl::FromUnixSeconds(1767225600);

std::unique_ptr<IpsetFirewall> MakeFirewall(Clock& clock,
                                            IpsetOptions options = {}) {
  absl::StatusOr<std::unique_ptr<IpsetFirewall>> fw =
      IpsetFirewall::Create(options, clock);
  EXPECT_TRUE(fw.ok()) << fw.status();
  return fw.ok() ? std::move(*fw) : nullptr;
}

TEST(IpsetRenderTest, SnapshotFillsASpareSetAndSwaps) {
  SimulatedClock clock(kT0);
  auto fw = MakeFirewall(clock);
  EXPECT_EQ(
      fw->RenderSnapshot(
          {{P("198.51.100.7"), std::nullopt},
           {P("203.0.113.0/24"), kT0 + absl::Milliseconds(1500)},
           {P("192.0.2.1"), kT0},                              // expired
           {P("2001:db8::/64"), kT0 + absl::Hours(24 * 30)}},  // > ipset max
          kT0),
      "create rampart4 hash:net family inet maxelem 1048576 timeout 0\n"
      "create rampart6 hash:net family inet6 maxelem 1048576 timeout 0\n"
      "create rampart4-new hash:net family inet maxelem 1048576 timeout 0\n"
      "flush rampart4-new\n"
      "add rampart4-new 198.51.100.7/32 timeout 0\n"
      "add rampart4-new 203.0.113.0/24 timeout 2\n"
      "swap rampart4-new rampart4\n"
      "destroy rampart4-new\n"
      "create rampart6-new hash:net family inet6 maxelem 1048576 timeout 0\n"
      "flush rampart6-new\n"
      "add rampart6-new 2001:db8::/64 timeout 0\n"
      "swap rampart6-new rampart6\n"
      "destroy rampart6-new\n");
  EXPECT_EQ(fw->RenderDelta({{P("198.51.100.9"), kT0 + absl::Seconds(60)}},
                            {P("198.51.100.7"), P("2001:db8::/64")}, kT0),
            "del rampart4 198.51.100.7/32\n"
            "del rampart6 2001:db8::/64\n"
            "add rampart4 198.51.100.9/32 timeout 60\n");
}

TEST(IpsetRenderTest, RulesUseMultiportInGroupsOfFifteen) {
  SimulatedClock clock(kT0);
  auto all = MakeFirewall(clock);
  EXPECT_EQ(all->RenderRules(false),
            "*filter\n:RAMPART - [0:0]\n"
            "-A RAMPART -m set --match-set rampart4 src -j DROP\nCOMMIT\n");
  IpsetOptions options;
  options.ports.all_ports = false;
  for (uint16_t p = 1000; p < 1020; ++p) {
    options.ports.tcp_ports.push_back(p);
  }
  auto scoped = MakeFirewall(clock, options);
  const std::string rules = scoped->RenderRules(true);
  EXPECT_THAT(rules, HasSubstr("-A RAMPART -p tcp -m multiport --dports "
                               "1000,1001,1002,1003,1004,1005,1006,1007,1008,"
                               "1009,1010,1011,1012,1013,1014 -m set "
                               "--match-set rampart6 src -j DROP\n"));
  EXPECT_THAT(rules, HasSubstr("--dports 1015,1016,1017,1018,1019 -m set"));
}

TEST(IpsetParseTest, SaveOutputBecomesEntries) {
  SimulatedClock clock(kT0);
  auto fw = MakeFirewall(clock);
  absl::StatusOr<std::vector<FirewallEntry>> got = fw->ParseSave(
      "create rampart4 hash:net family inet hashsize 1024 maxelem 1048576 "
      "timeout 0 bucketsize 12 initval 0x268e6ed0\n"
      "add rampart4 203.0.113.5 timeout 9\n"
      "add rampart4 203.0.113.0/24 timeout 0\n",
      "rampart4", kT0);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(
      *got, ElementsAre(FirewallEntry{P("203.0.113.5"), kT0 + absl::Seconds(9)},
                        FirewallEntry{P("203.0.113.0/24"), std::nullopt}));
  EXPECT_EQ(fw->ParseSave("add rampart4 203.0.113.5 nomatch\n", "rampart4", kT0)
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(fw->ParseSave("add rampart4 2001:db8::1\n", "rampart4", kT0)
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(IpsetRenderTest, RejectsUnsafeNames) {
  SimulatedClock clock(kT0);
  EXPECT_FALSE(IpsetFirewall::Create({.set_v4 = "a b"}, clock).ok());
  EXPECT_FALSE(
      IpsetFirewall::Create({.set_v4 = "x", .set_v6 = "x"}, clock).ok());
  EXPECT_FALSE(IpsetFirewall::Create({.chain = "-j ACCEPT"}, clock).ok());
}

class IpsetNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = testing::NetnsUnavailableReason();
    for (const char* tool : {"ipset", "iptables", "ip6tables"}) {
      absl::StatusOr<CommandResult> r = RunCommand({tool, "--version"});
      if (why.empty() && (!r.ok() || r->exit_code != 0)) {
        why = std::string(tool) + " is not installed";
      }
    }
    if (!why.empty()) {
      if (std::getenv("CI") != nullptr) {
        FAIL() << "CI is set but the ipset namespace tests cannot run: " << why
               << " (scripts/install-deps.sh installs ipset and iptables)";
      }
      GTEST_SKIP() << why;
    }
    absl::StatusOr<std::unique_ptr<testing::TwoHostTopology>> topo =
        testing::TwoHostTopology::Create();
    ASSERT_TRUE(topo.ok()) << topo.status();
    topo_ = std::move(*topo);
    fw_ns_ = &topo_->fw();
    fw_ns_->Call([&] {
      firewall_ = MakeFirewall(RealClock::Get());
      guard_ = std::make_unique<Guard>(GuardOptions{}, &host_addresses_);
      absl::StatusOr<std::unique_ptr<Enforcer>> e =
          Enforcer::Create({}, *firewall_, *guard_, RealClock::Get(), metrics_);
      ASSERT_TRUE(e.ok()) << e.status();
      enforcer_ = std::move(*e);
      ASSERT_TRUE(enforcer_->Start().ok());
    });
  }

  void TearDown() override {
    if (topo_ != nullptr) {
      fw_ns_->Call([&] {
        enforcer_.reset();
        guard_.reset();
        firewall_.reset();
      });
    }
    topo_.reset();
  }

  bool Reachable(std::string_view src, int port = 25) {
    return topo_->Reachable(src, port);
  }

  std::unique_ptr<testing::TwoHostTopology> topo_;
  ScopedNetns* fw_ns_ = nullptr;
  IfaddrsHostAddressSource host_addresses_;
  metrics::Registry metrics_;
  std::unique_ptr<IpsetFirewall> firewall_;
  std::unique_ptr<Guard> guard_;
  std::unique_ptr<Enforcer> enforcer_;
};

TEST_F(IpsetNetnsTest, BansDropPacketsAndCidrsDropRanges) {
  absl::StatusOr<ApplyReport> r = fw_ns_->Call([&] {
    return enforcer_->ApplySnapshot(
        1, 1,
        {{.id = 1, .prefix = P("198.51.100.2")},
         {.id = 2, .prefix = P("203.0.113.0/24")},
         {.id = 3, .prefix = P("2001:db8:200::/64")}});
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(Reachable("198.51.100.2"));
  EXPECT_FALSE(Reachable("203.0.113.5"));
  EXPECT_FALSE(Reachable("203.0.113.200"));
  EXPECT_FALSE(Reachable("2001:db8:200::5"));
  EXPECT_TRUE(Reachable("198.51.100.3"));
  // A delta lifts one ban and adds another.
  r = fw_ns_->Call([&] {
    return enforcer_->ApplyDelta(
        1, 1, 2,
        {{BanChange::Op::kRemove, {.id = 2}},
         {BanChange::Op::kAdd, {.id = 4, .prefix = P("198.51.100.3")}}});
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(Reachable("203.0.113.5"));
  EXPECT_FALSE(Reachable("198.51.100.3"));
  absl::StatusOr<std::vector<FirewallEntry>> listed =
      fw_ns_->Call([&] { return firewall_->ListEnforced(); });
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(*listed,
              UnorderedElementsAre(
                  FirewallEntry{P("198.51.100.2"), std::nullopt},
                  FirewallEntry{P("198.51.100.3"), std::nullopt},
                  FirewallEntry{P("2001:db8:200::/64"), std::nullopt}));
}

TEST_F(IpsetNetnsTest, ExpiryAndDriftRepair) {
  const absl::Time expires = RealClock::Get().Now() + absl::Seconds(1);
  ASSERT_TRUE(
      fw_ns_
          ->Call([&] {
            return enforcer_->ApplySnapshot(
                1, 1,
                {{.id = 1, .prefix = P("198.51.100.2"), .expires = expires},
                 {.id = 2, .prefix = P("203.0.113.5")}});
          })
          .ok());
  EXPECT_FALSE(Reachable("198.51.100.2"));
  // Real kernel time (ipset's own element timeout): a bounded poll is the
  // only way to see it fire; the injected clock cannot reach the kernel.
  bool lifted = false;
  for (int i = 0; i < 30 && !lifted; ++i) {
    lifted = Reachable("198.51.100.2");
    if (!lifted) {
      ::usleep(200 * 1000);
    }
  }
  EXPECT_TRUE(lifted) << "ipset did not expire the entry";
  // Delete an entry behind the agent's back; Repair re-adds it.
  ASSERT_TRUE(RunCommandChecked({"ip", "netns", "exec", fw_ns_->name(), "ipset",
                                 "del", "rampart4", "203.0.113.5"})
                  .ok());
  EXPECT_TRUE(Reachable("203.0.113.5"));
  absl::StatusOr<RepairReport> rep =
      fw_ns_->Call([&] { return enforcer_->Repair(); });
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->added, 1u);
  EXPECT_FALSE(Reachable("203.0.113.5"));
  // The jump from INPUT deleted: Repair re-installs the rules.
  ASSERT_TRUE(RunCommandChecked({"ip", "netns", "exec", fw_ns_->name(),
                                 "iptables", "-D", "INPUT", "-j", "RAMPART"})
                  .ok());
  EXPECT_TRUE(Reachable("203.0.113.5"));
  ASSERT_TRUE(fw_ns_->Call([&] { return enforcer_->Repair(); }).ok());
  EXPECT_FALSE(Reachable("203.0.113.5"));
}

TEST_F(IpsetNetnsTest, RemoveAllCleansUp) {
  ASSERT_TRUE(fw_ns_
                  ->Call([&] {
                    return enforcer_->ApplySnapshot(
                        1, 1, {{.id = 1, .prefix = P("198.51.100.2")}});
                  })
                  .ok());
  ASSERT_TRUE(fw_ns_->Call([&] { return firewall_->RemoveAll(); }).ok());
  EXPECT_TRUE(Reachable("198.51.100.2"));
  absl::StatusOr<CommandResult> sets = RunCommand(
      {"ip", "netns", "exec", fw_ns_->name(), "ipset", "list", "-n"});
  ASSERT_TRUE(sets.ok());
  EXPECT_EQ(sets->output, "");
  // Idempotent.
  EXPECT_TRUE(fw_ns_->Call([&] { return firewall_->RemoveAll(); }).ok());
  absl::StatusOr<std::vector<FirewallEntry>> listed =
      fw_ns_->Call([&] { return firewall_->ListEnforced(); });
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace rampart::agent
