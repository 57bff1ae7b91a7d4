#include "server/store/in_memory_store.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <random>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace rampart::server {
namespace {

// Events copied out per lock acquisition by ForEachEvent.
constexpr size_t kReadPageSize = 4096;

// What a database store reads back for `t`: microseconds since the epoch,
// truncated towards the past (absl::ToUnixMicros); the infinities (stored as
// the int64 extremes) stay infinite.
absl::Time Stored(absl::Time t) {
  const int64_t us = absl::ToUnixMicros(t);
  if (us == std::numeric_limits<int64_t>::max()) {
    return absl::InfiniteFuture();
  }
  if (us == std::numeric_limits<int64_t>::min()) {
    return absl::InfinitePast();
  }
  return absl::FromUnixMicros(us);
}

Ban Stored(Ban b) {
  b.created = Stored(b.created);
  b.expires = Stored(b.expires);
  return b;
}

}  // namespace

absl::Status InMemoryStore::Validate(const CommitRecord& r) const {
  absl::flat_hash_set<BatchKey> batch_keys;
  for (const BatchId& b : r.batches) {
    BatchKey key(b.agent_id, b.spool_epoch, b.sequence);
    if (batches_.contains(key) || !batch_keys.insert(std::move(key)).second) {
      return absl::AlreadyExistsError(
          absl::StrFormat("batch %s/%d/%d already committed",
                          Abbreviate(b.agent_id), b.spool_epoch, b.sequence));
    }
  }
  for (size_t i = 1; i < r.journal.size(); ++i) {
    if (r.journal[i].revision != r.journal[i - 1].revision + 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("journal revisions not contiguous: %d follows %d",
                          r.journal[i].revision, r.journal[i - 1].revision));
    }
  }
  if (!r.journal.empty()) {
    const uint64_t first = r.journal.front().revision;
    if (first <= head_revision_) {
      return absl::AbortedError(absl::StrFormat(
          "journal revision %d already written (stored revision %d): another "
          "writer committed first; reload and retry",
          first, head_revision_));
    }
    if (first != head_revision_ + 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "journal revision %d does not follow stored revision %d", first,
          head_revision_));
    }
  }
  absl::flat_hash_set<uint64_t> alert_ids;
  for (const CompromiseAlert& a : r.alerts) {
    if (alerts_.contains(a.id) || !alert_ids.insert(a.id).second) {
      return absl::AlreadyExistsError(
          absl::StrFormat("alert %d already exists", a.id));
    }
  }
  return absl::OkStatus();
}

