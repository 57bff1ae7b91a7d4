-- Agent identities for mutual TLS (server/store/enrollment_store.h): one row
-- per agent id with the SHA-256 of its one-time enrollment token, the
-- certificate it was exchanged for and any revocation. Times are
-- microseconds since the Unix epoch.
CREATE TABLE agent_enrollments (
  agent_id          TEXT PRIMARY KEY,
  site              TEXT NOT NULL,
  token_sha256      TEXT NOT NULL,
  token_expires_us  INTEGER NOT NULL,
  token_used        INTEGER NOT NULL,
  reenroll          INTEGER NOT NULL,
  created_us        INTEGER NOT NULL,
  cert_serial       TEXT NOT NULL,
  cert_sha256       TEXT NOT NULL,
  cert_not_after_us INTEGER NOT NULL,
  enrolled_at_us    INTEGER NOT NULL,
  revoked           INTEGER NOT NULL,
  revoked_at_us     INTEGER NOT NULL,
  revoke_reason     TEXT NOT NULL
);
