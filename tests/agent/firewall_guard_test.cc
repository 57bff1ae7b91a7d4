#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/firewall/guard.h"
#include "agent/firewall/host_address_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::agent {
namespace {

IpPrefix P(std::string_view text) { return *IpPrefix::FromString(text); }
IpAddress A(std::string_view text) { return *IpAddress::FromString(text); }

// A host address source whose answer a test can change or make fail.
class MutableHostAddresses final : public HostAddressSource {
 public:
  absl::StatusOr<std::vector<IpAddress>> HostAddresses() override {
    if (!status.ok()) {
      return status;
    }
    return addresses;
  }
  std::vector<IpAddress> addresses;
  absl::Status status;
};

std::optional<GuardReason> ReasonOf(const Guard& g, std::string_view prefix) {
  std::optional<GuardRefusal> r = g.Check(P(prefix));
  if (!r.has_value()) {
    return std::nullopt;
  }
  return r->reason;
}

TEST(GuardTest, RefusesSpecialRangesAndAnythingOverlappingThem) {
  Guard g(GuardOptions{}, nullptr);
  ASSERT_TRUE(g.RefreshHostAddresses().ok());
  EXPECT_EQ(ReasonOf(g, "127.0.0.1"), GuardReason::kLoopback);
  EXPECT_EQ(ReasonOf(g, "127.1.0.0/16"), GuardReason::kLoopback);
  EXPECT_EQ(ReasonOf(g, "::1"), GuardReason::kLoopback);
  EXPECT_EQ(ReasonOf(g, "0.0.0.0"), GuardReason::kUnspecified);
  EXPECT_EQ(ReasonOf(g, "::"), GuardReason::kUnspecified);
  EXPECT_EQ(ReasonOf(g, "169.254.7.7"), GuardReason::kLinkLocal);
  EXPECT_EQ(ReasonOf(g, "fe80::1"), GuardReason::kLinkLocal);
  EXPECT_EQ(ReasonOf(g, "224.0.0.251"), GuardReason::kMulticast);
  EXPECT_EQ(ReasonOf(g, "ff02::1"), GuardReason::kMulticast);
  EXPECT_EQ(ReasonOf(g, "255.255.255.255"), GuardReason::kMulticast);
  // Wide bans containing a special range are refused as a whole.
  EXPECT_EQ(ReasonOf(g, "0.0.0.0/0"), GuardReason::kUnspecified);
  EXPECT_EQ(ReasonOf(g, "96.0.0.0/3"), GuardReason::kLoopback);
  EXPECT_EQ(ReasonOf(g, "::/0"), GuardReason::kUnspecified);
  EXPECT_EQ(ReasonOf(g, "fe00::/7"), GuardReason::kLinkLocal);
  // Ordinary documentation addresses pass.
  EXPECT_EQ(ReasonOf(g, "198.51.100.7"), std::nullopt);
  EXPECT_EQ(ReasonOf(g, "203.0.113.0/24"), std::nullopt);
  EXPECT_EQ(ReasonOf(g, "2001:db8::/32"), std::nullopt);
  EXPECT_EQ(ReasonOf(g, "128.0.0.0/3"), std::nullopt);
  EXPECT_EQ(ReasonOf(g, "128.0.0.0/2"), GuardReason::kLinkLocal);
}

TEST(GuardTest, ProtectsHostServerAndAllowlistInBothDirections) {
  MutableHostAddresses host;
  host.addresses = {A("198.51.100.1"), A("2001:db8:1::1")};
  Guard g(GuardOptions{.allowlist = {P("203.0.113.0/28"), P("2001:db8:2::/48")},
                       .server_addresses = {A("192.0.2.10")}},
          &host);
  ASSERT_TRUE(g.RefreshHostAddresses().ok());

  EXPECT_EQ(ReasonOf(g, "198.51.100.1"), GuardReason::kHostAddress);
  EXPECT_EQ(ReasonOf(g, "198.51.100.0/24"), GuardReason::kHostAddress);
  EXPECT_EQ(ReasonOf(g, "2001:db8:1::/64"), GuardReason::kHostAddress);
  EXPECT_EQ(ReasonOf(g, "198.51.100.2"), std::nullopt);

  EXPECT_EQ(ReasonOf(g, "192.0.2.10"), GuardReason::kServerAddress);
  EXPECT_EQ(ReasonOf(g, "192.0.2.0/24"), GuardReason::kServerAddress);
  EXPECT_EQ(ReasonOf(g, "192.0.2.11"), std::nullopt);

  // Inside an allowlisted prefix, equal to it, or containing it.
  EXPECT_EQ(ReasonOf(g, "203.0.113.5"), GuardReason::kAllowlist);
  EXPECT_EQ(ReasonOf(g, "203.0.113.0/28"), GuardReason::kAllowlist);
  EXPECT_EQ(ReasonOf(g, "203.0.113.0/24"), GuardReason::kAllowlist);
  EXPECT_EQ(ReasonOf(g, "203.0.113.16/28"), std::nullopt);
  EXPECT_EQ(ReasonOf(g, "2001:db8:2:5::/64"), GuardReason::kAllowlist);

  const std::optional<GuardRefusal> r = g.Check(P("198.51.100.0/24"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ToString(), "overlaps host address 198.51.100.1");
  EXPECT_EQ(GuardReasonName(r->reason), "host_address");
}

TEST(GuardTest, FamiliesNeverMix) {
  Guard g(GuardOptions{.allowlist = {P("198.51.100.0/24")}}, nullptr);
  ASSERT_TRUE(g.RefreshHostAddresses().ok());
  // IPv4 is stored in mapped form; IPv6 prefixes must still never match it.
  EXPECT_EQ(ReasonOf(g, "2001:db8::/32"), std::nullopt);
}

TEST(GuardTest, RefreshFollowsTheHostAndKeepsTheOldListOnError) {
  MutableHostAddresses host;
  host.addresses = {A("198.51.100.1")};
  Guard g(GuardOptions{}, &host);
  // Before the first refresh no host address is known.
  EXPECT_EQ(ReasonOf(g, "198.51.100.1"), std::nullopt);
  ASSERT_TRUE(g.RefreshHostAddresses().ok());
  EXPECT_EQ(ReasonOf(g, "198.51.100.1"), GuardReason::kHostAddress);

  host.addresses = {A("198.51.100.9")};
  ASSERT_TRUE(g.RefreshHostAddresses().ok());
  EXPECT_EQ(ReasonOf(g, "198.51.100.1"), std::nullopt);
  EXPECT_EQ(ReasonOf(g, "198.51.100.9"), GuardReason::kHostAddress);

  host.status = absl::UnavailableError("netlink down");
  EXPECT_FALSE(g.RefreshHostAddresses().ok());
  EXPECT_EQ(ReasonOf(g, "198.51.100.9"), GuardReason::kHostAddress);
}

TEST(GuardTest, HostAddressesCanBeSwitchedOff) {
  MutableHostAddresses host;
  host.addresses = {A("198.51.100.1")};
  Guard g(GuardOptions{.protect_host_addresses = false}, &host);
  ASSERT_TRUE(g.RefreshHostAddresses().ok());
  EXPECT_EQ(ReasonOf(g, "198.51.100.1"), std::nullopt);
  EXPECT_EQ(ReasonOf(g, "127.0.0.1"), GuardReason::kLoopback);
}

TEST(GuardTest, IfaddrsListsValidAddresses) {
  IfaddrsHostAddressSource source;
  absl::StatusOr<std::vector<IpAddress>> addrs = source.HostAddresses();
  ASSERT_TRUE(addrs.ok()) << addrs.status();
  // Every Linux network namespace with lo up has 127.0.0.1; a fresh one may
  // have lo down, so only check the call works and returns valid families.
  for (const IpAddress& a : *addrs) {
    EXPECT_TRUE(a.is_v4() || a.is_v6());
  }
}

TEST(GuardTest, ManyAllowlistEntriesStayCheap) {
  GuardOptions options;
  for (uint32_t i = 0; i < 5000; ++i) {
    options.allowlist.push_back(
        IpPrefix::Of(IpAddress::V4(0xC6120000u + (i << 4)), 28));  // 198.18/15
  }
  Guard g(options, nullptr);
  ASSERT_TRUE(g.RefreshHostAddresses().ok());
  int refused = 0;
  for (uint32_t i = 0; i < 100000; ++i) {
    if (g.Check(IpPrefix::Host(IpAddress::V4(0xC6120000u + i))).has_value()) {
      ++refused;
    }
  }
  EXPECT_EQ(refused, 5000 * 16);
}

}  // namespace
}  // namespace rampart::agent
