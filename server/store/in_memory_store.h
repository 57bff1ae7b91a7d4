#pragma once

// InMemoryStore: a complete Store kept in memory. Used by tests (the fake the
// contract suite, tests/server/store_contract_test.cc, holds to the same
// behaviour as SqliteStore and PgStore) and by policy dry-run replays.
// Nothing survives the process.
//
// Faithful to the database stores, including their limits: times are kept at
// microsecond resolution (truncated towards the past, as absl::ToUnixMicros
// and the SQL columns do), user names are arbitrary bytes, the journal head
// survives PruneJournal(), audit ids are assigned 1, 2, ...
//
// Thread-safety: thread-safe (one mutex). ForEachEvent calls `fn` without
// holding it.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "server/core/enrollment_store.h"
#include "server/core/store.h"

namespace rampart::server {

class InMemoryStore final : public Store, public EnrollmentStore {
 public:
  InMemoryStore() = default;
  InMemoryStore(const InMemoryStore&) = delete;
  InMemoryStore& operator=(const InMemoryStore&) = delete;

  // Store
  absl::Status Commit(const CommitRecord& record) override;
  absl::StatusOr<bool> HasBatch(const BatchId& batch) override;
  absl::StatusOr<DurableState> LoadState(absl::Time now) override;
  absl::StatusOr<std::vector<JournalEntry>> JournalSince(uint64_t after,
                                                         size_t limit) override;
  absl::StatusOr<uint64_t> BanListEpoch() override;
  absl::StatusOr<uint64_t> OldestRevision() override;
  absl::StatusOr<int64_t> PruneJournal(uint64_t keep_from) override;
  // NOTE: copies events out in pages and calls `fn` without the lock, so
  // `fn` may call back into this store. Events committed concurrently may or
  // may not be seen.
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
  absl::Status PutApiToken(const ApiToken& token) override;
  absl::StatusOr<std::optional<ApiToken>> FindApiToken(
      std::string_view hash) override;
  absl::StatusOr<std::vector<ApiToken>> ListApiTokens() override;
  absl::Status RevokeApiToken(std::string_view name, absl::Time at) override;
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(absl::Time since,
                                                     size_t limit) override;

  // EnrollmentStore
  absl::StatusOr<std::optional<AgentEnrollment>> GetEnrollment(
      std::string_view agent_id) override;
  absl::Status PutEnrollment(const AgentEnrollment& e) override;
  absl::StatusOr<std::vector<AgentEnrollment>> ListEnrollments() override;
  absl::StatusOr<std::vector<ProtectedAgentAddress>> ListProtectedAddresses()
      override;
  absl::Status ReplaceProtectedAddresses(
      std::string_view agent_id,
      const std::vector<ProtectedAgentAddress>& rows) override;

 private:
  struct StoredBan {
    Ban ban;  // as of its latest journal entry
    std::optional<absl::Time> removed_at;
  };
  // (time, insertion sequence): time order, ties in insertion order.
  using EventKey = std::pair<absl::Time, uint64_t>;
  using BatchKey = std::tuple<std::string, uint64_t, uint64_t>;

  // Checks everything Commit() could reject, so that applying cannot fail.
  absl::Status Validate(const CommitRecord& record) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  // State below is protected by mu_.
  std::map<EventKey, AuthEvent> events_ ABSL_GUARDED_BY(mu_);
  uint64_t next_event_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, AgentEnrollment, std::less<>> enrollments_
      ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;  // BanListEpoch, 0 until asked
  absl::flat_hash_set<BatchKey> batches_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, JournalEntry> journal_ ABSL_GUARDED_BY(mu_);
  // Highest revision ever committed (kept when the journal is pruned).
  uint64_t head_revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, StoredBan> bans_ ABSL_GUARDED_BY(mu_);  // by id
  std::map<IpPrefix, AllowEntry> allow_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, AccountAttack> accounts_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, CompromiseAlert> alerts_ ABSL_GUARDED_BY(mu_);  // by id
  std::vector<AuditRecord> audit_ ABSL_GUARDED_BY(mu_);  // id = index + 1
  std::vector<ApiToken> tokens_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<ProtectedAgentAddress>, std::less<>>
      protected_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::server
