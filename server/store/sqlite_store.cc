#include "server/store/sqlite_store.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "server/store/migrations.h"
#include "server/store/sqlite_migrations.h"
#include "server/store/sqlite_statement.h"

namespace rampart::server {
namespace {

// --- Connection set-up and migrations ---------------------------------------

constexpr char kPragmaJournalModeWal[] = "PRAGMA journal_mode = WAL";
constexpr char kPragmaSynchronousOff[] = "PRAGMA synchronous = OFF";
constexpr char kPragmaSynchronousNormal[] = "PRAGMA synchronous = NORMAL";
constexpr char kPragmaSynchronousFull[] = "PRAGMA synchronous = FULL";
constexpr char kPragmaSynchronousExtra[] = "PRAGMA synchronous = EXTRA";
constexpr char kPragmaSynchronous[] = "PRAGMA synchronous";
constexpr char kPragmaForeignKeysOn[] = "PRAGMA foreign_keys = ON";

constexpr char kBegin[] = "BEGIN";
constexpr char kBeginImmediate[] = "BEGIN IMMEDIATE";
constexpr char kBeginExclusive[] = "BEGIN EXCLUSIVE";
constexpr char kCommitTransaction[] = "COMMIT";
constexpr char kRollbackTransaction[] = "ROLLBACK";

// The database's wall clock in microseconds since the Unix epoch (for the
// operators' applied_at / committed_us columns only; no decision reads it).
#define RAMPART_SQLITE_NOW_US \
  "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"

constexpr char kCreateMigrationsTable[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " applied_at_us INTEGER NOT NULL DEFAULT (" RAMPART_SQLITE_NOW_US "))";
constexpr char kSelectMigrations[] =
    "SELECT version, name FROM schema_migrations ORDER BY version";
constexpr char kInsertMigration[] =
    "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)";
constexpr char kSchemaVersion[] =
    "SELECT coalesce(max(version), 0) FROM schema_migrations";

#undef RAMPART_SQLITE_NOW_US

// --- Commit
// -------------------------------------------------------------------

constexpr char kInsertBatch[] =
    "INSERT INTO agent_batches (agent_id, spool_epoch, sequence)"
    " VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
constexpr char kHasBatch[] =
    "SELECT 1 FROM agent_batches"
    " WHERE agent_id = ?1 AND spool_epoch = ?2 AND sequence = ?3";
constexpr char kSelectJournalHead[] =
    "SELECT revision FROM journal_head WHERE singleton = 1";
constexpr char kUpdateJournalHead[] =
    "UPDATE journal_head SET revision = ?1 WHERE singleton = 1";
// Every journal entry carries the ban after the change; the bans table holds
// each ban as of its latest entry (removed_at_us set by kRemove, cleared by
// kAdd/kUpdate).
constexpr char kUpsertBan[] =
    "INSERT INTO bans (id, prefix, prefix_len, created_us, expires_us, origin,"
    " level, reason, actor, removed_at_us)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    " ON CONFLICT (id) DO UPDATE SET prefix = excluded.prefix,"
    " prefix_len = excluded.prefix_len, created_us = excluded.created_us,"
    " expires_us = excluded.expires_us, origin = excluded.origin,"
    " level = excluded.level, reason = excluded.reason,"
    " actor = excluded.actor, removed_at_us = excluded.removed_at_us";
constexpr char kInsertJournal[] =
    "INSERT INTO ban_journal (revision, op, at_us, ban_id, prefix, prefix_len,"
    " created_us, expires_us, origin, level, reason, actor)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
constexpr char kInsertEvent[] =
    "INSERT INTO events (time_us, agent_id, kind, protocol, ip, ip_bytes,"
    " username) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr char kInsertAlert[] =
    "INSERT INTO alerts (id, time_us, username, ip, agent_id, protocol,"
    " ip_score, recent_failures, account_under_attack, evidence)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
constexpr char kUpsertAccount[] =
    "INSERT INTO accounts (username, first_seen_us, last_seen_us, failures,"
    " distinct_ips, distinct_servers, sample_ips, servers)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    " ON CONFLICT (username) DO UPDATE SET"
    " first_seen_us = excluded.first_seen_us,"
    " last_seen_us = excluded.last_seen_us, failures = excluded.failures,"
    " distinct_ips = excluded.distinct_ips,"
    " distinct_servers = excluded.distinct_servers,"
    " sample_ips = excluded.sample_ips, servers = excluded.servers";
constexpr char kUpsertAllow[] =
    "INSERT INTO allowlist (prefix, expires_us, comment, actor, created_us)"
    " VALUES (?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT (prefix) DO UPDATE SET expires_us = excluded.expires_us,"
    " comment = excluded.comment, actor = excluded.actor,"
    " created_us = excluded.created_us";
constexpr char kDeleteAllow[] = "DELETE FROM allowlist WHERE prefix = ?1";
constexpr char kInsertAudit[] =
    "INSERT INTO audit (time_us, actor, action, target, before_json,"
    " after_json, peer) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

// --- Reads ----------------------------------------------------------------

// Ban columns in the order ReadBan() expects.
#define RAMPART_SQLITE_BAN_COLUMNS \
  "id, prefix, created_us, expires_us, origin, level, reason, actor"
// Event columns in the order ReadEvent() expects.
#define RAMPART_SQLITE_EVENT_COLUMNS \
  "time_us, agent_id, kind, protocol, ip_bytes, username"

constexpr char kMaxBanId[] = "SELECT coalesce(max(id), 0) FROM bans";
constexpr char kMaxAlertId[] = "SELECT coalesce(max(id), 0) FROM alerts";
constexpr char kActiveBans[] =
    "SELECT " RAMPART_SQLITE_BAN_COLUMNS
    " FROM bans WHERE removed_at_us IS NULL"
    " AND coalesce(expires_us, 9223372036854775807) > ?1 ORDER BY id";
// Per prefix: how many bans, and of the most recent one (highest id) its
// end - min(removed_at, expires), NULL meaning never - and level.
constexpr char kBanHistory[] =
    "SELECT prefix, bans, last_end_us, level FROM ("
    " SELECT prefix, level,"
    " count(*) OVER (PARTITION BY prefix) AS bans,"
    " min(coalesce(removed_at_us, 9223372036854775807),"
    " coalesce(expires_us, 9223372036854775807)) AS last_end_us,"
    " row_number() OVER (PARTITION BY prefix ORDER BY id DESC) AS newest"
    " FROM bans) WHERE newest = 1";
constexpr char kSelectAllowlist[] =
    "SELECT prefix, expires_us, comment, actor, created_us FROM allowlist";
constexpr char kJournalSince[] =
    "SELECT revision, op, at_us, ban_id, prefix, created_us, expires_us,"
    " origin, level, reason, actor FROM ban_journal WHERE revision > ?1"
    " ORDER BY revision LIMIT ?2";
constexpr char kBanListEpoch[] =
    "SELECT value FROM meta WHERE key = 'ban_list_epoch'";
constexpr char kOldestRevision[] =
    "SELECT coalesce(min(revision), 0) FROM ban_journal";
constexpr char kPruneJournal[] = "DELETE FROM ban_journal WHERE revision < ?1";
// Keyset pagination: the page after (?3, ?4) in (time_us, id) order.
constexpr char kEventsPage[] =
    "SELECT " RAMPART_SQLITE_EVENT_COLUMNS
    ", id FROM events WHERE time_us >= ?1 AND time_us < ?2"
    " AND (time_us, id) > (?3, ?4) ORDER BY time_us, id LIMIT ?5";
// A host prefix: equality on ip_bytes, so the index also yields the order.
constexpr char kEventsForHost[] =
    "SELECT " RAMPART_SQLITE_EVENT_COLUMNS
    " FROM events WHERE ip_bytes = ?1 AND time_us >= ?2"
    " ORDER BY time_us DESC, id DESC LIMIT ?3";
// An IPv4 prefix: its range lies inside ::ffff:0:0/96.
constexpr char kEventsForV4Range[] =
    "SELECT " RAMPART_SQLITE_EVENT_COLUMNS
    " FROM events WHERE ip_bytes BETWEEN ?1 AND ?2 AND time_us >= ?3"
    " ORDER BY time_us DESC, id DESC LIMIT ?4";
// An IPv6 prefix: its range may cover ::ffff:0:0/96 (e.g. ::/0, ::/64),
// where the IPv4 addresses are; they are not in any IPv6 prefix.
constexpr char kEventsForV6Range[] =
    "SELECT " RAMPART_SQLITE_EVENT_COLUMNS
    " FROM events WHERE ip_bytes BETWEEN ?1 AND ?2"
    " AND ip_bytes NOT BETWEEN X'00000000000000000000FFFF00000000'"
    " AND X'00000000000000000000FFFFFFFFFFFF'"
    " AND time_us >= ?3 ORDER BY time_us DESC, id DESC LIMIT ?4";
constexpr char kPruneEvents[] = "DELETE FROM events WHERE time_us < ?1";
constexpr char kBansFor[] = "SELECT " RAMPART_SQLITE_BAN_COLUMNS
                            " FROM bans WHERE prefix = ?1 ORDER BY id DESC";
constexpr char kListAccounts[] =
    "SELECT username, first_seen_us, last_seen_us, failures, distinct_ips,"
    " distinct_servers, sample_ips, servers FROM accounts"
    " WHERE last_seen_us >= ?1 ORDER BY last_seen_us DESC, username LIMIT ?2";
constexpr char kListAlerts[] =
    "SELECT id, time_us, username, ip, agent_id, protocol, ip_score,"
    " recent_failures, account_under_attack, evidence FROM alerts"
    " WHERE time_us >= ?1 ORDER BY time_us DESC, id DESC LIMIT ?2";
constexpr char kListAudit[] =
    "SELECT id, time_us, actor, action, target, before_json, after_json, peer"
    " FROM audit WHERE time_us >= ?1 ORDER BY time_us DESC, id DESC LIMIT ?2";
constexpr char kTokenHashExists[] = "SELECT 1 FROM api_tokens WHERE hash = ?1";
// Replaces a revoked token of the same name; an active one is left alone
// (no change: kAlreadyExists).
constexpr char kPutApiToken[] =
    "INSERT INTO api_tokens (name, role, hash, created_us, revoked_us)"
    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET"
    " role = excluded.role, hash = excluded.hash,"
    " created_us = excluded.created_us, revoked_us = excluded.revoked_us"
    " WHERE api_tokens.revoked_us IS NOT NULL";
constexpr char kFindApiToken[] =
    "SELECT name, role, hash, created_us, revoked_us FROM api_tokens"
    " WHERE hash = ?1 AND revoked_us IS NULL";
constexpr char kListApiTokens[] =
    "SELECT name, role, hash, created_us, revoked_us FROM api_tokens"
    " ORDER BY name";
constexpr char kRevokeApiToken[] =
    "UPDATE api_tokens SET revoked_us = ?2"
    " WHERE name = ?1 AND revoked_us IS NULL";

#define RAMPART_SQLITE_ENROLLMENT_COLUMNS                                 \
  "agent_id, site, token_sha256, token_expires_us, token_used, reenroll," \
  " created_us, cert_serial, cert_sha256, cert_not_after_us,"             \
  " enrolled_at_us, revoked, revoked_at_us, revoke_reason"
constexpr char kGetEnrollment[] = "SELECT " RAMPART_SQLITE_ENROLLMENT_COLUMNS
                                  " FROM agent_enrollments WHERE agent_id = ?1";
constexpr char kListEnrollments[] = "SELECT " RAMPART_SQLITE_ENROLLMENT_COLUMNS
                                    " FROM agent_enrollments ORDER BY agent_id";
constexpr char kPutEnrollment[] =
    "INSERT OR REPLACE INTO agent_enrollments "
    "(" RAMPART_SQLITE_ENROLLMENT_COLUMNS
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
#undef RAMPART_SQLITE_ENROLLMENT_COLUMNS
constexpr char kListProtected[] =
    "SELECT agent_id, address, source, since_us, actor"
    " FROM agent_protected_addresses"
    " ORDER BY agent_id, address, source = 'approved'";
constexpr char kDeleteProtected[] =
    "DELETE FROM agent_protected_addresses WHERE agent_id = ?1";
constexpr char kInsertProtected[] =
    "INSERT INTO agent_protected_addresses"
    " (agent_id, address, source, since_us, actor)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";

#undef RAMPART_SQLITE_BAN_COLUMNS
#undef RAMPART_SQLITE_EVENT_COLUMNS

// --- Conversions ------------------------------------------------------------

constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kMinInt64 = std::numeric_limits<int64_t>::min();

// Microseconds since the Unix epoch, truncated towards the past; the
// infinities saturate to the int64 extremes (absl::ToUnixMicros does both).
int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

// Inverse of Micros(): the int64 extremes are the infinities.
absl::Time FromMicros(int64_t micros) {
  if (micros == kMaxInt64) {
    return absl::InfiniteFuture();
  }
  if (micros == kMinInt64) {
    return absl::InfinitePast();
  }
  return absl::FromUnixMicros(micros);
}

// Unsigned 64-bit ids are stored bit-for-bit.
int64_t ToInteger(uint64_t v) { return static_cast<int64_t>(v); }
uint64_t FromInteger(int64_t v) { return static_cast<uint64_t>(v); }
// Unsigned bounds (after / keep_from) above INT64_MAX clamp to it.
int64_t ClampToInteger(uint64_t v) {
  return static_cast<int64_t>(std::min<uint64_t>(v, kMaxInt64));
}
int64_t LimitParam(size_t limit) {
  return static_cast<int64_t>(std::min<uint64_t>(limit, kMaxInt64));
}

// The first and last address of `prefix` in the 16-byte form.
std::pair<std::array<uint8_t, 16>, std::array<uint8_t, 16>> PrefixRange(
    const IpPrefix& prefix) {
  std::array<uint8_t, 16> lo = prefix.address().bytes();
  std::array<uint8_t, 16> hi = lo;
  // Bit position in the 128-bit form where host bits start.
  const int keep = (128 - prefix.address().bits()) + prefix.length();
  for (int i = 0; i < 16; ++i) {
    const int bit0 = i * 8;
    if (bit0 >= keep) {
      hi[i] = 0xff;
    } else if (bit0 + 8 > keep) {
      hi[i] |= static_cast<uint8_t>(0xff >> (keep - bit0));
    }
  }
  return {lo, hi};
}

// A string list as TEXT: each element followed by '\n', with '\\' and '\n'
// inside an element escaped as "\\\\" and "\\n". Distinguishes [] from [""].
std::string EncodeList(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& v : values) {
    for (char c : v) {
      if (c == '\\') {
        out.append("\\\\");
      } else if (c == '\n') {
        out.append("\\n");
      } else {
        out.push_back(c);
      }
    }
    out.push_back('\n');
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeList(std::string_view text) {
  std::vector<std::string> out;
  std::string current;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      out.push_back(std::move(current));
      current.clear();
    } else if (c == '\\' && i + 1 < text.size() &&
               (text[i + 1] == '\\' || text[i + 1] == 'n')) {
      current.push_back(text[++i] == 'n' ? '\n' : '\\');
    } else if (c == '\\') {
      return absl::InternalError(absl::StrFormat(
          "corrupt list column (bad escape): \"%s\"", Abbreviate(text)));
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) {
    return absl::InternalError(absl::StrFormat(
        "corrupt list column (unterminated): \"%s\"", Abbreviate(text)));
  }
  return out;
}

absl::StatusOr<IpPrefix> PrefixColumn(const SqliteStatement& s, int column) {
  absl::StatusOr<IpPrefix> p = IpPrefix::FromString(s.BytesView(column));
  if (!p.ok()) {
    return absl::InternalError(
        absl::StrFormat("corrupt prefix in the database: %s",
                        std::string(p.status().message())));
  }
  return p;
}

absl::StatusOr<Ban> ReadBan(const SqliteStatement& s) {
  Ban ban;
  ban.id = FromInteger(s.Int64(0));
  ASSIGN_OR_RETURN(ban.prefix, PrefixColumn(s, 1));
  ban.created = FromMicros(s.Int64(2));
  ban.expires = s.IsNull(3) ? absl::InfiniteFuture() : FromMicros(s.Int64(3));
  ban.origin = static_cast<BanOrigin>(s.Int64(4));
  ban.level = static_cast<int>(s.Int64(5));
  ban.reason = s.Bytes(6);
  ban.actor = s.Bytes(7);
  return ban;
}

absl::StatusOr<AuthEvent> ReadEvent(const SqliteStatement& s) {
  AuthEvent e;
  e.time = FromMicros(s.Int64(0));
  e.agent_id = s.Bytes(1);
  e.kind = static_cast<EventKind>(s.Int64(2));
  e.protocol = static_cast<Protocol>(s.Int64(3));
  if (!s.IsNull(4)) {
    const std::string_view bytes = s.BytesView(4);
    std::array<uint8_t, 16> b;
    if (bytes.size() != b.size()) {
      return absl::InternalError(absl::StrFormat(
          "corrupt events.ip_bytes: %d bytes, want 16", bytes.size()));
    }
    std::copy(bytes.begin(), bytes.end(), b.begin());
    e.ip = IpAddress::V6(b);  // IPv4-mapped bytes come back as IPv4
  }
  e.user = s.Bytes(5);
  return e;
}

// Binds a ban's columns in kUpsertBan / kInsertJournal order, starting at
// parameter `first` (id is bound by the caller). `prefix` must outlive the
// statement's next reset.
void BindBanFields(SqliteStatement& s, int first, const Ban& b,
                   const std::string& prefix) {
  s.BindText(first, prefix);
  s.BindInt64(first + 1, b.prefix.length());
  s.BindInt64(first + 2, Micros(b.created));
  if (b.expires == absl::InfiniteFuture()) {
    s.BindNull(first + 3);
  } else {
    s.BindInt64(first + 3, Micros(b.expires));
  }
  s.BindInt64(first + 4, static_cast<int64_t>(b.origin));
  s.BindInt64(first + 5, b.level);
  s.BindText(first + 6, b.reason);
  s.BindText(first + 7, b.actor);
}

// A journal must be contiguous in itself; where it starts is checked against
// the stored head inside the transaction.
absl::Status ValidateJournal(const std::vector<JournalEntry>& journal) {
  for (size_t i = 1; i < journal.size(); ++i) {
    if (journal[i].revision != journal[i - 1].revision + 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("journal revisions not contiguous: %d follows %d",
                          journal[i].revision, journal[i - 1].revision));
    }
  }
  return absl::OkStatus();
}

const char* SynchronousPragma(SqliteSynchronous mode) {
  switch (mode) {
    case SqliteSynchronous::kOff:
      return kPragmaSynchronousOff;
    case SqliteSynchronous::kNormal:
      return kPragmaSynchronousNormal;
    case SqliteSynchronous::kFull:
      return kPragmaSynchronousFull;
    case SqliteSynchronous::kExtra:
      return kPragmaSynchronousExtra;
  }
  return kPragmaSynchronousFull;
}

}  // namespace

// --- Construction and migrations --------------------------------------------

struct SqliteStore::Connection {
  explicit Connection(SqliteDb d) : db(std::move(d)) {}
  // Declared before the statements, so that they are finalised before the
  // connection closes.
  SqliteDb db;
  absl::flat_hash_map<const char*, std::unique_ptr<SqliteStatement>> statements;
};

SqliteStore::SqliteStore(const SqliteStoreOptions& options,
                         std::unique_ptr<Connection> connection)
    : options_(options), conn_(std::move(connection)) {}

SqliteStore::~SqliteStore() {
  absl::MutexLock lock(&mu_);
  conn_.reset();  // the statements are finalised before the connection closes
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Create(
    const SqliteStoreOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("SqliteStore: empty path");
  }
  if (options.read_page_size <= 0) {
    return absl::InvalidArgumentError(
        "SqliteStore: read_page_size must be > 0");
  }
  if (options.cache_mib <= 0 || options.cache_mib > (1 << 20)) {
    return absl::InvalidArgumentError(
        "SqliteStore: cache_mib must be in [1, 1048576]");
  }
  // Every failure below names the file, and says what to check when the
  // file cannot be opened or written.
  const auto fail = [&](const absl::Status& status) {
    std::string hint;
    if (status.code() == absl::StatusCode::kFailedPrecondition) {
      hint =
          " (check that the directory exists and that the file and its "
          "directory are writable by this user)";
    }
    return absl::Status(status.code(),
                        absl::StrFormat("SqliteStore %s: %s%s", options.path,
                                        status.message(), hint));
  };
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      options.path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  SqliteDb db(raw);  // closes `raw` on every path, even a failed open
  if (rc != SQLITE_OK) {
    return fail(SqliteError(raw, rc, "open"));
  }
  sqlite3_extended_result_codes(raw, 1);
  // SQLITE_OPEN_READWRITE silently falls back to read-only when the file is
  // not writable; a store that cannot write is useless.
  if (sqlite3_db_readonly(raw, "main") == 1) {
    return fail(absl::FailedPreconditionError(
        "the database file is read-only for this process"));
  }
  const int64_t busy_ms = absl::ToInt64Milliseconds(options.busy_timeout);
  sqlite3_busy_timeout(raw, static_cast<int>(std::clamp<int64_t>(
                                busy_ms, 0, std::numeric_limits<int>::max())));
  // Not make_unique: the constructor is private.
  std::unique_ptr<SqliteStore> store(
      new SqliteStore(options, std::make_unique<Connection>(std::move(db))));
  if (absl::Status s = store->Configure(); !s.ok()) {
    return fail(s);
  }
  if (absl::Status s = store->Migrate(); !s.ok()) {
    return fail(s);
  }
  return store;
}

absl::Status SqliteStore::Configure() {
  absl::MutexLock lock(&mu_);
  {
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kPragmaJournalModeWal));
    ASSIGN_OR_RETURN(bool row, s->Step());
    const std::string mode = row ? AsciiLower(s->BytesView(0)) : "";
    if (mode != "wal" && options_.path != ":memory:") {
      return absl::FailedPreconditionError(
          absl::StrFormat("cannot enable WAL (journal_mode is \"%s\")", mode));
    }
  }
  RETURN_IF_ERROR(Exec(SynchronousPragma(options_.synchronous)));
  {
    // A negative cache_size is in KiB. PRAGMA takes no parameters, so the
    // (validated, integer) value is formatted into the statement, which is
    // run once and not cached.
    const std::string sql = absl::StrFormat(
        "PRAGMA cache_size = %d", -int64_t{options_.cache_mib} * 1024);
    ASSIGN_OR_RETURN(std::unique_ptr<SqliteStatement> s,
                     SqliteStatement::Prepare(conn_->db.get(), sql.c_str()));
    RETURN_IF_ERROR(s->Run());
  }
  return Exec(kPragmaForeignKeysOn);
}

