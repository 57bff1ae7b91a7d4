#include "server/store/pg_store.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/utf8.h"
#include "server/store/pg_migrations.h"
#include "server/store/pg_status.h"

namespace rampart::server {
namespace {

// pg_advisory_xact_lock keys (database-wide). Arbitrary constants: ASCII
// "RAMPMIGR" and "RAMPJRNL".
constexpr int64_t kMigrationLockKey = 0x52414d504d494752;
constexpr int64_t kJournalLockKey = 0x52414d504a524e4c;

// A prepared statement: `name` is what libpqxx prepares it as.
struct Statement {
  const char* name;
  const char* sql;
};

// --- Session set-up and migrations ------------------------------------------

constexpr Statement kSetConfig{"set_config",
                               "SELECT set_config($1, $2, false)"};
constexpr Statement kAdvisoryXactLock{"advisory_xact_lock",
                                      "SELECT pg_advisory_xact_lock($1)"};
constexpr char kCreateMigrationsTable[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";
constexpr Statement kSelectMigrations{
    "select_migrations",
    "SELECT version, name FROM schema_migrations ORDER BY version"};
constexpr Statement kInsertMigration{
    "insert_migration",
    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"};
constexpr Statement kSchemaVersion{
    "schema_version",
    "SELECT coalesce(max(version), 0) FROM schema_migrations"};

// --- Commit
// -------------------------------------------------------------------

// All batches of one Commit in one statement (array literals). ON CONFLICT
// DO NOTHING skips a batch committed before or repeated in the arrays, so
// fewer rows than batches means "already committed".
constexpr Statement kInsertBatches{
    "insert_batches",
    "INSERT INTO agent_batches (agent_id, spool_epoch, sequence)"
    " SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])"
    " ON CONFLICT DO NOTHING"};
constexpr Statement kHasBatch{
    "has_batch",
    "SELECT EXISTS (SELECT 1 FROM agent_batches"
    " WHERE agent_id = $1 AND spool_epoch = $2 AND sequence = $3)"};
// The 1-based positions (in the arrays) of the batches already committed.
constexpr Statement kHasBatches{
    "has_batches",
    "SELECT b.i FROM unnest($1::text[], $2::bigint[], $3::bigint[])"
    " WITH ORDINALITY AS b(agent_id, spool_epoch, sequence, i)"
    " WHERE EXISTS (SELECT 1 FROM agent_batches a WHERE a.agent_id ="
    " b.agent_id AND a.spool_epoch = b.spool_epoch"
    " AND a.sequence = b.sequence)"};
constexpr Statement kSelectJournalHead{"select_journal_head",
                                       "SELECT revision FROM journal_head"};
constexpr Statement kUpdateJournalHead{"update_journal_head",
                                       "UPDATE journal_head SET revision = $1"};
constexpr Statement kInsertJournal{
    "insert_journal",
    "INSERT INTO ban_journal (revision, op, at, ban_id, prefix, created,"
    " expires, origin, level, reason, actor)"
    " VALUES ($1, $2, $3::timestamptz, $4, $5::cidr, $6::timestamptz,"
    " $7::timestamptz, $8, $9, $10, $11)"};
// Every journal entry carries the ban after the change; the bans table holds
// each ban as of its latest entry (removed_at set by kRemove).
constexpr Statement kUpsertBan{
    "upsert_ban",
    "INSERT INTO bans (id, prefix, created, expires, origin, level, reason,"
    " actor, removed_at)"
    " VALUES ($1, $2::cidr, $3::timestamptz, $4::timestamptz, $5, $6, $7, $8,"
    " $9::timestamptz)"
    " ON CONFLICT (id) DO UPDATE SET prefix = excluded.prefix,"
    " created = excluded.created, expires = excluded.expires,"
    " origin = excluded.origin, level = excluded.level,"
    " reason = excluded.reason, actor = excluded.actor,"
    " removed_at = excluded.removed_at"};
// Column list for COPY (events written with pqxx::stream_to).
constexpr const char* kEventCopyColumns[] = {
    "time", "agent_id", "kind", "protocol", "ip", "username"};
// The alternative, one multi-row INSERT per Commit (array literals).
constexpr Statement kInsertEventsUnnest{
    "insert_events_unnest",
    "INSERT INTO events (time, agent_id, kind, protocol, ip, username)"
    " SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::smallint[],"
    " $4::smallint[], $5::inet[], $6::bytea[])"};
constexpr Statement kInsertAlert{
    "insert_alert",
    "INSERT INTO alerts (id, time, username, ip, agent_id, protocol,"
    " ip_score, recent_failures, account_under_attack, evidence)"
    " VALUES ($1, $2::timestamptz, $3, $4::inet, $5, $6, $7, $8, $9, $10)"};
constexpr Statement kUpsertAccount{
    "upsert_account",
    "INSERT INTO accounts (username, first_seen, last_seen, failures,"
    " distinct_ips, distinct_servers, sample_ips, servers)"
    " VALUES ($1, $2::timestamptz, $3::timestamptz, $4, $5, $6, $7::text[],"
    " $8::text[])"
    " ON CONFLICT (username) DO UPDATE SET first_seen = excluded.first_seen,"
    " last_seen = excluded.last_seen, failures = excluded.failures,"
    " distinct_ips = excluded.distinct_ips,"
    " distinct_servers = excluded.distinct_servers,"
    " sample_ips = excluded.sample_ips, servers = excluded.servers"};
constexpr Statement kUpsertAllow{
    "upsert_allow",
    "INSERT INTO allowlist (prefix, expires, comment, actor, created)"
    " VALUES ($1::cidr, $2::timestamptz, $3, $4, $5::timestamptz)"
    " ON CONFLICT (prefix) DO UPDATE SET expires = excluded.expires,"
    " comment = excluded.comment, actor = excluded.actor,"
    " created = excluded.created"};
constexpr Statement kDeleteAllow{
    "delete_allow", "DELETE FROM allowlist WHERE prefix = $1::cidr"};
constexpr Statement kInsertAudit{
    "insert_audit",
    "INSERT INTO audit (time, actor, action, target, before, after, peer)"
    " VALUES ($1::timestamptz, $2, $3, $4, $5, $6, $7)"};

// --- Reads
// --------------------------------------------------------------------

// Ban columns in the order ReadBan() expects, starting at column 0.
#define RAMPART_PG_BAN_COLUMNS                                          \
  "id, prefix::text, rampart_micros(created), rampart_micros(expires)," \
  " origin, level, reason, actor"

constexpr Statement kMaxBanId{"max_ban_id",
                              "SELECT coalesce(max(id), 0) FROM bans"};
constexpr Statement kMaxAlertId{"max_alert_id",
                                "SELECT coalesce(max(id), 0) FROM alerts"};
constexpr Statement kActiveBans{"active_bans",
                                "SELECT " RAMPART_PG_BAN_COLUMNS
                                " FROM bans WHERE removed_at IS NULL"
                                " AND expires > $1::timestamptz ORDER BY id"};
// Per prefix: how many bans, and the level of the most recent one (highest
// id) and when it ended: at its removal if removed, else at its expiry.
constexpr Statement kBanHistory{"ban_history",
                                "SELECT DISTINCT ON (prefix) prefix::text,"
                                " count(*) OVER (PARTITION BY prefix),"
                                " rampart_micros(least(removed_at, expires)),"
                                " level"
                                " FROM bans ORDER BY prefix, id DESC"};
constexpr Statement kSelectAllowlist{
    "select_allowlist",
    "SELECT prefix::text, rampart_micros(expires), comment, actor,"
    " rampart_micros(created) FROM allowlist ORDER BY prefix"};
constexpr Statement kJournalSince{
    "journal_since",
    "SELECT revision, op, rampart_micros(at), ban_id, prefix::text,"
    " rampart_micros(created), rampart_micros(expires), origin, level,"
    " reason, actor FROM ban_journal WHERE revision > $1"
    " ORDER BY revision LIMIT $2"};
constexpr Statement kBanListEpoch{
    "ban_list_epoch", "SELECT value FROM meta WHERE key = 'ban_list_epoch'"};
constexpr Statement kOldestRevision{
    "oldest_revision", "SELECT coalesce(min(revision), 0) FROM ban_journal"};
constexpr Statement kPruneJournal{
    "prune_journal", "DELETE FROM ban_journal WHERE revision < $1"};
// Event columns in the order ReadEvent() expects, starting at column 0.
#define RAMPART_PG_EVENT_COLUMNS \
  "rampart_micros(time), agent_id, kind, protocol, host(ip), username"
constexpr Statement kEventsPage{
    "events_page", "SELECT " RAMPART_PG_EVENT_COLUMNS
                   ", id FROM events"
                   " WHERE time >= $1::timestamptz AND time < $2::timestamptz"
                   " AND (time, id) > ($3::timestamptz, $4)"
                   " ORDER BY time, id LIMIT $5"};
// A range scan on the B-tree events_ip_idx (V002): the first to the last
// host address of the prefix, same family. NOT prepared (run with
// exec_params, so planned with the actual values each time): a generic
// plan cannot tell a /32 from a /0 and prefers walking events_time_idx
// backwards, filtering every row (measured: 0.6 s on 1.4 M events for an
// empty /24, against 0.02 ms).
constexpr char kEventsForPrefix[] =
    "SELECT " RAMPART_PG_EVENT_COLUMNS
    " FROM events WHERE ip BETWEEN host($1::cidr)::inet"
    " AND host(broadcast($1::cidr))::inet AND time >= $2::timestamptz"
    " ORDER BY time DESC, id DESC LIMIT $3";
constexpr Statement kPruneEvents{
    "prune_events", "DELETE FROM events WHERE time < $1::timestamptz"};
constexpr Statement kBansFor{
    "bans_for", "SELECT " RAMPART_PG_BAN_COLUMNS
                " FROM bans WHERE prefix = $1::cidr ORDER BY id DESC"};
constexpr Statement kListAccounts{
    "list_accounts",
    "SELECT username, rampart_micros(first_seen), rampart_micros(last_seen),"
    " failures, distinct_ips, distinct_servers, sample_ips, servers"
    " FROM accounts WHERE last_seen >= $1::timestamptz"
    " ORDER BY last_seen DESC, username LIMIT $2"};
constexpr Statement kListAlerts{
    "list_alerts",
    "SELECT id, rampart_micros(time), username, host(ip), agent_id, protocol,"
    " ip_score, recent_failures, account_under_attack, evidence"
    " FROM alerts WHERE time >= $1::timestamptz"
    " ORDER BY time DESC, id DESC LIMIT $2"};
constexpr Statement kListAudit{
    "list_audit",
    "SELECT id, rampart_micros(time), actor, action, target, before, after,"
    " peer FROM audit WHERE time >= $1::timestamptz"
    " ORDER BY time DESC, id DESC LIMIT $2"};
constexpr Statement kTokenHashExists{
    "token_hash_exists", "SELECT 1 FROM api_tokens WHERE hash = $1"};
// Replaces a revoked token of the same name; an active one is left alone
// (no row affected: kAlreadyExists). $5 '' = not revoked.
constexpr Statement kPutApiToken{
    "put_api_token",
    "INSERT INTO api_tokens (name, role, hash, created, revoked)"
    " VALUES ($1, $2, $3, $4::timestamptz,"
    " CASE WHEN $5 = '' THEN NULL ELSE $5::timestamptz END)"
    " ON CONFLICT (name) DO UPDATE SET role = excluded.role,"
    " hash = excluded.hash, created = excluded.created,"
    " revoked = excluded.revoked WHERE api_tokens.revoked IS NOT NULL"};
constexpr Statement kFindApiToken{
    "find_api_token",
    "SELECT name, role, hash, rampart_micros(created), rampart_micros(revoked)"
    " FROM api_tokens WHERE hash = $1 AND revoked IS NULL"};
constexpr Statement kListApiTokens{
    "list_api_tokens",
    "SELECT name, role, hash, rampart_micros(created), rampart_micros(revoked)"
    " FROM api_tokens ORDER BY name"};
constexpr Statement kRevokeApiToken{
    "revoke_api_token",
    "UPDATE api_tokens SET revoked = $2::timestamptz"
    " WHERE name = $1 AND revoked IS NULL"};

#undef RAMPART_PG_BAN_COLUMNS
#undef RAMPART_PG_EVENT_COLUMNS

constexpr Statement kAllStatements[] = {
    kSetConfig,          kAdvisoryXactLock, kSelectMigrations,
    kInsertMigration,    kSchemaVersion,    kInsertBatches,
    kHasBatch,           kHasBatches,       kSelectJournalHead,
    kUpdateJournalHead,  kInsertJournal,    kUpsertBan,
    kInsertEventsUnnest, kInsertAlert,      kUpsertAccount,
    kUpsertAllow,        kDeleteAllow,      kInsertAudit,
    kMaxBanId,           kMaxAlertId,       kActiveBans,
    kBanHistory,         kSelectAllowlist,  kJournalSince,
    kBanListEpoch,       kOldestRevision,   kPruneJournal,
    kEventsPage,         kPruneEvents,      kBansFor,
    kListAccounts,       kListAlerts,       kListAudit,
    kTokenHashExists,    kPutApiToken,      kFindApiToken,
    kListApiTokens,      kRevokeApiToken,
};

// --- Conversions
// --------------------------------------------------------------

// Text form of `t` for a timestamptz parameter or COPY field: ISO 8601 in
// UTC with an explicit offset (independent of the session's TimeZone and
// DateStyle), truncated to microseconds like absl::ToUnixMicros.
std::string PgTime(absl::Time t) {
  if (t == absl::InfiniteFuture()) {
    return "infinity";
  }
  if (t == absl::InfinitePast()) {
    return "-infinity";
  }
  const int64_t micros = absl::ToUnixMicros(t);
  int64_t seconds = micros / 1000000;
  int64_t fraction = micros % 1000000;
  if (fraction < 0) {
    fraction += 1000000;
    --seconds;
  }
  const absl::CivilSecond c =
      absl::ToCivilSecond(absl::FromUnixSeconds(seconds), absl::UTCTimeZone());
  // PostgreSQL has no year 0: astronomical year y <= 0 is (1 - y) BC.
  const bool bc = c.year() <= 0;
  return absl::StrFormat("%04d-%02d-%02d %02d:%02d:%02d.%06d+00%s",
                         bc ? 1 - c.year() : c.year(), c.month(), c.day(),
                         c.hour(), c.minute(), c.second(), fraction,
                         bc ? " BC" : "");
}

// Inverse of rampart_micros() (V001): int64 extremes are the infinities.
absl::Time FromPgMicros(int64_t micros) {
  if (micros == std::numeric_limits<int64_t>::max()) {
    return absl::InfiniteFuture();
  }
  if (micros == std::numeric_limits<int64_t>::min()) {
    return absl::InfinitePast();
  }
  return absl::FromUnixMicros(micros);
}

int64_t ToBigint(uint64_t v) { return static_cast<int64_t>(v); }
uint64_t FromBigint(int64_t v) { return static_cast<uint64_t>(v); }
int64_t LimitParam(size_t limit) {
  return static_cast<int64_t>(
      std::min<uint64_t>(limit, std::numeric_limits<int64_t>::max()));
}

// COPY / array-literal text form of a bytea value: "\x" and hex digits.
void AppendByteaHex(std::string_view bytes, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->append("\\x");
  for (unsigned char c : bytes) {
    out->push_back(kHex[c >> 4]);
    out->push_back(kHex[c & 0xf]);
  }
}

// Appends `element` to a PostgreSQL array literal as a quoted element.
void AppendArrayElement(std::string_view element, std::string* out) {
  out->push_back('"');
  for (char c : element) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
    }
    out->push_back(c);
  }
  out->push_back('"');
}

// A text[] literal: {"a","b"}.
std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) {
      out.push_back(',');
    }
    AppendArrayElement(values[i], &out);
  }
  out.push_back('}');
  return out;
}

