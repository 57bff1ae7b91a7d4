#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "agent/firewall/dry_run_firewall.h"
#include "agent/firewall/enforced_state.h"
#include "agent/firewall/enforced_state_store.h"
#include "agent/firewall/enforcer.h"
#include "agent/firewall/host_address_source.h"
#include "agent/firewall/network_address_source.h"
#include "agent/firewall/prefix_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::agent {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAreArray;

IpPrefix P(std::string_view text) { return *IpPrefix::FromString(text); }
IpAddress A(std::string_view text) { return *IpAddress::FromString(text); }

const absl::Time kT0 = absl::FromUnixSeconds(1767225600);  // 2026-01-01

// An in-memory backend that records calls, checks the Firewall contract's
// REQUIRES (non-overlapping, unexpired) and can be told to fail.
class RecordingFirewall final : public Firewall {
 public:
  explicit RecordingFirewall(Clock& clock) : clock_(clock) {}

  std::string_view Name() const override { return "recording"; }
  absl::Status Install() override {
    ++installs;
    return absl::OkStatus();
  }
  absl::Status ApplySnapshot(
      const std::vector<FirewallEntry>& entries) override {
    ++snapshots;
    if (fail_snapshots > 0) {
      --fail_snapshots;
      return absl::UnavailableError("injected snapshot failure");
    }
    set.clear();
    for (const FirewallEntry& e : entries) {
      CheckUnexpired(e);
      EXPECT_TRUE(set.emplace(e.prefix, e.expires).second)
          << "duplicate " << e.prefix.ToString();
    }
    CheckNoOverlap();
    return absl::OkStatus();
  }
  absl::Status ApplyDelta(const std::vector<FirewallEntry>& adds,
                          const std::vector<IpPrefix>& removes) override {
    deltas.push_back({adds, removes});
    if (fail_deltas > 0) {
      --fail_deltas;
      return absl::UnavailableError("injected delta failure");
    }
    for (const IpPrefix& p : removes) {
      set.erase(p);
    }
    for (const FirewallEntry& e : adds) {
      CheckUnexpired(e);
      set.try_emplace(e.prefix, e.expires);
    }
    CheckNoOverlap();
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<FirewallEntry>> ListEnforced() override {
    if (fail_list) {
      return absl::FailedPreconditionError("injected listing failure");
    }
    return Entries();
  }
  absl::Status RemoveAll() override {
    ++remove_alls;
    set.clear();
    return absl::OkStatus();
  }

  std::vector<FirewallEntry> Entries() const {
    std::vector<FirewallEntry> out;
    for (const auto& [p, e] : set) {
      out.push_back({p, e});
    }
    return out;
  }
  std::vector<IpPrefix> Prefixes() const {
    std::vector<IpPrefix> out;
    for (const auto& [p, e] : set) {
      out.push_back(p);
    }
    return out;
  }

  struct Delta {
    std::vector<FirewallEntry> adds;
    std::vector<IpPrefix> removes;
  };
  absl::btree_map<IpPrefix, std::optional<absl::Time>> set;
  std::vector<Delta> deltas;
  int installs = 0;
  int snapshots = 0;
  int remove_alls = 0;
  int fail_deltas = 0;
  int fail_snapshots = 0;
  bool fail_list = false;

 private:
  void CheckUnexpired(const FirewallEntry& e) const {
    if (e.expires.has_value()) {
      EXPECT_GT(*e.expires, clock_.Now())
          << "expired entry passed: " << e.prefix.ToString();
    }
  }
  void CheckNoOverlap() const {
    const IpPrefix* prev[2] = {nullptr, nullptr};
    for (const auto& [p, e] : set) {
      const IpPrefix*& last = prev[FamilyIndex(p.address())];
      if (last != nullptr) {
        EXPECT_FALSE(last->Contains(p))
            << last->ToString() << " overlaps " << p.ToString();
      }
      if (last == nullptr || !last->Contains(p)) {
        last = &p;
      }
    }
  }
  Clock& clock_;
};

class EnforcerTest : public ::testing::Test {
 protected:
  EnforcerTest()
      : clock_(kT0),
        firewall_(clock_),
        host_({A("192.0.2.1")}),
        guard_(GuardOptions{.allowlist = {P("198.51.100.128/25")}}, &host_) {}

  std::unique_ptr<Enforcer> Make(EnforcerOptions options = {}) {
    absl::StatusOr<std::unique_ptr<Enforcer>> e =
        Enforcer::Create(options, firewall_, guard_, clock_, metrics_);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? std::move(*e) : nullptr;
  }

