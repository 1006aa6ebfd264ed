-- Bulk operations (issue 23 part 2; docs/bulk.md): one operation on many
-- services at once. A bulk is a record (`bulk_operations`) and one ordinary
-- child task per selected service, linked in `bulk_tasks`; the children are
-- created in one statement (panel1_bulk_create) and then run, retry, move
-- their services and write their events exactly as single tasks do: caps,
-- one operation per service in order, the circuit breaker, webhooks.
--
-- Progress is counted from the children by every worker's upkeep
-- (panel1_bulk_upkeep, at most once a second per bulk, under the bulk row's
-- lock): the counts are kept on the record and written as `bulk.progress`
-- when they changed, and `bulk.completed` once no child is left to run.
--
-- Pausing holds the children that have not started as `scheduled` with
-- run_at = panel1_bulk_hold_until() (year 9999): no claim path and no
-- promotion looks at them, so nothing on the hot path knows about bulks,
-- and the hold is visible on each task as what it is. Resume makes them
-- available now. (A feeder releasing children in windows would also need a
-- pause that pulls released ones back; holding in place is one UPDATE.)
-- Cancelling cancels every child not running, as a task cancel does.

CREATE TABLE bulk_operations (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- What the client asked for (`suspend`, `refresh-status`, ...) and the
    -- task operation each child runs (`suspend`, `status`, ...).
    action       text NOT NULL,
    operation    text NOT NULL,
    -- The selector as given, and the extra input every child gets
    -- (`reason`, `plan`).
    selector     jsonb NOT NULL,
    input        jsonb NOT NULL DEFAULT '{}',
    state        text NOT NULL DEFAULT 'running'
                 CHECK (state IN ('running', 'paused', 'cancelled', 'completed')),
    total        integer NOT NULL CHECK (total > 0),
    -- Selected services that could not take the operation (state, or a
    -- terminate queued): how many, and the first 100 with the reason.
    skipped      integer NOT NULL DEFAULT 0,
    skipped_some jsonb NOT NULL DEFAULT '[]',
    -- The counts as last taken by the upkeep.
    succeeded    integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    cancelled    integer NOT NULL DEFAULT 0,
    running      integer NOT NULL DEFAULT 0,
    waiting      integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- When the upkeep last counted (it counts again a second later at most).
    counted_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    CHECK (finished_at IS NULL OR state IN ('cancelled', 'completed'))
);
CREATE INDEX bulk_operations_tenant ON bulk_operations (tenant_id, id);
CREATE INDEX bulk_operations_open ON bulk_operations (counted_at) WHERE finished_at IS NULL;

-- The children. `state` is the child's final state, copied by the upkeep
-- once it finished (so counts survive the task's pruning to the archive
-- and each count looks at the unfinished children only).
CREATE TABLE bulk_tasks (
    bulk_id    uuid NOT NULL REFERENCES bulk_operations(id) ON DELETE CASCADE,
    task_id    uuid NOT NULL,
    tenant_id  uuid NOT NULL,
    service_id uuid NOT NULL,
    state      task_state CHECK (state IN ('succeeded', 'failed', 'cancelled')),
    PRIMARY KEY (bulk_id, task_id)
);

-- Where a paused bulk's children wait (far beyond any real schedule).
CREATE FUNCTION panel1_bulk_hold_until() RETURNS timestamptz LANGUAGE sql IMMUTABLE
AS $$ SELECT timestamptz '9999-01-01 00:00:00+00' $$;

-- A bulk as every bulk event carries it.
CREATE FUNCTION panel1_bulk_summary(b bulk_operations) RETURNS jsonb LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object('bulk_id', b.id, 'action', b.action, 'state', b.state,
                              'total', b.total, 'succeeded', b.succeeded, 'failed', b.failed,
                              'cancelled', b.cancelled, 'running', b.running, 'waiting', b.waiting,
                              'skipped', b.skipped)
$$;