std::vector<std::string> ParseTextArray(const pqxx::field& field) {
  std::vector<std::string> out;
  pqxx::array_parser parser = field.as_array();
  for (auto [kind, value] = parser.get_next(); kind != pqxx::array_parser::done;
       std::tie(kind, value) = parser.get_next()) {
    if (kind == pqxx::array_parser::string_value) {
      out.push_back(std::move(value));
    }
  }
  return out;
}

std::string Bytes(const pqxx::field& field) {
  return pqxx::binarystring(field).str();
}

absl::StatusOr<IpPrefix> ParsePrefix(const pqxx::field& field) {
  return IpPrefix::FromString(field.c_str());
}

// True if `s` is valid UTF-8 without NUL: what a PostgreSQL text value
// (UTF8 database) can hold.
bool IsPgText(std::string_view s) {
  return s.find('\0') == std::string_view::npos && IsValidUtf8(s);
}

absl::Status CheckText(std::string_view field, std::string_view value) {
  if (IsPgText(value)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("%s is not valid UTF-8 text (or contains NUL): \"%s\"",
                      field, absl::CHexEscape(ToAbsl(Abbreviate(value)))));
}

// Rejects what PostgreSQL would reject with a less helpful SQLSTATE, and a
// journal that is not contiguous in itself.
absl::Status ValidateRecord(const CommitRecord& record) {
  for (const BatchId& b : record.batches) {
    RETURN_IF_ERROR(CheckText("batch agent_id", b.agent_id));
  }
  for (const AuthEvent& e : record.events) {
    RETURN_IF_ERROR(CheckText("event agent_id", e.agent_id));
  }
  for (size_t i = 0; i < record.journal.size(); ++i) {
    const JournalEntry& j = record.journal[i];
    if (i > 0 && j.revision != record.journal[i - 1].revision + 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("journal revisions not contiguous: %d follows %d",
                          j.revision, record.journal[i - 1].revision));
    }
    RETURN_IF_ERROR(CheckText("ban reason", j.ban.reason));
    RETURN_IF_ERROR(CheckText("ban actor", j.ban.actor));
  }
  for (const CompromiseAlert& a : record.alerts) {
    RETURN_IF_ERROR(CheckText("alert agent_id", a.agent_id));
  }
  for (const AccountAttack& a : record.accounts) {
    for (const std::string& s : a.sample_ips) {
      RETURN_IF_ERROR(CheckText("account sample_ips", s));
    }
    for (const std::string& s : a.servers) {
      RETURN_IF_ERROR(CheckText("account servers", s));
    }
  }
  for (const AllowEntry& a : record.allow_put) {
    RETURN_IF_ERROR(CheckText("allowlist comment", a.comment));
    RETURN_IF_ERROR(CheckText("allowlist actor", a.actor));
  }
  for (const AuditRecord& a : record.audit) {
    RETURN_IF_ERROR(CheckText("audit actor", a.actor));
    RETURN_IF_ERROR(CheckText("audit action", a.action));
    RETURN_IF_ERROR(CheckText("audit target", a.target));
    RETURN_IF_ERROR(CheckText("audit before", a.before));
    RETURN_IF_ERROR(CheckText("audit after", a.after));
    RETURN_IF_ERROR(CheckText("audit peer", a.peer));
  }
  return absl::OkStatus();
}

