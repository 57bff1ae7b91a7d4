#include "agent/daemon/ban_list_keeper.h"

#include <algorithm>

#include "agent/firewall/enforced_state.h"
#include "common/logging.h"

namespace rampart::agent {

BanListKeeper::BanListKeeper(Enforcer& enforcer) : enforcer_(enforcer) {}

std::vector<LocalBan> BanListKeeper::LoadState(uint64_t evidence_sequence) {
  std::vector<LocalBan> bans;
  if (enforcer_.state_path().empty()) {
    return bans;
  }
  absl::StatusOr<EnforcedState> state =
      ReadEnforcedState(enforcer_.state_path());
  if (!state.ok()) {
    return bans;
  }
  absl::MutexLock lock(&mu_);
  server_.clear();
  local_.clear();
  for (const BanItem& item : state->items) {
    if (item.id >= kLocalIdBase) {
      local_.push_back(item);
      // The creation time is not persisted; the expiry is.
      bans.push_back(
          LocalBan{.prefix = item.prefix,
                   .created = absl::InfinitePast(),
                   .expires = item.expires.value_or(absl::InfiniteFuture()),
                   .evidence_sequence = evidence_sequence});
    } else {
      server_[item.id] = item;
    }
  }
  return bans;
}

std::vector<BanItem> BanListKeeper::CombinedLocked() const {
  std::vector<BanItem> items;
  items.reserve(server_.size() + local_.size());
  for (const auto& [id, item] : server_) {
    items.push_back(item);
  }
  items.insert(items.end(), local_.begin(), local_.end());
  return items;
}

absl::StatusOr<ApplyReport> BanListKeeper::ApplyServerSnapshot(
    uint64_t epoch, uint64_t revision, const std::vector<BanItem>& items) {
  absl::MutexLock lock(&mu_);
  absl::flat_hash_map<uint64_t, BanItem> next;
  for (const BanItem& item : items) {
    if (item.id == 0 || item.id >= kLocalIdBase) {
      return absl::InvalidArgumentError("server ban id out of range");
    }
    next[item.id] = item;
  }
  std::vector<BanItem> combined = items;
  combined.insert(combined.end(), local_.begin(), local_.end());
  absl::StatusOr<ApplyReport> report =
      enforcer_.ApplySnapshot(epoch, revision, combined);
  if (report.ok() ||
      (report.status().code() != absl::StatusCode::kInvalidArgument &&
       enforcer_.ListRevision() == std::make_pair(epoch, revision))) {
    server_ = std::move(next);
  }
  if (report.ok()) {
    ++server_applies_;
  }
  return report;
}

absl::StatusOr<ApplyReport> BanListKeeper::ApplyServerDelta(
    uint64_t epoch, uint64_t from_revision, uint64_t to_revision,
    const std::vector<BanChange>& changes) {
  absl::MutexLock lock(&mu_);
  for (const BanChange& c : changes) {
    if (c.item.id == 0 || c.item.id >= kLocalIdBase) {
      return absl::InvalidArgumentError("server ban id out of range");
    }
  }
  absl::StatusOr<ApplyReport> report =
      enforcer_.ApplyDelta(epoch, from_revision, to_revision, changes);
  // The Enforcer advances its list even when the backend failed; mirror it.
  if (enforcer_.ListRevision() == std::make_pair(epoch, to_revision)) {
    for (const BanChange& c : changes) {
      if (c.op == BanChange::Op::kRemove) {
        server_.erase(c.item.id);
      } else {
        server_[c.item.id] = c.item;
      }
    }
  }
  if (report.ok()) {
    ++server_applies_;
  }
  return report;
}

absl::Status BanListKeeper::SetLocalBans(const std::vector<LocalBan>& bans) {
  absl::MutexLock lock(&mu_);
  local_.clear();
  uint64_t id = kLocalIdBase;
  for (const LocalBan& b : bans) {
    local_.push_back(
        BanItem{.id = id++, .prefix = b.prefix, .expires = b.expires});
  }
  // Drop expired server items from the mirror (the Enforcer ignores them).
  const auto [epoch, revision] = enforcer_.ListRevision();
  absl::StatusOr<ApplyReport> report =
      enforcer_.ApplySnapshot(epoch, revision, CombinedLocked());
  return report.status();
}

std::pair<uint64_t, uint64_t> BanListKeeper::ListRevision() const {
  return enforcer_.ListRevision();
}

uint64_t BanListKeeper::server_applies() const {
  absl::MutexLock lock(&mu_);
  return server_applies_;
}

}  // namespace rampart::agent