-- Select the tenant's services, judge each by the operation's rules, and
-- enqueue one child per eligible service, all set-based. The rules are the
-- single-service routes' (runtime/api/src/routes/services.rs): the state
-- must be one of p_allowed (passed in from there), and nothing is accepted
-- after a terminate that has not failed or been cancelled
-- (refuse_after_terminate). The services are locked (in id order, so two
-- bulks never deadlock) as a single action locks its service.
--
-- Returns how many services matched; nothing is written when more than
-- p_cap match, when explicit ids name services the tenant does not have
-- (`missing`), or when none is eligible (`created` = 0).
CREATE FUNCTION panel1_bulk_create(p_bulk uuid, p_tenant uuid, p_action text, p_operation text,
                                   p_input jsonb, p_selector jsonb, p_ids uuid[], p_server uuid,
                                   p_plan text, p_state text, p_allowed text[], p_cap integer)
RETURNS TABLE (matched integer, created integer, missing uuid[], skipped jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_missing uuid[];
    v_matched integer;
    v_ids uuid[];
    v_servers uuid[];
    v_inputs jsonb[];
    v_skipped jsonb;
    v_skipped_n integer;
    v_created integer;
    b bulk_operations;
BEGIN
    IF p_ids IS NOT NULL THEN
        SELECT array_agg(x.id ORDER BY x.n) INTO v_missing
        FROM unnest(p_ids) WITH ORDINALITY AS x(id, n)
        WHERE NOT EXISTS (SELECT 1 FROM services s WHERE s.id = x.id AND s.tenant_id = p_tenant);
        IF v_missing IS NOT NULL THEN
            RETURN QUERY SELECT 0, 0, v_missing, NULL::jsonb;
            RETURN;
        END IF;
    END IF;
    SELECT count(*) INTO v_matched FROM (
        SELECT 1 FROM services s
        WHERE s.tenant_id = p_tenant
          AND (p_ids IS NULL OR s.id = ANY (p_ids))
          AND (p_server IS NULL OR s.server_id = p_server)
          AND (p_plan IS NULL OR s.plan = p_plan)
          AND (p_state IS NULL OR s.state::text = p_state)
        LIMIT p_cap + 1) m;
    IF v_matched > p_cap OR v_matched = 0 THEN
        RETURN QUERY SELECT v_matched, 0, NULL::uuid[], '[]'::jsonb;
        RETURN;
    END IF;

    WITH locked AS (
        SELECT s.id, s.server_id, s.state, s.remote_id, s.plan, s.spec
        FROM services s
        WHERE s.tenant_id = p_tenant
          AND (p_ids IS NULL OR s.id = ANY (p_ids))
          AND (p_server IS NULL OR s.server_id = p_server)
          AND (p_plan IS NULL OR s.plan = p_plan)
          AND (p_state IS NULL OR s.state::text = p_state)
        ORDER BY s.id
        FOR UPDATE
    ),
    -- Materialized: each aggregate below would judge every service again.
    judged AS MATERIALIZED (
        SELECT l.*,
               CASE WHEN NOT (l.state::text = ANY (p_allowed))
                    THEN format('cannot %s a service that is %s', p_operation, l.state)
                    ELSE (SELECT format('it is being terminated (terminate task %s is %s); nothing is accepted after a terminate',
                                        t.id, t.state)
                          FROM task_records t
                          WHERE t.service_id = l.id AND t.operation = 'terminate'
                            AND t.state NOT IN ('failed', 'cancelled')
                          ORDER BY t.created_at DESC LIMIT 1)
               END AS refusal
        FROM locked l
    )
    SELECT array_agg(j.id ORDER BY j.id) FILTER (WHERE j.refusal IS NULL),
           array_agg(j.server_id ORDER BY j.id) FILTER (WHERE j.refusal IS NULL),
           -- The `service` object as the single routes build it (service_input).
           array_agg(jsonb_build_object('service',
                         jsonb_build_object('service_id', j.id::text, 'remote_id', j.remote_id, 'plan', j.plan)
                         || COALESCE((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(j.spec) e
                                      WHERE e.key IN ('username', 'domain', 'contact_email', 'params')), '{}'))
                     || p_input ORDER BY j.id) FILTER (WHERE j.refusal IS NULL),
           count(*) FILTER (WHERE j.refusal IS NOT NULL),
           COALESCE((jsonb_agg(jsonb_build_object('service_id', j.id, 'reason', j.refusal) ORDER BY j.id)
                     FILTER (WHERE j.refusal IS NOT NULL)), '[]')
      INTO v_ids, v_servers, v_inputs, v_skipped_n, v_skipped
      FROM judged j;

    v_created := coalesce(cardinality(v_ids), 0);
    IF v_created = 0 THEN
        RETURN QUERY SELECT v_matched, 0, NULL::uuid[], v_skipped;
        RETURN;
    END IF;

    INSERT INTO bulk_operations (id, tenant_id, action, operation, selector, input, total, skipped,
                                 skipped_some, waiting)
    VALUES (p_bulk, p_tenant, p_action, p_operation, p_selector, p_input, v_created, v_skipped_n,
            (SELECT COALESCE(jsonb_agg(x), '[]') FROM (SELECT x FROM jsonb_array_elements(v_skipped) x LIMIT 100) s),
            v_created)
    RETURNING * INTO b;

    -- The children, as panel1_store::enqueue writes one task: record, queue
    -- row, the service's state on acceptance (a terminate makes it
    -- `terminating`), `task.created`. Priority -1: a single action on the
    -- same server is not queued behind a whole bulk.
    WITH c AS (
        SELECT panel1_uuid_v7() AS id, u.service_id, u.server_id, u.input, u.n
        FROM unnest(v_ids, v_servers, v_inputs) WITH ORDINALITY AS u(service_id, server_id, input, n)
    ),
    t AS (
        INSERT INTO task_records (id, tenant_id, server_id, service_id, operation, input, state,
                                  run_at, max_attempts, priority, created_at)
        SELECT c.id, p_tenant, c.server_id, c.service_id, p_operation, c.input, 'available',
               now(), 5, -1, clock_timestamp()
        FROM c ORDER BY c.n
        RETURNING *
    ),
    q AS (
        INSERT INTO task_queue (task_id, server_id, service_id, state, priority, run_at, attempt,
                                max_attempts, lease, created_at, updated_at)
        SELECT id, server_id, service_id, state, priority, run_at, attempt, max_attempts, lease,
               created_at, updated_at
        FROM t
    ),
    moved AS (
        UPDATE services s SET state = 'terminating', updated_at = now()
        FROM t WHERE p_operation = 'terminate' AND s.id = t.service_id
    ),
    created AS (
        INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
        SELECT t.tenant_id, 'task.created', t.id, t.service_id,
               jsonb_build_object('operation', t.operation, 'state', t.state, 'bulk_id', p_bulk)
        FROM t
    )
    INSERT INTO bulk_tasks (bulk_id, task_id, tenant_id, service_id)
    SELECT p_bulk, t.id, p_tenant, t.service_id FROM t;

    INSERT INTO events (tenant_id, kind, payload)
    VALUES (p_tenant, 'bulk.created', panel1_bulk_summary(b));
    PERFORM pg_notify('panel1_tasks', '');
    RETURN QUERY SELECT v_matched, v_created, NULL::uuid[], v_skipped;
