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
  }
  return "unknown";
}

std::string GuardRefusal::ToString() const {
  return absl::StrFormat("overlaps %s %s", Describe(reason),
                         protected_prefix.ToString());
}

void Guard::Index::Insert(const IpPrefix& p, GuardReason reason) {
  if (prefixes.emplace(p, reason).second) {
    ++length_count[FamilyIndex(p.address())][p.length()];
  }
}

Guard::Guard(const GuardOptions& options, HostAddressSource* host_addresses)
    : options_(options), host_source_(host_addresses) {
  absl::MutexLock lock(&mu_);
  index_ = BuildIndex({});
}

Guard::Index Guard::BuildIndex(const std::vector<IpAddress>& host) const {
  Index index;
  for (const Special& s : kSpecials) {
    index.Insert(MustParse(s.prefix), s.reason);
  }
  for (const IpAddress& a : host) {
    index.Insert(IpPrefix::Host(a), GuardReason::kHostAddress);
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
  std::vector<IpAddress> host;
  if (options_.protect_host_addresses && host_source_ != nullptr) {
    absl::StatusOr<std::vector<IpAddress>> got = host_source_->HostAddresses();
    if (!got.ok()) {
      return got.status();
    }
    host = *std::move(got);
    std::sort(host.begin(), host.end());
    host.erase(std::unique(host.begin(), host.end()), host.end());
  }
  Index index = BuildIndex(host);
  absl::MutexLock lock(&mu_);
  host_addresses_ = std::move(host);
  index_ = std::move(index);
  return absl::OkStatus();
}

std::optional<GuardRefusal> Guard::Check(const IpPrefix& prefix) const {
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
