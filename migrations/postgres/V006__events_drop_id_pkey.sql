-- events.id: drop the primary-key index.
--
-- Nothing looks an event up by id: reads go by time (events_time_idx on
-- (time, id), which also orders pages) or by address (events_ip_idx), and
-- retention deletes by time. The unique index on id was a third B-tree that
-- every ingested event paid for (about 8 % of the COPY into events; see
-- docs/benchmarks.md "Server ingest"). Ids stay unique: they come from the
-- bigserial sequence and are never written by the application.
ALTER TABLE events DROP CONSTRAINT events_pkey;
