#include "server/core/protected_addresses.h"

#include <utility>

#include "absl/strings/str_format.h"

namespace rampart::server {
namespace {

bool PrefixesOverlap(const IpPrefix& a, const IpPrefix& b) {
  return a.Contains(b) || b.Contains(a);
}

std::vector<IpPrefix> WithLoopback(std::vector<IpPrefix> fixed) {
  for (const char* text : {"127.0.0.0/8", "::1/128"}) {
    if (absl::StatusOr<IpPrefix> p = IpPrefix::FromString(text); p.ok()) {
      fixed.push_back(*p);
    }
  }
  return fixed;
}

}  // namespace

ProtectedAddresses::ProtectedAddresses(std::vector<IpPrefix> fixed)
    : fixed_(WithLoopback(std::move(fixed))) {}

void ProtectedAddresses::SetAgentAddresses(std::string_view agent_id,
                                           std::vector<IpAddress> addresses) {
  if (addresses.size() > kMaxPerAgent) {
    addresses.resize(kMaxPerAgent);
  }
  std::string key(agent_id);
  absl::MutexLock lock(&mu_);
  if (agents_.size() >= kMaxAgents && !agents_.contains(key)) {
    return;
  }
  agents_[key] = std::move(addresses);
}

std::optional<std::string> ProtectedAddresses::Overlap(
    const IpPrefix& prefix) const {
  for (const IpPrefix& p : fixed_) {
    if (PrefixesOverlap(p, prefix)) {
      return absl::StrFormat("the server's own prefix %s", p.ToString());
    }
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [agent, addresses] : agents_) {
    for (const IpAddress& ip : addresses) {
      if (prefix.Contains(ip)) {
        return absl::StrFormat("agent %s's address %s", agent, ip.ToString());
      }
    }
  }
  return std::nullopt;
}

}  // namespace rampart::server
