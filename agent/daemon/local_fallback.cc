#include "agent/daemon/local_fallback.h"

#include <algorithm>
#include <utility>

#include "common/logging.h"

namespace rampart::agent {

LocalFallback::LocalFallback(const LocalFallbackConfig& config, Clock& clock)
    : config_(config), clock_(clock) {}

void LocalFallback::Prune(absl::Time now) {
  const absl::Time cutoff = now - config_.window;
  for (auto it = failures_.begin(); it != failures_.end();) {
    std::deque<absl::Time>& times = it->second;
    while (!times.empty() && times.front() < cutoff) {
      times.pop_front();
    }
    if (times.empty()) {
      failures_.erase(it++);
    } else {
      ++it;
    }
  }
}

void LocalFallback::Observe(const AgentEvent& event,
                            uint64_t pending_sequence) {
  if (!config_.enabled || !event.ip.has_value() ||
      (event.kind != EventKind::kAuthFailure &&
       event.kind != EventKind::kLockout)) {
    return;
  }
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  auto it = failures_.find(*event.ip);
  if (it == failures_.end()) {
    if (failures_.size() >= kMaxTrackedAddresses) {
      Prune(now);
      if (failures_.size() >= kMaxTrackedAddresses) {
        return;
      }
    }
    it = failures_.emplace(*event.ip, std::deque<absl::Time>()).first;
  }
  std::deque<absl::Time>& times = it->second;
  times.push_back(now);
  while (!times.empty() && times.front() < now - config_.window) {
    times.pop_front();
  }
  // Bounded: only the last `failures` times matter.
  while (times.size() > static_cast<size_t>(config_.failures)) {
    times.pop_front();
  }
  if (!active_ || static_cast<int>(times.size()) < config_.failures) {
    return;
  }
  const IpPrefix prefix = IpPrefix::Host(*event.ip);
  const bool banned =
      std::any_of(bans_.begin(), bans_.end(),
                  [&](const LocalBan& b) { return b.prefix == prefix; });
  if (banned || static_cast<int>(bans_.size()) >= config_.max_bans) {
    return;
  }
  bans_.push_back(LocalBan{.prefix = prefix,
                           .created = now,
                           .expires = now + config_.ban_duration,
                           .evidence_sequence = pending_sequence});
  changed_ = true;
  RAMPART_LOG(Warning) << "local fallback: banning " << prefix.ToString()
                       << " for " << config_.ban_duration << " ("
                       << times.size() << " failures within " << config_.window
                       << ")";
}

bool LocalFallback::UpdateReachability(
    std::optional<absl::Time> unreachable_since) {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  const bool active = config_.enabled && unreachable_since.has_value() &&
                      now - *unreachable_since >= config_.activate_after;
  if (active != active_) {
    RAMPART_LOG(Warning) << "local fallback "
                         << (active ? "activated: server unreachable"
                                    : "deactivated: server reachable");
  }
  active_ = active;
  return active_;
}

bool LocalFallback::Reconcile(bool server_list_applied,
                              uint64_t acked_through) {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  const size_t before = bans_.size();
  // Read under mu_ here: clang's thread-safety analysis does not see the
  // lock inside the lambda.
  const bool active = active_;
  bans_.erase(std::remove_if(bans_.begin(), bans_.end(),
                             [&](const LocalBan& b) {
                               return b.expires <= now ||
                                      (server_list_applied && !active &&
                                       b.evidence_sequence <= acked_through);
                             }),
              bans_.end());
  changed_ = changed_ || bans_.size() != before;
  const bool changed = changed_;
  changed_ = false;
  return changed;
}

bool LocalFallback::TakeChanged() {
  absl::MutexLock lock(&mu_);
  const bool changed = changed_;
  changed_ = false;
  return changed;
}

std::vector<LocalBan> LocalFallback::bans() const {
  absl::MutexLock lock(&mu_);
  return bans_;
}

bool LocalFallback::active() const {
  absl::MutexLock lock(&mu_);
  return active_;
}

void LocalFallback::Restore(std::vector<LocalBan> bans) {
  absl::MutexLock lock(&mu_);
  bans_ = std::move(bans);
  changed_ = true;
}

}  // namespace rampart::agent
