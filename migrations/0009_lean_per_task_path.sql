-- complete_one (0007) with its hand-off claim inlined. It called
-- claim_on_servers for one task on the finished task's server, after a
-- statement of its own that read the server's room: two statements and a
-- nested set-returning plpgsql call per per-task completion. Measured alone
-- (pg_stat_statements, one slot): 150 + 30 us for those two, 113 us for
-- the one statement here. Same writes, same order, same cap rule: the
-- finished task's slot is taken unless the cap was lowered below what
-- runs there now (the finished task is still in the count, so `>= 0`).
-- The planner settings of complete_batch (0008) hold here too: every
-- lookup is a probe by index whatever the statistics.
-- The claim's rule (cap, one running operation per service, a service's
-- operations in order) is now written here and in claim_on_servers: a
-- later change of it must redefine both.
CREATE OR REPLACE FUNCTION complete_one(p_item jsonb, p_handoff integer, p_worker text, p_lease_secs double precision)
RETURNS TABLE (
    applied boolean, id uuid, tenant_id uuid, server_id uuid, service_id uuid, operation text,
    input jsonb, attempt integer, max_attempts integer, lease bigint,
    idempotency_key text, service_remote_id text
)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
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
    INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
    VALUES (v_tenant, i.event_kind, i.id, v_service, i.event_payload);

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