  uint64_t CounterValue(std::string_view name, const metrics::Labels& labels) {
    return metrics_.GetCounter(name, "", labels).Value();
  }

  SimulatedClock clock_;
  RecordingFirewall firewall_;
  StaticHostAddressSource host_;
  Guard guard_;
  metrics::Registry metrics_;
};

BanItem Ban(uint64_t id, std::string_view prefix,
            std::optional<absl::Duration> ttl = std::nullopt) {
  BanItem b{.id = id, .prefix = P(prefix)};
  if (ttl.has_value()) {
    b.expires = kT0 + *ttl;
  }
  return b;
}

BanChange Add(BanItem item) { return {BanChange::Op::kAdd, item}; }
BanChange Remove(uint64_t id) {
  return {BanChange::Op::kRemove, BanItem{.id = id}};
}
BanChange Update(BanItem item) { return {BanChange::Op::kUpdate, item}; }

TEST_F(EnforcerTest, SnapshotInstallsAMergedNonOverlappingSet) {
  auto e = Make();
  ASSERT_TRUE(e->Start().ok());
  absl::StatusOr<ApplyReport> r = e->ApplySnapshot(
      7, 100,
      {Ban(1, "198.51.100.7"), Ban(2, "203.0.113.0/24", absl::Hours(1)),
       Ban(3, "203.0.113.9"), Ban(4, "203.0.113.0/24", absl::Hours(3)),
       Ban(5, "2001:db8::/32"), Ban(6, "2001:db8:1::/48"),
       Ban(7, "2001:db8:5::7", absl::Minutes(5))});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->epoch, 7u);
  EXPECT_EQ(r->revision, 100u);
  EXPECT_EQ(r->installed, 3u);
  EXPECT_THAT(r->refused, IsEmpty());
  EXPECT_THAT(
      firewall_.Entries(),
      ElementsAre(FirewallEntry{P("198.51.100.7"), std::nullopt},
                  FirewallEntry{P("203.0.113.0/24"), kT0 + absl::Hours(3)},
                  FirewallEntry{P("2001:db8::/32"), std::nullopt}));
  EXPECT_EQ(e->InstalledForTest(), firewall_.Entries());
  EXPECT_EQ(e->NextWakeup(), kT0 + absl::Minutes(5));
}

TEST_F(EnforcerTest, SnapshotRejectsRepeatedIdsWithoutChangingAnything) {
  auto e = Make();
  ASSERT_TRUE(e->ApplySnapshot(1, 1, {Ban(1, "198.51.100.7")}).ok());
  absl::StatusOr<ApplyReport> r =
      e->ApplySnapshot(1, 2, {Ban(5, "198.51.100.8"), Ban(5, "198.51.100.9")});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->ListRevision(), std::make_pair(uint64_t{1}, uint64_t{1}));
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("198.51.100.7")));
}

TEST_F(EnforcerTest, ExpiredItemsOfASnapshotAreNotInstalled) {
  auto e = Make();
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(e->ApplySnapshot(1, 1,
                               {Ban(1, "198.51.100.7", absl::Hours(1)),
                                Ban(2, "198.51.100.8", absl::Hours(3))})
                  .ok());
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("198.51.100.8")));
}

TEST_F(EnforcerTest, DeltaTouchesOnlyWhatChanged) {
  auto e = Make();
  std::vector<BanItem> items;
  for (uint32_t i = 0; i < 1000; ++i) {
    items.push_back({.id = i + 1,
                     .prefix = IpPrefix::Host(IpAddress::V4(0xC6120000u + i))});
  }
  ASSERT_TRUE(e->ApplySnapshot(1, 10, items).ok());
  firewall_.deltas.clear();
  absl::StatusOr<ApplyReport> r =
      e->ApplyDelta(1, 10, 11, {Add(Ban(5000, "203.0.113.7")), Remove(3)});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->revision, 11u);
  ASSERT_THAT(firewall_.deltas, SizeIs(1));
  EXPECT_THAT(firewall_.deltas[0].adds,
              ElementsAre(FirewallEntry{P("203.0.113.7"), std::nullopt}));
  EXPECT_THAT(firewall_.deltas[0].removes, ElementsAre(P("198.18.0.2")));
  EXPECT_EQ(firewall_.snapshots, 1);
  EXPECT_EQ(r->installed, 1000u);
}