absl::StatusOr<Ban> ReadBan(const pqxx::row& row) {
  Ban ban;
  ban.id = FromBigint(row[0].as<int64_t>());
  ASSIGN_OR_RETURN(ban.prefix, ParsePrefix(row[1]));
  ban.created = FromPgMicros(row[2].as<int64_t>());
  ban.expires = FromPgMicros(row[3].as<int64_t>());
  ban.origin = static_cast<BanOrigin>(row[4].as<int>());
  ban.level = row[5].as<int>();
  ban.reason = row[6].as<std::string>();
  ban.actor = row[7].as<std::string>();
  return ban;
}

absl::StatusOr<AuthEvent> ReadEvent(const pqxx::row& row) {
  AuthEvent e;
  e.time = FromPgMicros(row[0].as<int64_t>());
  e.agent_id = row[1].as<std::string>();
  e.kind = static_cast<EventKind>(row[2].as<int>());
  e.protocol = static_cast<Protocol>(row[3].as<int>());
  if (!row[4].is_null()) {
    ASSIGN_OR_RETURN(e.ip, IpAddress::FromString(row[4].c_str()));
  }
  e.user = Bytes(row[5]);
  return e;
}

// Statement parameters for the events of one Commit as array literals.
struct EventArrays {
  std::string times = "{";
  std::string agents = "{";
  std::string kinds = "{";
  std::string protocols = "{";
  std::string ips = "{";
  std::string users = "{";
};

