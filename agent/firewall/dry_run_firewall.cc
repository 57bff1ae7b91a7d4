#include "agent/firewall/dry_run_firewall.h"

#include "common/logging.h"

namespace rampart::agent {
namespace {

std::string Describe(const FirewallEntry& e) {
  std::string s = e.prefix.ToString();
  if (e.expires.has_value()) {
    s += " until " +
         absl::FormatTime(absl::RFC3339_sec, *e.expires, absl::UTCTimeZone());
  } else {
    s += " permanently";
  }
  return s;
}

}  // namespace

absl::Status DryRunFirewall::Install() {
  RAMPART_LOG(Debug) << "dry-run: would install the drop rules";
  return absl::OkStatus();
}

absl::Status DryRunFirewall::ApplySnapshot(
    const std::vector<FirewallEntry>& entries) {
  absl::MutexLock lock(&mu_);
  RAMPART_LOG(Info) << "dry-run: would replace the blocked set ("
                    << entries_.size() << " entries) with " << entries.size()
                    << " entries";
  entries_.clear();
  for (const FirewallEntry& e : entries) {
    RAMPART_LOG(Debug) << "dry-run: would block " << Describe(e);
    entries_[e.prefix] = e.expires;
  }
  return absl::OkStatus();
}

absl::Status DryRunFirewall::ApplyDelta(const std::vector<FirewallEntry>& adds,
                                        const std::vector<IpPrefix>& removes) {
  absl::MutexLock lock(&mu_);
  for (const IpPrefix& p : removes) {
    RAMPART_LOG(Info) << "dry-run: would unblock " << p.ToString();
    entries_.erase(p);
  }
  for (const FirewallEntry& e : adds) {
    RAMPART_LOG(Info) << "dry-run: would block " << Describe(e);
    entries_.try_emplace(e.prefix, e.expires);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<FirewallEntry>> DryRunFirewall::ListEnforced() {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  std::vector<FirewallEntry> out;
  out.reserve(entries_.size());
  for (const auto& [p, expires] : entries_) {
    if (!expires.has_value() || *expires > now) {
      out.push_back({p, expires});
    }
  }
  return out;
}

absl::Status DryRunFirewall::RemoveAll() {
  absl::MutexLock lock(&mu_);
  RAMPART_LOG(Info) << "dry-run: would remove all rules (" << entries_.size()
                    << " entries)";
  entries_.clear();
  return absl::OkStatus();
}

void DryRunFirewall::EraseForTest(const IpPrefix& p) {
  absl::MutexLock lock(&mu_);
  entries_.erase(p);
}

void DryRunFirewall::InsertForTest(const FirewallEntry& e) {
  absl::MutexLock lock(&mu_);
  entries_[e.prefix] = e.expires;
}

}  // namespace rampart::agent
