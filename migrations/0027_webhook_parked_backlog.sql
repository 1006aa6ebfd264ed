-- A disabled endpoint's backlog, parked out of the delivery paths.
--
-- A disabled endpoint keeps collecting deliveries (0013) so that, enabled
-- again, it gets everything since, in order. Those deliveries stayed
-- `pending`, in the indexes every claim and every after-commit check read:
--
-- - the claim finds each (endpoint, service) queue's head with DISTINCT ON
--   over all open deliveries: 200 000 waiting for one disabled endpoint
--   made every claim read 200 000 index entries (0.3 s);
-- - the check a worker makes after its completions commit
--   (`wake_event_streams`) found them due, so every completion of every
--   tenant woke every worker into that claim.
--
-- One tenant's dead endpoint slowed every tenant, more each day. Now its
-- open deliveries are `held`: still `pending` (that is what the API shows),
-- but outside the indexes the claim and the check use, so they cost nothing
-- until the endpoint is enabled again.
--
-- - Parking: the claim first parks the pending deliveries of disabled
--   endpoints. That covers every way an endpoint is disabled (by
--   the tenant, or by `panel1_settle_webhook_delivery` giving up), a
--   delivery the fan-out wrote while the endpoint was being disabled, and
--   one a retry put back. A disabled endpoint with nothing to park costs
--   one probe of the open index, so a quiet claim stays cheap.
-- - Unparking: enabling an endpoint (`update_endpoint`) unparks its
--   deliveries in the same transaction.
-- - The two never cross: the park locks the endpoint rows it parks for
--   (`FOR SHARE`), so an enabling UPDATE waits for it, and its unpark,
--   a later statement, then sees what was parked. A park that comes second
--   rechecks `NOT enabled` on the enabled row (READ COMMITTED's recheck of
--   a locked row) and parks nothing.

ALTER TABLE webhook_deliveries ADD COLUMN held boolean NOT NULL DEFAULT false;

UPDATE webhook_deliveries d SET held = true
  FROM webhook_endpoints w
 WHERE w.id = d.endpoint_id AND NOT w.enabled AND d.state = 'pending';

DROP INDEX webhook_deliveries_open;
CREATE INDEX webhook_deliveries_open ON webhook_deliveries (endpoint_id, order_key, event_tx, event_id)
    WHERE state IN ('pending', 'delivering') AND NOT held;
DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending' AND NOT held;
-- For the unpark, and nothing else: only parked rows are in it.
CREATE INDEX webhook_deliveries_held ON webhook_deliveries (endpoint_id) WHERE held;
CREATE INDEX webhook_endpoints_disabled ON webhook_endpoints (id) WHERE NOT enabled;

-- As in 0025, with the park first and parked deliveries left out.
CREATE OR REPLACE FUNCTION panel1_claim_webhook_deliveries(p_limit integer, p_lease_secs double precision)
RETURNS TABLE (id bigint, endpoint_id uuid, event_id bigint, attempt integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_endpoint uuid;
BEGIN
    -- Park what disabled endpoints have open. Each probe and the park go
    -- by the open index in its own order (ORDER BY ... LIMIT), so no plan
    -- walks the parked backlog; with nothing to park nothing is locked.
    FOR v_endpoint IN SELECT w.id FROM webhook_endpoints w WHERE NOT w.enabled LOOP
        CONTINUE WHEN NOT EXISTS (
            SELECT 1 FROM webhook_deliveries o
             WHERE o.endpoint_id = v_endpoint AND o.state IN ('pending', 'delivering') AND NOT o.held
               AND o.state = 'pending'
             ORDER BY o.endpoint_id, o.order_key, o.event_tx, o.event_id
             LIMIT 1);
        -- Still disabled once locked (an enabling UPDATE waits for this
        -- transaction, or this sees it and parks nothing).
        CONTINUE WHEN NOT EXISTS (
            SELECT 1 FROM webhook_endpoints w WHERE w.id = v_endpoint AND NOT w.enabled FOR SHARE);
        UPDATE webhook_deliveries d SET held = true
         WHERE d.id IN (
             SELECT o.id FROM webhook_deliveries o
              WHERE o.endpoint_id = v_endpoint AND o.state IN ('pending', 'delivering')
                AND NOT o.held AND o.state = 'pending'
              ORDER BY o.endpoint_id, o.order_key, o.event_tx, o.event_id)
           AND d.state = 'pending' AND NOT d.held;
    END LOOP;

    RETURN QUERY
    WITH heads AS (
        SELECT DISTINCT ON (d.endpoint_id, d.order_key)
               d.id, d.endpoint_id, d.order_key, d.state, d.next_attempt_at, d.lease_until, d.event_tx
          FROM webhook_deliveries d
         WHERE d.state IN ('pending', 'delivering') AND NOT d.held
         ORDER BY d.endpoint_id, d.order_key, d.event_tx, d.event_id, d.id
    ), ready AS (
        SELECT h.id
          FROM heads h
          JOIN webhook_endpoints w ON w.id = h.endpoint_id AND w.enabled
         WHERE h.event_tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
           AND ((h.state = 'pending' AND h.next_attempt_at <= now())
             OR (h.state = 'delivering' AND h.lease_until < now()))
           AND NOT EXISTS (
               SELECT 1 FROM webhook_deliveries x
                WHERE x.endpoint_id = h.endpoint_id AND x.order_key = h.order_key
                  AND x.state = 'delivering' AND NOT x.held AND x.lease_until >= now())
         ORDER BY h.next_attempt_at
         LIMIT p_limit
    ), locked AS (
        SELECT d.id FROM webhook_deliveries d
         WHERE d.id IN (SELECT ready.id FROM ready)
           FOR UPDATE SKIP LOCKED
    )
    UPDATE webhook_deliveries d
       SET state = 'delivering',
           lease_until = now() + make_interval(secs => p_lease_secs),
           attempts = d.attempts + 1
      FROM locked
     WHERE d.id = locked.id
       -- Checked again on the row as it is now: another worker may have
       -- leased or settled it (with a later retry) since this snapshot,
       -- or parked it.
       AND NOT d.held
       AND ((d.state = 'pending' AND d.next_attempt_at <= now())
         OR (d.state = 'delivering' AND d.lease_until < now()))
    RETURNING d.id, d.endpoint_id, d.event_id, d.attempts;
END
$$;
