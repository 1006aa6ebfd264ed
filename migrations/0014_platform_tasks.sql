-- Platform tasks: work Panel1 schedules for itself through the queue
-- (usage collection, service sync pages), marked by an idempotency key in
-- the reserved `panel1:` namespace (runtime/store/src/platform.rs). They
-- run under the same caps, leases, retries and circuit breaker as any task,
-- but they are bookkeeping, not something a tenant asked for: their
-- completion writes no task event (thousands an hour would flood event
-- streams and webhooks); what they learn is written in the same
-- transaction by the store (usage samples, drift) and raises its own
-- events where something happened.
--
-- The two completion functions are re-created as in 0008/0009 with one
-- change each: an item without an event kind writes no task event.

CREATE OR REPLACE FUNCTION public.complete_batch(p_id uuid[], p_lease bigint[], p_state text[], p_run_at timestamp with time zone[], p_result jsonb[], p_error jsonb[], p_event_kind text[], p_event_payload jsonb[], p_worker text[], p_started_at timestamp with time zone[], p_outcome text[], p_error_kind text[], p_error_message text[], p_fuel bigint[], p_wall_us bigint[], p_peak_memory bigint[], p_http_requests integer[], p_http_denied integer[], p_log jsonb[], p_http jsonb[], p_service_touch boolean[], p_service_state text[], p_remote_id text[], p_plan text[], p_reason text[], p_handoff integer, p_claimer text, p_lease_secs double precision) RETURNS TABLE(applied boolean, id uuid, tenant_id uuid, server_id uuid, service_id uuid, operation text, input jsonb, attempt integer, max_attempts integer, lease bigint, idempotency_key text, service_remote_id text)
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    SET enable_hashjoin TO 'off'
    SET enable_mergejoin TO 'off'
    AS $$
#variable_conflict use_column
DECLARE
    done_ids uuid[];
    done_servers uuid[];
    retry_ids uuid[];
    retry_states task_state[];
    retry_run_at timestamptz[];
    freed_servers uuid[];
    freed_room integer[];
    n_done integer;
    n_items integer := coalesce(cardinality(p_id), 0);
