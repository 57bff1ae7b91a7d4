#pragma once

// NetworkAddressSource: addresses the agent must keep reachable besides its
// own (HostAddressSource): the default gateways and the DNS resolvers the
// host uses. The Guard refuses any ban that overlaps them, so a hostile or
// broken ban list cannot cut the host off its network (docs/agent.md,
// "Guard"). LinuxNetworkAddressSource reads /proc/net/route,
// /proc/net/ipv6_route and /etc/resolv.conf; a Windows implementation can
// ask GetAdaptersAddresses later; tests inject fixed lists.
//
// Thread-safety: implementations are thread-safe.

#include <vector>

#include "absl/status/statusor.h"
#include "common/ip_address.h"

namespace rampart::agent {

class NetworkAddressSource {
 public:
  virtual ~NetworkAddressSource() = default;
  // Next hops of the default routes (IPv4 and IPv6), any order. Empty if
  // the host has no default route. kUnavailable if the system cannot be
  // asked.
  virtual absl::StatusOr<std::vector<IpAddress>> DefaultGateways() = 0;
  // The configured DNS resolvers, any order. kUnavailable if the system
  // cannot be asked.
  virtual absl::StatusOr<std::vector<IpAddress>> DnsResolvers() = 0;
};

}  // namespace rampart::agent