absl::Status SqliteStore::Migrate() {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(ValidateMigrations(SqliteMigrations()));
  // EXCLUSIVE: one process migrates; others wait (busy_timeout) and then
  // find nothing left to do.
  RETURN_IF_ERROR(Begin(kBeginExclusive));
  return Finish(MigrateLocked());
}

absl::Status SqliteStore::MigrateLocked() {
  RETURN_IF_ERROR(Exec(kCreateMigrationsTable));
  std::vector<AppliedMigration> applied;
  {
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kSelectMigrations));
    while (true) {
      ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) {
        break;
      }
      applied.push_back(AppliedMigration{
          .version = static_cast<int>(s->Int64(0)), .name = s->Bytes(1)});
    }
  }
  ASSIGN_OR_RETURN(const std::vector<const Migration*> pending,
                   PlanMigrations(SqliteMigrations(), applied));
  for (const Migration* m : pending) {
    // Embedded, trusted SQL with several statements: sqlite3_exec.
    char* error = nullptr;
    const int rc =
        sqlite3_exec(conn_->db.get(), m->sql.c_str(), nullptr, nullptr, &error);
    sqlite3_free(error);  // the same text is in sqlite3_errmsg()
    if (rc != SQLITE_OK) {
      return SqliteError(
          conn_->db.get(), rc,
          absl::StrFormat("migration %s", MigrationLabel(m->version, m->name)));
    }
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kInsertMigration));
    s->BindInt64(1, m->version);
    s->BindText(2, m->name);
    RETURN_IF_ERROR(s->Run());
    RAMPART_LOG(Info) << "sqlite " << options_.path << ": applied migration "
                      << MigrationLabel(m->version, m->name);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> SqliteStore::SchemaVersion() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kSchemaVersion));
  ASSIGN_OR_RETURN(bool row, s->Step());
  return row ? static_cast<int>(s->Int64(0)) : 0;
}