TEST_F(EnforcerTest, WidePrefixShadowsAndThenUncoversNarrowerOnes) {
  auto e = Make();
  ASSERT_TRUE(e->ApplySnapshot(1, 1,
                               {Ban(1, "203.0.113.9"), Ban(2, "203.0.113.10"),
                                Ban(3, "203.0.114.1")})
                  .ok());
  firewall_.deltas.clear();
  ASSERT_TRUE(e->ApplyDelta(1, 1, 2, {Add(Ban(4, "203.0.113.0/24"))}).ok());
  ASSERT_THAT(firewall_.deltas, SizeIs(1));
  EXPECT_THAT(firewall_.deltas[0].removes,
              ElementsAre(P("203.0.113.9"), P("203.0.113.10")));
  EXPECT_THAT(firewall_.deltas[0].adds,
              ElementsAre(FirewallEntry{P("203.0.113.0/24"), std::nullopt}));
  EXPECT_THAT(firewall_.Prefixes(),
              ElementsAre(P("203.0.113.0/24"), P("203.0.114.1")));

  ASSERT_TRUE(e->ApplyDelta(1, 2, 3, {Remove(4)}).ok());
  EXPECT_THAT(
      firewall_.Prefixes(),
      ElementsAre(P("203.0.113.9"), P("203.0.113.10"), P("203.0.114.1")));
  // Removing a covered prefix changes nothing in the backend.
  ASSERT_TRUE(e->ApplyDelta(1, 3, 4, {Add(Ban(5, "203.0.0.0/16"))}).ok());
  const size_t deltas_before = firewall_.deltas.size();
  ASSERT_TRUE(e->ApplyDelta(1, 4, 5, {Remove(1)}).ok());
  EXPECT_EQ(firewall_.deltas.size(), deltas_before);
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("203.0.0.0/16")));
}

TEST_F(EnforcerTest, UpdateReplacesTheExpiryAndMayMoveThePrefix) {
  auto e = Make();
  ASSERT_TRUE(
      e->ApplySnapshot(1, 1, {Ban(1, "198.51.100.7", absl::Hours(1))}).ok());
  firewall_.deltas.clear();
  ASSERT_TRUE(
      e->ApplyDelta(1, 1, 2, {Update(Ban(1, "198.51.100.7", absl::Hours(5)))})
          .ok());
  ASSERT_THAT(firewall_.deltas, SizeIs(1));
  EXPECT_THAT(firewall_.deltas[0].removes, ElementsAre(P("198.51.100.7")));
  EXPECT_THAT(
      firewall_.Entries(),
      ElementsAre(FirewallEntry{P("198.51.100.7"), kT0 + absl::Hours(5)}));
  ASSERT_TRUE(e->ApplyDelta(1, 2, 3, {Update(Ban(1, "198.51.100.8"))}).ok());
  EXPECT_THAT(firewall_.Entries(),
              ElementsAre(FirewallEntry{P("198.51.100.8"), std::nullopt}));
  // Adding an existing id replaces it too; an unknown removal is ignored.
  ASSERT_TRUE(
      e->ApplyDelta(1, 3, 4, {Add(Ban(1, "198.51.100.9")), Remove(77)}).ok());
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("198.51.100.9")));
}

