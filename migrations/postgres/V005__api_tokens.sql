-- Admin API bearer tokens (docs/security.md "Admin authorization").
-- Only the SHA-256 of each secret is stored (hex); the secret itself is shown
-- once by `rampart-server token create`. A revoked token keeps its row (for
-- `token list`) until a new token of the same name replaces it.
-- Self-contained: depends on no other migration.
CREATE TABLE IF NOT EXISTS api_tokens (
  name    text        PRIMARY KEY,
  role    text        NOT NULL CHECK (role IN ('read-only', 'operator', 'admin')),
  hash    text        NOT NULL UNIQUE CHECK (length(hash) = 64),
  created timestamptz NOT NULL,
  revoked timestamptz
);

-- The admin connection's peer address of each audited action ('' for the
-- correlator and the configuration).
ALTER TABLE audit ADD COLUMN IF NOT EXISTS peer text NOT NULL DEFAULT '';