absl::StatusOr<int> SqliteStore::SynchronousForTest() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kPragmaSynchronous));
  ASSIGN_OR_RETURN(bool row, s->Step());
  return row ? static_cast<int>(s->Int64(0)) : -1;
}

// --- Statement and transaction helpers --------------------------------------

absl::StatusOr<ScopedStatement> SqliteStore::Statement(const char* sql) {
  auto it = conn_->statements.find(sql);
  if (it == conn_->statements.end()) {
    ASSIGN_OR_RETURN(std::unique_ptr<SqliteStatement> prepared,
                     SqliteStatement::Prepare(conn_->db.get(), sql));
    it = conn_->statements.emplace(sql, std::move(prepared)).first;
  }
  it->second->Reset();
  return ScopedStatement(it->second.get());
}

absl::Status SqliteStore::Exec(const char* sql) {
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(sql));
  return s->Run();
}

absl::Status SqliteStore::Begin(const char* begin_sql) {
  return Exec(begin_sql);
}

absl::Status SqliteStore::Finish(absl::Status status) {
  if (status.ok()) {
    status = Exec(kCommitTransaction);
  }
  // Some errors (SQLITE_FULL, SQLITE_IOERR, ...) roll back by themselves;
  // roll back only if a transaction is still open.
  if (!status.ok() && sqlite3_get_autocommit(conn_->db.get()) == 0) {
    if (absl::Status r = Exec(kRollbackTransaction); !r.ok()) {
      RAMPART_LOG(Error) << "sqlite " << options_.path
                         << ": ROLLBACK failed: " << r;
    }
  }
  return status;
}

