#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/firewall/guard.h"
#include "agent/firewall/host_address_source.h"
#include "agent/firewall/linux_network_address_source.h"
#include "agent/firewall/network_address_source.h"
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

// Gateways and resolvers a test can change or make fail.
class FakeNetwork final : public NetworkAddressSource {
 public:
  absl::StatusOr<std::vector<IpAddress>> DefaultGateways() override {
    if (!status.ok()) {
      return status;
    }
    return gateways;
  }
  absl::StatusOr<std::vector<IpAddress>> DnsResolvers() override {
    return resolvers;
  }
  std::vector<IpAddress> gateways;
  std::vector<IpAddress> resolvers;
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
  // No width limit here: this checks the overlap search alone.
  Guard g(GuardOptions{.min_prefix_v4 = 0, .min_prefix_v6 = 0}, nullptr);
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

// Issue 16 item 7: the agent does not trust the server's list blindly.
TEST(GuardTest, RefusesBansWiderThanTheMinimumPrefixLength) {
  Guard g(GuardOptions{}, nullptr);  // defaults /16 and /32
  ASSERT_TRUE(g.RefreshHostAddresses().ok());
  EXPECT_EQ(ReasonOf(g, "198.51.0.0/16"), std::nullopt);
  EXPECT_EQ(ReasonOf(g, "198.50.0.0/15"), GuardReason::kTooWide);
  EXPECT_EQ(ReasonOf(g, "0.0.0.0/0"), GuardReason::kTooWide);
  EXPECT_EQ(ReasonOf(g, "2001:db8::/32"), std::nullopt);
  EXPECT_EQ(ReasonOf(g, "2001:db8::/31"), GuardReason::kTooWide);
  EXPECT_EQ(ReasonOf(g, "::/0"), GuardReason::kTooWide);
  const std::optional<GuardRefusal> r = g.Check(P("10.0.0.0/8"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ToString(), "is wider than the agent's limit /16");
  EXPECT_EQ(GuardReasonName(r->reason), "too_wide");

  Guard strict(GuardOptions{.min_prefix_v4 = 24, .min_prefix_v6 = 48}, nullptr);
  EXPECT_EQ(ReasonOf(strict, "203.0.113.0/24"), std::nullopt);
  EXPECT_EQ(ReasonOf(strict, "203.0.112.0/23"), GuardReason::kTooWide);
  EXPECT_EQ(ReasonOf(strict, "2001:db8::/47"), GuardReason::kTooWide);
}

TEST(GuardTest, ProtectsDefaultGatewaysAndDnsResolvers) {
  FakeNetwork net;
  net.gateways = {A("192.0.2.1"), A("2001:db8::1")};
  net.resolvers = {A("198.51.100.53")};
  Guard g(GuardOptions{}, nullptr, &net);
  ASSERT_TRUE(g.RefreshHostAddresses().ok());
  EXPECT_EQ(ReasonOf(g, "192.0.2.1"), GuardReason::kGateway);
  EXPECT_EQ(ReasonOf(g, "192.0.2.0/24"), GuardReason::kGateway);
  EXPECT_EQ(ReasonOf(g, "2001:db8::/64"), GuardReason::kGateway);
  EXPECT_EQ(ReasonOf(g, "198.51.100.0/24"), GuardReason::kDnsResolver);
  EXPECT_EQ(ReasonOf(g, "192.0.2.2"), std::nullopt);
  const std::optional<GuardRefusal> r = g.Check(P("198.51.100.53"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ToString(), "overlaps DNS resolver 198.51.100.53");
  EXPECT_EQ(GuardReasonName(GuardReason::kGateway), "gateway");
  EXPECT_EQ(GuardReasonName(GuardReason::kDnsResolver), "dns_resolver");

  // A failed read keeps the previous gateways (and still updates the
  // resolvers); the error is returned.
  net.status = absl::UnavailableError("netlink down");
  net.resolvers = {A("198.51.100.54")};
  EXPECT_FALSE(g.RefreshHostAddresses().ok());
  EXPECT_EQ(ReasonOf(g, "192.0.2.1"), GuardReason::kGateway);
  EXPECT_EQ(ReasonOf(g, "198.51.100.54"), GuardReason::kDnsResolver);
  EXPECT_EQ(ReasonOf(g, "198.51.100.53"), std::nullopt);

  // Both switches off.
  Guard off(
      GuardOptions{.protect_gateways = false, .protect_dns_resolvers = false},
      nullptr, &net);
  ASSERT_TRUE(off.RefreshHostAddresses().ok());
  EXPECT_EQ(ReasonOf(off, "192.0.2.1"), std::nullopt);
  EXPECT_EQ(ReasonOf(off, "198.51.100.54"), std::nullopt);
}

TEST(LinuxNetworkAddressSourceTest, ParsesRouteTablesAndResolvConf) {
  EXPECT_THAT(
      ParseProcNetRoute(
          "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask"
          "\t\tMTU\tWindow\tIRTT\n"
          "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
          "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
          "eth1\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"
          "garbage line\n"),
      ::testing::ElementsAre(A("192.0.2.1")));
  EXPECT_THAT(ParseProcNetIpv6Route(
                  "00000000000000000000000000000000 00 "
                  "00000000000000000000000000000000 00 "
                  "20010db8000000000000000000000001 00000400 00000001 00000000 "
                  "00000003     eth0\n"
                  "20010db8000000000000000000000000 40 "
                  "00000000000000000000000000000000 00 "
                  "00000000000000000000000000000000 00000100 00000001 00000000 "
                  "00000001     eth0\n"),
              ::testing::ElementsAre(A("2001:db8::1")));
  EXPECT_THAT(ParseResolvConf("# comment\nsearch example.com\n"
                              "nameserver 192.0.2.53\n"
                              "  nameserver\tfe80::1%eth0\n"
                              "nameserver not-an-address\n"
                              "; nameserver 192.0.2.54\n"),
              ::testing::ElementsAre(A("192.0.2.53"), A("fe80::1")));
  LinuxNetworkAddressSource missing(
      LinuxNetworkPaths{.route = "/nonexistent/route",
                        .ipv6_route = "/nonexistent/ipv6_route",
                        .resolv_conf = "/nonexistent/resolv.conf"});
  absl::StatusOr<std::vector<IpAddress>> gw = missing.DefaultGateways();
  ASSERT_TRUE(gw.ok()) << gw.status();
  EXPECT_TRUE(gw->empty());
  absl::StatusOr<std::vector<IpAddress>> dns = missing.DnsResolvers();
  ASSERT_TRUE(dns.ok()) << dns.status();
  EXPECT_TRUE(dns->empty());
  // This host's real tables parse (whatever they hold).
  LinuxNetworkAddressSource real;
  EXPECT_TRUE(real.DefaultGateways().ok());
  EXPECT_TRUE(real.DnsResolvers().ok());
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
