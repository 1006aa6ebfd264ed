-- Hot-path plans (issue 25). A LANGUAGE sql function is planned again on
-- every call (Postgres 15 caches no plan for it); a PL/pgSQL one keeps its
-- statements' plans for the connection's life. The webhook loop claims
-- deliveries after every event wake-up, and planning this statement cost
-- ~0.9 ms each time (0.1 ms to run on an empty outbox): on two cores that
-- was CPU taken from the task path it was woken by. Same statement, same
-- result; only the language changes.
CREATE OR REPLACE FUNCTION panel1_claim_webhook_deliveries(p_limit integer, p_lease_secs double precision)
RETURNS TABLE (id bigint, endpoint_id uuid, event_id bigint, attempt integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH heads AS (
        SELECT DISTINCT ON (d.endpoint_id, d.order_key)
               d.id, d.endpoint_id, d.order_key, d.state, d.next_attempt_at, d.lease_until, d.event_tx
          FROM webhook_deliveries d
         WHERE d.state IN ('pending', 'delivering')
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
                  AND x.state = 'delivering' AND x.lease_until >= now())
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
       -- leased or settled it (with a later retry) since this snapshot.
       AND ((d.state = 'pending' AND d.next_attempt_at <= now())
         OR (d.state = 'delivering' AND d.lease_until < now()))
    RETURNING d.id, d.endpoint_id, d.event_id, d.attempts;
END
$$;