EventArrays ToEventArrays(const std::vector<AuthEvent>& events) {
  EventArrays a;
  std::string hex;
  for (size_t i = 0; i < events.size(); ++i) {
    const AuthEvent& e = events[i];
    if (i > 0) {
      for (std::string* s :
           {&a.times, &a.agents, &a.kinds, &a.protocols, &a.ips, &a.users}) {
        s->push_back(',');
      }
    }
    AppendArrayElement(PgTime(e.time), &a.times);
    AppendArrayElement(e.agent_id, &a.agents);
    absl::StrAppendFormat(&a.kinds, "%d", static_cast<int>(e.kind));
    absl::StrAppendFormat(&a.protocols, "%d", static_cast<int>(e.protocol));
    if (e.ip) {
      e.ip->AppendTo(&a.ips);
    } else {
      a.ips.append("NULL");
    }
    hex.clear();
    AppendByteaHex(e.user, &hex);
    AppendArrayElement(hex, &a.users);
  }
  for (std::string* s :
       {&a.times, &a.agents, &a.kinds, &a.protocols, &a.ips, &a.users}) {
    s->push_back('}');
  }
  return a;
}

// Statement parameters for a list of batch ids as array literals.
struct BatchArrays {
  std::string agents = "{";
  std::string epochs = "{";
  std::string sequences = "{";
};

// REQUIRES: every agent_id IsPgText().
BatchArrays ToBatchArrays(const std::vector<const BatchId*>& batches) {
  BatchArrays a;
  for (size_t i = 0; i < batches.size(); ++i) {
    if (i > 0) {
      for (std::string* s : {&a.agents, &a.epochs, &a.sequences}) {
        s->push_back(',');
      }
    }
    AppendArrayElement(batches[i]->agent_id, &a.agents);
    absl::StrAppendFormat(&a.epochs, "%d", ToBigint(batches[i]->spool_epoch));
    absl::StrAppendFormat(&a.sequences, "%d", ToBigint(batches[i]->sequence));
  }
  for (std::string* s : {&a.agents, &a.epochs, &a.sequences}) {
    s->push_back('}');
  }
  return a;
}

}  // namespace

// --- Session
// ------------------------------------------------------------------

class PgStore::Session {
 public:
  // Connects and sets up the session. Throws (libpqxx) on failure.
  explicit Session(const PgStoreOptions& options) : conn_(options.dsn) {
    // libpqxx 6 would otherwise silently reconnect after a broken
    // connection, losing the session settings below (search_path!). We want
    // the break reported (kUnavailable) and PgStore::Run() to build a fresh
    // Session. The call is marked deprecated in 6.4 but is the only switch.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    conn_.inhibit_reactivation(true);
#pragma GCC diagnostic pop
    pqxx::nontransaction tx(conn_);
    tx.exec_params(
        kSetConfig.sql, "statement_timeout",
        std::to_string(absl::ToInt64Milliseconds(options.statement_timeout)));
    if (!options.schema.empty()) {
      tx.exec_params(kSetConfig.sql, "search_path",
                     conn_.quote_name(options.schema));
    }
    tx.commit();
    for (const Statement& s : kAllStatements) {
      conn_.prepare(s.name, s.sql);
    }
  }

  pqxx::connection& conn() { return conn_; }

 private:
  pqxx::connection conn_;
};

// --- PgStore
// ------------------------------------------------------------------

PgStore::PgStore(const PgStoreOptions& options) : options_(options) {}
PgStore::~PgStore() = default;

absl::StatusOr<std::unique_ptr<PgStore>> PgStore::Create(
    const PgStoreOptions& options) {
  if (options.dsn.empty()) {
    return absl::InvalidArgumentError("PgStore: empty dsn");
  }
  if (options.read_page_size <= 0) {
    return absl::InvalidArgumentError("PgStore: read_page_size must be > 0");
  }
  // Not make_unique: the constructor is private.
  std::unique_ptr<PgStore> store(new PgStore(options));
  RETURN_IF_ERROR(store->Migrate());
  return store;
}

absl::Status PgStore::Run(const char* operation,
                          const std::function<absl::Status(Session&)>& body) {
  const int pool_size = std::clamp(options_.pool_size, 1, 64);
  std::unique_ptr<Session> session;
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    const auto available = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || busy_ < pool_size;
    };
    mu_.Await(absl::Condition(&available));
    if (!idle_.empty()) {
      session = std::move(idle_.back());
      idle_.pop_back();
    }
    ++busy_;
    generation = generation_;
  }
  absl::Status status;
  try {
    if (session == nullptr || !session->conn().is_open()) {
      session.reset();
      session = std::make_unique<Session>(options_);
    }
    status = body(*session);
  } catch (...) {
    status = StatusFromPqxxException(std::current_exception(), operation);
    if (status.code() == absl::StatusCode::kUnavailable ||
        status.code() == absl::StatusCode::kUnknown) {
      // The connection is unusable or in an unknown state: start afresh.
      session.reset();
    }
  }
  // Closed outside the lock (a disconnect may take a round trip).
  std::unique_ptr<Session> to_close;
  {
    absl::MutexLock lock(&mu_);
    --busy_;
    if (session != nullptr && generation == generation_) {
      idle_.push_back(std::move(session));
    } else {
      to_close = std::move(session);
    }
  }
  return status;
}