// --- Commit
// -------------------------------------------------------------------

absl::Status SqliteStore::Commit(const CommitRecord& record) {
  if (record.empty()) {
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(ValidateJournal(record.journal));
  absl::MutexLock lock(&mu_);
  // IMMEDIATE: take the write lock now, so the journal head read below
  // cannot go stale before the writes (and no lock upgrade can deadlock).
  RETURN_IF_ERROR(Begin(kBeginImmediate));
  return Finish(CommitLocked(record));
}

absl::StatusOr<uint64_t> SqliteStore::JournalHead() {
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kSelectJournalHead));
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) {
    return absl::InternalError("sqlite: journal_head row missing");
  }
  return FromInteger(s->Int64(0));
}

absl::Status SqliteStore::CommitLocked(const CommitRecord& record) {
  for (const BatchId& b : record.batches) {
    // ON CONFLICT DO NOTHING: a batch committed before, or twice in this
    // record, changes no row.
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kInsertBatch));
    s->BindText(1, b.agent_id);
    s->BindInt64(2, ToInteger(b.spool_epoch));
    s->BindInt64(3, ToInteger(b.sequence));
    RETURN_IF_ERROR(s->Run());
    if (s->Changes() == 0) {
      return absl::AlreadyExistsError(
          absl::StrFormat("batch %s/%d/%d already committed",
                          Abbreviate(b.agent_id), b.spool_epoch, b.sequence));
    }
  }
  if (!record.journal.empty()) {
    ASSIGN_OR_RETURN(const uint64_t head, JournalHead());
    const uint64_t first = record.journal.front().revision;
    if (first <= head) {
      return absl::AbortedError(absl::StrFormat(
          "journal revision %d already written (stored revision %d): another "
          "writer committed first; reload and retry",
          first, head));
    }
    if (first != head + 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("journal revision %d does not follow stored "
                          "revision %d",
                          first, head));
    }
    for (const JournalEntry& j : record.journal) {
      const Ban& b = j.ban;
      const std::string prefix = b.prefix.ToString();
      {
        ASSIGN_OR_RETURN(ScopedStatement s, Statement(kUpsertBan));
        s->BindInt64(1, ToInteger(b.id));
        BindBanFields(*s, 2, b, prefix);
        if (j.op == JournalEntry::Op::kRemove) {
          s->BindInt64(10, Micros(j.at));
        } else {
          s->BindNull(10);
        }
        RETURN_IF_ERROR(s->Run());
      }
      ASSIGN_OR_RETURN(ScopedStatement s, Statement(kInsertJournal));
      s->BindInt64(1, ToInteger(j.revision));
      s->BindInt64(2, static_cast<int64_t>(j.op));
      s->BindInt64(3, Micros(j.at));
      s->BindInt64(4, ToInteger(b.id));
      BindBanFields(*s, 5, b, prefix);
      RETURN_IF_ERROR(s->Run());
    }
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kUpdateJournalHead));
    s->BindInt64(1, ToInteger(record.journal.back().revision));
    RETURN_IF_ERROR(s->Run());
  }
  RETURN_IF_ERROR(InsertEvents(record.events));
  for (const CompromiseAlert& a : record.alerts) {
    const std::string ip = a.ip.ToString();
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kInsertAlert));
    s->BindInt64(1, ToInteger(a.id));
    s->BindInt64(2, Micros(a.time));
    s->BindBlob(3, a.user);
    s->BindText(4, ip);
    s->BindText(5, a.agent_id);
    s->BindInt64(6, static_cast<int64_t>(a.protocol));
    s->BindDouble(7, a.ip_score);
    s->BindInt64(8, a.recent_failures);
    s->BindInt64(9, a.account_under_attack ? 1 : 0);
    s->BindBlob(10, a.evidence);
    RETURN_IF_ERROR(s->Run());
  }
  for (const AccountAttack& a : record.accounts) {
    const std::string sample_ips = EncodeList(a.sample_ips);
    const std::string servers = EncodeList(a.servers);
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kUpsertAccount));
    s->BindBlob(1, a.user);
    s->BindInt64(2, Micros(a.first_seen));
    s->BindInt64(3, Micros(a.last_seen));
    s->BindInt64(4, a.failures);
    s->BindInt64(5, a.distinct_ips);
    s->BindInt64(6, a.distinct_servers);
    s->BindText(7, sample_ips);
    s->BindText(8, servers);
    RETURN_IF_ERROR(s->Run());
  }
  // Puts, then deletes (as in PgStore and InMemoryStore).
  for (const AllowEntry& a : record.allow_put) {
    const std::string prefix = a.prefix.ToString();
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kUpsertAllow));
    s->BindText(1, prefix);
    if (a.expires) {
      s->BindInt64(2, Micros(*a.expires));
    } else {
      s->BindNull(2);
    }
    s->BindText(3, a.comment);
    s->BindText(4, a.actor);
    s->BindInt64(5, Micros(a.created));
    RETURN_IF_ERROR(s->Run());
  }
  for (const IpPrefix& p : record.allow_delete) {
    const std::string prefix = p.ToString();
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kDeleteAllow));
    s->BindText(1, prefix);
    RETURN_IF_ERROR(s->Run());
  }
  for (const AuditRecord& a : record.audit) {
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kInsertAudit));
    s->BindInt64(1, Micros(a.time));
    s->BindText(2, a.actor);
    s->BindText(3, a.action);
    s->BindText(4, a.target);
    s->BindText(5, a.before);
    s->BindText(6, a.after);
    s->BindText(7, a.peer);
    RETURN_IF_ERROR(s->Run());
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::InsertEvents(const std::vector<AuthEvent>& events) {
  if (events.empty()) {
    return absl::OkStatus();
  }
  // The fast path: one prepared statement, re-bound and re-run per event
  // inside the one transaction (no SQL parsing, no per-row commit).
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kInsertEvent));
  std::string ip;
  for (const AuthEvent& e : events) {
    s->BindInt64(1, Micros(e.time));
    s->BindText(2, e.agent_id);
    s->BindInt64(3, static_cast<int64_t>(e.kind));
    s->BindInt64(4, static_cast<int64_t>(e.protocol));
    if (e.ip) {
      ip.clear();
      e.ip->AppendTo(&ip);
      s->BindText(5, ip);
      s->BindBlob(6, e.ip->bytes().data(), e.ip->bytes().size());
    } else {
      s->BindNull(5);
      s->BindNull(6);
    }
    s->BindBlob(7, e.user);
    RETURN_IF_ERROR(s->Run());
    s->Reset();
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SqliteStore::HasBatch(const BatchId& batch) {
  absl::MutexLock lock(&mu_);
  return HasBatchLocked(batch);
}

absl::StatusOr<std::vector<bool>> SqliteStore::HasBatches(
    const std::vector<BatchId>& batches) {
  std::vector<bool> found;
  found.reserve(batches.size());
  absl::MutexLock lock(&mu_);
  for (const BatchId& b : batches) {
    ASSIGN_OR_RETURN(const bool f, HasBatchLocked(b));
    found.push_back(f);
  }
  return found;
}

absl::StatusOr<bool> SqliteStore::HasBatchLocked(const BatchId& batch) {
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kHasBatch));
  s->BindText(1, batch.agent_id);
  s->BindInt64(2, ToInteger(batch.spool_epoch));
  s->BindInt64(3, ToInteger(batch.sequence));
  return s->Step();
}

