#pragma once

// Store: everything the server persists. The port through which the core
// persists, so it is declared here in core (with the values it carries, in
// server/core/durable_state.h) and implemented in server/store/: the stores
// depend on core, never the reverse (docs/architecture.md, "Dependency
// rules"). Three implementations: InMemoryStore (tests), SqliteStore (the
// embedded default) and PgStore (PostgreSQL 15 via libpqxx); StoreWrapper
// (server/store/store_wrapper.h) is the forwarding base for decorators. A
// parameterised contract suite (tests/server/store_contract_test.cc) runs
// against all of them.
//
// All mutations of one correlator step go through Commit() in ONE
// transaction, so "a decision is durable before it is published" holds: the
// caller publishes a ban only after Commit() returned OK.
//
// Thread-safety: implementations are thread-safe (calls may come from any
// thread; they serialise internally as needed).
// Errors: kUnavailable (database unreachable: retry later), kAborted
// (transaction conflict: retry), kAlreadyExists (batch already committed),
// kInvalidArgument, kInternal (with SQLSTATE / SQLite code in the message).
//
// Times are stored at microsecond resolution: every absl::Time read back is
// the one written truncated towards the past (absl::ToUnixMicros), and time
// arguments (since, from, to, before, now) are truncated the same way; the
// infinities stay infinite.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/auth_event.h"
#include "server/core/ban.h"
#include "server/core/durable_state.h"
#include "server/core/records.h"

namespace rampart::server {

class Store {
 public:
  virtual ~Store() = default;

  // Persists `record` in one transaction (all or nothing): on any error
  // nothing of it is visible. An empty record is OK and writes nothing.
  // Returns kAlreadyExists if one of record.batches was committed before (or
  // appears twice) or an alert id exists (or appears twice); for the
  // journal: kAborted if its first revision is not above the stored head
  // (another writer won: reload and retry), kInvalidArgument if it leaves a
  // gap after the head or is not contiguous in itself.
  virtual absl::Status Commit(const CommitRecord& record) = 0;

  // True if `batch` was committed.
  virtual absl::StatusOr<bool> HasBatch(const BatchId& batch) = 0;
  // For each of `batches`, in order, whether it was committed. The default
  // calls HasBatch() per batch; the SQL stores answer in one query.
  virtual absl::StatusOr<std::vector<bool>> HasBatches(
      const std::vector<BatchId>& batches) {
    std::vector<bool> found;
    found.reserve(batches.size());
    for (const BatchId& b : batches) {
      absl::StatusOr<bool> f = HasBatch(b);
      if (!f.ok()) {
        return f.status();
      }
      found.push_back(*f);
    }
    return found;
  }

  // Loads the durable state as of `now` (for rebuild after a restart), from
  // one consistent snapshot. The allowlist includes expired entries; the
  // history and allowlist are sorted by prefix, active bans by id.
  virtual absl::StatusOr<DurableState> LoadState(absl::Time now) = 0;

  // Journal entries with revision > `after`, ascending, at most `limit`.
  virtual absl::StatusOr<std::vector<JournalEntry>> JournalSince(
      uint64_t after, size_t limit) = 0;
  // The lineage of this database's ban list: a random non-zero id created
  // with the schema and never changed, so agents can tell a restarted server
  // (same epoch: resume from their revision) from a new or restored database
  // (another epoch: take a snapshot).
  virtual absl::StatusOr<uint64_t> BanListEpoch() = 0;
  // Lowest revision still in the journal (0 if empty). An agent whose
  // revision is below OldestRevision() - 1 needs a snapshot.
  virtual absl::StatusOr<uint64_t> OldestRevision() = 0;
  // Deletes journal entries with revision < `keep_from`. Returns how many.
  virtual absl::StatusOr<int64_t> PruneJournal(uint64_t keep_from) = 0;

  // Calls `fn` for every event with from <= time < to, in time order (ties in
  // insertion order). Stops and returns fn's error if it returns one.
  virtual absl::Status ForEachEvent(
      absl::Time from, absl::Time to,
      const std::function<absl::Status(const AuthEvent&)>& fn) = 0;
  // Most recent events (newest first) whose ip lies in `prefix`, at most
  // `limit`, with time >= since.
  virtual absl::StatusOr<std::vector<AuthEvent>> EventsForPrefix(
      const IpPrefix& prefix, absl::Time since, size_t limit) = 0;
  // Retention: deletes events with time < `before`. Returns how many.
  virtual absl::StatusOr<int64_t> PruneEvents(absl::Time before) = 0;

  // All bans (active or not) whose prefix equals `prefix`, newest (highest
  // id) first, each as of its latest journal entry.
  virtual absl::StatusOr<std::vector<Ban>> BansFor(const IpPrefix& prefix) = 0;

  // Accounts with last_seen >= since, most recently seen first (ties by
  // user, bytewise), at most `limit`.
  virtual absl::StatusOr<std::vector<AccountAttack>> ListAccounts(
      absl::Time since, size_t limit) = 0;
  // Alerts with time >= since, newest first (ties: highest id first), at
  // most `limit`.
  virtual absl::StatusOr<std::vector<CompromiseAlert>> ListAlerts(
      absl::Time since, size_t limit) = 0;
  // Audit records with time >= since, newest first (ties: highest id first),
  // at most `limit`. Ids are assigned by the store: 1, 2, ... in commit
  // order.
  virtual absl::StatusOr<std::vector<AuditRecord>> ListAudit(absl::Time since,
                                                             size_t limit) = 0;
  // --- Admin API tokens (docs/security.md "Admin authorization") ---------
  // Not part of Commit(): tokens are managed from the command line
  // (`rampart-server token ...`) and at start-up, not by the correlator.
  // The defaults answer kUnimplemented, for wrappers and fakes that never
  // serve the admin API; every real store overrides all four.

  // Stores a new token. kAlreadyExists if a token with the same name and no
  // revocation exists, or a token with the same hash exists. A revoked
  // token of the same name is replaced.
  virtual absl::Status PutApiToken(const ApiToken& token) {
    (void)token;
    return absl::UnimplementedError("this store keeps no API tokens");
  }
  // The token whose hash is `hash` and that is not revoked, or nullopt.
  virtual absl::StatusOr<std::optional<ApiToken>> FindApiToken(
      std::string_view hash) {
    (void)hash;
    return absl::UnimplementedError("this store keeps no API tokens");
  }
  // Every token, revoked ones included, ordered by name.
  virtual absl::StatusOr<std::vector<ApiToken>> ListApiTokens() {
    return absl::UnimplementedError("this store keeps no API tokens");
  }
  // Revokes the unrevoked token named `name` as of `at`. kNotFound if none.
  virtual absl::Status RevokeApiToken(std::string_view name, absl::Time at) {
    (void)name;
    (void)at;
    return absl::UnimplementedError("this store keeps no API tokens");
  }
};

}  // namespace rampart::server
