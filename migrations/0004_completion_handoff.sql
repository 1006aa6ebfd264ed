-- Completions in one round trip, slot hand-off, fewer index writes per task.

-- The rescuer finds expired leases through tasks_running_by_server (the
-- running set is small: bounded by the servers' caps), so lease_expires_at
-- is in no index and a heartbeat is a HOT update.
DROP INDEX tasks_leases;

-- Tasks without a service (test-connection, info) take no entry in the
-- per-service indexes (NULLs never conflicted, and the claim only looks up
-- tasks of a service).
DROP INDEX tasks_one_running_per_service;
CREATE UNIQUE INDEX tasks_one_running_per_service ON tasks (service_id)
    WHERE state = 'running' AND service_id IS NOT NULL;
DROP INDEX tasks_pending_by_service;
CREATE INDEX tasks_pending_by_service ON tasks (service_id, created_at, id)
    WHERE state IN ('scheduled', 'available', 'retryable') AND service_id IS NOT NULL;

-- A NOTIFY serializes its transaction's commit (WAL flush included) with
-- every other notifying transaction in the cluster. Completions therefore
-- defer the event streams' wake-up (the worker sends one after its commits,
-- coalesced); every other writer of events still notifies at commit.
CREATE OR REPLACE FUNCTION panel1_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('panel1.defer_events_notify', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('panel1_events', '');
    END IF;
    RETURN NULL;
END $$;

-- Claim up to p_room(i) due tasks on server p_servers(i), p_limit in all:
-- in priority/run_at order, skipping any task whose service has a running
-- task or an older pending one (a service's operations run one at a time,
-- in order). The caller has made sure the servers have that room.
CREATE FUNCTION claim_on_servers(
    p_servers uuid[], p_room integer[], p_limit integer, p_worker text, p_lease_secs double precision
)
RETURNS TABLE (
    id uuid, tenant_id uuid, server_id uuid, service_id uuid, operation text,
    input jsonb, attempt integer, max_attempts integer, lease bigint,
    idempotency_key text, service_remote_id text
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH room AS (
        SELECT r.id, r.room FROM unnest(p_servers, p_room) AS r(id, room)
    ),
    picked AS (
        SELECT p.id
        FROM room r
        CROSS JOIN LATERAL (
            SELECT t.id
            FROM tasks t
            WHERE t.server_id = r.id
              AND t.state = 'available'
              AND t.run_at <= now()
              AND (t.service_id IS NULL OR NOT COALESCE((
                   SELECT true FROM tasks o
                   WHERE o.service_id = t.service_id
                     AND o.id <> t.id
                     AND (o.state = 'running'
                          OR (o.state IN ('scheduled', 'available', 'retryable')
                              AND (o.created_at, o.id) < (t.created_at, t.id)))
                   LIMIT 1), false))
            ORDER BY t.priority DESC, t.run_at, t.id
            LIMIT GREATEST(LEAST(r.room, p_limit), 0)
            FOR UPDATE SKIP LOCKED
        ) p
        LIMIT p_limit
    ),
    claimed AS (
        UPDATE tasks t
        SET state = 'running', attempt = t.attempt + 1, lease = t.lease + 1, leased_by = p_worker,
            lease_expires_at = now() + make_interval(secs => p_lease_secs), updated_at = now()
        -- By primary key: a join with `picked` (estimated at thousands of rows
        -- by the generic plan, whatever the limit) hashed all of tasks.
        WHERE t.id = ANY (ARRAY(SELECT picked.id FROM picked))
        RETURNING t.id, t.tenant_id, t.server_id, t.service_id, t.operation, t.input, t.attempt,
                  t.max_attempts, t.lease, t.idempotency_key
    )
    -- The service's remote id as known now (an operation enqueued before
    -- provision finished learns it here).
    SELECT c.id, c.tenant_id, c.server_id, c.service_id, c.operation, c.input, c.attempt,
           c.max_attempts, c.lease, c.idempotency_key,
           (SELECT sv.remote_id FROM services sv WHERE sv.id = c.service_id)
    FROM claimed c;
END
$$;

-- claim_tasks (0003) with its picking moved to claim_on_servers. Servers are
-- locked FOR NO KEY UPDATE:
-- exclusive among claimers as before, but no longer blocking the FOR KEY
-- SHARE that foreign keys take (an enqueue waited for every claim on its
-- server to commit).
CREATE OR REPLACE FUNCTION claim_tasks(p_limit integer, p_worker text, p_lease_secs double precision)
RETURNS TABLE (
    id uuid, tenant_id uuid, server_id uuid, service_id uuid, operation text,
    input jsonb, attempt integer, max_attempts integer, lease bigint,
    idempotency_key text, service_remote_id text
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    locked uuid[];
    rooms integer[];
    timeout text := current_setting('lock_timeout');
BEGIN
    SELECT array_agg(l.id) INTO locked FROM (
        SELECT s.id FROM servers s
        WHERE (SELECT true FROM tasks t WHERE t.server_id = s.id AND t.state = 'available'
               ORDER BY t.priority DESC, t.run_at, t.id LIMIT 1)
          AND s.max_concurrency > (SELECT count(*) FROM tasks r WHERE r.server_id = s.id AND r.state = 'running')
        ORDER BY s.id
        LIMIT p_limit
        FOR NO KEY UPDATE OF s SKIP LOCKED
    ) l;
    IF locked IS NULL THEN
        BEGIN
            PERFORM set_config('lock_timeout', '20ms', true);
            SELECT array_agg(l.id) INTO locked FROM (
                SELECT s.id FROM servers s
                WHERE (SELECT true FROM tasks t WHERE t.server_id = s.id AND t.state = 'available'
                       ORDER BY t.priority DESC, t.run_at, t.id LIMIT 1)
                  AND s.max_concurrency > (SELECT count(*) FROM tasks r WHERE r.server_id = s.id AND r.state = 'running')
                ORDER BY s.id
                LIMIT 1
                FOR NO KEY UPDATE OF s
            ) l;
        EXCEPTION WHEN lock_not_available THEN
            RETURN;
        END;
        PERFORM set_config('lock_timeout', timeout, true);
        IF locked IS NULL THEN
            RETURN;
        END IF;
    END IF;
    -- Counted with this statement's snapshot, taken after the locks.
    SELECT array_agg(s.max_concurrency - (SELECT count(*) FROM tasks r WHERE r.server_id = s.id AND r.state = 'running')::integer ORDER BY ord)
      INTO rooms
      FROM unnest(locked) WITH ORDINALITY AS l(id, ord) JOIN servers s ON s.id = l.id;
    RETURN QUERY SELECT * FROM claim_on_servers(locked, rooms, p_limit, p_worker, p_lease_secs);
END
$$;

-- Complete attempts under their leases in one round trip: the task moves,
-- the attempt is recorded, the service moves and the events are written, in
-- the caller's transaction (one commit). Rows whose lease no longer matches
-- are skipped and counted as stale. Returns `applied` rows (the ids that
-- were written), then, if p_handoff > 0, up to that many newly claimed tasks
-- on the servers whose tasks just finished, at most one per finished task:
-- a hand-off never adds to a server's running count, so the cap holds
-- without the server lock that fresh claims take (claim_tasks).
CREATE FUNCTION complete_tasks(p_items jsonb, p_handoff integer, p_worker text, p_lease_secs double precision)
RETURNS TABLE (
    applied boolean, id uuid, tenant_id uuid, server_id uuid, service_id uuid, operation text,
    input jsonb, attempt integer, max_attempts integer, lease bigint,
    idempotency_key text, service_remote_id text
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    ids uuid[] := ARRAY(SELECT (e->>'id')::uuid FROM jsonb_array_elements(p_items) e);
    done_ids uuid[];
    done_servers uuid[];
    freed_servers uuid[];
    freed_room integer[];
    n_done integer;
BEGIN
    PERFORM set_config('panel1.defer_events_notify', 'on', true);
    -- One JSON array of items: unnest() of 25 arrays builds a tuplestore per
    -- array (~0.5 ms a call, whatever the batch size).
    WITH i AS (
        SELECT * FROM jsonb_to_recordset(p_items)
            AS i(id uuid, lease bigint, state task_state, run_at timestamptz, result jsonb,
                 error jsonb, event_kind text, event_payload jsonb, worker text,
                 started_at timestamptz, outcome text, error_kind text, error_message text,
                 fuel bigint, wall_us bigint, peak_memory bigint, http_requests integer,
                 http_denied integer, log jsonb, http jsonb, service_touch boolean,
                 service_state service_state, remote_id text, plan text, reason text)
    ),
    done AS (
        UPDATE tasks t
        SET state = i.state, run_at = COALESCE(i.run_at, t.run_at), result = i.result,
            last_error = i.error, lease_expires_at = NULL, leased_by = NULL, updated_at = now(),
            finished_at = CASE WHEN i.state IN ('succeeded', 'failed', 'cancelled') THEN now() END
        FROM i
        -- `= ANY (ids)`: by primary key. A join with `i` alone (estimated at
        -- 100 rows by a generic plan) hashed every running task.
        WHERE t.id = ANY (ids) AND t.id = i.id AND t.lease = i.lease AND t.state = 'running'
        RETURNING t.id, t.tenant_id, t.server_id, t.service_id, t.attempt, t.lease
    ),
    attempts AS (
        INSERT INTO task_attempts (task_id, attempt, lease, worker, started_at, outcome, error_kind,
                                   error_message, fuel, wall_us, peak_memory, http_requests,
                                   http_denied, log, http)
        SELECT d.id, d.attempt, d.lease, i.worker, i.started_at, i.outcome, i.error_kind,
               i.error_message, i.fuel, i.wall_us, i.peak_memory, i.http_requests, i.http_denied,
               i.log, i.http
        FROM done d JOIN i ON i.id = d.id
        ON CONFLICT (task_id, attempt) DO NOTHING
    ),
    moved AS (
        UPDATE services s
        SET state = COALESCE(i.service_state, s.state), remote_id = COALESCE(i.remote_id, s.remote_id),
            plan = COALESCE(i.plan, s.plan), failure_reason = i.reason, updated_at = now()
        FROM done d JOIN i ON i.id = d.id
        WHERE i.service_touch AND s.id = d.service_id
        RETURNING d.tenant_id, d.id AS task_id, s.id AS service_id, i.service_state, i.reason
    ),
    written AS (
        -- The service's event first, then the task's (as a reader that stops
        -- at the task's final event has seen the service move).
        INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
        SELECT m.tenant_id, 'service.updated', m.task_id, m.service_id,
               jsonb_build_object('state', m.service_state, 'failure_reason', m.reason)
        FROM moved m
        UNION ALL
        SELECT d.tenant_id, i.event_kind, d.id, d.service_id, i.event_payload
        FROM done d JOIN i ON i.id = d.id
    )
    SELECT array_agg(d.id), array_agg(d.server_id) INTO done_ids, done_servers FROM done d;

    n_done := coalesce(cardinality(done_ids), 0);
    IF n_done < jsonb_array_length(p_items) THEN
        INSERT INTO queue_counters (name, value) VALUES ('stale_completions', jsonb_array_length(p_items) - n_done)
        ON CONFLICT (name) DO UPDATE SET value = queue_counters.value + EXCLUDED.value;
    END IF;
    RETURN QUERY SELECT true, d, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::jsonb,
                        NULL::integer, NULL::integer, NULL::bigint, NULL::text, NULL::text
                 FROM unnest(done_ids) AS d;

    IF p_handoff > 0 AND n_done > 0 THEN
        -- One slot per finished task on its server; fewer if the cap was
        -- lowered below what runs there now.
        SELECT array_agg(f.server_id), array_agg(LEAST(f.n, s.max_concurrency - (
                   SELECT count(*) FROM tasks r WHERE r.server_id = f.server_id AND r.state = 'running'))::integer)
          INTO freed_servers, freed_room
          FROM (SELECT x AS server_id, count(*) AS n FROM unnest(done_servers) AS x GROUP BY x) f
          JOIN servers s ON s.id = f.server_id;
        RETURN QUERY SELECT false, c.* FROM claim_on_servers(freed_servers, freed_room, p_handoff, p_worker, p_lease_secs) c;
    END IF;
END
$$;
