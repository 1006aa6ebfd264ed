-- Webhook wake-ups of their own (issue 25). The delivery loop used to wake
-- on every event NOTIFY (`panel1_events`) and run a claim, whether or not
-- the event had fanned out to any endpoint: one claim statement per
-- completion commit, nearly always empty, in every worker. Now a wake-up
-- goes out on `panel1_webhooks` only when deliveries were written:
--
-- - here, from the fan-out trigger, in the transaction that wrote them
--   (delivered at its commit), unless the transaction defers its
--   notifications (completions do, see `panel1.defer_events_notify`);
-- - for those deferred ones, from the statement the worker sends after its
--   completions committed (`wake_event_streams` in store/src/complete.rs),
--   when a pending delivery is due.
--
-- Retries, leases that lapsed and re-enabled endpoints are found by the
-- loop's poll, as before. The index below keeps that after-commit check one
-- index probe however many deliveries wait for a later retry.
CREATE OR REPLACE FUNCTION panel1_webhook_fanout() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (endpoint_id, tenant_id, event_id, event_tx, order_key)
    SELECT w.id, e.tenant_id, e.id, e.tx,
           coalesce(e.service_id, '00000000-0000-0000-0000-000000000000'::uuid)
      FROM new_events e
      JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id
     WHERE cardinality(w.event_types) = 0
        OR e.kind = ANY (w.event_types)
        OR split_part(e.kind, '.', 1) || '.*' = ANY (w.event_types);
    IF FOUND AND current_setting('panel1.defer_events_notify', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('panel1_webhooks', '');
    END IF;
    RETURN NULL;
END $$;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
