#include "agent/firewall/host_address_source.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

namespace rampart::agent {

absl::StatusOr<std::vector<IpAddress>>
IfaddrsHostAddressSource::HostAddresses() {
  struct ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return absl::UnavailableError(
        absl::StrFormat("getifaddrs: %s", std::strerror(errno)));
  }
  std::vector<IpAddress> out;
  for (const struct ifaddrs* ifa = list; ifa != nullptr; ifa = ifa->ifa_next) {
    if (ifa->ifa_addr == nullptr) {
      continue;
    }
    if (ifa->ifa_addr->sa_family == AF_INET) {
      struct sockaddr_in sin;
      std::memcpy(&sin, ifa->ifa_addr, sizeof(sin));
      out.push_back(IpAddress::V4(ntohl(sin.sin_addr.s_addr)));
    } else if (ifa->ifa_addr->sa_family == AF_INET6) {
      struct sockaddr_in6 sin6;
      std::memcpy(&sin6, ifa->ifa_addr, sizeof(sin6));
      std::array<uint8_t, 16> bytes;
      std::memcpy(bytes.data(), sin6.sin6_addr.s6_addr, 16);
      out.push_back(IpAddress::V6(bytes));
    }
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace rampart::agent
