#include "server/core/ban_distributor.h"

#include <algorithm>

namespace rampart::server {

BanDistributor::BanDistributor(const Options& options, Clock& clock)
    : options_(options), clock_(clock) {}

void BanDistributor::Reset(uint64_t revision, std::vector<VersionedBan> active,
                           std::vector<JournalEntry> recent) {
  absl::MutexLock lock(&mu_);
  revision_ = revision;
  active_.clear();
  for (VersionedBan& b : active) {
    const IpPrefix prefix = b.ban.prefix;
    active_[prefix] = std::move(b);
  }
  if (recent.size() > options_.journal_window) {
    recent.erase(recent.begin(), recent.end() - static_cast<ptrdiff_t>(
                                                    options_.journal_window));
  }
  window_ = std::move(recent);
}

void BanDistributor::Publish(const std::vector<JournalEntry>& entries) {
  if (entries.empty()) {
    return;
  }
  std::vector<Listener> listeners;
  {
    absl::MutexLock lock(&mu_);
    for (const JournalEntry& e : entries) {
      if (e.revision <= revision_) {
        continue;  // already known (e.g. replayed after Reset)
      }
      revision_ = e.revision;
      if (e.op == JournalEntry::Op::kRemove) {
        active_.erase(e.ban.prefix);
      } else {
        active_[e.ban.prefix] = VersionedBan{e.ban, e.revision};
      }
      window_.push_back(e);
    }
    if (window_.size() > options_.journal_window) {
      window_.erase(
          window_.begin(),
          window_.end() - static_cast<ptrdiff_t>(options_.journal_window));
    }
    for (const auto& [id, agent] : agents_) {
      if (agent.handle != 0 && agent.listener) {
        listeners.push_back(agent.listener);
      }
    }
  }
  for (const Listener& l : listeners) {
    l(entries);
  }
}

CatchUpPlan BanDistributor::PlanFor(uint64_t enforced) const {
  absl::MutexLock lock(&mu_);
  CatchUpPlan plan;
  plan.from_revision = enforced;
  plan.to_revision = revision_;
  if (enforced == revision_) {
    return plan;
  }
  const uint64_t missing = revision_ - std::min(enforced, revision_);
  // The window holds (oldest - 1, revision_]; a delta needs enforced >= that.
  // A fresh agent (revision 0) always gets the compact snapshot.
  const bool journaled =
      enforced > 0 && enforced < revision_ && !window_.empty() &&
      enforced + 1 >= window_.front().revision && missing <= options_.max_delta;
  if (journaled) {
    plan.kind = CatchUpPlan::Kind::kDelta;
    const auto first = std::lower_bound(
        window_.begin(), window_.end(), enforced + 1,
        [](const JournalEntry& e, uint64_t r) { return e.revision < r; });
    plan.delta.assign(first, window_.end());
    return plan;
  }
  // Unknown future revision (a restored database), or too old: snapshot.
  plan.kind = CatchUpPlan::Kind::kSnapshot;
  plan.snapshot.reserve(active_.size());
  const absl::Time now = clock_.Now();
  for (const auto& [prefix, vb] : active_) {
    if (vb.ban.ActiveAt(now)) {
      plan.snapshot.push_back(vb);
    }
  }
  return plan;
}

uint64_t BanDistributor::Connect(const std::string& agent_id,
                                 Listener listener) {
  absl::MutexLock lock(&mu_);
  Agent& a = agents_[agent_id];
  a.handle = next_handle_++;
  a.listener = std::move(listener);
  a.last_seen = clock_.Now();
  return a.handle;
}

void BanDistributor::Disconnect(uint64_t handle) {
  absl::MutexLock lock(&mu_);
  for (auto& [id, a] : agents_) {
    if (a.handle == handle) {
      a.handle = 0;
      a.listener = nullptr;
      a.last_seen = clock_.Now();
    }
  }
}

void BanDistributor::ReportEnforced(const std::string& agent_id,
                                    uint64_t revision) {
  absl::MutexLock lock(&mu_);
  Agent& a = agents_[agent_id];
  a.enforced = std::min(revision, revision_);
  a.last_seen = clock_.Now();
}

uint64_t BanDistributor::revision() const {
  absl::MutexLock lock(&mu_);
  return revision_;
}

std::vector<VersionedBan> BanDistributor::Active() const {
  absl::MutexLock lock(&mu_);
  std::vector<VersionedBan> out;
  const absl::Time now = clock_.Now();
  for (const auto& [prefix, vb] : active_) {
    if (vb.ban.ActiveAt(now)) {
      out.push_back(vb);
    }
  }
  return out;
}

std::vector<AgentStatus> BanDistributor::Agents() const {
  absl::MutexLock lock(&mu_);
  std::vector<AgentStatus> out;
  const absl::Time now = clock_.Now();
  for (const auto& [id, a] : agents_) {
    AgentStatus s{.agent_id = id,
                  .connected = a.handle != 0,
                  .enforced_revision = a.enforced,
                  .last_seen = a.last_seen,
                  .lag_revisions = revision_ - std::min(a.enforced, revision_)};
    if (s.lag_revisions > 0) {
      // The oldest unenforced change, if still in the window.
      const auto it = std::lower_bound(
          window_.begin(), window_.end(), a.enforced + 1,
          [](const JournalEntry& e, uint64_t r) { return e.revision < r; });
      if (it != window_.end()) {
        s.lag_time = std::max(absl::ZeroDuration(), now - it->at);
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::pair<int, int> BanDistributor::LiveOn(uint64_t revision) const {
  absl::MutexLock lock(&mu_);
  int live = 0;
  for (const auto& [id, a] : agents_) {
    live += a.enforced >= revision ? 1 : 0;
  }
  return {live, static_cast<int>(agents_.size())};
}

}  // namespace rampart::server
