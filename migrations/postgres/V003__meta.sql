-- Facts about this database that never change once created.
-- ban_list_epoch: the lineage of the ban list (Store::BanListEpoch). A random
-- non-zero 53-bit id: agents keep resuming from their revision while the
-- database is the same, and take a snapshot from a new or restored one.
CREATE TABLE meta (
  key   text PRIMARY KEY,
  value bigint NOT NULL
);
INSERT INTO meta (key, value)
VALUES ('ban_list_epoch', floor(random() * 9007199254740990)::bigint + 1);
