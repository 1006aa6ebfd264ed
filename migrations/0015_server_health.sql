-- Server health: every server is checked on its own schedule by a worker
-- running the adapter's `test-connection` (outside the task queue, so a
-- check still runs while the server's tasks are held). The outcome moves
-- the server between `unknown`, `healthy`, `degraded` and `down`; every
-- change is kept as history and written as an event (and so a webhook).
--
-- While a server is `down` its circuit breaker is open: the breaker holds
-- every slot of the server (a large count in `server_load` under shard -1),
-- so no claim path (claim_tasks, and the hand-offs of complete_batch and
-- complete_one) starts its tasks; they wait as they are, attempts
-- untouched, and start when the server recovers and the hold is released.

CREATE TABLE server_health (
    server_id            uuid PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    tenant_id            uuid NOT NULL,
    state                text NOT NULL DEFAULT 'unknown'
                         CHECK (state IN ('unknown', 'healthy', 'degraded', 'down')),
    reason               text,
    since                timestamptz NOT NULL DEFAULT now(),
    -- Failed checks in a row (0 after a success).
    failures             integer NOT NULL DEFAULT 0,
    last_checked_at      timestamptz,
    last_latency_ms      integer,
    last_error_kind      text,
    -- Settings: checked every `interval_secs` while healthy, every
    -- `recheck_secs` otherwise; `down` after `down_after` failures in a row
    -- that say the server cannot be reached (`transient`, `deadline`); any
    -- other failure (a refused credential, a permanent error) is `degraded`.
    enabled              boolean NOT NULL DEFAULT true,
    interval_secs        integer NOT NULL DEFAULT 60 CHECK (interval_secs BETWEEN 2 AND 86400),
    recheck_secs         integer NOT NULL DEFAULT 30 CHECK (recheck_secs BETWEEN 1 AND 86400),
    down_after           integer NOT NULL DEFAULT 3 CHECK (down_after BETWEEN 1 AND 100),
    -- A check succeeding slower than this is `degraded`.
    slow_ms              integer NOT NULL DEFAULT 10000 CHECK (slow_ms > 0),
    next_check_at        timestamptz NOT NULL DEFAULT now(),
    -- The check in flight: its worker's lease (another worker checks again
    -- once it lapses) and a token every settlement must match.
    checking_until       timestamptz,
    check_token          bigint NOT NULL DEFAULT 0
);
CREATE INDEX server_health_due ON server_health (next_check_at) WHERE enabled;