// --- Durable state and the journal -------------------------------------------

absl::StatusOr<DurableState> SqliteStore::LoadState(absl::Time now) {
  DurableState state;
  {
    absl::MutexLock lock(&mu_);
    // One read transaction: one consistent snapshot for all the reads.
    RETURN_IF_ERROR(Begin(kBegin));
    RETURN_IF_ERROR(Finish(LoadStateLocked(now, &state)));
  }
  // Canonical orders (as in the other stores).
  std::sort(state.history.begin(), state.history.end(),
            [](const BanHistory& a, const BanHistory& b) {
              return a.prefix < b.prefix;
            });
  std::sort(state.allowlist.begin(), state.allowlist.end(),
            [](const AllowEntry& a, const AllowEntry& b) {
              return a.prefix < b.prefix;
            });
  return state;
}

absl::Status SqliteStore::LoadStateLocked(absl::Time now, DurableState* state) {
  ASSIGN_OR_RETURN(state->revision, JournalHead());
  for (const auto& [sql, out] :
       {std::pair{kMaxBanId, &state->max_ban_id},
        std::pair{kMaxAlertId, &state->max_alert_id}}) {
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(sql));
    ASSIGN_OR_RETURN(bool row, s->Step());
    *out = row ? FromInteger(s->Int64(0)) : 0;
  }
  {
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kActiveBans));
    s->BindInt64(1, Micros(now));
    while (true) {
      ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) {
        break;
      }
      ASSIGN_OR_RETURN(Ban ban, ReadBan(*s));
      state->active_bans.push_back(std::move(ban));
    }
  }
  {
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kBanHistory));
    while (true) {
      ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) {
        break;
      }
      BanHistory h;
      ASSIGN_OR_RETURN(h.prefix, PrefixColumn(*s, 0));
      h.bans = static_cast<int>(s->Int64(1));
      h.last_end = FromMicros(s->Int64(2));
      h.last_level = static_cast<int>(s->Int64(3));
      state->history.push_back(h);
    }
  }
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kSelectAllowlist));
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) {
      break;
    }
    AllowEntry a;
    ASSIGN_OR_RETURN(a.prefix, PrefixColumn(*s, 0));
    if (!s->IsNull(1)) {
      a.expires = FromMicros(s->Int64(1));
    }
    a.comment = s->Bytes(2);
    a.actor = s->Bytes(3);
    a.created = FromMicros(s->Int64(4));
    state->allowlist.push_back(std::move(a));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JournalEntry>> SqliteStore::JournalSince(
    uint64_t after, size_t limit) {
  std::vector<JournalEntry> out;
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kJournalSince));
  s->BindInt64(1, ClampToInteger(after));
  s->BindInt64(2, LimitParam(limit));
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) {
      break;
    }
    JournalEntry j;
    j.revision = FromInteger(s->Int64(0));
    j.op = static_cast<JournalEntry::Op>(s->Int64(1));
    j.at = FromMicros(s->Int64(2));
    j.ban.id = FromInteger(s->Int64(3));
    ASSIGN_OR_RETURN(j.ban.prefix, PrefixColumn(*s, 4));
    j.ban.created = FromMicros(s->Int64(5));
    j.ban.expires =
        s->IsNull(6) ? absl::InfiniteFuture() : FromMicros(s->Int64(6));
    j.ban.origin = static_cast<BanOrigin>(s->Int64(7));
    j.ban.level = static_cast<int>(s->Int64(8));
    j.ban.reason = s->Bytes(9);
    j.ban.actor = s->Bytes(10);
    out.push_back(std::move(j));
  }
  return out;
}