BEGIN
    PERFORM set_config('panel1.defer_events_notify', 'on', true);
    WITH i AS (
        SELECT u.id, u.lease, u.state::task_state AS state, u.run_at, u.result, u.error,
               u.event_kind, u.event_payload, u.worker, u.started_at, u.outcome, u.error_kind,
               u.error_message, u.fuel, u.wall_us, u.peak_memory, u.http_requests, u.http_denied,
               u.log, u.http, u.service_touch, u.service_state::service_state AS service_state,
               u.remote_id, u.plan, u.reason
        FROM unnest(p_id, p_lease, p_state, p_run_at, p_result, p_error, p_event_kind,
                    p_event_payload, p_worker, p_started_at, p_outcome, p_error_kind,
                    p_error_message, p_fuel, p_wall_us, p_peak_memory, p_http_requests,
                    p_http_denied, p_log, p_http, p_service_touch, p_service_state, p_remote_id,
                    p_plan, p_reason)
            AS u(id, lease, state, run_at, result, error, event_kind, event_payload, worker,
                 started_at, outcome, error_kind, error_message, fuel, wall_us, peak_memory,
                 http_requests, http_denied, log, http, service_touch, service_state, remote_id,
                 plan, reason)
    ),
    -- Each item's queue row, under its lease and only while running
    -- ("running" said as `lease_expires_at IS NOT NULL`, as in 0006),
    -- locked until the commit. A lateral subquery is probed once per item
    -- whatever the statistics say. An item without a state is counted
    -- stale, as in complete_tasks.
    held AS (
        SELECT i.*, x.server_id, x.attempt
        FROM i CROSS JOIN LATERAL (
            SELECT q.server_id, q.attempt
            FROM task_queue q
            WHERE q.task_id = i.id AND q.lease = i.lease AND q.lease_expires_at IS NOT NULL
            FOR UPDATE
        ) x
        WHERE i.state IS NOT NULL
    ),
    -- By primary key from an array (as claim_on_servers' update), so by
    -- the index whatever the plan: the rows are held, no lease to check
    -- again. (Not by the held rows' ctid: a row a heartbeat updated after
    -- this statement's snapshot is locked in its new version, which a tid
    -- scan under that snapshot does not see.)
    finished AS (
        DELETE FROM task_queue q
        WHERE q.task_id = ANY (ARRAY(
            SELECT h.id FROM held h WHERE h.state IN ('succeeded', 'failed', 'cancelled')))
    ),
    done AS (
        UPDATE task_records t
        SET state = e.state, run_at = COALESCE(e.run_at, t.run_at), attempt = e.attempt,
            lease = e.lease, result = e.result, last_error = e.error, updated_at = now(),
            finished_at = CASE WHEN e.state IN ('succeeded', 'failed', 'cancelled') THEN now() END
        FROM held e
        WHERE t.id = e.id
        RETURNING t.tenant_id, t.service_id, e.*
    ),
    attempts AS (
        INSERT INTO task_attempts (task_id, attempt, lease, worker, started_at, outcome, error_kind,
                                   error_message, fuel, wall_us, peak_memory, http_requests,
                                   http_denied, log, http)
        SELECT d.id, d.attempt, d.lease, d.worker, d.started_at, d.outcome, d.error_kind,
               d.error_message, d.fuel, d.wall_us, d.peak_memory, d.http_requests, d.http_denied,
               d.log, d.http
        FROM done d
        ON CONFLICT (task_id, attempt) DO NOTHING
    ),
    moved AS (
        UPDATE services s
        SET state = COALESCE(d.service_state, s.state), remote_id = COALESCE(d.remote_id, s.remote_id),
            plan = COALESCE(d.plan, s.plan), failure_reason = d.reason, updated_at = now()
        FROM done d
        WHERE d.service_touch AND s.id = d.service_id
        RETURNING d.tenant_id, d.id AS task_id, s.id AS service_id, d.service_state, d.reason
    ),
    written AS (
        -- The service's event first, then the task's (as a reader that stops
        -- at the task's final event has seen the service move).
        INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
        SELECT m.tenant_id, 'service.updated', m.task_id, m.service_id,
               jsonb_build_object('state', m.service_state, 'failure_reason', m.reason)
        FROM moved m
        UNION ALL
        SELECT d.tenant_id, d.event_kind, d.id, d.service_id, d.event_payload
        FROM done d
        -- Platform tasks (usage, sync pages) write no task event (0014).
        WHERE d.event_kind IS NOT NULL
    )
    SELECT array_agg(d.id), array_agg(d.server_id),
           array_agg(d.id) FILTER (WHERE d.state NOT IN ('succeeded', 'failed', 'cancelled')),
           array_agg(d.state) FILTER (WHERE d.state NOT IN ('succeeded', 'failed', 'cancelled')),
           array_agg(d.run_at) FILTER (WHERE d.state NOT IN ('succeeded', 'failed', 'cancelled'))
      INTO done_ids, done_servers, retry_ids, retry_states, retry_run_at
      FROM done d;

    -- Retries (the rare case) wait again one by one, by primary key: a
    -- join of the items with the queue is what a kept plan gets wrong. Their
    -- rows are held since the statement above.
    FOR k IN 1 .. coalesce(cardinality(retry_ids), 0) LOOP
        UPDATE task_queue q
        SET state = retry_states[k], run_at = COALESCE(retry_run_at[k], q.run_at),
            lease_expires_at = NULL, leased_by = NULL, updated_at = now()
        WHERE q.task_id = retry_ids[k];
    END LOOP;

    n_done := coalesce(cardinality(done_ids), 0);
    IF n_done < n_items THEN
        INSERT INTO queue_counters (name, value) VALUES ('stale_completions', n_items - n_done)
        ON CONFLICT (name) DO UPDATE SET value = queue_counters.value + EXCLUDED.value;
    END IF;
    RETURN QUERY SELECT true, d, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::jsonb,
                        NULL::integer, NULL::integer, NULL::bigint, NULL::text, NULL::text
                 FROM unnest(done_ids) AS d;

    IF n_done = 0 THEN
        RETURN;
    END IF;
    IF p_handoff > 0 THEN
        -- As in complete_tasks (0006): one slot per finished task on its
        -- server, fewer if the cap was lowered below what runs there now
        -- (the finished tasks are still in the count here).
        SELECT array_agg(f.server_id),
               array_agg(LEAST(f.n, s.max_concurrency - panel1_running(f.server_id) + f.n))
          INTO freed_servers, freed_room
          FROM (SELECT x AS server_id, count(*)::integer AS n FROM unnest(done_servers) AS x GROUP BY x) f
          JOIN servers s ON s.id = f.server_id;
        RETURN QUERY
        WITH c AS (
            SELECT * FROM claim_on_servers(freed_servers, freed_room, p_handoff, p_claimer, p_lease_secs)
        ),
        deltas AS (
            SELECT x AS server_id, -1 AS delta FROM unnest(done_servers) AS x
            UNION ALL
            SELECT c.server_id, 1 FROM c
        ),
        added AS (
            INSERT INTO server_load (server_id, shard, running)
            SELECT d.server_id, panel1_load_shard(), sum(d.delta) FROM deltas d
            GROUP BY d.server_id HAVING sum(d.delta) <> 0
            ORDER BY d.server_id
            ON CONFLICT (server_id, shard) DO UPDATE SET running = server_load.running + EXCLUDED.running
        )
        SELECT false, c.* FROM c;
    ELSE
        PERFORM panel1_add_load(done_servers, array_fill(-1, ARRAY[n_done]));
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION public.complete_one(p_item jsonb, p_handoff integer, p_worker text, p_lease_secs double precision) RETURNS TABLE(applied boolean, id uuid, tenant_id uuid, server_id uuid, service_id uuid, operation text, input jsonb, attempt integer, max_attempts integer, lease bigint, idempotency_key text, service_remote_id text)
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    SET enable_hashjoin TO 'off'
    SET enable_mergejoin TO 'off'
    AS $$
#variable_conflict use_column
DECLARE
    i record;
    v_server uuid;
    v_attempt integer;
    v_lease bigint;
    v_tenant uuid;
    v_service uuid;
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
    -- Platform tasks (usage, sync pages) write no task event (0014).
    IF i.event_kind IS NOT NULL THEN
        INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
        VALUES (v_tenant, i.event_kind, i.id, v_service, i.event_payload);
    END IF;

    RETURN QUERY SELECT true, i.id, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::jsonb,
                        NULL::integer, NULL::integer, NULL::bigint, NULL::text, NULL::text;

    n_claimed := 0;
    IF p_handoff > 0 THEN
        -- claim_on_servers for this one server and one task, inlined: the
        -- finished task's slot, unless the cap was lowered below what runs
        -- there now (the finished task is still in the count).
        RETURN QUERY
        WITH picked AS (
            SELECT q.task_id
            FROM task_queue q
            WHERE q.server_id = v_server
              AND q.state = 'available'
              AND q.run_at <= now()
              AND (SELECT s.max_concurrency - panel1_running(s.id) FROM servers s WHERE s.id = v_server) >= 0
              -- One operation per service at a time, in order.
              AND (q.service_id IS NULL OR NOT EXISTS (
                   SELECT 1 FROM task_queue o
                   WHERE o.service_id = q.service_id
                     AND o.task_id <> q.task_id
                     AND (o.state = 'running' OR (o.created_at, o.task_id) < (q.created_at, q.task_id))))
            ORDER BY q.priority DESC, q.run_at, q.task_id
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        ),
        claimed AS (
            UPDATE task_queue q
            SET state = 'running', attempt = q.attempt + 1, lease = q.lease + 1, leased_by = p_worker,
                lease_expires_at = now() + make_interval(secs => p_lease_secs), updated_at = now()
            WHERE q.task_id = (SELECT picked.task_id FROM picked)
            RETURNING q.task_id, q.attempt, q.max_attempts, q.lease
        )
        SELECT false, c.task_id, t.tenant_id, t.server_id, t.service_id, t.operation, t.input,
               c.attempt, c.max_attempts, c.lease, t.idempotency_key,
               (SELECT sv.remote_id FROM services sv WHERE sv.id = t.service_id)
        FROM claimed c JOIN task_records t ON t.id = c.task_id;
        GET DIAGNOSTICS n_claimed = ROW_COUNT;
    END IF;
    -- A hand-off that took the slot leaves the server's count as it was.
    IF n_claimed = 0 THEN
        PERFORM panel1_add_load(ARRAY[v_server], ARRAY[-1]);
    END IF;
END
$$;
