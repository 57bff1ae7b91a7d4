#pragma once

// HostAddressSource: the addresses of this host, which the Guard never lets
// the agent ban. IfaddrsHostAddressSource reads them with getifaddrs(3);
// tests inject a fixed list.
//
// Thread-safety: implementations are thread-safe.

#include <vector>

#include "absl/status/statusor.h"
#include "common/ip_address.h"

namespace rampart::agent {

class HostAddressSource {
 public:
  virtual ~HostAddressSource() = default;
  // Every IPv4 and IPv6 address configured on this host's interfaces (in
  // the network namespace of the calling thread), any order, duplicates
  // allowed. kUnavailable if the system cannot be asked.
  virtual absl::StatusOr<std::vector<IpAddress>> HostAddresses() = 0;
};

// Reads the interface addresses with getifaddrs(3).
class IfaddrsHostAddressSource final : public HostAddressSource {
 public:
  // HostAddressSource
  absl::StatusOr<std::vector<IpAddress>> HostAddresses() override;
};

// A fixed list (tests, and hosts whose addresses are configured).
class StaticHostAddressSource final : public HostAddressSource {
 public:
  explicit StaticHostAddressSource(std::vector<IpAddress> addresses)
      : addresses_(std::move(addresses)) {}
  // HostAddressSource
  absl::StatusOr<std::vector<IpAddress>> HostAddresses() override {
    return addresses_;
  }

 private:
  const std::vector<IpAddress> addresses_;
};

}  // namespace rampart::agent