absl::Status PgStore::Migrate() {
  const std::vector<Migration>& known = PgMigrations();
  RETURN_IF_ERROR(ValidateMigrations(known));
  return Run("migrate", [&](Session& s) -> absl::Status {
    pqxx::work tx(s.conn());
    tx.exec_prepared(kAdvisoryXactLock.name, kMigrationLockKey);
    if (!options_.schema.empty()) {
      // An identifier cannot be a $n parameter; quote_name() escapes it.
      tx.exec("CREATE SCHEMA IF NOT EXISTS " + tx.quote_name(options_.schema));
    }
    tx.exec(kCreateMigrationsTable);
    std::vector<AppliedMigration> applied;
    for (const pqxx::row& row : tx.exec_prepared(kSelectMigrations.name)) {
      applied.push_back(AppliedMigration{.version = row[0].as<int>(),
                                         .name = row[1].as<std::string>()});
    }
    ASSIGN_OR_RETURN(const std::vector<const Migration*> pending,
                     PlanMigrations(known, applied));
    for (const Migration* m : pending) {
      tx.exec(m->sql);
      tx.exec_prepared(kInsertMigration.name, m->version, m->name);
    }
    tx.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<int> PgStore::SchemaVersion() {
  int version = 0;
  RETURN_IF_ERROR(Run("SchemaVersion", [&](Session& s) -> absl::Status {
    pqxx::read_transaction tx(s.conn());
    version = tx.exec_prepared1(kSchemaVersion.name)[0].as<int>();
    return absl::OkStatus();
  }));
  return version;
}

void PgStore::SetEventWriteModeForTest(EventWriteMode mode) {
  absl::MutexLock lock(&mu_);
  event_write_mode_ = mode;
}

void PgStore::DisconnectForTest() {
  std::vector<std::unique_ptr<Session>> to_close;
  absl::MutexLock lock(&mu_);
  to_close.swap(idle_);
  ++generation_;
}

absl::Status PgStore::DropSchemaForTest(const std::string& dsn,
                                        const std::string& schema) {
  try {
    pqxx::connection conn(dsn);
    pqxx::nontransaction tx(conn);
    tx.exec("DROP SCHEMA IF EXISTS " + tx.quote_name(schema) + " CASCADE");
    return absl::OkStatus();
  } catch (...) {
    return StatusFromPqxxException(std::current_exception(),
                                   "DropSchemaForTest");
  }
}

absl::Status PgStore::Commit(const CommitRecord& record) {
  if (record.empty()) {
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(ValidateRecord(record));
  // Encoded outside the lock: the work does not need the connection.
  std::optional<EventArrays> arrays;
  EventWriteMode mode;
  {
    absl::MutexLock lock(&mu_);
    mode = event_write_mode_;
  }
  if (mode == EventWriteMode::kInsertUnnest && !record.events.empty()) {
    arrays = ToEventArrays(record.events);
  }
  std::optional<BatchArrays> batches;
  if (!record.batches.empty()) {
    std::vector<const BatchId*> ids;
    ids.reserve(record.batches.size());
    for (const BatchId& b : record.batches) {
      ids.push_back(&b);
    }
    batches = ToBatchArrays(ids);
  }
  return Run("Commit", [&](Session& s) -> absl::Status {
    pqxx::work tx(s.conn());
    if (!record.journal.empty()) {
      // Serialises journal writers across connections and processes until
      // this transaction ends; taken first so that lock order is always
      // journal, then rows.
      tx.exec_prepared(kAdvisoryXactLock.name, kJournalLockKey);
    }
    if (batches) {
      const pqxx::result r =
          tx.exec_prepared(kInsertBatches.name, batches->agents,
                           batches->epochs, batches->sequences);
      if (r.affected_rows() != record.batches.size()) {
        // Returning leaves the transaction to roll back: nothing written.
        return absl::AlreadyExistsError(absl::StrFormat(
            "%d of %d batches already committed (or repeated), e.g. one of "
            "%s/%d/%d ...",
            record.batches.size() - r.affected_rows(), record.batches.size(),
            Abbreviate(record.batches[0].agent_id),
            record.batches[0].spool_epoch, record.batches[0].sequence));
      }
    }
    if (!record.journal.empty()) {
      const uint64_t head = FromBigint(
          tx.exec_prepared1(kSelectJournalHead.name)[0].as<int64_t>());
      const uint64_t first = record.journal.front().revision;
      if (first <= head) {
        return absl::AbortedError(absl::StrFormat(
            "journal revision %d already written (stored revision %d): "
            "another writer committed first; reload and retry",
            first, head));
      }
      if (first != head + 1) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "journal revision %d does not follow stored revision %d", first,
            head));
      }
      for (const JournalEntry& j : record.journal) {
        const Ban& b = j.ban;
        const std::string prefix = b.prefix.ToString();
        const std::string created = PgTime(b.created);
        const std::string expires = PgTime(b.expires);
        tx.exec_prepared(kInsertJournal.name, ToBigint(j.revision),
                         static_cast<int>(j.op), PgTime(j.at), ToBigint(b.id),
                         prefix, created, expires, static_cast<int>(b.origin),
                         b.level, b.reason, b.actor);
        const std::string removed_at =
            j.op == JournalEntry::Op::kRemove ? PgTime(j.at) : std::string();
        tx.exec_prepared(kUpsertBan.name, ToBigint(b.id), prefix, created,
                         expires, static_cast<int>(b.origin), b.level, b.reason,
                         b.actor,
                         removed_at.empty() ? nullptr : removed_at.c_str());
      }
      tx.exec_prepared(kUpdateJournalHead.name,
                       ToBigint(record.journal.back().revision));
    }
    if (!record.events.empty()) {
      if (arrays) {
        tx.exec_prepared(kInsertEventsUnnest.name, arrays->times,
                         arrays->agents, arrays->kinds, arrays->protocols,
                         arrays->ips, arrays->users);
      } else {
        pqxx::stream_to copy(tx, "events", std::begin(kEventCopyColumns),
                             std::end(kEventCopyColumns));
        std::string ip;
        std::string user;
        for (const AuthEvent& e : record.events) {
          ip.clear();
          if (e.ip) {
            e.ip->AppendTo(&ip);
          }
          user.clear();
          AppendByteaHex(e.user, &user);
          copy << std::make_tuple(PgTime(e.time), std::cref(e.agent_id),
                                  static_cast<int>(e.kind),
                                  static_cast<int>(e.protocol),
                                  e.ip ? ip.c_str() : nullptr, std::cref(user));
        }
        copy.complete();
      }
    }
    for (const CompromiseAlert& a : record.alerts) {
      tx.exec_prepared(kInsertAlert.name, ToBigint(a.id), PgTime(a.time),
                       pqxx::binarystring(a.user), a.ip.ToString(), a.agent_id,
                       static_cast<int>(a.protocol), a.ip_score,
                       a.recent_failures, a.account_under_attack,
                       pqxx::binarystring(a.evidence));
    }
    for (const AccountAttack& a : record.accounts) {
      tx.exec_prepared(kUpsertAccount.name, pqxx::binarystring(a.user),
                       PgTime(a.first_seen), PgTime(a.last_seen), a.failures,
                       a.distinct_ips, a.distinct_servers,
                       TextArray(a.sample_ips), TextArray(a.servers));
    }
    for (const AllowEntry& a : record.allow_put) {
      const std::string expires = a.expires ? PgTime(*a.expires) : "";
      tx.exec_prepared(kUpsertAllow.name, a.prefix.ToString(),
                       a.expires ? expires.c_str() : nullptr, a.comment,
                       a.actor, PgTime(a.created));
    }
    for (const IpPrefix& p : record.allow_delete) {
      tx.exec_prepared(kDeleteAllow.name, p.ToString());
    }
    for (const AuditRecord& a : record.audit) {
      tx.exec_prepared(kInsertAudit.name, PgTime(a.time), a.actor, a.action,
                       a.target, a.before, a.after, a.peer);
    }
    tx.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> PgStore::HasBatch(const BatchId& batch) {
  if (!IsPgText(batch.agent_id)) {
    return false;  // could never have been committed
  }
  bool found = false;
  RETURN_IF_ERROR(Run("HasBatch", [&](Session& s) -> absl::Status {
    pqxx::read_transaction tx(s.conn());
    found = tx.exec_prepared1(kHasBatch.name, batch.agent_id,
                              ToBigint(batch.spool_epoch),
                              ToBigint(batch.sequence))[0]
                .as<bool>();
    return absl::OkStatus();
  }));
  return found;
}

absl::StatusOr<std::vector<bool>> PgStore::HasBatches(
    const std::vector<BatchId>& batches) {
  std::vector<bool> found(batches.size(), false);
  // Only ids PostgreSQL can hold can have been committed; `positions` maps
  // an array position back to the index in `batches`.
  std::vector<const BatchId*> ids;
  std::vector<size_t> positions;
  for (size_t i = 0; i < batches.size(); ++i) {
    if (IsPgText(batches[i].agent_id)) {
      ids.push_back(&batches[i]);
      positions.push_back(i);
    }
  }
  if (ids.empty()) {
    return found;
  }
  const BatchArrays arrays = ToBatchArrays(ids);
  RETURN_IF_ERROR(Run("HasBatches", [&](Session& s) -> absl::Status {
    // One statement, one round trip: no explicit transaction needed.
    pqxx::nontransaction tx(s.conn());
    for (const pqxx::row& row :
         tx.exec_prepared(kHasBatches.name, arrays.agents, arrays.epochs,
                          arrays.sequences)) {
      const int64_t i = row[0].as<int64_t>();
      if (i < 1 || static_cast<size_t>(i) > positions.size()) {
        return absl::InternalError("HasBatches: position out of range");
      }
      found[positions[static_cast<size_t>(i) - 1]] = true;
    }
    return absl::OkStatus();
  }));
  return found;
}

absl::StatusOr<DurableState> PgStore::LoadState(absl::Time now) {
  DurableState state;
  RETURN_IF_ERROR(Run("LoadState", [&](Session& s) -> absl::Status {
    state = DurableState();
    // One snapshot for all reads.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(s.conn());
    state.revision =
        FromBigint(tx.exec_prepared1(kSelectJournalHead.name)[0].as<int64_t>());
    state.max_ban_id =
        FromBigint(tx.exec_prepared1(kMaxBanId.name)[0].as<int64_t>());
    state.max_alert_id =
        FromBigint(tx.exec_prepared1(kMaxAlertId.name)[0].as<int64_t>());
    for (const pqxx::row& row :
         tx.exec_prepared(kActiveBans.name, PgTime(now))) {
      ASSIGN_OR_RETURN(Ban ban, ReadBan(row));
      state.active_bans.push_back(std::move(ban));
    }
    for (const pqxx::row& row : tx.exec_prepared(kBanHistory.name)) {
      BanHistory h;
      ASSIGN_OR_RETURN(h.prefix, ParsePrefix(row[0]));
      h.bans = row[1].as<int>();
      h.last_end = FromPgMicros(row[2].as<int64_t>());
      h.last_level = row[3].as<int>();
      state.history.push_back(h);
    }
    for (const pqxx::row& row : tx.exec_prepared(kSelectAllowlist.name)) {
      AllowEntry a;
      ASSIGN_OR_RETURN(a.prefix, ParsePrefix(row[0]));
      if (!row[1].is_null()) {
        a.expires = FromPgMicros(row[1].as<int64_t>());
      }
      a.comment = row[2].as<std::string>();
      a.actor = row[3].as<std::string>();
      a.created = FromPgMicros(row[4].as<int64_t>());
      state.allowlist.push_back(std::move(a));
    }
    tx.commit();
    return absl::OkStatus();
  }));
  // Canonical orders, independent of PostgreSQL's inet collation.
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

absl::StatusOr<std::vector<JournalEntry>> PgStore::JournalSince(uint64_t after,
                                                                size_t limit) {
  std::vector<JournalEntry> out;
  RETURN_IF_ERROR(Run("JournalSince", [&](Session& s) -> absl::Status {
    out.clear();
    pqxx::read_transaction tx(s.conn());
    for (const pqxx::row& row : tx.exec_prepared(
             kJournalSince.name, ToBigint(after), LimitParam(limit))) {
      JournalEntry j;
      j.revision = FromBigint(row[0].as<int64_t>());
      j.op = static_cast<JournalEntry::Op>(row[1].as<int>());
      j.at = FromPgMicros(row[2].as<int64_t>());
      j.ban.id = FromBigint(row[3].as<int64_t>());
      ASSIGN_OR_RETURN(j.ban.prefix, ParsePrefix(row[4]));
      j.ban.created = FromPgMicros(row[5].as<int64_t>());
      j.ban.expires = FromPgMicros(row[6].as<int64_t>());
      j.ban.origin = static_cast<BanOrigin>(row[7].as<int>());
      j.ban.level = row[8].as<int>();
      j.ban.reason = row[9].as<std::string>();
      j.ban.actor = row[10].as<std::string>();
      out.push_back(std::move(j));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<uint64_t> PgStore::BanListEpoch() {
  uint64_t epoch = 0;
  RETURN_IF_ERROR(Run("BanListEpoch", [&](Session& s) -> absl::Status {
    pqxx::read_transaction tx(s.conn());
    const pqxx::result r = tx.exec_prepared(kBanListEpoch.name);
    if (r.empty()) {
      return absl::InternalError("meta.ban_list_epoch is missing");
    }
    epoch = FromBigint(r[0][0].as<int64_t>());
    return absl::OkStatus();
  }));
  return epoch;
}

absl::StatusOr<uint64_t> PgStore::OldestRevision() {
  uint64_t oldest = 0;
  RETURN_IF_ERROR(Run("OldestRevision", [&](Session& s) -> absl::Status {
    pqxx::read_transaction tx(s.conn());
    oldest =
        FromBigint(tx.exec_prepared1(kOldestRevision.name)[0].as<int64_t>());
    return absl::OkStatus();
  }));
  return oldest;
}

absl::StatusOr<int64_t> PgStore::PruneJournal(uint64_t keep_from) {
  int64_t deleted = 0;
  RETURN_IF_ERROR(Run("PruneJournal", [&](Session& s) -> absl::Status {
    pqxx::work tx(s.conn());
    // keep_from beyond INT64_MAX deletes everything.
    const int64_t bound =
        keep_from > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
            ? std::numeric_limits<int64_t>::max()
            : ToBigint(keep_from);
    deleted = tx.exec_prepared(kPruneJournal.name, bound).affected_rows();
    tx.commit();
    return absl::OkStatus();
  }));
  return deleted;
}

absl::Status PgStore::ForEachEvent(
    absl::Time from, absl::Time to,
    const std::function<absl::Status(const AuthEvent&)>& fn) {
  const std::string from_text = PgTime(from);
  const std::string to_text = PgTime(to);
  std::string after_time = from_text;
  int64_t after_id = 0;
  std::vector<AuthEvent> page;
  while (true) {
    page.clear();
    RETURN_IF_ERROR(Run("ForEachEvent", [&](Session& s) -> absl::Status {
      page.clear();
      pqxx::read_transaction tx(s.conn());
      const pqxx::result r =
          tx.exec_prepared(kEventsPage.name, from_text, to_text, after_time,
                           after_id, options_.read_page_size);
      page.reserve(r.size());
      for (const pqxx::row& row : r) {
        ASSIGN_OR_RETURN(AuthEvent e, ReadEvent(row));
        page.push_back(std::move(e));
      }
      if (!r.empty()) {
        after_time = PgTime(page.back().time);
        after_id = r.back()[6].as<int64_t>();
      }
      return absl::OkStatus();
    }));
    for (const AuthEvent& e : page) {
      RETURN_IF_ERROR(fn(e));
    }
    if (page.size() < static_cast<size_t>(options_.read_page_size)) {
      return absl::OkStatus();
    }
  }
}

absl::StatusOr<std::vector<AuthEvent>> PgStore::EventsForPrefix(
    const IpPrefix& prefix, absl::Time since, size_t limit) {
  std::vector<AuthEvent> out;
  RETURN_IF_ERROR(Run("EventsForPrefix", [&](Session& s) -> absl::Status {
    out.clear();
    pqxx::read_transaction tx(s.conn());
    for (const pqxx::row& row :
         tx.exec_params(kEventsForPrefix, prefix.ToString(), PgTime(since),
                        LimitParam(limit))) {
      ASSIGN_OR_RETURN(AuthEvent e, ReadEvent(row));
      out.push_back(std::move(e));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<int64_t> PgStore::PruneEvents(absl::Time before) {
  int64_t deleted = 0;
  RETURN_IF_ERROR(Run("PruneEvents", [&](Session& s) -> absl::Status {
    pqxx::work tx(s.conn());
    deleted =
        tx.exec_prepared(kPruneEvents.name, PgTime(before)).affected_rows();
    tx.commit();
    return absl::OkStatus();
  }));
  return deleted;
}

absl::StatusOr<std::vector<Ban>> PgStore::BansFor(const IpPrefix& prefix) {
  std::vector<Ban> out;
  RETURN_IF_ERROR(Run("BansFor", [&](Session& s) -> absl::Status {
    out.clear();
    pqxx::read_transaction tx(s.conn());
    for (const pqxx::row& row :
         tx.exec_prepared(kBansFor.name, prefix.ToString())) {
      ASSIGN_OR_RETURN(Ban ban, ReadBan(row));
      out.push_back(std::move(ban));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<AccountAttack>> PgStore::ListAccounts(
    absl::Time since, size_t limit) {
  std::vector<AccountAttack> out;
  RETURN_IF_ERROR(Run("ListAccounts", [&](Session& s) -> absl::Status {
    out.clear();
    pqxx::read_transaction tx(s.conn());
    for (const pqxx::row& row : tx.exec_prepared(
             kListAccounts.name, PgTime(since), LimitParam(limit))) {
      AccountAttack a;
      a.user = Bytes(row[0]);
      a.first_seen = FromPgMicros(row[1].as<int64_t>());
      a.last_seen = FromPgMicros(row[2].as<int64_t>());
      a.failures = row[3].as<int64_t>();
      a.distinct_ips = row[4].as<int>();
      a.distinct_servers = row[5].as<int>();
      a.sample_ips = ParseTextArray(row[6]);
      a.servers = ParseTextArray(row[7]);
      out.push_back(std::move(a));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<CompromiseAlert>> PgStore::ListAlerts(
    absl::Time since, size_t limit) {
  std::vector<CompromiseAlert> out;
  RETURN_IF_ERROR(Run("ListAlerts", [&](Session& s) -> absl::Status {
    out.clear();
    pqxx::read_transaction tx(s.conn());
    for (const pqxx::row& row :
         tx.exec_prepared(kListAlerts.name, PgTime(since), LimitParam(limit))) {
      CompromiseAlert a;
      a.id = FromBigint(row[0].as<int64_t>());
      a.time = FromPgMicros(row[1].as<int64_t>());
      a.user = Bytes(row[2]);
      ASSIGN_OR_RETURN(a.ip, IpAddress::FromString(row[3].c_str()));
      a.agent_id = row[4].as<std::string>();
      a.protocol = static_cast<Protocol>(row[5].as<int>());
      a.ip_score = row[6].as<double>();
      a.recent_failures = row[7].as<int64_t>();
      a.account_under_attack = row[8].as<bool>();
      a.evidence = Bytes(row[9]);
      out.push_back(std::move(a));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<AuditRecord>> PgStore::ListAudit(absl::Time since,
                                                            size_t limit) {
  std::vector<AuditRecord> out;
  RETURN_IF_ERROR(Run("ListAudit", [&](Session& s) -> absl::Status {
    out.clear();
    pqxx::read_transaction tx(s.conn());
    for (const pqxx::row& row :
         tx.exec_prepared(kListAudit.name, PgTime(since), LimitParam(limit))) {
      AuditRecord a;
      a.id = FromBigint(row[0].as<int64_t>());
      a.time = FromPgMicros(row[1].as<int64_t>());
      a.actor = row[2].as<std::string>();
      a.action = row[3].as<std::string>();
      a.target = row[4].as<std::string>();
      a.before = row[5].as<std::string>();
      a.after = row[6].as<std::string>();
      a.peer = row[7].as<std::string>();
      out.push_back(std::move(a));
    }
    return absl::OkStatus();
  }));
  return out;
}

// --- API tokens --------------------------------------------------------------

namespace {

absl::StatusOr<ApiToken> TokenFromRow(const pqxx::row& row) {
  ApiToken t;
  t.name = row[0].as<std::string>();
  std::optional<AdminRole> role = ParseRole(row[1].as<std::string>());
  if (!role) {
    return absl::InternalError(absl::StrFormat(
        "api_tokens: token \"%s\" has an unknown role", t.name));
  }
  t.role = *role;
  t.hash = row[2].as<std::string>();
  t.created = FromPgMicros(row[3].as<int64_t>());
  if (!row[4].is_null()) {
    t.revoked = FromPgMicros(row[4].as<int64_t>());
  }
  return t;
}

}  // namespace

absl::Status PgStore::PutApiToken(const ApiToken& token) {
  return Run("PutApiToken", [&](Session& s) -> absl::Status {
    pqxx::work tx(s.conn());
    if (!tx.exec_prepared(kTokenHashExists.name, token.hash).empty()) {
      return absl::AlreadyExistsError("a token with this hash exists");
    }
    const pqxx::result r = tx.exec_prepared(
        kPutApiToken.name, token.name, std::string(RoleName(token.role)),
        token.hash, PgTime(token.created),
        token.revoked ? PgTime(*token.revoked) : std::string());
    if (r.affected_rows() == 0) {
      return absl::AlreadyExistsError(
          absl::StrFormat("token \"%s\" exists", token.name));
    }
    tx.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<ApiToken>> PgStore::FindApiToken(
    std::string_view hash) {
  std::optional<ApiToken> out;
  RETURN_IF_ERROR(Run("FindApiToken", [&](Session& s) -> absl::Status {
    out.reset();
    pqxx::read_transaction tx(s.conn());
    for (const pqxx::row& row :
         tx.exec_prepared(kFindApiToken.name, std::string(hash))) {
      ASSIGN_OR_RETURN(ApiToken t, TokenFromRow(row));
      out = std::move(t);
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ApiToken>> PgStore::ListApiTokens() {
  std::vector<ApiToken> out;
  RETURN_IF_ERROR(Run("ListApiTokens", [&](Session& s) -> absl::Status {
    out.clear();
    pqxx::read_transaction tx(s.conn());
    for (const pqxx::row& row : tx.exec_prepared(kListApiTokens.name)) {
      ASSIGN_OR_RETURN(ApiToken t, TokenFromRow(row));
      out.push_back(std::move(t));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status PgStore::RevokeApiToken(std::string_view name, absl::Time at) {
  return Run("RevokeApiToken", [&](Session& s) -> absl::Status {
    pqxx::work tx(s.conn());
    if (tx.exec_prepared(kRevokeApiToken.name, std::string(name), PgTime(at))
            .affected_rows() == 0) {
      return absl::NotFoundError(
          absl::StrFormat("no active token named \"%s\"", name));
    }
    tx.commit();
    return absl::OkStatus();
  });
}

// --- EnrollmentStore (rare calls: not prepared) ----------------------------

namespace {
#define RAMPART_PG_ENROLLMENT_COLUMNS                                        \
  "agent_id, site, token_sha256, rampart_micros(token_expires), token_used," \
  " reenroll, rampart_micros(created), cert_serial, cert_sha256,"            \
  " rampart_micros(cert_not_after), rampart_micros(enrolled_at), revoked,"   \
  " rampart_micros(revoked_at), revoke_reason"
constexpr char kGetEnrollment[] = "SELECT " RAMPART_PG_ENROLLMENT_COLUMNS
                                  " FROM agent_enrollments WHERE agent_id = $1";
constexpr char kListEnrollments[] = "SELECT " RAMPART_PG_ENROLLMENT_COLUMNS
                                    " FROM agent_enrollments ORDER BY "
                                    "agent_id COLLATE \"C\"";
#undef RAMPART_PG_ENROLLMENT_COLUMNS
constexpr char kPutEnrollment[] =
    "INSERT INTO agent_enrollments (agent_id, site, token_sha256,"
    " token_expires, token_used, reenroll, created, cert_serial, cert_sha256,"
    " cert_not_after, enrolled_at, revoked, revoked_at, revoke_reason)"
    " VALUES ($1, $2, $3, $4::timestamptz, $5, $6, $7::timestamptz, $8, $9,"
    " $10::timestamptz, $11::timestamptz, $12, $13::timestamptz, $14)"
    " ON CONFLICT (agent_id) DO UPDATE SET site = EXCLUDED.site,"
    " token_sha256 = EXCLUDED.token_sha256,"
    " token_expires = EXCLUDED.token_expires,"
    " token_used = EXCLUDED.token_used, reenroll = EXCLUDED.reenroll,"
    " created = EXCLUDED.created, cert_serial = EXCLUDED.cert_serial,"
    " cert_sha256 = EXCLUDED.cert_sha256,"
    " cert_not_after = EXCLUDED.cert_not_after,"
    " enrolled_at = EXCLUDED.enrolled_at, revoked = EXCLUDED.revoked,"
    " revoked_at = EXCLUDED.revoked_at,"
    " revoke_reason = EXCLUDED.revoke_reason";

AgentEnrollment ReadEnrollment(const pqxx::row& row) {
  AgentEnrollment e;
  e.agent_id = row[0].as<std::string>();
  e.site = row[1].as<std::string>();
  e.token_sha256 = row[2].as<std::string>();
  e.token_expires = FromPgMicros(row[3].as<int64_t>());
  e.token_used = row[4].as<bool>();
  e.reenroll = row[5].as<bool>();
  e.created = FromPgMicros(row[6].as<int64_t>());
  e.cert_serial = row[7].as<std::string>();
  e.cert_sha256 = row[8].as<std::string>();
  e.cert_not_after = FromPgMicros(row[9].as<int64_t>());
  e.enrolled_at = FromPgMicros(row[10].as<int64_t>());
  e.revoked = row[11].as<bool>();
  e.revoked_at = FromPgMicros(row[12].as<int64_t>());
  e.revoke_reason = row[13].as<std::string>();
  return e;
}
}  // namespace

absl::StatusOr<std::optional<AgentEnrollment>> PgStore::GetEnrollment(
    std::string_view agent_id) {
  std::optional<AgentEnrollment> out;
  RETURN_IF_ERROR(Run("GetEnrollment", [&](Session& s) -> absl::Status {
    out.reset();
    pqxx::read_transaction tx(s.conn());
    const pqxx::result r =
        tx.exec_params(kGetEnrollment, std::string(agent_id));
    if (!r.empty()) {
      out = ReadEnrollment(r[0]);
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status PgStore::PutEnrollment(const AgentEnrollment& e) {
  if (e.agent_id.empty()) {
    return absl::InvalidArgumentError("enrollment without agent id");
  }
  return Run("PutEnrollment", [&](Session& s) -> absl::Status {
    pqxx::work tx(s.conn());
    tx.exec_params(kPutEnrollment, e.agent_id, e.site, e.token_sha256,
                   PgTime(e.token_expires), e.token_used, e.reenroll,
                   PgTime(e.created), e.cert_serial, e.cert_sha256,
                   PgTime(e.cert_not_after), PgTime(e.enrolled_at), e.revoked,
                   PgTime(e.revoked_at), e.revoke_reason);
    tx.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<AgentEnrollment>> PgStore::ListEnrollments() {
  std::vector<AgentEnrollment> out;
  RETURN_IF_ERROR(Run("ListEnrollments", [&](Session& s) -> absl::Status {
    out.clear();
    pqxx::read_transaction tx(s.conn());
    for (const pqxx::row& row : tx.exec(kListEnrollments)) {
      out.push_back(ReadEnrollment(row));
    }
    return absl::OkStatus();
  }));
  return out;
}

namespace {
constexpr char kListProtected[] =
    "SELECT agent_id, address, source, rampart_micros(since), actor"
    " FROM agent_protected_addresses"
    " ORDER BY agent_id COLLATE \"C\", address COLLATE \"C\","
    " source = 'approved'";
constexpr char kDeleteProtected[] =
    "DELETE FROM agent_protected_addresses WHERE agent_id = $1";
constexpr char kInsertProtected[] =
    "INSERT INTO agent_protected_addresses"
    " (agent_id, address, source, since, actor)"
    " VALUES ($1, $2, $3, $4::timestamptz, $5)";
}  // namespace

absl::StatusOr<std::vector<ProtectedAgentAddress>>
PgStore::ListProtectedAddresses() {
  std::vector<ProtectedAgentAddress> out;
  RETURN_IF_ERROR(
      Run("ListProtectedAddresses", [&](Session& s) -> absl::Status {
        out.clear();
        pqxx::read_transaction tx(s.conn());
        for (const pqxx::row& row : tx.exec(kListProtected)) {
          out.push_back(ProtectedAgentAddress{
              .agent_id = row[0].as<std::string>(),
              .address = row[1].as<std::string>(),
              .source = row[2].as<std::string>() == "approved"
                            ? ProtectedAgentAddress::Source::kApproved
                            : ProtectedAgentAddress::Source::kPeer,
              .since = FromPgMicros(row[3].as<int64_t>()),
              .actor = row[4].as<std::string>()});
        }
        return absl::OkStatus();
      }));
  return out;
}

absl::Status PgStore::ReplaceProtectedAddresses(
    std::string_view agent_id, const std::vector<ProtectedAgentAddress>& rows) {
  RETURN_IF_ERROR(CheckProtectedRows(agent_id, rows));
  return Run("ReplaceProtectedAddresses", [&](Session& s) -> absl::Status {
    pqxx::work tx(s.conn());
    tx.exec_params(kDeleteProtected, std::string(agent_id));
    for (const ProtectedAgentAddress& r : rows) {
      tx.exec_params(
          kInsertProtected, r.agent_id, r.address,
          std::string(r.source == ProtectedAgentAddress::Source::kApproved
                          ? "approved"
                          : "peer"),
          PgTime(r.since), r.actor);
    }
    tx.commit();
    return absl::OkStatus();
  });
}

}  // namespace rampart::server