TEST_F(EnforcerTest, DeltaPreconditions) {
  auto e = Make();
  EXPECT_EQ(e->ApplyDelta(1, 0, 1, {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(e->ApplySnapshot(1, 5, {}).ok());
  EXPECT_EQ(e->ApplyDelta(2, 5, 6, {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(e->ApplyDelta(1, 4, 6, {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(e->ApplyDelta(1, 5, 5, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(e->ApplyDelta(1, 5, 9, {}).ok());
  EXPECT_EQ(e->ListRevision(), std::make_pair(uint64_t{1}, uint64_t{9}));
}

TEST_F(EnforcerTest, GuardRefusalsAreReportedCountedAndNeverInstalled) {
  auto e = Make();
  ASSERT_TRUE(e->Start().ok());
  absl::StatusOr<ApplyReport> r = e->ApplySnapshot(
      1, 1,
      {Ban(1, "192.0.2.0/24"), Ban(2, "198.51.100.200"), Ban(3, "127.0.0.1"),
       Ban(4, "198.51.100.7"), Ban(5, "0.0.0.0/0")});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("198.51.100.7")));
  ASSERT_THAT(r->refused, SizeIs(4));
  EXPECT_EQ(r->refused[0].id, 1u);
  EXPECT_EQ(r->refused[0].refusal.reason, GuardReason::kHostAddress);
  EXPECT_EQ(r->refused[1].refusal.reason, GuardReason::kAllowlist);
  EXPECT_EQ(r->refused[2].refusal.reason, GuardReason::kLoopback);
  EXPECT_EQ(r->refused[3].id, 5u);
  EXPECT_EQ(CounterValue("rampart_agent_firewall_guard_refused_total",
                         {{"reason", "allowlist"}}),
            1u);
  EXPECT_EQ(CounterValue("rampart_agent_firewall_guard_refused_total",
                         {{"reason", "host_address"}}),
            1u);
  // A refused /0 must not shadow anything: 198.51.100.7 stays installed.
  // Removing a refused ban clears its report.
  r = e->ApplyDelta(1, 1, 2, {Remove(1), Remove(5)});
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->refused, SizeIs(2));
}

TEST_F(EnforcerTest, RepairReevaluatesTheGuardWhenHostAddressesChange) {
  struct Mutable : HostAddressSource {
    absl::StatusOr<std::vector<IpAddress>> HostAddresses() override {
      return addrs;
    }
    std::vector<IpAddress> addrs;
  } host;
  Guard guard(GuardOptions{}, &host);
  auto made = Enforcer::Create({}, firewall_, guard, clock_, metrics_);
  ASSERT_TRUE(made.ok());
  Enforcer& e = **made;
  ASSERT_TRUE(e.Start().ok());
  ASSERT_TRUE(e.ApplySnapshot(1, 1, {Ban(1, "203.0.113.0/24")}).ok());
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("203.0.113.0/24")));
  host.addrs = {A("203.0.113.50")};  // the host got an address in the ban
  absl::StatusOr<RepairReport> rep = e.Repair();
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->removed, 1u);
  EXPECT_THAT(firewall_.Prefixes(), IsEmpty());
  host.addrs = {};
  rep = e.Repair();
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->added, 1u);
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("203.0.113.0/24")));
}

// Issue 16 item 7: a list from a hostile or broken server cannot block more
// than the agent's caps, nor ranges wider than its minimum prefix, nor the
// host's gateway / resolvers; each refusal is counted (and logged).
TEST_F(EnforcerTest, CapsTheTotalNumberOfBlockedAddresses) {
  // 256 + 256 + 1 IPv4 addresses fit under 600; the next /24 does not.
  auto e = Make(EnforcerOptions{.max_blocked_ipv4_addresses = 600,
                                .max_blocked_ipv6_subnets = 2});
  ASSERT_TRUE(e->Start().ok());
  absl::StatusOr<ApplyReport> r =
      e->ApplySnapshot(1, 1,
                       {Ban(1, "203.0.113.0/24"), Ban(2, "203.0.112.0/24"),
                        Ban(3, "198.51.100.7"), Ban(4, "198.51.101.0/24"),
                        Ban(5, "2001:db8:1::/64"), Ban(6, "2001:db8:2::/64"),
                        Ban(7, "2001:db8:3::/64"), Ban(8, "2001:db8:4::1")});
  ASSERT_TRUE(r.ok()) << r.status();
  // IPv6 counts /64s (a /128 is one): two fit, the third and fourth not.
  ASSERT_THAT(r->refused, SizeIs(3));
  EXPECT_EQ(r->refused[0].id, 4u);
  EXPECT_EQ(r->refused[0].refusal.reason, GuardReason::kCapacity);
  EXPECT_EQ(r->refused[0].refusal.ToString(),
            "would block more than the agent's cap of 600 IPv4 addresses");
  EXPECT_EQ(r->refused[1].id, 7u);
  EXPECT_EQ(r->refused[2].id, 8u);
  EXPECT_EQ(r->refused[2].refusal.ToString(),
            "would block more than the agent's cap of 2 IPv6 /64 subnets");
  EXPECT_EQ(CounterValue("rampart_agent_firewall_guard_refused_total",
                         {{"reason", "capacity"}}),
            3u);
  EXPECT_THAT(firewall_.Prefixes(), Not(Contains(P("198.51.101.0/24"))));
  EXPECT_THAT(firewall_.Prefixes(), Contains(P("203.0.113.0/24")));

  // Room comes back when bans go; the next repair enforces what now fits.
  ASSERT_TRUE(e->ApplyDelta(1, 1, 2, {Remove(1)}).ok());
  absl::StatusOr<RepairReport> rep = e->Repair();
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_THAT(firewall_.Prefixes(), Contains(P("198.51.101.0/24")));
  EXPECT_THAT(firewall_.Prefixes(), Not(Contains(P("203.0.113.0/24"))));
}

TEST_F(EnforcerTest, RefusesTooWideBansAndTheGatewayWithoutFailing) {
  struct Net : NetworkAddressSource {
    absl::StatusOr<std::vector<IpAddress>> DefaultGateways() override {
      return std::vector<IpAddress>{A("203.0.113.1")};
    }
    absl::StatusOr<std::vector<IpAddress>> DnsResolvers() override {
      return std::vector<IpAddress>{A("198.51.100.53")};
    }
  } net;
  Guard guard(GuardOptions{}, &host_, &net);
  auto made = Enforcer::Create({}, firewall_, guard, clock_, metrics_);
  ASSERT_TRUE(made.ok());
  Enforcer& e = **made;
  ASSERT_TRUE(e.Start().ok());
  absl::StatusOr<ApplyReport> r =
      e.ApplySnapshot(1, 1,
                      {Ban(1, "0.0.0.0/0"), Ban(2, "10.0.0.0/8"),
                       Ban(3, "::/0"), Ban(4, "203.0.113.0/24"),
                       Ban(5, "198.51.100.53"), Ban(6, "198.51.100.7")});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("198.51.100.7")));
  ASSERT_THAT(r->refused, SizeIs(5));
  EXPECT_EQ(r->refused[0].refusal.reason, GuardReason::kTooWide);
  EXPECT_EQ(r->refused[1].refusal.reason, GuardReason::kTooWide);
  EXPECT_EQ(r->refused[2].refusal.reason, GuardReason::kTooWide);
  EXPECT_EQ(r->refused[3].refusal.reason, GuardReason::kGateway);
  EXPECT_EQ(r->refused[4].refusal.reason, GuardReason::kDnsResolver);
  EXPECT_EQ(CounterValue("rampart_agent_firewall_guard_refused_total",
                         {{"reason", "too_wide"}}),
            3u);
  EXPECT_EQ(CounterValue("rampart_agent_firewall_guard_refused_total",
                         {{"reason", "gateway"}}),
            1u);
  EXPECT_EQ(CounterValue("rampart_agent_firewall_guard_refused_total",
                         {{"reason", "dns_resolver"}}),
            1u);
}