absl::StatusOr<uint64_t> SqliteStore::BanListEpoch() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kBanListEpoch));
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) {
    return absl::InternalError("meta.ban_list_epoch is missing");
  }
  return FromInteger(s->Int64(0));
}

absl::StatusOr<uint64_t> SqliteStore::OldestRevision() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kOldestRevision));
  ASSIGN_OR_RETURN(bool row, s->Step());
  return row ? FromInteger(s->Int64(0)) : 0;
}

absl::StatusOr<int64_t> SqliteStore::PruneJournal(uint64_t keep_from) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kPruneJournal));
  s->BindInt64(1, ClampToInteger(keep_from));
  RETURN_IF_ERROR(s->Run());
  return s->Changes();
}

// --- Events
// -------------------------------------------------------------------

absl::Status SqliteStore::ForEachEvent(
    absl::Time from, absl::Time to,
    const std::function<absl::Status(const AuthEvent&)>& fn) {
  const int64_t from_us = Micros(from);
  const int64_t to_us = Micros(to);
  int64_t after_time = from_us;
  int64_t after_id = kMinInt64;
  std::vector<AuthEvent> page;
  while (true) {
    page.clear();
    {
      absl::MutexLock lock(&mu_);
      ASSIGN_OR_RETURN(ScopedStatement s, Statement(kEventsPage));
      s->BindInt64(1, from_us);
      s->BindInt64(2, to_us);
      s->BindInt64(3, after_time);
      s->BindInt64(4, after_id);
      s->BindInt64(5, options_.read_page_size);
      while (true) {
        ASSIGN_OR_RETURN(bool row, s->Step());
        if (!row) {
          break;
        }
        ASSIGN_OR_RETURN(AuthEvent e, ReadEvent(*s));
        page.push_back(std::move(e));
        after_time = s->Int64(0);
        after_id = s->Int64(6);
      }
    }
    // Without the lock: `fn` may call back into the store.
    for (const AuthEvent& e : page) {
      RETURN_IF_ERROR(fn(e));
    }
    if (page.size() < static_cast<size_t>(options_.read_page_size)) {
      return absl::OkStatus();
    }
  }
}

