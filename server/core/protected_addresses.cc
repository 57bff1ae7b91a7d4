#include "server/core/protected_addresses.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/strings.h"

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

bool Has(const std::vector<IpAddress>& v, const IpAddress& ip) {
  return std::find(v.begin(), v.end(), ip) != v.end();
}

}  // namespace

std::vector<IpAddress> AgentAddressView::Protecting() const {
  std::vector<IpAddress> out;
  if (peer) {
    out.push_back(*peer);
  }
  for (const IpAddress& ip : approved) {
    if (!Has(out, ip)) {
      out.push_back(ip);
    }
  }
  return out;
}

std::vector<IpAddress> AgentAddressView::Unapproved() const {
  const std::vector<IpAddress> protecting = Protecting();
  std::vector<IpAddress> out;
  for (const IpAddress& ip : claimed) {
    if (!Has(protecting, ip) && !Has(out, ip)) {
      out.push_back(ip);
    }
  }
  return out;
}

ProtectedAddresses::ProtectedAddresses(std::vector<IpPrefix> fixed,
                                       EnrollmentStore* store)
    : fixed_(WithLoopback(std::move(fixed))), store_(store) {}

std::vector<ProtectedAgentAddress> ProtectedAddresses::Rows(
    std::string_view agent_id, const Entry& e) {
  std::vector<ProtectedAgentAddress> rows;
  if (e.peer) {
    rows.push_back({.agent_id = std::string(agent_id),
                    .address = e.peer->ToString(),
                    .source = ProtectedAgentAddress::Source::kPeer,
                    .since = e.peer_since});
  }
  for (const Entry::Approval& a : e.approved) {
    rows.push_back({.agent_id = std::string(agent_id),
                    .address = a.address.ToString(),
                    .source = ProtectedAgentAddress::Source::kApproved,
                    .since = a.since,
                    .actor = a.actor});
  }
  return rows;
}

absl::Status ProtectedAddresses::Persist(
    std::string_view agent_id, const std::vector<ProtectedAgentAddress>& rows) {
  if (store_ == nullptr) {
    return absl::OkStatus();
  }
  return store_->ReplaceProtectedAddresses(agent_id, rows);
}

absl::Status ProtectedAddresses::Load(
    absl::FunctionRef<bool(std::string_view)> revoked) {
  if (store_ == nullptr) {
    return absl::OkStatus();
  }
  absl::MutexLock write(&write_mu_);
  ASSIGN_OR_RETURN(std::vector<ProtectedAgentAddress> rows,
                   store_->ListProtectedAddresses());
  std::vector<std::string> drop;
  absl::flat_hash_map<std::string, Entry> loaded;
  for (const ProtectedAgentAddress& r : rows) {
    if (revoked(r.agent_id)) {
      if (drop.empty() || drop.back() != r.agent_id) {
        drop.push_back(r.agent_id);
      }
      continue;
    }
    const std::optional<IpAddress> ip = IpAddress::Parse(r.address);
    if (!ip) {
      RAMPART_LOG(Warning) << "ignoring stored protected address \""
                           << r.address << "\" of agent " << r.agent_id;
      continue;
    }
    if (!loaded.contains(r.agent_id) && loaded.size() >= kMaxAgents) {
      continue;
    }
    Entry& e = loaded[r.agent_id];
    if (r.source == ProtectedAgentAddress::Source::kPeer) {
      e.peer = *ip;
      e.peer_since = r.since;
    } else if (e.approved.size() < kMaxPerAgent) {
      e.approved.push_back(
          {.address = *ip, .since = r.since, .actor = r.actor});
    }
  }
  for (const std::string& agent : drop) {
    RETURN_IF_ERROR(store_->ReplaceProtectedAddresses(agent, {}));
  }
  absl::MutexLock lock(&mu_);
  for (auto& [agent, e] : loaded) {
    Entry& mine = agents_[agent];
    mine.peer = e.peer;
    mine.peer_since = e.peer_since;
    mine.approved = std::move(e.approved);
  }
  return absl::OkStatus();
}

