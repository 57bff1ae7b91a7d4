#include "server/store/in_memory_store.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace rampart::server {

absl::Status InMemoryStore::Commit(const CommitRecord& r) {
  absl::MutexLock lock(&mu_);
  // Validate everything first: all or nothing.
  if (r.batch.has_value() &&
      std::find(batches_.begin(), batches_.end(), *r.batch) != batches_.end()) {
    return absl::AlreadyExistsError(
        absl::StrFormat("batch %s/%d/%d already committed", r.batch->agent_id,
                        r.batch->spool_epoch, r.batch->sequence));
  }
  uint64_t expect = head_revision_ + 1;
  for (const JournalEntry& j : r.journal) {
    if (j.revision < expect && &j == &r.journal.front()) {
      return absl::AbortedError(
          absl::StrFormat("journal revision %d already written (head is %d)",
                          j.revision, head_revision_));
    }
    if (j.revision != expect) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "journal revision %d is not the next one (%d)", j.revision, expect));
    }
    ++expect;
  }
  for (const CompromiseAlert& a : r.alerts) {
    if (alerts_.contains(a.id)) {
      return absl::AlreadyExistsError(
          absl::StrFormat("alert %d already exists", a.id));
    }
  }
  // Apply.
  if (r.batch.has_value()) {
    batches_.push_back(*r.batch);
  }
  for (const AuthEvent& e : r.events) {
    events_.emplace(std::make_pair(e.time, event_seq_++), e);
  }
  for (const JournalEntry& j : r.journal) {
    journal_[j.revision] = j;
    head_revision_ = j.revision;
    StoredBan& b = bans_[j.ban.id];
    if (j.op == JournalEntry::Op::kRemove) {
      b.ban = j.ban;
      b.removed_at = j.at;
    } else {
      b.ban = j.ban;
      b.removed_at.reset();
    }
  }
  for (const CompromiseAlert& a : r.alerts) {
    alerts_[a.id] = a;
  }
  for (const AccountAttack& a : r.accounts) {
    accounts_[a.user] = a;
  }
  for (const AllowEntry& a : r.allow_put) {
    allow_[a.prefix] = a;
  }
  for (const IpPrefix& p : r.allow_delete) {
    allow_.erase(p);
  }
  for (AuditRecord a : r.audit) {
    a.id = audit_.size() + 1;
    audit_.push_back(std::move(a));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> InMemoryStore::HasBatch(const BatchId& batch) {
  absl::MutexLock lock(&mu_);
  return std::find(batches_.begin(), batches_.end(), batch) != batches_.end();
}

absl::StatusOr<DurableState> InMemoryStore::LoadState(absl::Time now) {
  absl::MutexLock lock(&mu_);
  DurableState s;
  s.revision = head_revision_;
  std::map<IpPrefix, BanHistory> history;
  for (const auto& [id, stored] : bans_) {
    s.max_ban_id = std::max(s.max_ban_id, id);
    const Ban& b = stored.ban;
    if (!stored.removed_at && b.ActiveAt(now)) {
      s.active_bans.push_back(b);
    }
    // Bans are iterated by increasing id, so the last one wins.
    BanHistory& h = history[b.prefix];
    h.prefix = b.prefix;
    ++h.bans;
    h.last_level = b.level;
    h.last_end =
        stored.removed_at ? std::min(*stored.removed_at, b.expires) : b.expires;
  }
  for (auto& [prefix, h] : history) {
    s.history.push_back(h);
  }
  for (const auto& [id, a] : alerts_) {
    s.max_alert_id = std::max(s.max_alert_id, id);
  }
  for (const auto& [prefix, a] : allow_) {
    s.allowlist.push_back(a);
  }
  return s;
}

absl::StatusOr<std::vector<JournalEntry>> InMemoryStore::JournalSince(
    uint64_t after, size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<JournalEntry> out;
  for (auto it = journal_.upper_bound(after);
       it != journal_.end() && out.size() < limit; ++it) {
    out.push_back(it->second);
  }
  return out;
}

absl::StatusOr<uint64_t> InMemoryStore::OldestRevision() {
  absl::MutexLock lock(&mu_);
  return journal_.empty() ? 0 : journal_.begin()->first;
}

absl::StatusOr<int64_t> InMemoryStore::PruneJournal(uint64_t keep_from) {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  while (!journal_.empty() && journal_.begin()->first < keep_from) {
    journal_.erase(journal_.begin());
    ++n;
  }
  return n;
}

absl::Status InMemoryStore::ForEachEvent(
    absl::Time from, absl::Time to,
    const std::function<absl::Status(const AuthEvent&)>& fn) {
  // Copy under the lock so `fn` may call back into the store.
  std::vector<AuthEvent> copy;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = events_.lower_bound({from, 0});
         it != events_.end() && it->first.first < to; ++it) {
      copy.push_back(it->second);
    }
  }
  for (const AuthEvent& e : copy) {
    if (absl::Status s = fn(e); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AuthEvent>> InMemoryStore::EventsForPrefix(
    const IpPrefix& prefix, absl::Time since, size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<AuthEvent> out;
  for (auto it = events_.rbegin(); it != events_.rend() && out.size() < limit;
       ++it) {
    if (it->first.first < since) {
      break;
    }
    if (it->second.ip && prefix.Contains(*it->second.ip)) {
      out.push_back(it->second);
    }
  }
  return out;
}

absl::StatusOr<int64_t> InMemoryStore::PruneEvents(absl::Time before) {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  while (!events_.empty() && events_.begin()->first.first < before) {
    events_.erase(events_.begin());
    ++n;
  }
  return n;
}

absl::StatusOr<std::vector<Ban>> InMemoryStore::BansFor(
    const IpPrefix& prefix) {
  absl::MutexLock lock(&mu_);
  std::vector<Ban> out;
  for (auto it = bans_.rbegin(); it != bans_.rend(); ++it) {
    if (it->second.ban.prefix == prefix) {
      out.push_back(it->second.ban);
    }
  }
  return out;
}

absl::StatusOr<std::vector<AccountAttack>> InMemoryStore::ListAccounts(
    absl::Time since, size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<AccountAttack> out;
  for (const auto& [user, a] : accounts_) {
    if (a.last_seen >= since) {
      out.push_back(a);
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) {
    return x.last_seen != y.last_seen ? x.last_seen > y.last_seen
                                      : x.user < y.user;
  });
  if (out.size() > limit) {
    out.resize(limit);
  }
  return out;
}

absl::StatusOr<std::vector<CompromiseAlert>> InMemoryStore::ListAlerts(
    absl::Time since, size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<CompromiseAlert> out;
  for (auto it = alerts_.rbegin(); it != alerts_.rend() && out.size() < limit;
       ++it) {
    if (it->second.time >= since) {
      out.push_back(it->second);
    }
  }
  return out;
}

absl::StatusOr<std::vector<AuditRecord>> InMemoryStore::ListAudit(
    absl::Time since, size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<AuditRecord> out;
  for (auto it = audit_.rbegin(); it != audit_.rend() && out.size() < limit;
       ++it) {
    if (it->time >= since) {
      out.push_back(*it);
    }
  }
  return out;
}

}  // namespace rampart::server
