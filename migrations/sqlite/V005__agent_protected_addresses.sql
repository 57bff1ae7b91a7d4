-- Addresses that protect an agent from bans (server/core/
-- protected_addresses.h, docs/security.md "Abuse limits"): the authenticated
-- peer address of its latest stream ('peer') and addresses an admin approved
-- ('approved', `rampartctl agents protect`). Claimed but unproven
-- Hello.host_addresses are not stored: they protect nothing. Revoking an
-- agent deletes its rows. Times are microseconds since the Unix epoch.
-- Self-contained: depends on no other migration.
CREATE TABLE IF NOT EXISTS agent_protected_addresses (
  agent_id TEXT    NOT NULL,
  address  TEXT    NOT NULL,
  source   TEXT    NOT NULL CHECK (source IN ('peer', 'approved')),
  since_us INTEGER NOT NULL,
  actor    TEXT    NOT NULL,
  PRIMARY KEY (agent_id, address, source)
);