absl::StatusOr<std::vector<AuthEvent>> SqliteStore::EventsForPrefix(
    const IpPrefix& prefix, absl::Time since, size_t limit) {
  const auto [lo, hi] = PrefixRange(prefix);
  std::vector<AuthEvent> out;
  absl::MutexLock lock(&mu_);
  const char* sql = prefix.is_host()           ? kEventsForHost
                    : prefix.address().is_v4() ? kEventsForV4Range
                                               : kEventsForV6Range;
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(sql));
  int next = 1;
  s->BindBlob(next++, lo.data(), lo.size());
  if (!prefix.is_host()) {
    s->BindBlob(next++, hi.data(), hi.size());
  }
  s->BindInt64(next++, Micros(since));
  s->BindInt64(next, LimitParam(limit));
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) {
      break;
    }
    ASSIGN_OR_RETURN(AuthEvent e, ReadEvent(*s));
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<int64_t> SqliteStore::PruneEvents(absl::Time before) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kPruneEvents));
  s->BindInt64(1, Micros(before));
  RETURN_IF_ERROR(s->Run());
  return s->Changes();
}

// --- Bans, accounts, alerts, audit
// --------------------------------------------

absl::StatusOr<std::vector<Ban>> SqliteStore::BansFor(const IpPrefix& prefix) {
  const std::string text = prefix.ToString();
  std::vector<Ban> out;
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kBansFor));
  s->BindText(1, text);
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) {
      break;
    }
    ASSIGN_OR_RETURN(Ban ban, ReadBan(*s));
    out.push_back(std::move(ban));
  }
  return out;
}

absl::StatusOr<std::vector<AccountAttack>> SqliteStore::ListAccounts(
    absl::Time since, size_t limit) {
  std::vector<AccountAttack> out;
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kListAccounts));
  s->BindInt64(1, Micros(since));
  s->BindInt64(2, LimitParam(limit));
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) {
      break;
    }
    AccountAttack a;
    a.user = s->Bytes(0);
    a.first_seen = FromMicros(s->Int64(1));
    a.last_seen = FromMicros(s->Int64(2));
    a.failures = s->Int64(3);
    a.distinct_ips = static_cast<int>(s->Int64(4));
    a.distinct_servers = static_cast<int>(s->Int64(5));
    ASSIGN_OR_RETURN(a.sample_ips, DecodeList(s->BytesView(6)));
    ASSIGN_OR_RETURN(a.servers, DecodeList(s->BytesView(7)));
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<std::vector<CompromiseAlert>> SqliteStore::ListAlerts(
    absl::Time since, size_t limit) {
  std::vector<CompromiseAlert> out;
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kListAlerts));
  s->BindInt64(1, Micros(since));
  s->BindInt64(2, LimitParam(limit));
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) {
      break;
    }
    CompromiseAlert a;
    a.id = FromInteger(s->Int64(0));
    a.time = FromMicros(s->Int64(1));
    a.user = s->Bytes(2);
    absl::StatusOr<IpAddress> ip = IpAddress::FromString(s->BytesView(3));
    if (!ip.ok()) {
      return absl::InternalError(absl::StrFormat(
          "corrupt alerts.ip: %s", std::string(ip.status().message())));
    }
    a.ip = *ip;
    a.agent_id = s->Bytes(4);
    a.protocol = static_cast<Protocol>(s->Int64(5));
    a.ip_score = s->Double(6);
    a.recent_failures = s->Int64(7);
    a.account_under_attack = s->Int64(8) != 0;
    a.evidence = s->Bytes(9);
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<std::vector<AuditRecord>> SqliteStore::ListAudit(
    absl::Time since, size_t limit) {
  std::vector<AuditRecord> out;
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kListAudit));
  s->BindInt64(1, Micros(since));
  s->BindInt64(2, LimitParam(limit));
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) {
      break;
    }
    AuditRecord a;
    a.id = FromInteger(s->Int64(0));
    a.time = FromMicros(s->Int64(1));
    a.actor = s->Bytes(2);
    a.action = s->Bytes(3);
    a.target = s->Bytes(4);
    a.before = s->Bytes(5);
    a.after = s->Bytes(6);
    a.peer = s->Bytes(7);
    out.push_back(std::move(a));
  }
  return out;
}

// --- API tokens --------------------------------------------------------------

namespace {

absl::StatusOr<ApiToken> TokenFromRow(const SqliteStatement& s) {
  ApiToken t;
  t.name = s.Bytes(0);
  std::optional<AdminRole> role = ParseRole(s.Bytes(1));
  if (!role) {
    return absl::InternalError(absl::StrFormat(
        "api_tokens: token \"%s\" has an unknown role", t.name));
  }
  t.role = *role;
  t.hash = s.Bytes(2);
  t.created = FromMicros(s.Int64(3));
  if (!s.IsNull(4)) {
    t.revoked = FromMicros(s.Int64(4));
  }
  return t;
}

}  // namespace

