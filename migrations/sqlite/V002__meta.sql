-- Facts about this database that never change once created.
-- ban_list_epoch: the lineage of the ban list (Store::BanListEpoch). A random
-- non-zero 63-bit id: agents keep resuming from their revision while the
-- database is the same, and take a snapshot from a new or restored one.
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
INSERT INTO meta (key, value)
VALUES ('ban_list_epoch', (random() & 9223372036854775807) | 1);