END $$;

-- Children of the bulk that can start and have not: held (see the top).
-- Called by pause, and by the upkeep for a paused bulk (a child the
-- rescuer put back after its worker died is held again).
CREATE FUNCTION panel1_bulk_hold(p_bulk uuid) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    WITH held AS (
        UPDATE task_queue q
        SET state = 'scheduled', run_at = panel1_bulk_hold_until(), updated_at = now()
        FROM bulk_tasks b
        WHERE b.bulk_id = p_bulk AND b.state IS NULL AND q.task_id = b.task_id
          AND q.state IN ('available', 'retryable', 'scheduled')
          AND q.run_at <> panel1_bulk_hold_until()
        RETURNING q.task_id
    )
    UPDATE task_records t SET state = 'scheduled', run_at = panel1_bulk_hold_until(), updated_at = now()
    FROM held h WHERE t.id = h.task_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Pause, resume, cancel: the bulk's state after the call (NULL: no such
-- bulk of this tenant). Each writes its event when it changed something.
CREATE FUNCTION panel1_bulk_pause(p_tenant uuid, p_bulk uuid) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    b bulk_operations;
BEGIN
    UPDATE bulk_operations SET state = 'paused', updated_at = now()
    WHERE id = p_bulk AND tenant_id = p_tenant AND state = 'running'
    RETURNING * INTO b;
    IF NOT FOUND THEN
        RETURN (SELECT state FROM bulk_operations WHERE id = p_bulk AND tenant_id = p_tenant);
    END IF;
    PERFORM panel1_bulk_hold(p_bulk);
    INSERT INTO events (tenant_id, kind, payload) VALUES (p_tenant, 'bulk.paused', panel1_bulk_summary(b));
    RETURN b.state;
