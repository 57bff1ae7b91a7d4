-- Rampart server schema, PostgreSQL 15. Semantically identical to
-- migrations/sqlite/ (same tables, keys and meaning); representation differs:
--   * times are timestamptz (microsecond resolution, UTC); a permanent ban
--     expires at 'infinity'. rampart_micros() reads them back exactly.
--   * addresses are inet, prefixes cidr (prefix queries: ip <<= $1::cidr on
--     a GiST inet_ops index).
--   * user names are bytea (attacker-controlled bytes, may hold NUL or
--     invalid UTF-8); the other strings are text.
--   * unsigned 64-bit ids (ban ids, revisions, spool epochs) are stored
--     bit-for-bit in bigint.
-- Applied by PgStore::Create() inside one transaction; schema_migrations is
-- created by the migrator itself.

-- Microseconds since the Unix epoch; +/- infinity map to the int64 extremes.
CREATE FUNCTION rampart_micros(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE
    WHEN t = 'infinity'::timestamptz THEN 9223372036854775807
    WHEN t = '-infinity'::timestamptz THEN -9223372036854775808
    ELSE (extract(epoch FROM t) * 1000000)::bigint
  END
$$;

-- Authentication events from all agents. id gives insertion order for ties.
CREATE TABLE events (
  id       bigserial   PRIMARY KEY,
  time     timestamptz NOT NULL,
  agent_id text        NOT NULL,
  kind     smallint    NOT NULL,
  protocol smallint    NOT NULL,
  ip       inet,                    -- NULL: no valid address in the line
  username bytea       NOT NULL
);
CREATE INDEX events_time_idx ON events (time, id);
CREATE INDEX events_ip_idx ON events USING gist (ip inet_ops);

-- Committed agent batches (at-least-once delivery dedup).
CREATE TABLE agent_batches (
  agent_id    text   NOT NULL,
  spool_epoch bigint NOT NULL,
  sequence    bigint NOT NULL,
  PRIMARY KEY (agent_id, spool_epoch, sequence)
);

-- Every ban ever decided, as of its latest journal entry.
CREATE TABLE bans (
  id         bigint      PRIMARY KEY,
  prefix     cidr        NOT NULL,
  created    timestamptz NOT NULL,
  expires    timestamptz NOT NULL,  -- 'infinity': permanent
  origin     smallint    NOT NULL,
  level      integer     NOT NULL,
  reason     text        NOT NULL,
  actor      text        NOT NULL,
  removed_at timestamptz            -- set by a kRemove journal entry
);
CREATE INDEX bans_prefix_idx ON bans (prefix);
CREATE INDEX bans_active_idx ON bans (expires) WHERE removed_at IS NULL;

-- The ban-list journal: one row per change, revision without gaps.
CREATE TABLE ban_journal (
  revision    bigint      PRIMARY KEY,
  op          smallint    NOT NULL,
  at          timestamptz NOT NULL,
  ban_id      bigint      NOT NULL,
  prefix      cidr        NOT NULL,
  created     timestamptz NOT NULL,
  expires     timestamptz NOT NULL,
  origin      smallint    NOT NULL,
  level       integer     NOT NULL,
  reason      text        NOT NULL,
  actor       text        NOT NULL
);

-- The highest revision ever committed, kept when the journal is pruned.
CREATE TABLE journal_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  revision  bigint  NOT NULL
);
INSERT INTO journal_head (revision) VALUES (0);

CREATE TABLE allowlist (
  prefix  cidr        PRIMARY KEY,
  expires timestamptz,              -- NULL: never
  comment text        NOT NULL,
  actor   text        NOT NULL,
  created timestamptz NOT NULL
);

-- Accounts under attack, keyed by normalised user name.
CREATE TABLE accounts (
  username         bytea       PRIMARY KEY,
  first_seen       timestamptz NOT NULL,
  last_seen        timestamptz NOT NULL,
  failures         bigint      NOT NULL,
  distinct_ips     integer     NOT NULL,
  distinct_servers integer     NOT NULL,
  sample_ips       text[]      NOT NULL,
  servers          text[]      NOT NULL
);
CREATE INDEX accounts_last_seen_idx ON accounts (last_seen);

CREATE TABLE alerts (
  id                   bigint           PRIMARY KEY,
  time                 timestamptz      NOT NULL,
  username             bytea            NOT NULL,
  ip                   inet             NOT NULL,
  agent_id             text             NOT NULL,
  protocol             smallint         NOT NULL,
  ip_score             double precision NOT NULL,
  recent_failures      bigint           NOT NULL,
  account_under_attack boolean          NOT NULL,
  evidence             bytea            NOT NULL
);
CREATE INDEX alerts_time_idx ON alerts (time);

-- Administrative actions; id assigned here.
CREATE TABLE audit (
  id     bigserial   PRIMARY KEY,
  time   timestamptz NOT NULL,
  actor  text        NOT NULL,
  action text        NOT NULL,
  target text        NOT NULL,
  before text        NOT NULL,
  after  text        NOT NULL
);
CREATE INDEX audit_time_idx ON audit (time, id);
