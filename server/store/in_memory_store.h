#pragma once

// InMemoryStore: a complete Store kept in memory. Used by tests (as the fake
// the contract suite holds to the same behaviour as SqliteStore and PgStore)
// and by policy dry-run replays. Nothing survives the process.
//
// Thread-safety: thread-safe (one mutex).

#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"

namespace rampart::server {

class InMemoryStore final : public Store {
 public:
  InMemoryStore() = default;

  // Store
  absl::Status Commit(const CommitRecord& record) override;
  absl::StatusOr<bool> HasBatch(const BatchId& batch) override;
  absl::StatusOr<DurableState> LoadState(absl::Time now) override;
  absl::StatusOr<std::vector<JournalEntry>> JournalSince(uint64_t after,
                                                         size_t limit) override;
  absl::StatusOr<uint64_t> OldestRevision() override;
  absl::StatusOr<int64_t> PruneJournal(uint64_t keep_from) override;
  absl::Status ForEachEvent(
      absl::Time from, absl::Time to,
      const std::function<absl::Status(const AuthEvent&)>& fn) override;
  absl::StatusOr<std::vector<AuthEvent>> EventsForPrefix(const IpPrefix& prefix,
                                                         absl::Time since,
                                                         size_t limit) override;
  absl::StatusOr<int64_t> PruneEvents(absl::Time before) override;
  absl::StatusOr<std::vector<Ban>> BansFor(const IpPrefix& prefix) override;
  absl::StatusOr<std::vector<AccountAttack>> ListAccounts(
      absl::Time since, size_t limit) override;
  absl::StatusOr<std::vector<CompromiseAlert>> ListAlerts(
      absl::Time since, size_t limit) override;
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(absl::Time since,
                                                     size_t limit) override;

 private:
  struct StoredBan {
    Ban ban;
    std::optional<absl::Time> removed_at;
  };

  mutable absl::Mutex mu_;
  // (time, insertion sequence) -> event: time order, ties in insertion order.
  std::map<std::pair<absl::Time, uint64_t>, AuthEvent> events_
      ABSL_GUARDED_BY(mu_);
  uint64_t event_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<BatchId> batches_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, JournalEntry> journal_ ABSL_GUARDED_BY(mu_);
  uint64_t head_revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, StoredBan> bans_ ABSL_GUARDED_BY(mu_);  // by id
  std::map<IpPrefix, AllowEntry> allow_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, AccountAttack> accounts_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, CompromiseAlert> alerts_ ABSL_GUARDED_BY(mu_);
  std::vector<AuditRecord> audit_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::server
