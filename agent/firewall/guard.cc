#include "agent/firewall/guard.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "agent/firewall/prefix_util.h"

namespace rampart::agent {
namespace {

IpPrefix MustParse(std::string_view text) {
  return *IpPrefix::FromString(text);  // constants below are valid
}

struct Special {
  std::string_view prefix;
  GuardReason reason;
};
constexpr Special kSpecials[] = {
    {"127.0.0.0/8", GuardReason::kLoopback},
    {"::1/128", GuardReason::kLoopback},
    {"0.0.0.0/32", GuardReason::kUnspecified},
    {"::/128", GuardReason::kUnspecified},
    {"169.254.0.0/16", GuardReason::kLinkLocal},
    {"fe80::/10", GuardReason::kLinkLocal},
    {"224.0.0.0/4", GuardReason::kMulticast},
    {"255.255.255.255/32", GuardReason::kMulticast},
    {"ff00::/8", GuardReason::kMulticast},
};

std::string_view Describe(GuardReason reason) {
  switch (reason) {
    case GuardReason::kLoopback:
      return "loopback";
    case GuardReason::kUnspecified:
      return "the unspecified address";
    case GuardReason::kLinkLocal:
      return "link-local";
    case GuardReason::kMulticast:
      return "multicast/broadcast";
    case GuardReason::kHostAddress:
      return "host address";
    case GuardReason::kServerAddress:
      return "server address";
    case GuardReason::kAllowlist:
      return "allowlist entry";
    case GuardReason::kGateway:
      return "default gateway";
    case GuardReason::kDnsResolver:
      return "DNS resolver";
    case GuardReason::kTooWide:
    case GuardReason::kCapacity:
      break;
  }
  return "protected";
}

}  // namespace

std::string_view GuardReasonName(GuardReason reason) {
  switch (reason) {
    case GuardReason::kLoopback:
      return "loopback";
    case GuardReason::kUnspecified:
      return "unspecified";
    case GuardReason::kLinkLocal:
      return "link_local";
    case GuardReason::kMulticast:
      return "multicast";
    case GuardReason::kHostAddress:
      return "host_address";
    case GuardReason::kServerAddress:
      return "server_address";
    case GuardReason::kAllowlist:
      return "allowlist";
    case GuardReason::kTooWide:
      return "too_wide";
    case GuardReason::kGateway:
      return "gateway";
    case GuardReason::kDnsResolver:
      return "dns_resolver";
    case GuardReason::kCapacity:
      return "capacity";
  }
  return "unknown";
}

std::string GuardRefusal::ToString() const {
  switch (reason) {
    case GuardReason::kTooWide:
      return absl::StrFormat("is wider than the agent's limit /%d",
                             static_cast<int>(limit));
    case GuardReason::kCapacity:
      return absl::StrFormat(
          "would block more than the agent's cap of %d %s", limit,
          protected_prefix.address().is_v4() ? "IPv4 addresses"
                                             : "IPv6 /64 subnets");
    default:
      return absl::StrFormat("overlaps %s %s", Describe(reason),
                             protected_prefix.ToString());
  }
}

void Guard::Index::Insert(const IpPrefix& p, GuardReason reason) {
  if (prefixes.emplace(p, reason).second) {
    ++length_count[FamilyIndex(p.address())][p.length()];
  }
}

Guard::Guard(const GuardOptions& options, HostAddressSource* host_addresses,
             NetworkAddressSource* network)
    : options_(options), host_source_(host_addresses), network_(network) {
  absl::MutexLock lock(&mu_);
  index_ = BuildIndex();
}

Guard::Index Guard::BuildIndex() const {
  Index index;
  for (const Special& s : kSpecials) {
    index.Insert(MustParse(s.prefix), s.reason);
  }
  for (const IpAddress& a : host_addresses_) {
    index.Insert(IpPrefix::Host(a), GuardReason::kHostAddress);
  }
  for (const IpAddress& a : gateways_) {
    index.Insert(IpPrefix::Host(a), GuardReason::kGateway);
  }
  for (const IpAddress& a : resolvers_) {
    index.Insert(IpPrefix::Host(a), GuardReason::kDnsResolver);
  }
  for (const IpAddress& a : options_.server_addresses) {
    index.Insert(IpPrefix::Host(a), GuardReason::kServerAddress);
  }
  for (const IpPrefix& p : options_.allowlist) {
    index.Insert(p, GuardReason::kAllowlist);
  }
  return index;
}

absl::Status Guard::RefreshHostAddresses() {
  absl::Status first_error;
  // Reads one list; nullopt (keep the old one) on error.
  const auto read =
      [&](bool wanted, bool available,
          const auto& get) -> std::optional<std::vector<IpAddress>> {
    if (!wanted || !available) {
      return std::vector<IpAddress>();
    }
    absl::StatusOr<std::vector<IpAddress>> got = get();
    if (!got.ok()) {
      first_error.Update(got.status());
      return std::nullopt;
    }
    std::vector<IpAddress> list = *std::move(got);
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    return list;
  };
  std::optional<std::vector<IpAddress>> host =
      read(options_.protect_host_addresses, host_source_ != nullptr,
           [&] { return host_source_->HostAddresses(); });
  std::optional<std::vector<IpAddress>> gateways =
      read(options_.protect_gateways, network_ != nullptr,
           [&] { return network_->DefaultGateways(); });
  std::optional<std::vector<IpAddress>> resolvers =
      read(options_.protect_dns_resolvers, network_ != nullptr,
           [&] { return network_->DnsResolvers(); });
  absl::MutexLock lock(&mu_);
  if (host.has_value()) {
    host_addresses_ = *std::move(host);
  }
  if (gateways.has_value()) {
    gateways_ = *std::move(gateways);
  }
  if (resolvers.has_value()) {
    resolvers_ = *std::move(resolvers);
  }
  index_ = BuildIndex();
  return first_error;
}

std::optional<GuardRefusal> Guard::CheckWidth(const IpPrefix& prefix) const {
  const int min = prefix.address().is_v4() ? options_.min_prefix_v4
                                           : options_.min_prefix_v6;
  if (prefix.length() < min) {
    return GuardRefusal{.reason = GuardReason::kTooWide,
                        .protected_prefix = prefix,
                        .limit = static_cast<uint64_t>(min)};
  }
  return std::nullopt;
}

std::optional<GuardRefusal> Guard::Check(const IpPrefix& prefix) const {
  if (std::optional<GuardRefusal> wide = CheckWidth(prefix)) {
    return wide;
  }
  absl::MutexLock lock(&mu_);
  const int fam = FamilyIndex(prefix.address());
  // A protected prefix containing the ban (or equal to it), widest first.
  for (int len = 0; len <= prefix.length(); ++len) {
    if (index_.length_count[fam][len] == 0) {
      continue;
    }
    auto it = index_.prefixes.find(IpPrefix::Of(prefix.address(), len));
    if (it != index_.prefixes.end()) {
      return GuardRefusal{.reason = it->second, .protected_prefix = it->first};
    }
  }
  // A protected prefix inside the ban.
  const IpAddress last = LastAddress(prefix);
  for (auto it = index_.prefixes.lower_bound(prefix);
       it != index_.prefixes.end() && it->first.address() <= last; ++it) {
    if (prefix.Contains(it->first)) {
      return GuardRefusal{.reason = it->second, .protected_prefix = it->first};
    }
  }
  return std::nullopt;
}

std::vector<IpAddress> Guard::HostAddressesForTest() const {
  absl::MutexLock lock(&mu_);
  return host_addresses_;
}

}  // namespace rampart::agent
