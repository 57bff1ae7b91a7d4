#pragma once

// Guard: the agent's last line of defence against banning what must never
// be banned, whatever the server says (docs/agent.md, "Enforcement").
//
// A ban is refused when its prefix is wider than the per-family minimum
// prefix length (min_prefix_v4/v6: the server never bans wider than /16 or
// /32, so a wider ban means a hostile or broken list), or when it overlaps
// (contains, or is contained in)
//   - loopback (127.0.0.0/8, ::1), the unspecified addresses (0.0.0.0, ::),
//     link-local (169.254.0.0/16, fe80::/10), multicast (224.0.0.0/4,
//     ff00::/8) or the limited broadcast 255.255.255.255;
//   - one of this host's own addresses (HostAddressSource, re-read by
//     RefreshHostAddresses);
//   - one of the Rampart server's addresses (so the agent can always reach
//     it);
//   - a default gateway or a configured DNS resolver (NetworkAddressSource,
//     re-read with the host addresses), so the host stays on its network;
//   - a prefix of the local allowlist.
// (The Enforcer adds one more refusal, kCapacity: the cap on the total
// number of addresses blocked.)
// A refused ban is not enforced at all (a /16 containing the host's address
// is not split around it); the Enforcer reports it to the server as an
// apply error and counts it.
//
// Check() costs O(distinct protected prefix lengths + log n) per ban, so a
// 100k-entry snapshot with a large allowlist stays cheap.
//
// Thread-safety: thread-safe; RefreshHostAddresses may run concurrently
// with Check.

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/firewall/host_address_source.h"
#include "agent/firewall/network_address_source.h"
#include "common/ip_address.h"

namespace rampart::agent {

struct GuardOptions {
  // Local allowlist: prefixes never banned. Default empty.
  std::vector<IpPrefix> allowlist;
  // Addresses of the Rampart server(s) this agent connects to, resolved by
  // main(). Default empty.
  std::vector<IpAddress> server_addresses;
  // Protect the addresses HostAddressSource reports. Default true.
  bool protect_host_addresses = true;
  // Protect the default gateways / DNS resolvers NetworkAddressSource
  // reports. Default true.
  bool protect_gateways = true;
  bool protect_dns_resolvers = true;
  // Bans wider than this are refused (kTooWide). Defaults /16 and /32, the
  // server's own limits for automatic and operator bans.
  int min_prefix_v4 = 16;
  int min_prefix_v6 = 32;
};

// Why a ban was refused. Names (ReasonName) are metric label values.
enum class GuardReason {
  kLoopback,
  kUnspecified,
  kLinkLocal,
  kMulticast,  // including the limited broadcast 255.255.255.255
  kHostAddress,
  kServerAddress,
  kAllowlist,
  kTooWide,      // wider than min_prefix_v4/v6
  kGateway,      // overlaps a default gateway
  kDnsResolver,  // overlaps a configured DNS resolver
  kCapacity,     // (Enforcer) would pass the cap on blocked addresses
};
inline constexpr int kGuardReasonCount = 11;

// "loopback", "unspecified", "link_local", "multicast", "host_address",
// "server_address", "allowlist", "too_wide", "gateway", "dns_resolver",
// "capacity".
std::string_view GuardReasonName(GuardReason reason);

struct GuardRefusal {
  GuardReason reason = GuardReason::kLoopback;
  // The protected prefix the ban overlaps (e.g. 127.0.0.0/8, or the host
  // address as a /32); for kTooWide and kCapacity the ban's own prefix.
  IpPrefix protected_prefix = IpPrefix::Host(IpAddress());
  // kTooWide: the minimum prefix length; kCapacity: the cap.
  uint64_t limit = 0;

  // "overlaps host address 198.51.100.1", "is wider than /16", "would
  // block more than 16777216 IPv4 addresses" (for ApplyError.message).
  std::string ToString() const;
};

class Guard {
 public:
  // `host_addresses` and `network` may be null (nothing of theirs
  // protected); otherwise they must outlive the Guard. Their addresses start
  // empty: call RefreshHostAddresses() before the first Check.
  Guard(const GuardOptions& options, HostAddressSource* host_addresses,
        NetworkAddressSource* network = nullptr);

  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  // Re-reads the host's addresses, default gateways and DNS resolvers. A
  // list that cannot be read keeps its previous value and the (first)
  // error is returned (kUnavailable); the others are still updated.
  absl::Status RefreshHostAddresses() ABSL_LOCKS_EXCLUDED(mu_);

  // nullopt if `prefix` may be banned; otherwise why not. When several
  // protected prefixes overlap, the one reported is the widest covering
  // one, else the lowest contained one.
  std::optional<GuardRefusal> Check(const IpPrefix& prefix) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // The host addresses currently protected (for logs and tests).
  std::vector<IpAddress> HostAddressesForTest() const ABSL_LOCKS_EXCLUDED(mu_);

  // Why `prefix` would be refused for its width alone (kTooWide), if so.
  std::optional<GuardRefusal> CheckWidth(const IpPrefix& prefix) const;

 private:
  // Protected prefixes with the reason of their first insertion, plus how
  // many protected prefixes each (family, length) has, so that the covering
  // search only probes lengths in use.
  struct Index {
    absl::btree_map<IpPrefix, GuardReason> prefixes;
    std::array<std::array<int, 129>, 2> length_count{};
    void Insert(const IpPrefix& p, GuardReason reason);
  };
  Index BuildIndex() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const GuardOptions options_;
  HostAddressSource* const host_source_;
  NetworkAddressSource* const network_;

  mutable absl::Mutex mu_;
  std::vector<IpAddress> host_addresses_ ABSL_GUARDED_BY(mu_);
  std::vector<IpAddress> gateways_ ABSL_GUARDED_BY(mu_);
  std::vector<IpAddress> resolvers_ ABSL_GUARDED_BY(mu_);
  Index index_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::agent
