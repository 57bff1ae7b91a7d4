-- Rampart server schema, SQLite 3. Semantically identical to
-- migrations/postgres/ (same tables, keys and meaning); representation
-- differs:
--   * times are INTEGER microseconds since the Unix epoch
--     (absl::ToUnixMicros, i.e. truncated towards the past); absl's infinite
--     future/past are the int64 extremes, and a permanent ban's expires_us
--     (or an allowlist entry that never expires) is NULL.
--   * an address is kept twice: `ip` (canonical text, for people) and
--     `ip_bytes` (16-byte IPv6 / IPv4-mapped form, network order). A prefix
--     is the byte range [first, last] of its addresses, so prefix look-ups
--     are index range scans; IPv4 addresses occupy ::ffff:0:0/96, which IPv6
--     prefix queries exclude explicitly (no cross-family matches).
--   * user names and alert evidence are BLOBs (attacker-controlled bytes:
--     NUL, invalid UTF-8); the other strings are TEXT.
--   * unsigned 64-bit ids (ban ids, revisions, spool epochs) are stored
--     bit-for-bit in INTEGER (signed 64-bit).
-- Applied by SqliteStore::Create() inside BEGIN EXCLUSIVE; schema_migrations
-- is created by the migrator itself.

-- Authentication events from all agents. id (the rowid) gives insertion
-- order for equal times.
CREATE TABLE events (
  id       INTEGER PRIMARY KEY,
  time_us  INTEGER NOT NULL,
  agent_id TEXT    NOT NULL,
  kind     INTEGER NOT NULL,
  protocol INTEGER NOT NULL,
  ip       TEXT,                    -- NULL: no valid address in the line
  ip_bytes BLOB,                    -- NULL exactly when ip is NULL
  username BLOB    NOT NULL
);
-- ForEachEvent / PruneEvents: (time_us, rowid) order.
CREATE INDEX events_time_idx ON events (time_us);
-- EventsForPrefix: a range on ip_bytes, then newest first.
CREATE INDEX events_ip_idx ON events (ip_bytes, time_us)
  WHERE ip_bytes IS NOT NULL;

-- Committed agent batches (at-least-once delivery dedup). committed_us is
-- the database's wall clock, for operators only.
CREATE TABLE agent_batches (
  agent_id     TEXT    NOT NULL,
  spool_epoch  INTEGER NOT NULL,
  sequence     INTEGER NOT NULL,
  committed_us INTEGER NOT NULL
    DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)),
  PRIMARY KEY (agent_id, spool_epoch, sequence)
) WITHOUT ROWID;

-- Every ban ever decided, as of its latest journal entry (removed_at_us set
-- by a kRemove entry, cleared by a later kAdd/kUpdate).
CREATE TABLE bans (
  id            INTEGER PRIMARY KEY,
  prefix        TEXT    NOT NULL,   -- canonical IpPrefix::ToString()
  prefix_len    INTEGER NOT NULL CHECK (prefix_len BETWEEN 0 AND 128),
  created_us    INTEGER NOT NULL,
  expires_us    INTEGER,            -- NULL: permanent
  origin        INTEGER NOT NULL,
  level         INTEGER NOT NULL,
  reason        TEXT    NOT NULL,
  actor         TEXT    NOT NULL,
  removed_at_us INTEGER             -- NULL: not removed
);
-- BansFor (newest first) and the per-prefix history.
CREATE INDEX bans_prefix_idx ON bans (prefix, id);
-- LoadState's active bans: only the bans not removed, by id.
CREATE INDEX bans_unremoved_idx ON bans (id) WHERE removed_at_us IS NULL;

-- The ban-list journal: one row per change, revisions without gaps. Each row
-- carries the full ban as of the change.
CREATE TABLE ban_journal (
  revision   INTEGER PRIMARY KEY,
  op         INTEGER NOT NULL CHECK (op IN (1, 2, 3)),  -- add, remove, update
  at_us      INTEGER NOT NULL,
  ban_id     INTEGER NOT NULL REFERENCES bans (id),
  prefix     TEXT    NOT NULL,
  prefix_len INTEGER NOT NULL,
  created_us INTEGER NOT NULL,
  expires_us INTEGER,                -- NULL: permanent
  origin     INTEGER NOT NULL,
  level      INTEGER NOT NULL,
  reason     TEXT    NOT NULL,
  actor      TEXT    NOT NULL
);

-- The highest revision ever committed; kept when the journal is pruned.
CREATE TABLE journal_head (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  revision  INTEGER NOT NULL
);
INSERT INTO journal_head (singleton, revision) VALUES (1, 0);

CREATE TABLE allowlist (
  prefix     TEXT    PRIMARY KEY,    -- canonical IpPrefix::ToString()
  expires_us INTEGER,                -- NULL: never
  comment    TEXT    NOT NULL,
  actor      TEXT    NOT NULL,
  created_us INTEGER NOT NULL
);

-- Accounts under attack, keyed by normalised user name. sample_ips and
-- servers are lists: each element followed by a newline, with backslash and
-- newline inside an element escaped as \\ and \n.
CREATE TABLE accounts (
  username         BLOB    PRIMARY KEY,
  first_seen_us    INTEGER NOT NULL,
  last_seen_us     INTEGER NOT NULL,
  failures         INTEGER NOT NULL,
  distinct_ips     INTEGER NOT NULL,
  distinct_servers INTEGER NOT NULL,
  sample_ips       TEXT    NOT NULL,
  servers          TEXT    NOT NULL
);
CREATE INDEX accounts_last_seen_idx ON accounts (last_seen_us);

-- "Success after failures" alerts; id assigned by the correlator.
CREATE TABLE alerts (
  id                   INTEGER PRIMARY KEY,
  time_us              INTEGER NOT NULL,
  username             BLOB    NOT NULL,
  ip                   TEXT    NOT NULL,
  agent_id             TEXT    NOT NULL,
  protocol             INTEGER NOT NULL,
  ip_score             REAL    NOT NULL,
  recent_failures      INTEGER NOT NULL,
  account_under_attack INTEGER NOT NULL CHECK (account_under_attack IN (0, 1)),
  evidence             BLOB    NOT NULL
);
CREATE INDEX alerts_time_idx ON alerts (time_us);

-- Administrative actions; id assigned here, never reused.
CREATE TABLE audit (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  time_us     INTEGER NOT NULL,
  actor       TEXT    NOT NULL,
  action      TEXT    NOT NULL,
  target      TEXT    NOT NULL,
  before_json TEXT    NOT NULL,
  after_json  TEXT    NOT NULL
);
CREATE INDEX audit_time_idx ON audit (time_us);
