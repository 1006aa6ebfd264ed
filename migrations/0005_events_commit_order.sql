-- Event streams read the outbox in an order no commit can slip behind.
--
-- Ids come from a sequence when a row is inserted, but transactions commit
-- in their own order: a stream that had read past id 101 never saw id 100
-- if 100's transaction committed later. Each event now carries the id of
-- the transaction that wrote it (`tx`), and streams read in (tx, id) order,
-- only events whose transaction is older than every transaction still
-- running (the snapshot's xmin): no event can still appear before those.
ALTER TABLE events ADD COLUMN tx bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
DROP INDEX events_tenant;
CREATE INDEX events_tenant ON events (tenant_id, tx, id);
