-- Webhooks: tenants register endpoints; every event of theirs that an
-- endpoint's filter matches becomes a delivery, in the same transaction as
-- the event (a trigger on the outbox), so none is lost or invented. Workers
-- deliver them (never a request handler), at least once, in order per
-- endpoint and service, signed as Standard Webhooks specifies.

CREATE TABLE webhook_endpoints (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url             text NOT NULL,
    description     text NOT NULL DEFAULT '',
    -- Empty: every event; otherwise kinds (`service.updated`) or families
    -- (`task.*`).
    event_types     text[] NOT NULL DEFAULT '{}',
    -- The `whsec_` signing secret, sealed with the master key like secrets
    -- (XChaCha20-Poly1305; the endpoint's id is in the associated data).
    key_id          text NOT NULL,
    secret_nonce    bytea NOT NULL,
    secret_sealed   bytea NOT NULL,
    -- After a rotation the previous secret also signs until `previous_until`.
    previous_nonce  bytea,
    previous_sealed bytea,
    previous_until  timestamptz,
    enabled         boolean NOT NULL DEFAULT true,
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at, id);

-- One message for one endpoint. `order_key` is the event's service (or the
-- nil uuid): deliveries of one (endpoint, order_key) go out one at a time
-- in the events' (tx, id) order, the order event streams use.
CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL,
    event_id        bigint NOT NULL,
    event_tx        bigint NOT NULL,
    order_key       uuid NOT NULL,
    -- pending → delivering (leased by a worker) → succeeded, or back to
    -- pending with a backoff, or failed once the schedule is spent.
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivering', 'succeeded', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX webhook_deliveries_open ON webhook_deliveries (endpoint_id, order_key, event_tx, event_id)
    WHERE state IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

-- Every try of a delivery: what the endpoint answered, how fast.
CREATE TABLE webhook_attempts (
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    status       integer,
    latency_ms   integer NOT NULL,
    response     text,
    error        text,
    PRIMARY KEY (delivery_id, attempt)
);

-- Fan-out: the outbox rows of one statement, matched against their
-- tenants' endpoints. A disabled endpoint keeps collecting (the claim skips
-- it): re-enabled, it gets everything since, in order; deleting it drops
-- its backlog.
CREATE FUNCTION panel1_webhook_fanout() RETURNS trigger
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
    RETURN NULL;
END $$;

CREATE TRIGGER events_webhook_fanout AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION panel1_webhook_fanout();

-- Lease up to `p_limit` deliveries that may go now: the first open one of
-- each (endpoint, order_key) — so one waiting for a retry holds back the
-- ones after it — in a group with nothing in flight (a redelivery of an
-- older event may sort before one being sent), whose event no running
-- transaction can still precede (tx below the snapshot's xmin), due, or
-- leased by a worker whose lease ran out. Counts the attempt.
CREATE FUNCTION panel1_claim_webhook_deliveries(p_limit integer, p_lease_secs double precision)
RETURNS TABLE (id bigint, endpoint_id uuid, event_id bigint, attempt integer)
LANGUAGE sql AS $$
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
$$;

-- Record one attempt and settle the delivery: `p_retry_at` NULL after a
-- success; a time to try again; or, with `p_give_up`, the delivery fails,
-- its endpoint is disabled and an event says so. Only the worker holding
-- the lease (this attempt) may settle it.
CREATE FUNCTION panel1_settle_webhook_delivery(
    p_id         bigint,
    p_attempt    integer,
    p_ok         boolean,
    p_status     integer,
    p_latency_ms integer,
    p_response   text,
    p_error      text,
    p_retry_at   timestamptz,
    p_give_up    boolean
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    SELECT * INTO d FROM webhook_deliveries
     WHERE webhook_deliveries.id = p_id AND state = 'delivering' AND attempts = p_attempt
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO webhook_attempts (delivery_id, attempt, status, latency_ms, response, error)
    VALUES (p_id, p_attempt, p_status, p_latency_ms, p_response, p_error)
    ON CONFLICT (delivery_id, attempt) DO NOTHING;
    IF p_ok THEN
        UPDATE webhook_deliveries SET state = 'succeeded', lease_until = NULL, finished_at = now(),
               last_status = p_status, last_error = NULL
         WHERE webhook_deliveries.id = p_id;
    ELSIF p_give_up THEN
        UPDATE webhook_deliveries SET state = 'failed', lease_until = NULL, finished_at = now(),
               last_status = p_status, last_error = p_error
         WHERE webhook_deliveries.id = p_id;
        UPDATE webhook_endpoints
           SET enabled = false, updated_at = now(),
               disabled_reason = format('delivery %s failed %s times; last: %s', p_id, p_attempt,
                                        coalesce(p_error, 'HTTP ' || p_status))
         WHERE webhook_endpoints.id = d.endpoint_id AND enabled;
        IF FOUND THEN
            INSERT INTO events (tenant_id, kind, payload)
            VALUES (d.tenant_id, 'webhook.endpoint_disabled',
                    jsonb_build_object('endpoint_id', d.endpoint_id, 'delivery_id', p_id,
                                       'attempts', p_attempt, 'last_status', p_status,
                                       'last_error', p_error));
        END IF;
    ELSE
        UPDATE webhook_deliveries SET state = 'pending', lease_until = NULL,
               next_attempt_at = p_retry_at, last_status = p_status, last_error = p_error
         WHERE webhook_deliveries.id = p_id;
    END IF;
    RETURN true;
END $$;
