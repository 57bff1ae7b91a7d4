-- Agent identities for mutual TLS (server/store/enrollment_store.h): one row
-- per agent id with the SHA-256 of its one-time enrollment token, the
-- certificate it was exchanged for and any revocation.
CREATE TABLE agent_enrollments (
  agent_id       text PRIMARY KEY,
  site           text NOT NULL,
  token_sha256   text NOT NULL,
  token_expires  timestamptz NOT NULL,
  token_used     boolean NOT NULL,
  reenroll       boolean NOT NULL,
  created        timestamptz NOT NULL,
  cert_serial    text NOT NULL,
  cert_sha256    text NOT NULL,
  cert_not_after timestamptz NOT NULL,
  enrolled_at    timestamptz NOT NULL,
  revoked        boolean NOT NULL,
  revoked_at     timestamptz NOT NULL,
  revoke_reason  text NOT NULL
);