absl::Status ProtectedAddresses::AgentConnected(std::string_view agent_id,
                                                std::optional<IpAddress> peer,
                                                std::vector<IpAddress> claimed,
                                                absl::Time now) {
  if (claimed.size() > kMaxPerAgent) {
    claimed.resize(kMaxPerAgent);
  }
  std::string key(agent_id);
  absl::MutexLock write(&write_mu_);
  std::vector<ProtectedAgentAddress> rows;
  bool changed = false;
  {
    absl::MutexLock lock(&mu_);
    if (agents_.size() >= kMaxAgents && !agents_.contains(key)) {
      return absl::OkStatus();
    }
    Entry& e = agents_[key];
    e.claimed = std::move(claimed);
    if (e.peer != peer) {
      e.peer = peer;
      e.peer_since = now;
      changed = true;
      rows = Rows(agent_id, e);
    }
  }
  return changed ? Persist(agent_id, rows) : absl::OkStatus();
}

absl::Status ProtectedAddresses::Approve(
    std::string_view agent_id, const std::vector<IpAddress>& addresses,
    std::string_view actor, absl::Time now) {
  std::string key(agent_id);
  absl::MutexLock write(&write_mu_);
  std::vector<ProtectedAgentAddress> rows;
  {
    absl::MutexLock lock(&mu_);
    if (agents_.size() >= kMaxAgents && !agents_.contains(key)) {
      return absl::FailedPreconditionError(
          absl::StrFormat("at most %d agents have protected addresses",
                          static_cast<int>(kMaxAgents)));
    }
    std::vector<Entry::Approval> approved;
    if (auto it = agents_.find(key); it != agents_.end()) {
      approved = it->second.approved;
    }
    for (const IpAddress& ip : addresses) {
      const bool known = std::any_of(
          approved.begin(), approved.end(),
          [&](const Entry::Approval& a) { return a.address == ip; });
      if (!known) {
        approved.push_back(
            {.address = ip, .since = now, .actor = std::string(actor)});
      }
    }
    if (approved.size() > kMaxPerAgent) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "agent %s would have %d approved addresses; at most %d are allowed",
          agent_id, static_cast<int>(approved.size()),
          static_cast<int>(kMaxPerAgent)));
    }
    Entry& e = agents_[key];
    e.approved = std::move(approved);
    rows = Rows(agent_id, e);
  }
  return Persist(agent_id, rows);
}

absl::Status ProtectedAddresses::Unprotect(
    std::string_view agent_id, const std::vector<IpAddress>& addresses) {
  absl::MutexLock write(&write_mu_);
  std::vector<ProtectedAgentAddress> rows;
  {
    absl::MutexLock lock(&mu_);
    auto it = agents_.find(ToAbsl(agent_id));
    if (it == agents_.end()) {
      return absl::OkStatus();
    }
    Entry& e = it->second;
    std::erase_if(e.approved, [&](const Entry::Approval& a) {
      return Has(addresses, a.address);
    });
    if (e.peer && Has(addresses, *e.peer)) {
      e.peer.reset();
    }
    rows = Rows(agent_id, e);
  }
  return Persist(agent_id, rows);
}

absl::Status ProtectedAddresses::ForgetAgent(std::string_view agent_id) {
  absl::MutexLock write(&write_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = agents_.find(ToAbsl(agent_id)); it != agents_.end()) {
      agents_.erase(it);
    }
  }
  return Persist(agent_id, {});
}

AgentAddressView ProtectedAddresses::Of(std::string_view agent_id) const {
  AgentAddressView v;
  absl::MutexLock lock(&mu_);
  const auto it = agents_.find(ToAbsl(agent_id));
  if (it == agents_.end()) {
    return v;
  }
  v.peer = it->second.peer;
  for (const Entry::Approval& a : it->second.approved) {
    v.approved.push_back(a.address);
  }
  v.claimed = it->second.claimed;
  return v;
}

std::optional<std::string> ProtectedAddresses::Overlap(
    const IpPrefix& prefix) const {
  for (const IpPrefix& p : fixed_) {
    if (PrefixesOverlap(p, prefix)) {
      return absl::StrFormat("the server's own prefix %s", p.ToString());
    }
  }
  return AgentOverlap(prefix);
}

std::optional<std::string> ProtectedAddresses::AgentOverlap(
    const IpPrefix& prefix) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [agent, e] : agents_) {
    if (e.peer && prefix.Contains(*e.peer)) {
      return absl::StrFormat("agent %s's address %s", agent,
                             e.peer->ToString());
    }
    for (const Entry::Approval& a : e.approved) {
      if (prefix.Contains(a.address)) {
        return absl::StrFormat("agent %s's approved address %s", agent,
                               a.address.ToString());
      }
    }
  }
  return std::nullopt;
}

}  // namespace rampart::server