-- Every state change (the history the API shows).
CREATE TABLE server_health_transitions (
    id          bigserial PRIMARY KEY,
    server_id   uuid NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    tenant_id   uuid NOT NULL,
    from_state  text NOT NULL,
    to_state    text NOT NULL,
    reason      text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX server_health_transitions_server ON server_health_transitions (server_id, id);

-- Every server has a health row from its first moment. Its first check is
-- one interval later, unless someone asks sooner (test-connection, a
-- settings change): connecting a server sends it nothing unasked.
INSERT INTO server_health (server_id, tenant_id, next_check_at)
SELECT id, tenant_id, now() + interval '60 seconds' FROM servers;

CREATE FUNCTION panel1_server_health_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO server_health (server_id, tenant_id, next_check_at)
    VALUES (NEW.id, NEW.tenant_id, now() + interval '60 seconds');
    RETURN NULL;
END $$;
CREATE TRIGGER servers_health_row AFTER INSERT ON servers
    FOR EACH ROW EXECUTE FUNCTION panel1_server_health_row();

-- Lease up to `p_limit` due checks (each with a new token).
CREATE FUNCTION panel1_claim_health_checks(p_limit integer, p_lease_secs double precision)
RETURNS TABLE (server_id uuid, tenant_id uuid, token bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    UPDATE server_health h
    SET checking_until = now() + make_interval(secs => p_lease_secs),
        check_token = h.check_token + 1,
        -- Claimed again after the lease if this worker never settles.
        next_check_at = now() + make_interval(secs => p_lease_secs)
    WHERE h.server_id IN (
        SELECT d.server_id FROM server_health d
        WHERE d.enabled AND d.next_check_at <= now()
        ORDER BY d.next_check_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING h.server_id, h.tenant_id, h.check_token;
END $$;

-- The breaker's hold: more than any cap (servers.max_concurrency <= 256).
CREATE FUNCTION panel1_breaker_hold() RETURNS integer LANGUAGE sql IMMUTABLE
AS $$ SELECT 1000000 $$;

-- Settle a check: move the state, keep the transition, write the event,
-- open or close the breaker. `p_error_kind` is NULL for a success, else the
-- outcome's kind (`transient`, `deadline`, `auth-failed`, `permanent`,
-- `unsupported`, ...). False when the token no longer matches (a later
-- check or a settings change took over).
CREATE FUNCTION panel1_settle_health_check(p_server uuid, p_token bigint, p_error_kind text,
                                           p_message text, p_latency_ms integer)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    h server_health%ROWTYPE;
    next_state text;
    next_reason text;
    n_failures integer;
BEGIN
    SELECT * INTO h FROM server_health
    WHERE server_id = p_server AND check_token = p_token AND checking_until IS NOT NULL
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    IF p_error_kind IS NULL THEN
        n_failures := 0;
        IF p_latency_ms > h.slow_ms THEN
            next_state := 'degraded';
            next_reason := format('test-connection took %s ms (slow above %s ms)', p_latency_ms, h.slow_ms);
        ELSE
            next_state := 'healthy';
            next_reason := NULL;
        END IF;
    ELSIF p_error_kind = 'unsupported' THEN
        -- The adapter cannot tell: health stays unknown, the breaker closed.
        n_failures := 0;
        next_state := 'unknown';
        next_reason := 'the adapter does not support test-connection';
    ELSE
        n_failures := h.failures + 1;
        next_reason := format('%s: %s', p_error_kind, left(coalesce(p_message, ''), 500));
        -- Only an unreachable server is `down` (its tasks would only burn
        -- attempts); a refused credential or a broken configuration is
        -- `degraded` at once, and its tasks keep failing fast with that
        -- error, which is what the operator must see and fix.
        IF p_error_kind IN ('transient', 'deadline') AND n_failures >= h.down_after THEN
            next_state := 'down';
        ELSE
            next_state := 'degraded';
        END IF;
    END IF;

    UPDATE server_health
    SET state = next_state, reason = next_reason, failures = n_failures,
        since = CASE WHEN next_state <> h.state THEN now() ELSE h.since END,
        last_checked_at = now(), last_latency_ms = p_latency_ms, last_error_kind = p_error_kind,
        checking_until = NULL,
        next_check_at = now() + make_interval(secs => CASE WHEN next_state IN ('healthy', 'unknown')
                                                           THEN h.interval_secs
                                                           ELSE LEAST(h.recheck_secs, h.interval_secs) END)
    WHERE server_id = p_server;

    IF next_state <> h.state THEN
        INSERT INTO server_health_transitions (server_id, tenant_id, from_state, to_state, reason)
        VALUES (p_server, h.tenant_id, h.state, next_state, next_reason);
        INSERT INTO events (tenant_id, kind, payload)
        VALUES (h.tenant_id, 'server.health_changed',
                jsonb_build_object('server_id', p_server, 'from', h.state, 'to', next_state,
                                   'reason', next_reason, 'since', now()));
        IF next_state = 'down' THEN
            INSERT INTO server_load (server_id, shard, running)
            VALUES (p_server, -1, panel1_breaker_hold())
            ON CONFLICT (server_id, shard) DO UPDATE SET running = EXCLUDED.running;
        ELSIF h.state = 'down' THEN
            DELETE FROM server_load WHERE server_id = p_server AND shard = -1;
            -- The held tasks can start: wake the workers.
            PERFORM pg_notify('panel1_tasks', '');
        END IF;
    END IF;
    RETURN true;
END $$;

-- Health settings changed (or checking disabled): a disabled server is
-- `unknown` and its breaker closed, so its tasks are never held by a state
-- nobody checks any more.
CREATE FUNCTION panel1_set_health_settings(p_tenant uuid, p_server uuid, p_enabled boolean,
                                           p_interval integer, p_recheck integer,
                                           p_down_after integer, p_slow_ms integer)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    h server_health%ROWTYPE;
BEGIN
    SELECT * INTO h FROM server_health
    WHERE server_id = p_server AND tenant_id = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE server_health
    SET enabled = coalesce(p_enabled, enabled), interval_secs = coalesce(p_interval, interval_secs),
        recheck_secs = coalesce(p_recheck, recheck_secs), down_after = coalesce(p_down_after, down_after),
        slow_ms = coalesce(p_slow_ms, slow_ms),
        -- Check soon under the new settings; a check in flight settles stale.
        next_check_at = now(), checking_until = NULL, check_token = check_token + 1
    WHERE server_id = p_server;
    IF p_enabled IS FALSE AND h.state <> 'unknown' THEN
        UPDATE server_health SET state = 'unknown', reason = 'health checks disabled',
                                 since = now(), failures = 0
        WHERE server_id = p_server;
        INSERT INTO server_health_transitions (server_id, tenant_id, from_state, to_state, reason)
        VALUES (p_server, p_tenant, h.state, 'unknown', 'health checks disabled');
        INSERT INTO events (tenant_id, kind, payload)
        VALUES (p_tenant, 'server.health_changed',
                jsonb_build_object('server_id', p_server, 'from', h.state, 'to', 'unknown',
                                   'reason', 'health checks disabled', 'since', now()));
        IF h.state = 'down' THEN
            DELETE FROM server_load WHERE server_id = p_server AND shard = -1;
            PERFORM pg_notify('panel1_tasks', '');
        END IF;
    END IF;
    RETURN true;
END $$;

-- Is the server's breaker open? (Tasks read as waiting for their server.)
CREATE FUNCTION panel1_server_down(p_server uuid) RETURNS boolean LANGUAGE sql STABLE
AS $$ SELECT EXISTS (SELECT 1 FROM server_health WHERE server_id = p_server AND state = 'down') $$;
