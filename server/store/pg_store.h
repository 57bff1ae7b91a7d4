#pragma once

// PgStore: the Store on PostgreSQL 15 (libpqxx 6.4).
//
// Schema: migrations/postgres/V*.sql, embedded at build time and applied by
// Create() (see below). Times are `timestamptz` (microseconds, UTC; a
// permanent ban expires at 'infinity'); addresses are `inet`, prefixes
// `cidr`; EventsForPrefix is a range scan (first to last address of the
// prefix) on a B-tree index of events.ip (cheaper to maintain on insert than
// GiST; migrations/postgres/V002). User names are `bytea` (attacker-controlled
// bytes); other strings are `text` and must be valid UTF-8 without NUL (else
// kInvalidArgument). 64-bit unsigned ids (ban ids, revisions, spool epochs) are
// stored bit-for-bit in `bigint`.
//
// Thread-safety: thread-safe. Calls run on a bounded pool of connections
// (PgStoreOptions::pool_size, each with its own prepared statements): up to
// that many calls run concurrently, the others wait for a free connection.
// Commit() serialises journal writers with a database-side advisory lock, so
// several connections (or several server processes) may share one database;
// commits without journal entries (events only) run in parallel.
//
// Errors (CONVENTIONS.md item 5, see pg_status.h): kUnavailable if the
// database is unreachable (the broken connection is dropped and the next
// call reconnects), kAborted for serialization failures and deadlocks,
// kAlreadyExists for unique violations, kUnknown when a commit's outcome is
// unknown, kInternal (with SQLSTATE) for other SQL errors.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/enrollment_store.h"
#include "server/core/store.h"

namespace rampart::server {

struct PgStoreOptions {
  // libpq connection string, e.g. "host=/tmp/pg port=5432 dbname=rampart".
  // Required.
  std::string dsn;
  // If non-empty, every object lives in this schema: Create() creates it if
  // missing and sets the session's search_path to it. Tests use a unique
  // schema each (and DropSchemaForTest() afterwards). Default "": the
  // database's default search_path (normally `public`).
  std::string schema;
  // Server-side statement_timeout for every statement; zero disables it.
  // Default 30 s.
  absl::Duration statement_timeout = absl::Seconds(30);
  // Events per page read by ForEachEvent. Default 10000.
  int read_page_size = 10000;
  // Connections kept open, at most; each is used by one call at a time.
  // Clamped to [1, 64]. Default 4: two ingest workers' transactions
  // (IngestPipelineOptions::workers), the next group's duplicate look-up,
  // and admin queries.
  int pool_size = 4;
};

class PgStore : public Store, public EnrollmentStore {
 public:
  // Connects, creates options.schema if set, and applies pending migrations
  // in one transaction under pg_advisory_xact_lock(kMigrationLockKey), so
  // concurrent starts apply each migration exactly once. Returns
  // kInvalidArgument for an empty dsn, kUnavailable if the database cannot
  // be reached, kFailedPrecondition if the database has a migration newer
  // than this binary knows (or one whose name differs), other codes per
  // pg_status.h.
  static absl::StatusOr<std::unique_ptr<PgStore>> Create(
      const PgStoreOptions& options);

  ~PgStore() override;
  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;

  // Store
  absl::Status Commit(const CommitRecord& record) override;
  absl::StatusOr<bool> HasBatch(const BatchId& batch) override;
  // One statement (one round trip) for all of `batches`.
  absl::StatusOr<std::vector<bool>> HasBatches(
      const std::vector<BatchId>& batches) override;
  absl::StatusOr<DurableState> LoadState(absl::Time now) override;
  absl::StatusOr<std::vector<JournalEntry>> JournalSince(uint64_t after,
                                                         size_t limit) override;
  absl::StatusOr<uint64_t> BanListEpoch() override;
  absl::StatusOr<uint64_t> OldestRevision() override;
  absl::StatusOr<int64_t> PruneJournal(uint64_t keep_from) override;
  // NOTE: reads in pages of options.read_page_size (keyset pagination on
  // (time, id)), each page in its own transaction, and calls `fn` WITHOUT
  // holding the connection, so `fn` may call back into this store. Events
  // committed concurrently may or may not be seen.
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

  // Highest migration version applied to the database (0 if none).
  absl::StatusOr<int> SchemaVersion();

  // Drops `schema` (CASCADE) if it exists. For tests that create a store per
  // schema.
  static absl::Status DropSchemaForTest(const std::string& dsn,
                                        const std::string& schema);

  // How events are written by Commit(): COPY (the default; measured faster)
  // or one multi-row INSERT ... SELECT FROM unnest($1::timestamptz[], ...).
  enum class EventWriteMode { kCopy, kInsertUnnest };
  void SetEventWriteModeForTest(EventWriteMode mode);

  // Drops the idle connections, and those in use when their call returns,
  // as if the server had gone away; the next call reconnects.
  void DisconnectForTest();

 private:
  // One libpqxx connection with the session set up (search_path,
  // statement_timeout) and the statements prepared. Defined in pg_store.cc
  // so that no libpqxx header leaks into users of this one.
  class Session;

  explicit PgStore(const PgStoreOptions& options);

  // Runs `body` on a pooled session (waiting for a free one, connecting
  // first if needed) and maps any libpqxx exception via pg_status.h; drops
  // the session if the connection broke or a commit's outcome is unknown.
  // `operation` names the call in error messages.
  absl::Status Run(const char* operation,
                   const std::function<absl::Status(Session&)>& body)
      ABSL_LOCKS_EXCLUDED(mu_);

  absl::Status Migrate() ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const PgStoreOptions options_;

  absl::Mutex mu_;
  // State below is protected by mu_.
  // Open sessions not in use; with `busy_` at most options_.pool_size.
  std::vector<std::unique_ptr<Session>> idle_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  // Bumped by DisconnectForTest(): sessions of an older generation are
  // closed when they come back.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  EventWriteMode event_write_mode_ ABSL_GUARDED_BY(mu_) = EventWriteMode::kCopy;
};

}  // namespace rampart::server
