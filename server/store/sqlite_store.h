#pragma once

// SqliteStore: the Store on an embedded SQLite 3 database file (the default
// for a single server).
//
// Schema: migrations/sqlite/V*.sql, embedded at build time and applied by
// Create(). Times are INTEGER microseconds since the Unix epoch (truncated
// like absl::ToUnixMicros, as PostgreSQL's timestamptz; a permanent ban's
// expiry is NULL); an address is stored as canonical text and as its 16-byte
// (IPv4-mapped) form, and EventsForPrefix is a range scan over the latter.
// User names are BLOBs, so any bytes round-trip exactly.
//
// Durability: WAL journal with synchronous=FULL by default, so Commit()
// returns only after the WAL frames of its transaction were fsync()ed: a
// decision is durable (power loss included) before it is published. NORMAL
// would be faster but, in WAL mode, only syncs at checkpoints: a commit
// survives a process crash but may be lost on power loss or an OS crash,
// which would let an agent enforce (and the server forget) a ban - so NORMAL
// is for tests and benchmarks only.
//
// Several processes may open the same file: SQLite's file locks serialise
// writers (each Commit() is one BEGIN IMMEDIATE transaction that re-checks
// the journal head), waiting up to busy_timeout for another writer.
//
// Thread-safety: thread-safe. One connection, guarded by mu_: calls are
// serialised. ForEachEvent releases the lock between pages and calls `fn`
// without it (see docs/threading.md).
//
// Errors (SqliteError() in sqlite_statement.h): kUnavailable when another
// connection held the database locked for longer than busy_timeout,
// kAborted when the journal revision was already written (another writer
// won) or a snapshot went stale, kAlreadyExists for a batch committed before
// or a duplicate alert id, kInvalidArgument for a journal gap,
// kFailedPrecondition when the file cannot be opened or written,
// kResourceExhausted when the disk is full, kInternal (with the SQLite code
// in the message) for I/O errors, corruption and anything else.

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

class ScopedStatement;  // server/store/sqlite_statement.h (private)

// PRAGMA synchronous. kFull (the default): every commit waits for fsync of
// the WAL (durable before publication). kExtra: as kFull (it differs only
// outside WAL mode). kNormal: a power loss may lose the last commits (never
// corrupts the file); kOff: an OS crash may corrupt the file. kNormal and
// kOff break "durable before published": tests and benchmarks only.
enum class SqliteSynchronous { kOff, kNormal, kFull, kExtra };

struct SqliteStoreOptions {
  // Database file, created if missing. ":memory:" is a private in-memory
  // database (no WAL; gone when the store is destroyed). Required.
  std::string path;
  // How long a call waits for another connection's lock before failing with
  // kUnavailable. Default 5 s.
  absl::Duration busy_timeout = absl::Seconds(5);
  // Default kFull (see SqliteSynchronous).
  SqliteSynchronous synchronous = SqliteSynchronous::kFull;
  // Events per page read by ForEachEvent (the lock is released between
  // pages). Default 10000.
  int read_page_size = 10000;
  // SQLite's page cache for the connection (PRAGMA cache_size), in MiB.
  // Inserting events touches random leaves of the address index, which
  // SQLite's 2 MiB default keeps re-reading from the OS. Default 64.
  int cache_mib = 64;
};

class SqliteStore final : public Store, public EnrollmentStore {
 public:
  // Opens (creating if needed) the database at options.path, switches it to
  // WAL, sets synchronous, busy_timeout and foreign_keys=ON, and applies
  // pending migrations inside BEGIN EXCLUSIVE (one process migrates, others
  // wait for it and find nothing left to do), recording each in
  // schema_migrations(version, name, applied_at_us). Opening an up-to-date
  // database applies nothing. Every error message names the path. Returns
  // kInvalidArgument for empty options.path, read_page_size <= 0 or
  // cache_mib <= 0;
  // kFailedPrecondition if the file cannot be opened or written (missing
  // directory, permissions, read-only file), if WAL cannot be enabled, or if
  // the database has a migration this binary does not know (a newer Rampart
  // wrote it) or one whose name differs; kUnavailable if another process
  // held the file locked past busy_timeout; kInternal for other SQLite
  // errors (e.g. not a database).
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Create(
      const SqliteStoreOptions& options);

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // Store
  absl::Status Commit(const CommitRecord& record) override;
  absl::StatusOr<bool> HasBatch(const BatchId& batch) override;
  absl::StatusOr<std::vector<bool>> HasBatches(
      const std::vector<BatchId>& batches) override;
  absl::StatusOr<DurableState> LoadState(absl::Time now) override;
  absl::StatusOr<std::vector<JournalEntry>> JournalSince(uint64_t after,
                                                         size_t limit) override;
  absl::StatusOr<uint64_t> BanListEpoch() override;
  absl::StatusOr<uint64_t> OldestRevision() override;
  absl::StatusOr<int64_t> PruneJournal(uint64_t keep_from) override;
  // NOTE: reads in pages of options.read_page_size (keyset pagination on
  // (time, id)) and calls `fn` WITHOUT holding the lock, so `fn` may call
  // back into this store. Events committed concurrently may or may not be
  // seen.
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

  // The connection's PRAGMA synchronous (0 off, 1 normal, 2 full, 3 extra).
  absl::StatusOr<int> SynchronousForTest();

 private:
  // The connection and its cache of prepared statements. Defined in
  // sqlite_store.cc so that no SQLite header leaks into users of this one.
  struct Connection;

  SqliteStore(const SqliteStoreOptions& options,
              std::unique_ptr<Connection> connection);

  // Sets the connection's pragmas (WAL, synchronous, foreign keys).
  absl::Status Configure() ABSL_LOCKS_EXCLUDED(mu_);
  // Applies pending migrations (see Create()).
  absl::Status Migrate() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status MigrateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The cached prepared statement for `sql` (a constexpr string: the cache
  // is keyed by its address), reset and ready to bind; it is reset again
  // when the returned ScopedStatement goes out of scope.
  absl::StatusOr<ScopedStatement> Statement(const char* sql)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs a statement that takes no parameters and ignores its rows.
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `begin_sql` (BEGIN, BEGIN IMMEDIATE or BEGIN EXCLUSIVE).
  absl::Status Begin(const char* begin_sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the transaction Begin() started: COMMIT if `status` is OK (and
  // returns COMMIT's status), else ROLLBACK and returns `status`.
  absl::Status Finish(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Status CommitLocked(const CommitRecord& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The writes of ReplaceProtectedAddresses, inside its transaction.
  absl::Status ReplaceProtectedAddressesLocked(
      std::string_view agent_id, const std::vector<ProtectedAgentAddress>& rows)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertEvents(const std::vector<AuthEvent>& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoadStateLocked(absl::Time now, DurableState* state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint64_t> JournalHead() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<bool> HasBatchLocked(const BatchId& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const SqliteStoreOptions options_;

  absl::Mutex mu_;
  // State below is protected by mu_.
  std::unique_ptr<Connection> conn_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::server