TEST_F(EnforcerTest, RefreshExpiresAndUncoversLongerLivedBans) {
  auto e = Make();
  ASSERT_TRUE(e->ApplySnapshot(1, 1,
                               {Ban(1, "203.0.113.0/24", absl::Minutes(10)),
                                Ban(2, "203.0.113.9", absl::Hours(2)),
                                Ban(3, "198.51.100.7", absl::Minutes(30))})
                  .ok());
  EXPECT_THAT(firewall_.Prefixes(),
              ElementsAre(P("198.51.100.7"), P("203.0.113.0/24")));
  EXPECT_EQ(e->NextWakeup(), kT0 + absl::Minutes(10));
  clock_.Advance(absl::Minutes(9));
  ASSERT_TRUE(e->Refresh().ok());
  EXPECT_THAT(firewall_.Prefixes(),
              ElementsAre(P("198.51.100.7"), P("203.0.113.0/24")));
  clock_.Advance(absl::Minutes(1));
  firewall_.deltas.clear();
  ASSERT_TRUE(e->Refresh().ok());
  ASSERT_THAT(firewall_.deltas, SizeIs(1));
  EXPECT_THAT(firewall_.deltas[0].removes, ElementsAre(P("203.0.113.0/24")));
  EXPECT_THAT(
      firewall_.deltas[0].adds,
      ElementsAre(FirewallEntry{P("203.0.113.9"), kT0 + absl::Hours(2)}));
  EXPECT_EQ(e->NextWakeup(), kT0 + absl::Minutes(30));
  clock_.Advance(absl::Hours(3));
  ASSERT_TRUE(e->Refresh().ok());
  EXPECT_THAT(firewall_.Prefixes(), IsEmpty());
  EXPECT_EQ(e->NextWakeup(), std::nullopt);
  // Nothing left: a further Refresh does not call the backend.
  const size_t deltas = firewall_.deltas.size();
  ASSERT_TRUE(e->Refresh().ok());
  EXPECT_EQ(firewall_.deltas.size(), deltas);
}

