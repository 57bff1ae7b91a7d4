-- events.ip: a B-tree instead of the GiST (inet_ops) index of V001.
--
-- Every ingested event pays for this index, and GiST was the most expensive
-- part of an insert: inserting 200,000 events took 349 ms with no address
-- index, 525 ms with this B-tree and 1,126 ms with GiST (1.2 M rows already
-- present: 600-720 ms vs 1,370-1,480 ms); see docs/benchmarks.md.
--
-- A B-tree on inet orders by family, then address (all events.ip values
-- are host addresses), so a prefix is a range: PgStore::EventsForPrefix
-- queries ip BETWEEN host(p)::inet AND host(broadcast(p))::inet instead of
-- ip <<= p. IPv4 and IPv6 never mix (the family compares first).
DROP INDEX events_ip_idx;
CREATE INDEX events_ip_idx ON events (ip);
