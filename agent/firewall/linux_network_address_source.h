#pragma once

// LinuxNetworkAddressSource: the default gateways from /proc/net/route and
// /proc/net/ipv6_route, the DNS resolvers from the `nameserver` lines of
// /etc/resolv.conf (paths settable for tests). Each file is read bounded
// (1 MiB); a missing route file means no gateway of that family, a missing
// resolv.conf no resolver.
//
// Thread-safety: thread-safe (no mutable state).

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/firewall/network_address_source.h"
#include "common/ip_address.h"

namespace rampart::agent {

struct LinuxNetworkPaths {
  std::string route = "/proc/net/route";
  std::string ipv6_route = "/proc/net/ipv6_route";
  std::string resolv_conf = "/etc/resolv.conf";
};

// Gateways of the default routes (destination 0, mask 0, flag RTF_GATEWAY)
// in /proc/net/route text. Malformed lines are skipped.
std::vector<IpAddress> ParseProcNetRoute(std::string_view text);
// Next hops of ::/0 routes in /proc/net/ipv6_route text.
std::vector<IpAddress> ParseProcNetIpv6Route(std::string_view text);
// Addresses of the `nameserver` lines of resolv.conf text (a `%zone` is
// stripped; unparsable values are skipped).
std::vector<IpAddress> ParseResolvConf(std::string_view text);

class LinuxNetworkAddressSource final : public NetworkAddressSource {
 public:
  explicit LinuxNetworkAddressSource(LinuxNetworkPaths paths = {})
      : paths_(std::move(paths)) {}

  // NetworkAddressSource
  absl::StatusOr<std::vector<IpAddress>> DefaultGateways() override;
  absl::StatusOr<std::vector<IpAddress>> DnsResolvers() override;

 private:
  const LinuxNetworkPaths paths_;
};

}  // namespace rampart::agent