TEST_F(EnforcerTest, FailedDeltaFallsBackToASnapshot) {
  auto e = Make();
  ASSERT_TRUE(e->ApplySnapshot(1, 1, {Ban(1, "198.51.100.7")}).ok());
  firewall_.fail_deltas = 1;
  absl::StatusOr<ApplyReport> r =
      e->ApplyDelta(1, 1, 2, {Add(Ban(2, "198.51.100.8"))});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->fell_back_to_snapshot);
  EXPECT_EQ(firewall_.snapshots, 2);
  EXPECT_THAT(firewall_.Prefixes(),
              ElementsAre(P("198.51.100.7"), P("198.51.100.8")));
  EXPECT_EQ(CounterValue("rampart_agent_firewall_fallback_snapshots_total", {}),
            1u);
}

TEST_F(EnforcerTest, WhenEverythingFailsTheNextCallResynchronises) {
  auto e = Make();
  ASSERT_TRUE(e->ApplySnapshot(1, 1, {Ban(1, "198.51.100.7")}).ok());
  firewall_.fail_deltas = 1;
  firewall_.fail_snapshots = 1;
  absl::StatusOr<ApplyReport> r =
      e->ApplyDelta(1, 1, 2, {Add(Ban(2, "198.51.100.8"))});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  // The list advanced; the kernel did not. The next call re-applies all.
  EXPECT_EQ(e->ListRevision().second, 2u);
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("198.51.100.7")));
  ASSERT_TRUE(e->Refresh().ok());
  EXPECT_THAT(firewall_.Prefixes(),
              ElementsAre(P("198.51.100.7"), P("198.51.100.8")));
  EXPECT_EQ(CounterValue("rampart_agent_firewall_applies_total",
                         {{"kind", "delta"}, {"result", "error"}}),
            1u);
}

TEST_F(EnforcerTest, RepairFixesDriftInBothDirections) {
  DryRunFirewall dry(clock_);
  auto made = Enforcer::Create({}, dry, guard_, clock_, metrics_);
  ASSERT_TRUE(made.ok());
  Enforcer& e = **made;
  ASSERT_TRUE(e.Start().ok());
  ASSERT_TRUE(e.ApplySnapshot(1, 1,
                              {Ban(1, "198.51.100.7"), Ban(2, "198.51.100.8"),
                               Ban(3, "2001:db8::/64")})
                  .ok());
  absl::StatusOr<RepairReport> rep = e.Repair();
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->added + rep->removed, 0u);

  dry.EraseForTest(P("198.51.100.8"));
  dry.EraseForTest(P("2001:db8::/64"));
  dry.InsertForTest({P("203.0.113.66"), std::nullopt});
  rep = e.Repair();
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->added, 2u);
  EXPECT_EQ(rep->removed, 1u);
  EXPECT_FALSE(rep->full_resync);
  absl::StatusOr<std::vector<FirewallEntry>> now = dry.ListEnforced();
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(*now, e.InstalledForTest());
  EXPECT_EQ(CounterValue("rampart_agent_firewall_drift_repaired_total",
                         {{"direction", "added"}}),
            2u);
  EXPECT_EQ(CounterValue("rampart_agent_firewall_drift_repaired_total",
                         {{"direction", "removed"}}),
            1u);
}

TEST_F(EnforcerTest, RepairResnapshotsWhenTheBackendCannotBeListed) {
  auto e = Make();
  ASSERT_TRUE(e->ApplySnapshot(1, 1, {Ban(1, "198.51.100.7")}).ok());
  firewall_.set.clear();
  firewall_.fail_list = true;
  absl::StatusOr<RepairReport> rep = e->Repair();
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_TRUE(rep->full_resync);
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("198.51.100.7")));
  EXPECT_EQ(firewall_.installs, 1);  // Repair re-installs the rules
  EXPECT_EQ(CounterValue("rampart_agent_firewall_full_resyncs_total", {}), 1u);
}

