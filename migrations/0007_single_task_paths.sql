-- Lighter paths for one task at a time: a completion of one task as a few
-- simple statements, and a claim with one statement fewer.
--
-- complete_tasks (0006) serves batches: one statement of nine CTEs over a
-- jsonb recordset. For a single item most of its cost is starting that
-- statement's executor, on every completion. complete_one does the same
-- writes for one item as plain statements on primary keys, whose plans
-- plpgsql keeps per connection. Its item has the same fields as one element
-- of complete_tasks' argument, and its result the same shape.
CREATE FUNCTION complete_one(p_item jsonb, p_handoff integer, p_worker text, p_lease_secs double precision)
RETURNS TABLE (
    applied boolean, id uuid, tenant_id uuid, server_id uuid, service_id uuid, operation text,
    input jsonb, attempt integer, max_attempts integer, lease bigint,
    idempotency_key text, service_remote_id text
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    i record;
    v_server uuid;
    v_attempt integer;
    v_lease bigint;
    v_tenant uuid;
    v_service uuid;
    v_room integer;
    n_claimed integer;
BEGIN
    PERFORM set_config('panel1.defer_events_notify', 'on', true);
    SELECT * INTO i FROM jsonb_to_record(p_item)
        AS x(id uuid, lease bigint, state task_state, run_at timestamptz, result jsonb,
             error jsonb, event_kind text, event_payload jsonb, worker text,
             started_at timestamptz, outcome text, error_kind text, error_message text,
             fuel bigint, wall_us bigint, peak_memory bigint, http_requests integer,
             http_denied integer, log jsonb, http jsonb, service_touch boolean,
             service_state service_state, remote_id text, plan text, reason text);

    -- Under the lease, and only while running (`lease_expires_at IS NOT
    -- NULL`, as in 0006).
    IF i.state IN ('succeeded', 'failed', 'cancelled') THEN
        DELETE FROM task_queue q
        WHERE q.task_id = i.id AND q.lease = i.lease AND q.lease_expires_at IS NOT NULL
        RETURNING q.server_id, q.attempt, q.lease INTO v_server, v_attempt, v_lease;
    ELSIF i.state IS NOT NULL THEN
        UPDATE task_queue q
        SET state = i.state, run_at = COALESCE(i.run_at, q.run_at),
            lease_expires_at = NULL, leased_by = NULL, updated_at = now()
        WHERE q.task_id = i.id AND q.lease = i.lease AND q.lease_expires_at IS NOT NULL
        RETURNING q.server_id, q.attempt, q.lease INTO v_server, v_attempt, v_lease;
    END IF;
    -- Not found under this lease (or an item without a state, which
    -- complete_tasks skips too): stale.
    IF v_server IS NULL THEN
        INSERT INTO queue_counters (name, value) VALUES ('stale_completions', 1)
        ON CONFLICT (name) DO UPDATE SET value = queue_counters.value + 1;
        RETURN;
    END IF;

    UPDATE task_records t
    SET state = i.state, run_at = COALESCE(i.run_at, t.run_at), attempt = v_attempt, lease = v_lease,
        result = i.result, last_error = i.error, updated_at = now(),
        finished_at = CASE WHEN i.state IN ('succeeded', 'failed', 'cancelled') THEN now() END
    WHERE t.id = i.id
    RETURNING t.tenant_id, t.service_id INTO v_tenant, v_service;

    INSERT INTO task_attempts (task_id, attempt, lease, worker, started_at, outcome, error_kind,
                               error_message, fuel, wall_us, peak_memory, http_requests,
                               http_denied, log, http)
    VALUES (i.id, v_attempt, v_lease, i.worker, i.started_at, i.outcome, i.error_kind,
            i.error_message, i.fuel, i.wall_us, i.peak_memory, i.http_requests, i.http_denied,
            i.log, i.http)
    ON CONFLICT (task_id, attempt) DO NOTHING;

    -- The service's event first, then the task's (as in complete_tasks).
    IF i.service_touch AND v_service IS NOT NULL THEN
        UPDATE services s
        SET state = COALESCE(i.service_state, s.state), remote_id = COALESCE(i.remote_id, s.remote_id),
            plan = COALESCE(i.plan, s.plan), failure_reason = i.reason, updated_at = now()
        WHERE s.id = v_service;
        IF FOUND THEN
            INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
            VALUES (v_tenant, 'service.updated', i.id, v_service,
                    jsonb_build_object('state', i.service_state, 'failure_reason', i.reason));
        END IF;
    END IF;
    INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
    VALUES (v_tenant, i.event_kind, i.id, v_service, i.event_payload);

    RETURN QUERY SELECT true, i.id, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::jsonb,
                        NULL::integer, NULL::integer, NULL::bigint, NULL::text, NULL::text;

    n_claimed := 0;
    IF p_handoff > 0 THEN
        -- The finished task's slot, unless the cap was lowered below what
        -- runs there now (the finished task is still in the count).
        SELECT LEAST(1, s.max_concurrency - panel1_running(v_server) + 1) INTO v_room
          FROM servers s WHERE s.id = v_server;
        IF v_room > 0 THEN
            RETURN QUERY SELECT false, c.*
                FROM claim_on_servers(ARRAY[v_server], ARRAY[v_room], 1, p_worker, p_lease_secs) c;
            IF FOUND THEN
                n_claimed := 1;
            END IF;
        END IF;
    END IF;
    -- A hand-off that took the slot leaves the server's count as it was.
    IF n_claimed = 0 THEN
        PERFORM panel1_add_load(ARRAY[v_server], ARRAY[-1]);
    END IF;
END
$$;

-- claim_on_servers (0006): a server given no room (NULL) has its room read
-- here, with this statement's snapshot; callers that have locked the
-- servers pass NULL and save a statement.
CREATE OR REPLACE FUNCTION claim_on_servers(
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
        SELECT r.id, COALESCE(r.room, (SELECT s.max_concurrency - panel1_running(s.id)
                                       FROM servers s WHERE s.id = r.id)) AS room
        FROM unnest(p_servers, p_room) AS r(id, room)
    ),
    picked AS (
        SELECT p.task_id
        FROM room r
        CROSS JOIN LATERAL (
            SELECT q.task_id
            FROM task_queue q
            WHERE q.server_id = r.id
              AND q.state = 'available'
              AND q.run_at <= now()
              -- One operation per service at a time, in order.
              AND (q.service_id IS NULL OR NOT EXISTS (
                   SELECT 1 FROM task_queue o
                   WHERE o.service_id = q.service_id
                     AND o.task_id <> q.task_id
                     AND (o.state = 'running' OR (o.created_at, o.task_id) < (q.created_at, q.task_id))))
            ORDER BY q.priority DESC, q.run_at, q.task_id
            LIMIT GREATEST(LEAST(r.room, p_limit), 0)
            FOR UPDATE SKIP LOCKED
        ) p
        LIMIT p_limit
    ),
    claimed AS (
        UPDATE task_queue q
        SET state = 'running', attempt = q.attempt + 1, lease = q.lease + 1, leased_by = p_worker,
            lease_expires_at = now() + make_interval(secs => p_lease_secs), updated_at = now()
        -- By primary key (a generic plan's join with `picked` hashed the table).
        WHERE q.task_id = ANY (ARRAY(SELECT picked.task_id FROM picked))
        RETURNING q.task_id, q.attempt, q.max_attempts, q.lease
    )
    -- The service's remote id as known now (an operation enqueued before
    -- provision finished learns it here).
    SELECT c.task_id, t.tenant_id, t.server_id, t.service_id, t.operation, t.input, c.attempt,
           c.max_attempts, c.lease, t.idempotency_key,
           (SELECT sv.remote_id FROM services sv WHERE sv.id = t.service_id)
    FROM claimed c JOIN task_records t ON t.id = c.task_id;
END
$$;

-- claim_tasks (0006) without its own statement to read the rooms.
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
    timeout text := current_setting('lock_timeout');
BEGIN
    SELECT array_agg(l.id) INTO locked FROM (
        SELECT s.id FROM servers s
        WHERE (SELECT true FROM task_queue t WHERE t.server_id = s.id AND t.state = 'available'
               ORDER BY t.priority DESC, t.run_at, t.task_id LIMIT 1)
          AND s.max_concurrency > panel1_running(s.id)
        ORDER BY s.id
        LIMIT p_limit
        FOR NO KEY UPDATE OF s SKIP LOCKED
    ) l;
    IF locked IS NULL THEN
        -- Every such server is being claimed from right now: wait briefly
        -- for the first rather than come back empty (see 0003).
        BEGIN
            PERFORM set_config('lock_timeout', '20ms', true);
            SELECT array_agg(l.id) INTO locked FROM (
                SELECT s.id FROM servers s
                WHERE (SELECT true FROM task_queue t WHERE t.server_id = s.id AND t.state = 'available'
                       ORDER BY t.priority DESC, t.run_at, t.task_id LIMIT 1)
                  AND s.max_concurrency > panel1_running(s.id)
                ORDER BY s.id
                LIMIT 1
                FOR NO KEY UPDATE OF s
            ) l;
        -- A lock timeout that fires just as the lock is granted is raised
        -- as a plain cancel (57014, "user request"; seen in CI): both mean
        -- this claim comes back empty, and the caller claims again.
        EXCEPTION WHEN lock_not_available OR query_canceled THEN
            RETURN;
        END;
        PERFORM set_config('lock_timeout', timeout, true);
        IF locked IS NULL THEN
            RETURN;
        END IF;
    END IF;
    -- What was claimed counts on shard 0 before the locks are released.
    -- The rooms are read by claim_on_servers, with a snapshot taken after
    -- the locks.
    RETURN QUERY
    WITH c AS (
        SELECT * FROM claim_on_servers(locked, NULL, p_limit, p_worker, p_lease_secs)
    ),
    added AS (
        INSERT INTO server_load (server_id, shard, running)
        SELECT c.server_id, 0, count(*) FROM c GROUP BY c.server_id ORDER BY c.server_id
        ON CONFLICT (server_id, shard) DO UPDATE SET running = server_load.running + EXCLUDED.running
    )
    SELECT * FROM c;
END
$$;


-- Every lookup in the queue's functions is meant to be by index. plpgsql
-- keeps a statement's plan for the connection's life (until the next
-- ANALYZE of its tables), and a plan made while the queue was small is a
-- sequential scan (shown for a DELETE by task_id on a 20-row table): on a
-- quiet queue that then takes a burst, every claim and completion would
-- scan the whole queue until autovacuum analyzed it again. A later
-- CREATE OR REPLACE of these functions drops the setting: repeat it there.
ALTER FUNCTION complete_one(jsonb, integer, text, double precision) SET enable_seqscan = off;
ALTER FUNCTION complete_tasks(jsonb, integer, text, double precision) SET enable_seqscan = off;
ALTER FUNCTION claim_tasks(integer, text, double precision) SET enable_seqscan = off;
ALTER FUNCTION claim_on_servers(uuid[], integer[], integer, text, double precision) SET enable_seqscan = off;