absl::Status InMemoryStore::Commit(const CommitRecord& r) {
  if (r.empty()) {
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  // All or nothing: everything that can fail is checked before any change.
  RETURN_IF_ERROR(Validate(r));
  for (const BatchId& b : r.batches) {
    batches_.insert(BatchKey(b.agent_id, b.spool_epoch, b.sequence));
  }
  for (const JournalEntry& entry : r.journal) {
    JournalEntry j = entry;
    j.at = Stored(j.at);
    j.ban = Stored(j.ban);
    // The ban as of its latest entry: kRemove marks it removed, kAdd and
    // kUpdate (re)state it.
    StoredBan& b = bans_[j.ban.id];
    b.ban = j.ban;
    if (j.op == JournalEntry::Op::kRemove) {
      b.removed_at = j.at;
    } else {
      b.removed_at.reset();
    }
    head_revision_ = j.revision;
    journal_[j.revision] = std::move(j);
  }
  for (const AuthEvent& e : r.events) {
    AuthEvent copy = e;
    copy.time = Stored(copy.time);
    const absl::Time t = copy.time;
    events_.emplace(EventKey(t, next_event_seq_++), std::move(copy));
  }
  for (const CompromiseAlert& a : r.alerts) {
    CompromiseAlert copy = a;
    copy.time = Stored(copy.time);
    alerts_[a.id] = std::move(copy);
  }
  for (const AccountAttack& a : r.accounts) {
    AccountAttack copy = a;
    copy.first_seen = Stored(copy.first_seen);
    copy.last_seen = Stored(copy.last_seen);
    accounts_[a.user] = std::move(copy);
  }
  // Puts, then deletes (as the database stores do).
  for (const AllowEntry& a : r.allow_put) {
    AllowEntry copy = a;
    if (copy.expires) {
      copy.expires = Stored(*copy.expires);
    }
    copy.created = Stored(copy.created);
    allow_[a.prefix] = std::move(copy);
  }
  for (const IpPrefix& p : r.allow_delete) {
    allow_.erase(p);
  }
  for (const AuditRecord& a : r.audit) {
    AuditRecord copy = a;
    copy.id = audit_.size() + 1;
    copy.time = Stored(copy.time);
    audit_.push_back(std::move(copy));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> InMemoryStore::HasBatch(const BatchId& batch) {
  absl::MutexLock lock(&mu_);
  return batches_.contains(
      BatchKey(batch.agent_id, batch.spool_epoch, batch.sequence));
}

absl::StatusOr<DurableState> InMemoryStore::LoadState(absl::Time now) {
  absl::MutexLock lock(&mu_);
  DurableState s;
  s.revision = head_revision_;
  s.max_ban_id = bans_.empty() ? 0 : bans_.rbegin()->first;
  s.max_alert_id = alerts_.empty() ? 0 : alerts_.rbegin()->first;
  const absl::Time stored_now = Stored(now);
  std::map<IpPrefix, BanHistory> history;
  for (const auto& [id, stored] : bans_) {
    const Ban& b = stored.ban;
    if (!stored.removed_at && b.ActiveAt(stored_now)) {
      s.active_bans.push_back(b);
    }
    // Bans are visited by increasing id, so the most recent one is last.
    BanHistory& h = history[b.prefix];
    h.prefix = b.prefix;
    ++h.bans;
    h.last_level = b.level;
    h.last_end =
        stored.removed_at ? std::min(*stored.removed_at, b.expires) : b.expires;
  }
  for (const auto& [prefix, h] : history) {
    s.history.push_back(h);
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

absl::StatusOr<uint64_t> InMemoryStore::BanListEpoch() {
  // Random per store object (its "database"), fixed for its lifetime.
  static std::atomic<uint64_t> counter{0};
  absl::MutexLock lock(&mu_);
  if (epoch_ == 0) {
    std::random_device rd;
    epoch_ =
        ((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ counter.fetch_add(1)) | 1;
  }
  return epoch_;
}

absl::StatusOr<uint64_t> InMemoryStore::OldestRevision() {
  absl::MutexLock lock(&mu_);
  return journal_.empty() ? 0 : journal_.begin()->first;
}

absl::StatusOr<int64_t> InMemoryStore::PruneJournal(uint64_t keep_from) {
  absl::MutexLock lock(&mu_);
  const auto end = journal_.lower_bound(keep_from);
  const int64_t n = std::distance(journal_.begin(), end);
  journal_.erase(journal_.begin(), end);
  return n;
}

absl::Status InMemoryStore::ForEachEvent(
    absl::Time from, absl::Time to,
    const std::function<absl::Status(const AuthEvent&)>& fn) {
  from = Stored(from);
  to = Stored(to);
  // The next page starts at the first key >= cursor.
  EventKey cursor(from, 0);
  std::vector<AuthEvent> page;
  while (true) {
    page.clear();
    {
      absl::MutexLock lock(&mu_);
      for (auto it = events_.lower_bound(cursor);
           it != events_.end() && it->first.first < to &&
           page.size() < kReadPageSize;
           ++it) {
        page.push_back(it->second);
        cursor = EventKey(it->first.first, it->first.second + 1);
      }
    }
    // Without the lock: `fn` may call back into the store.
    for (const AuthEvent& e : page) {
      RETURN_IF_ERROR(fn(e));
    }
    if (page.size() < kReadPageSize) {
      return absl::OkStatus();
    }
  }
}

absl::StatusOr<std::vector<AuthEvent>> InMemoryStore::EventsForPrefix(
    const IpPrefix& prefix, absl::Time since, size_t limit) {
  since = Stored(since);
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
  before = Stored(before);
  absl::MutexLock lock(&mu_);
  const auto end = events_.lower_bound(EventKey(before, 0));
  const int64_t n = std::distance(events_.begin(), end);
  events_.erase(events_.begin(), end);
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
  since = Stored(since);
  absl::MutexLock lock(&mu_);
  std::vector<AccountAttack> out;
  for (const auto& [user, a] : accounts_) {
    if (a.last_seen >= since) {
      out.push_back(a);
    }
  }
  // Newest first; ties by user (bytewise, as the databases compare BLOBs).
  std::sort(out.begin(), out.end(),
            [](const AccountAttack& x, const AccountAttack& y) {
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
  since = Stored(since);
  absl::MutexLock lock(&mu_);
  std::vector<CompromiseAlert> out;
  for (const auto& [id, a] : alerts_) {
    if (a.time >= since) {
      out.push_back(a);
    }
  }
  // Newest first; ties by id, highest first.
  std::sort(out.begin(), out.end(),
            [](const CompromiseAlert& x, const CompromiseAlert& y) {
              return x.time != y.time ? x.time > y.time : x.id > y.id;
            });
  if (out.size() > limit) {
    out.resize(limit);
  }
  return out;
}

absl::StatusOr<std::vector<AuditRecord>> InMemoryStore::ListAudit(
    absl::Time since, size_t limit) {
  since = Stored(since);
  absl::MutexLock lock(&mu_);
  std::vector<AuditRecord> out;
  for (const AuditRecord& a : audit_) {
    if (a.time >= since) {
      out.push_back(a);
    }
  }
  // Newest first; ties by id, highest first.
  std::sort(out.begin(), out.end(),
            [](const AuditRecord& x, const AuditRecord& y) {
              return x.time != y.time ? x.time > y.time : x.id > y.id;
            });
  if (out.size() > limit) {
    out.resize(limit);
  }
  return out;
}

absl::Status InMemoryStore::PutApiToken(const ApiToken& token) {
  ApiToken copy = token;
  copy.created = Stored(copy.created);
  if (copy.revoked) {
    copy.revoked = Stored(*copy.revoked);
  }
  absl::MutexLock lock(&mu_);
  for (const ApiToken& t : tokens_) {
    if (t.hash == copy.hash) {
      return absl::AlreadyExistsError("a token with this hash exists");
    }
    if (t.name == copy.name && !t.revoked) {
      return absl::AlreadyExistsError(
          absl::StrFormat("token \"%s\" exists", copy.name));
    }
  }
  std::erase_if(tokens_,
                [&](const ApiToken& t) { return t.name == copy.name; });
  tokens_.push_back(std::move(copy));
  std::sort(
      tokens_.begin(), tokens_.end(),
      [](const ApiToken& x, const ApiToken& y) { return x.name < y.name; });
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ApiToken>> InMemoryStore::FindApiToken(
    std::string_view hash) {
  absl::MutexLock lock(&mu_);
  for (const ApiToken& t : tokens_) {
    if (t.hash == hash && !t.revoked) {
      return std::optional<ApiToken>(t);
    }
  }
  return std::optional<ApiToken>();
}

absl::StatusOr<std::vector<ApiToken>> InMemoryStore::ListApiTokens() {
  absl::MutexLock lock(&mu_);
  return tokens_;
}

absl::Status InMemoryStore::RevokeApiToken(std::string_view name,
                                           absl::Time at) {
  absl::MutexLock lock(&mu_);
  for (ApiToken& t : tokens_) {
    if (t.name == name && !t.revoked) {
      t.revoked = Stored(at);
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(
      absl::StrFormat("no active token named \"%s\"", name));
}

namespace {
// Microsecond resolution, as the SQL stores.
absl::Time Micros(absl::Time t) {
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) {
    return t;
  }
  return absl::FromUnixMicros(absl::ToUnixMicros(t));
}
}  // namespace

absl::StatusOr<std::optional<AgentEnrollment>> InMemoryStore::GetEnrollment(
    std::string_view agent_id) {
  absl::MutexLock lock(&mu_);
  const auto it = enrollments_.find(agent_id);
  if (it == enrollments_.end()) {
    return std::optional<AgentEnrollment>();
  }
  return std::optional<AgentEnrollment>(it->second);
}

absl::Status InMemoryStore::PutEnrollment(const AgentEnrollment& e) {
  if (e.agent_id.empty()) {
    return absl::InvalidArgumentError("enrollment without agent id");
  }
  AgentEnrollment copy = e;
  for (absl::Time* t :
       {&copy.token_expires, &copy.created, &copy.cert_not_after,
        &copy.enrolled_at, &copy.revoked_at}) {
    *t = Micros(*t);
  }
  absl::MutexLock lock(&mu_);
  enrollments_[e.agent_id] = std::move(copy);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AgentEnrollment>> InMemoryStore::ListEnrollments() {
  absl::MutexLock lock(&mu_);
  std::vector<AgentEnrollment> out;
  out.reserve(enrollments_.size());
  for (const auto& [id, e] : enrollments_) {
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<std::vector<ProtectedAgentAddress>>
InMemoryStore::ListProtectedAddresses() {
  absl::MutexLock lock(&mu_);
  std::vector<ProtectedAgentAddress> out;
  for (const auto& [agent, rows] : protected_) {
    out.insert(out.end(), rows.begin(), rows.end());
  }
  return out;
}

absl::Status InMemoryStore::ReplaceProtectedAddresses(
    std::string_view agent_id, const std::vector<ProtectedAgentAddress>& rows) {
  RETURN_IF_ERROR(CheckProtectedRows(agent_id, rows));
  std::vector<ProtectedAgentAddress> copy = rows;
  for (ProtectedAgentAddress& r : copy) {
    r.since = Micros(r.since);
  }
  std::sort(copy.begin(), copy.end(),
            [](const ProtectedAgentAddress& a, const ProtectedAgentAddress& b) {
              return std::tie(a.address, a.source) <
                     std::tie(b.address, b.source);
            });
  absl::MutexLock lock(&mu_);
  if (copy.empty()) {
    if (auto it = protected_.find(agent_id); it != protected_.end()) {
      protected_.erase(it);
    }
  } else {
    protected_[std::string(agent_id)] = std::move(copy);
  }
  return absl::OkStatus();
}

}  // namespace rampart::server