class EnforcerStateTest : public EnforcerTest {
 protected:
  EnforcerStateTest()
      : dir_((std::filesystem::temp_directory_path() /
              ("rampart-fw-enforcer-" + std::to_string(::getpid())))
                 .string()) {}
  ~EnforcerStateTest() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(EnforcerStateTest, RestartReappliesTheLastEnforcedList) {
  {
    auto e = Make({.state_dir = dir_});
    ASSERT_TRUE(e->Start().ok());
    ASSERT_TRUE(e->ApplySnapshot(3, 40,
                                 {Ban(1, "198.51.100.7"),
                                  Ban(2, "203.0.113.0/24", absl::Hours(1))})
                    .ok());
    ASSERT_TRUE(
        e->ApplyDelta(3, 40, 41,
                      {Add(Ban(3, "2001:db8::/64", absl::Hours(2))), Remove(1)})
            .ok());
    ASSERT_TRUE(e->Stop().ok());
  }
  EXPECT_EQ(firewall_.remove_alls, 0);  // stopping leaves the rules
  const std::vector<FirewallEntry> before = firewall_.Entries();

  // A new process: fresh backend object, kernel state gone (worst case).
  RecordingFirewall fresh(clock_);
  clock_.Advance(absl::Minutes(90));  // the /24 expired while we were down
  auto made =
      Enforcer::Create({.state_dir = dir_}, fresh, guard_, clock_, metrics_);
  ASSERT_TRUE(made.ok());
  Enforcer& e = **made;
  EXPECT_EQ(e.ListRevision(), std::make_pair(uint64_t{3}, uint64_t{41}));
  ASSERT_TRUE(e.Start().ok());
  EXPECT_EQ(fresh.installs, 1);
  EXPECT_EQ(fresh.snapshots, 1);
  EXPECT_THAT(fresh.Prefixes(), ElementsAre(P("2001:db8::/64")));
  EXPECT_THAT(before, SizeIs(2));
  // It resumes with deltas from the saved revision.
  ASSERT_TRUE(e.ApplyDelta(3, 41, 42, {Add(Ban(4, "198.51.100.9"))}).ok());
  // Start() compacted nothing (the journal chained); the delta went to the
  // journal.
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/enforced-bans.state.journal"));
  EXPECT_EQ(e.Items().size(), 2u);  // the expired /24 was pruned at Start
  // ReadEnforcedState replays the journal too.
  absl::StatusOr<EnforcedState> saved = ReadEnforcedState(e.state_path());
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(saved->revision, 42u);
  // The /24 expired but is still listed until the next snapshot; a restart
  // prunes it again.
  EXPECT_THAT(saved->items, SizeIs(3));
}

TEST_F(EnforcerStateTest, StartWithoutStateLeavesTheBackendAlone) {
  firewall_.set[P("198.51.100.7")] = std::nullopt;  // from an earlier run
  auto e = Make({.state_dir = dir_});
  ASSERT_TRUE(e->Start().ok());
  EXPECT_EQ(firewall_.snapshots, 0);
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("198.51.100.7")));
  EXPECT_EQ(e->ListRevision(), std::make_pair(uint64_t{0}, uint64_t{0}));
}

TEST_F(EnforcerStateTest, RepairBeforeTheFirstListTouchesNoEntries) {
  firewall_.set[P("198.51.100.7")] = std::nullopt;  // from an earlier run
  auto e = Make({.state_dir = dir_});
  ASSERT_TRUE(e->Start().ok());
  absl::StatusOr<RepairReport> rep = e->Repair();
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->removed, 0u);
  EXPECT_EQ(firewall_.installs, 2);
  EXPECT_THAT(firewall_.Prefixes(), ElementsAre(P("198.51.100.7")));
}

TEST_F(EnforcerStateTest, CorruptStateStartsEmpty) {
  std::filesystem::create_directories(dir_);
  {
    std::ofstream f(dir_ + "/enforced-bans.state");
    f << "rampart-enforced-bans 1\nepoch 1\nrevision 9\ncount 1\n1 198.5";
  }
  auto e = Make({.state_dir = dir_});
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->ListRevision(), std::make_pair(uint64_t{0}, uint64_t{0}));
}

TEST_F(EnforcerStateTest, StopRemovesEverythingWhenConfigured) {
  auto e = Make({.state_dir = dir_, .remove_on_stop = true});
  ASSERT_TRUE(e->ApplySnapshot(1, 1, {Ban(1, "198.51.100.7")}).ok());
  ASSERT_TRUE(e->Stop().ok());
  EXPECT_EQ(firewall_.remove_alls, 1);
  EXPECT_THAT(firewall_.Prefixes(), IsEmpty());
  // The state file is kept: the next start re-applies the list.
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/enforced-bans.state"));
}