END $$;

CREATE FUNCTION panel1_bulk_resume(p_tenant uuid, p_bulk uuid) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    b bulk_operations;
BEGIN
    UPDATE bulk_operations SET state = 'running', updated_at = now()
    WHERE id = p_bulk AND tenant_id = p_tenant AND state = 'paused'
    RETURNING * INTO b;
    IF NOT FOUND THEN
        RETURN (SELECT state FROM bulk_operations WHERE id = p_bulk AND tenant_id = p_tenant);
    END IF;
    WITH released AS (
        UPDATE task_queue q SET state = 'available', run_at = now(), updated_at = now()
        FROM bulk_tasks x
        WHERE x.bulk_id = p_bulk AND x.state IS NULL AND q.task_id = x.task_id
          AND q.state = 'scheduled' AND q.run_at = panel1_bulk_hold_until()
        RETURNING q.task_id
    )
    UPDATE task_records t SET state = 'available', run_at = now(), updated_at = now()
    FROM released r WHERE t.id = r.task_id;
    INSERT INTO events (tenant_id, kind, payload) VALUES (p_tenant, 'bulk.resumed', panel1_bulk_summary(b));
    PERFORM pg_notify('panel1_tasks', '');
    RETURN b.state;
END $$;

-- Every child that is not running is cancelled as panel1_store::cancel
-- cancels a task (its queue row deleted, the record cancelled with its
-- lease moved on, `task.cancelled`); running ones finish. A claim holds the
-- row it takes, so a child is either claimed (and finishes) or cancelled.
CREATE FUNCTION panel1_bulk_cancel(p_tenant uuid, p_bulk uuid) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    b bulk_operations;
BEGIN
    UPDATE bulk_operations SET state = 'cancelled', updated_at = now()
    WHERE id = p_bulk AND tenant_id = p_tenant AND state IN ('running', 'paused')
    RETURNING * INTO b;
    IF NOT FOUND THEN
        RETURN (SELECT state FROM bulk_operations WHERE id = p_bulk AND tenant_id = p_tenant);
    END IF;
    WITH gone AS (
        DELETE FROM task_queue q USING bulk_tasks x
        WHERE x.bulk_id = p_bulk AND x.state IS NULL AND q.task_id = x.task_id
          AND q.lease_expires_at IS NULL
        RETURNING q.task_id, q.attempt, q.lease
    ),
    done AS (
        UPDATE task_records t
        SET state = 'cancelled', finished_at = now(), attempt = g.attempt, lease = g.lease + 1,
            updated_at = now()
        FROM gone g WHERE t.id = g.task_id
        RETURNING t.id, t.tenant_id, t.service_id
    )
    INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
    SELECT d.tenant_id, 'task.cancelled', d.id, d.service_id, jsonb_build_object('bulk_id', p_bulk)
    FROM done d;
    INSERT INTO events (tenant_id, kind, payload) VALUES (p_tenant, 'bulk.cancelled', panel1_bulk_summary(b));
    RETURN b.state;