absl::Status SqliteStore::PutApiToken(const ApiToken& token) {
  absl::MutexLock lock(&mu_);
  {
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kTokenHashExists));
    s->BindText(1, token.hash);
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (row) {
      return absl::AlreadyExistsError("a token with this hash exists");
    }
  }
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kPutApiToken));
  s->BindText(1, token.name);
  s->BindText(2, RoleName(token.role));
  s->BindText(3, token.hash);
  s->BindInt64(4, Micros(token.created));
  if (token.revoked) {
    s->BindInt64(5, Micros(*token.revoked));
  } else {
    s->BindNull(5);
  }
  RETURN_IF_ERROR(s->Run());
  if (s->Changes() == 0) {
    return absl::AlreadyExistsError(
        absl::StrFormat("token \"%s\" exists", token.name));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ApiToken>> SqliteStore::FindApiToken(
    std::string_view hash) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kFindApiToken));
  s->BindText(1, hash);
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) {
    return std::optional<ApiToken>();
  }
  ASSIGN_OR_RETURN(ApiToken t, TokenFromRow(*s));
  return std::optional<ApiToken>(std::move(t));
}

absl::StatusOr<std::vector<ApiToken>> SqliteStore::ListApiTokens() {
  std::vector<ApiToken> out;
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kListApiTokens));
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) {
      break;
    }
    ASSIGN_OR_RETURN(ApiToken t, TokenFromRow(*s));
    out.push_back(std::move(t));
  }
  return out;
}

absl::Status SqliteStore::RevokeApiToken(std::string_view name, absl::Time at) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kRevokeApiToken));
  s->BindText(1, name);
  s->BindInt64(2, Micros(at));
  RETURN_IF_ERROR(s->Run());
  if (s->Changes() == 0) {
    return absl::NotFoundError(
        absl::StrFormat("no active token named \"%s\"", name));
  }
  return absl::OkStatus();
}

namespace {
AgentEnrollment ReadEnrollment(const SqliteStatement& s) {
  AgentEnrollment e;
  e.agent_id = s.Bytes(0);
  e.site = s.Bytes(1);
  e.token_sha256 = s.Bytes(2);
  e.token_expires = FromMicros(s.Int64(3));
  e.token_used = s.Int64(4) != 0;
  e.reenroll = s.Int64(5) != 0;
  e.created = FromMicros(s.Int64(6));
  e.cert_serial = s.Bytes(7);
  e.cert_sha256 = s.Bytes(8);
  e.cert_not_after = FromMicros(s.Int64(9));
  e.enrolled_at = FromMicros(s.Int64(10));
  e.revoked = s.Int64(11) != 0;
  e.revoked_at = FromMicros(s.Int64(12));
  e.revoke_reason = s.Bytes(13);
  return e;
}
}  // namespace

absl::StatusOr<std::optional<AgentEnrollment>> SqliteStore::GetEnrollment(
    std::string_view agent_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kGetEnrollment));
  s->BindText(1, agent_id);
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) {
    return std::optional<AgentEnrollment>();
  }
  return std::optional<AgentEnrollment>(ReadEnrollment(*s));
}

absl::Status SqliteStore::PutEnrollment(const AgentEnrollment& e) {
  if (e.agent_id.empty()) {
    return absl::InvalidArgumentError("enrollment without agent id");
  }
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kPutEnrollment));
  s->BindText(1, e.agent_id);
  s->BindText(2, e.site);
  s->BindText(3, e.token_sha256);
  s->BindInt64(4, Micros(e.token_expires));
  s->BindInt64(5, e.token_used ? 1 : 0);
  s->BindInt64(6, e.reenroll ? 1 : 0);
  s->BindInt64(7, Micros(e.created));
  s->BindText(8, e.cert_serial);
  s->BindText(9, e.cert_sha256);
  s->BindInt64(10, Micros(e.cert_not_after));
  s->BindInt64(11, Micros(e.enrolled_at));
  s->BindInt64(12, e.revoked ? 1 : 0);
  s->BindInt64(13, Micros(e.revoked_at));
  s->BindText(14, e.revoke_reason);
  ASSIGN_OR_RETURN(bool row, s->Step());
  (void)row;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AgentEnrollment>> SqliteStore::ListEnrollments() {
  std::vector<AgentEnrollment> out;
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kListEnrollments));
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) {
      break;
    }
    out.push_back(ReadEnrollment(*s));
  }
  return out;
}

absl::StatusOr<std::vector<ProtectedAgentAddress>>
SqliteStore::ListProtectedAddresses() {
  std::vector<ProtectedAgentAddress> out;
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ScopedStatement s, Statement(kListProtected));
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) {
      break;
    }
    out.push_back(ProtectedAgentAddress{
        .agent_id = s->Bytes(0),
        .address = s->Bytes(1),
        .source = s->Bytes(2) == "approved"
                      ? ProtectedAgentAddress::Source::kApproved
                      : ProtectedAgentAddress::Source::kPeer,
        .since = FromMicros(s->Int64(3)),
        .actor = s->Bytes(4)});
  }
  return out;
}

absl::Status SqliteStore::ReplaceProtectedAddresses(
    std::string_view agent_id, const std::vector<ProtectedAgentAddress>& rows) {
  RETURN_IF_ERROR(CheckProtectedRows(agent_id, rows));
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Begin(kBeginImmediate));
  return Finish(ReplaceProtectedAddressesLocked(agent_id, rows));
}

absl::Status SqliteStore::ReplaceProtectedAddressesLocked(
    std::string_view agent_id, const std::vector<ProtectedAgentAddress>& rows) {
  {
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kDeleteProtected));
    s->BindText(1, agent_id);
    RETURN_IF_ERROR(s->Run());
  }
  for (const ProtectedAgentAddress& r : rows) {
    ASSIGN_OR_RETURN(ScopedStatement s, Statement(kInsertProtected));
    s->BindText(1, r.agent_id);
    s->BindText(2, r.address);
    s->BindText(3, r.source == ProtectedAgentAddress::Source::kApproved
                       ? "approved"
                       : "peer");
    s->BindInt64(4, Micros(r.since));
    s->BindText(5, r.actor);
    RETURN_IF_ERROR(s->Run());
  }
  return absl::OkStatus();
}

}  // namespace rampart::server