// The incremental derivation must always equal a from-scratch derivation:
// random snapshots, deltas (nested prefixes, duplicate prefixes, updates,
// removals) and clock advances, checked against a simple model.
TEST_F(EnforcerTest, RandomOperationsMatchAFromScratchModel) {
  std::mt19937_64 rng(::testing::UnitTest::GetInstance()->random_seed());
  auto e = Make();
  ASSERT_TRUE(e->Start().ok());
  std::map<uint64_t, BanItem> model;
  uint64_t revision = 1;
  ASSERT_TRUE(e->ApplySnapshot(1, revision, {}).ok());
  uint64_t next_id = 1;
  const std::vector<int> lengths = {16, 20, 24, 26, 28, 30, 32, 32, 32, 32};
  auto random_item = [&](uint64_t id) {
    // Addresses in 203.0.112.0/22 so prefixes nest often; a few in the
    // allowlist (198.51.100.128/25) and IPv6.
    BanItem b{.id = id};
    const int kind = static_cast<int>(rng() % 20);
    if (kind == 0) {
      b.prefix = IpPrefix::Host(IpAddress::V4(0xC6336480u + rng() % 128));
    } else if (kind == 1) {
      std::array<uint8_t, 16> bytes = {0x20, 0x01, 0x0d, 0xb8};
      bytes[6] = static_cast<uint8_t>(rng() % 4);
      bytes[15] = static_cast<uint8_t>(rng() % 4);
      const int len[] = {48, 56, 64, 128};
      b.prefix = IpPrefix::Of(IpAddress::V6(bytes), len[rng() % 4]);
    } else {
      b.prefix = IpPrefix::Of(IpAddress::V4(0xCB007000u + rng() % 1024),
                              lengths[rng() % lengths.size()]);
    }
    if (rng() % 3 != 0) {
      b.expires = clock_.Now() + absl::Seconds(1 + rng() % 600);
    }
    return b;
  };
  auto expected = [&] {
    // From scratch: unexpired, not refused, merged by prefix, uncovered.
    std::map<IpPrefix, std::optional<absl::Time>> merged;
    std::map<IpPrefix, bool> permanent;
    for (const auto& [id, b] : model) {
      if (b.expires.has_value() && *b.expires <= clock_.Now()) {
        continue;
      }
      if (guard_.Check(b.prefix).has_value()) {
        continue;
      }
      auto [it, fresh] = merged.try_emplace(b.prefix, b.expires);
      if (!fresh) {
        if (!b.expires.has_value() || !it->second.has_value()) {
          it->second.reset();
        } else {
          it->second = std::max(*it->second, *b.expires);
        }
      }
    }
    std::vector<FirewallEntry> out;
    for (const auto& [p, exp] : merged) {
      bool covered = false;
      for (const auto& [q, unused] : merged) {
        covered = covered || (q != p && q.Contains(p));
      }
      if (!covered) {
        out.push_back({p, exp});
      }
    }
    return out;
  };
  for (int step = 0; step < 400; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op == 0) {
      model.clear();
      std::vector<BanItem> items;
      const int n = static_cast<int>(rng() % 60);
      for (int i = 0; i < n; ++i) {
        BanItem b = random_item(next_id++);
        model[b.id] = b;
        items.push_back(b);
      }
      ASSERT_TRUE(e->ApplySnapshot(1, ++revision, items).ok());
    } else if (op <= 6) {
      std::vector<BanChange> changes;
      const int n = 1 + static_cast<int>(rng() % 8);
      for (int i = 0; i < n; ++i) {
        const int kind = static_cast<int>(rng() % 3);
        if (kind == 0 || model.empty()) {
          BanItem b = random_item(next_id++);
          changes.push_back(Add(b));
          model[b.id] = b;
        } else {
          auto it = model.begin();
          std::advance(it, static_cast<long>(rng() % model.size()));
          if (kind == 1) {
            changes.push_back(Remove(it->first));
            model.erase(it);
          } else {
            BanItem b = random_item(it->first);
            changes.push_back(Update(b));
            it->second = b;
          }
        }
      }
      const uint64_t from = revision;
      ASSERT_TRUE(e->ApplyDelta(1, from, ++revision, changes).ok());
    } else if (op == 7) {
      clock_.Advance(absl::Seconds(static_cast<int64_t>(rng() % 200)));
      ASSERT_TRUE(e->Refresh().ok());
    } else if (op == 8) {
      absl::StatusOr<RepairReport> rep = e->Repair();
      ASSERT_TRUE(rep.ok());
      EXPECT_EQ(rep->added + rep->removed, 0u) << "step " << step;
    } else {
      clock_.Advance(absl::Seconds(static_cast<int64_t>(rng() % 60)));
    }
    // Between Refresh calls expired entries may linger in the backend (the
    // kernel expires them); compare what is live now.
    std::vector<FirewallEntry> live;
    ASSERT_TRUE(e->Refresh().ok());
    for (const FirewallEntry& f : firewall_.Entries()) {
      live.push_back(f);
    }
    ASSERT_EQ(live, expected()) << "step " << step;
    ASSERT_EQ(e->InstalledForTest(), live) << "step " << step;
  }
}

}  // namespace
}  // namespace rampart::agent