END $$;

-- The children's counts now. A finished child is counted from bulk_tasks
-- once settled, otherwise from its queue row (running or waiting) or, just
-- finished, its record.
CREATE FUNCTION panel1_bulk_counts(p_bulk uuid)
RETURNS TABLE (succeeded integer, failed integer, cancelled integer, running integer, waiting integer)
LANGUAGE sql STABLE
-- The subplans' estimates cross jit_above_cost, and compiling costs more
-- (25 ms) than counting 10 000 children (5 ms).
SET jit = off
AS $$
    SELECT count(*) FILTER (WHERE c.st = 'succeeded')::integer,
           count(*) FILTER (WHERE c.st = 'failed')::integer,
           count(*) FILTER (WHERE c.st = 'cancelled')::integer,
           count(*) FILTER (WHERE c.st = 'running')::integer,
           count(*) FILTER (WHERE c.st IN ('scheduled', 'available', 'retryable'))::integer
    FROM bulk_tasks b
    LEFT JOIN task_queue q ON b.state IS NULL AND q.task_id = b.task_id
    -- The record only for a child just finished (COALESCE stops early).
    CROSS JOIN LATERAL (SELECT COALESCE(b.state, q.state,
                                        (SELECT t.state FROM task_records t WHERE t.id = b.task_id)) AS st) c
    WHERE b.bulk_id = p_bulk
$$;

-- Every worker's upkeep calls this often; each unfinished bulk not counted
-- in the last p_every is counted once (the row lock keeps two workers off
-- the same bulk): finished children settled, the counts kept, `bulk.progress`
-- written when they changed, and when no child is left to run the bulk ends
-- (`completed`, or stays `cancelled`) with `bulk.completed`. A paused bulk's
-- children are held again (see panel1_bulk_hold). Returns the events written.
CREATE FUNCTION panel1_bulk_upkeep(p_every interval) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    b bulk_operations;
    c record;
    n integer := 0;
BEGIN
    FOR b IN
        SELECT * FROM bulk_operations
        WHERE finished_at IS NULL AND counted_at <= now() - p_every
        ORDER BY counted_at
        LIMIT 100
        FOR UPDATE SKIP LOCKED
    LOOP
        IF b.state = 'paused' THEN
            PERFORM panel1_bulk_hold(b.id);
        END IF;
        UPDATE bulk_tasks x SET state = t.state
        FROM task_records t
        WHERE x.bulk_id = b.id AND x.state IS NULL AND t.id = x.task_id
          AND t.state IN ('succeeded', 'failed', 'cancelled');
        SELECT * INTO c FROM panel1_bulk_counts(b.id);
        IF (c.succeeded, c.failed, c.cancelled, c.running, c.waiting)
           IS DISTINCT FROM (b.succeeded, b.failed, b.cancelled, b.running, b.waiting) THEN
            UPDATE bulk_operations
            SET succeeded = c.succeeded, failed = c.failed, cancelled = c.cancelled,
                running = c.running, waiting = c.waiting, counted_at = now(), updated_at = now()
            WHERE id = b.id RETURNING * INTO b;
            INSERT INTO events (tenant_id, kind, payload)
            VALUES (b.tenant_id, 'bulk.progress', panel1_bulk_summary(b));
            n := n + 1;
        ELSE
            UPDATE bulk_operations SET counted_at = now() WHERE id = b.id;
        END IF;
        IF c.running = 0 AND c.waiting = 0 THEN
            UPDATE bulk_operations
            SET state = CASE WHEN state = 'cancelled' THEN 'cancelled' ELSE 'completed' END,
                finished_at = now(), updated_at = now()
            WHERE id = b.id RETURNING * INTO b;
            INSERT INTO events (tenant_id, kind, payload)
            VALUES (b.tenant_id, 'bulk.completed', panel1_bulk_summary(b));
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END $$;
