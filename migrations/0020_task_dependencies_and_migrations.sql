-- Task dependencies (a general feature of the queue) and service
-- migrations between servers, built on them (docs/migration.md).
--
-- A task may wait on other tasks. While it waits, its queue row is
-- `scheduled` with run_at = panel1_waiting_until() (far future), so no
-- claim path (claim_tasks, claim_on_servers, the hand-offs of
-- complete_one/complete_batch/complete_tasks, platform tasks: all take
-- `state = 'available'` only) and no promotion (`run_at <= now()`) ever
-- sees it: the claims' index scans are untouched, nothing joins. The
-- waiting is kept beside the queue (task_waits: how many dependencies are
-- left, the task's own not-before time). When a task finishes, a trigger on
-- its record acts only when something waits on it (`has_dependents`, read
-- in the trigger's WHEN: a completion of a task nothing waits on calls no
-- function): success counts the waiters down and releases those with none
-- left (due at their own run_at, made available by the usual promotion);
-- failure or cancellation settles every waiter (cancelled, with the
-- reason), and through their own records, their waiters in turn.

CREATE TABLE task_dependencies (
    task_id    uuid NOT NULL REFERENCES task_records(id) ON DELETE CASCADE,
    depends_on uuid NOT NULL,
    PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX task_dependencies_depends_on ON task_dependencies (depends_on);

CREATE TABLE task_waits (
    task_id    uuid PRIMARY KEY REFERENCES task_records(id) ON DELETE CASCADE,
    -- Dependencies not yet succeeded.
    remaining  integer NOT NULL CHECK (remaining > 0),
    -- The task's own run_at: it is not claimable before it once released.
    not_before timestamptz NOT NULL
);

-- The archive copies task_records column for column (prune's SELECT *).
ALTER TABLE task_records ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;
ALTER TABLE tasks_archive ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;

-- Where a waiting task's queue row is parked (never due).
CREATE FUNCTION panel1_waiting_until() RETURNS timestamptz
    LANGUAGE sql IMMUTABLE AS $$ SELECT '9999-12-31 00:00:00+00'::timestamptz $$;

-- Settle the unfinished tasks `p_tasks` as cancelled because `p_dep`
-- ended `p_state`: queue rows gone (a waiting task never runs), records
-- cancelled with the reason, a task.cancelled event each. Their own
-- waiters are settled by the trigger on their records.
CREATE FUNCTION panel1_settle_waiters(p_tasks uuid[], p_dep uuid, p_state text) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    why text := format('task %s it waits on is %s', p_dep, p_state);
BEGIN
    DELETE FROM task_waits WHERE task_id = ANY (p_tasks);
    DELETE FROM task_queue WHERE task_id = ANY (p_tasks) AND state <> 'running';
    WITH settled AS (
        UPDATE task_records t
        SET state = 'cancelled', finished_at = now(), updated_at = now(),
            last_error = jsonb_build_object('source', 'host', 'kind', 'dependency',
                                            'message', why, 'depends_on', p_dep)
        WHERE t.id = ANY (p_tasks) AND t.finished_at IS NULL
        RETURNING t.id, t.tenant_id, t.service_id, t.operation
    ),
    written AS (
        INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
        SELECT s.tenant_id, 'task.cancelled', s.id, s.service_id,
               jsonb_build_object('operation', s.operation, 'state', 'cancelled',
                                  'reason', why, 'depends_on', p_dep)
        FROM settled s
        RETURNING 1
    )
    SELECT count(*) INTO n FROM written;
    RETURN n;
END $$;

-- A task with waiters reached a final state.
CREATE FUNCTION panel1_dependency_finished() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    waiters uuid[];
BEGIN
    IF NEW.state = 'succeeded' THEN
        -- Those whose last dependency this was: due at their own run_at
        -- (now at the earliest), `scheduled`, so the promotion makes them
        -- available after this commit. Never claimable in the transaction
        -- that released them (not by a completion's hand-off either): what
        -- that transaction writes for them (a step's input) is what they
        -- run with. First, so the count-down below brings none to its last.
        WITH gone AS (
            DELETE FROM task_waits w USING task_dependencies d
            WHERE d.depends_on = NEW.id AND w.task_id = d.task_id AND w.remaining = 1
            RETURNING w.task_id, w.not_before
        ),
        released AS (
            UPDATE task_queue q
            SET run_at = GREATEST(g.not_before, now()), updated_at = now()
            FROM gone g
            WHERE q.task_id = g.task_id AND q.state = 'scheduled'
            RETURNING q.task_id, q.run_at
        )
        UPDATE task_records t SET run_at = r.run_at, updated_at = now()
        FROM released r WHERE t.id = r.task_id;
        UPDATE task_waits w SET remaining = w.remaining - 1
        FROM task_dependencies d
        WHERE d.depends_on = NEW.id AND w.task_id = d.task_id;
    ELSE
        SELECT array_agg(w.task_id) INTO waiters
        FROM task_dependencies d JOIN task_waits w ON w.task_id = d.task_id
        WHERE d.depends_on = NEW.id;
        IF waiters IS NOT NULL THEN
            PERFORM panel1_settle_waiters(waiters, NEW.id, NEW.state::text);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER task_records_dependency_finished
    AFTER UPDATE OF state ON task_records
    FOR EACH ROW
    WHEN (NEW.has_dependents AND OLD.state IS DISTINCT FROM NEW.state
          AND NEW.state IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION panel1_dependency_finished();

-- Make the unfinished, not running task `p_task` wait on `p_deps` (tasks of
-- the same tenant). Call in the transaction that enqueued it, before
-- anything waits on it (no cycle can form: a task is given its
-- dependencies before it can be one). Returns 'waiting', 'ready' (every
-- dependency had already succeeded: the task runs as enqueued) or
-- 'settled' (one had failed or been cancelled: the task is cancelled).
CREATE FUNCTION panel1_task_wait(p_task uuid, p_deps uuid[]) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    v_tenant uuid;
    v_run_at timestamptz;
    n_known integer;
    n_open integer;
    bad record;
    deps uuid[] := ARRAY(SELECT DISTINCT x FROM unnest(p_deps) x);
BEGIN
    SELECT t.tenant_id, t.run_at INTO v_tenant, v_run_at
    FROM task_records t JOIN task_queue q ON q.task_id = t.id
    WHERE t.id = p_task AND q.state <> 'running' AND NOT t.has_dependents
      AND NOT EXISTS (SELECT 1 FROM task_waits w WHERE w.task_id = p_task)
    FOR NO KEY UPDATE OF t;
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'task % cannot wait: not queued, running, already waiting or waited on', p_task
            USING ERRCODE = '55000';
    END IF;
    IF p_task = ANY (deps) THEN
        RAISE EXCEPTION 'task % cannot wait on itself', p_task USING ERRCODE = '22023';
    END IF;
    -- Held until this transaction ends, so none of them finishes between
    -- the look below and the links (its completion waits, then its trigger
    -- sees the links).
    PERFORM 1 FROM task_records t WHERE t.id = ANY (deps) AND t.tenant_id = v_tenant
    ORDER BY t.id FOR NO KEY UPDATE;
    SELECT count(*) INTO n_known FROM (
        SELECT id FROM task_records WHERE id = ANY (deps) AND tenant_id = v_tenant
        UNION SELECT id FROM tasks_archive WHERE id = ANY (deps) AND tenant_id = v_tenant
    ) k;
    IF n_known < cardinality(deps) THEN
        RAISE EXCEPTION 'task % cannot wait on tasks that are not its tenant''s', p_task
            USING ERRCODE = '22023';
    END IF;
    SELECT x.id, x.state INTO bad FROM (
        SELECT id, state FROM task_records WHERE id = ANY (deps)
        UNION ALL SELECT id, state FROM tasks_archive WHERE id = ANY (deps)
    ) x WHERE x.state IN ('failed', 'cancelled') ORDER BY x.id LIMIT 1;
    IF FOUND THEN
        PERFORM panel1_settle_waiters(ARRAY[p_task], bad.id, bad.state::text);
        RETURN 'settled';
    END IF;
    WITH open AS (
        SELECT t.id FROM task_records t
        WHERE t.id = ANY (deps) AND t.state <> 'succeeded'
    ),
    linked AS (
        INSERT INTO task_dependencies (task_id, depends_on) SELECT p_task, o.id FROM open o
    ),
    marked AS (
        UPDATE task_records t SET has_dependents = true
        FROM open o WHERE t.id = o.id AND NOT t.has_dependents
    )
    SELECT count(*) INTO n_open FROM open;
    IF n_open = 0 THEN
        RETURN 'ready';
    END IF;
    INSERT INTO task_waits (task_id, remaining, not_before) VALUES (p_task, n_open, v_run_at);
    UPDATE task_queue SET state = 'scheduled', run_at = panel1_waiting_until(), updated_at = now()
    WHERE task_id = p_task;
    UPDATE task_records SET state = 'scheduled', updated_at = now() WHERE id = p_task;
    RETURN 'waiting';
END $$;

-- Service migrations ------------------------------------------------------

-- A service being moved to another server (not usable in this
-- transaction; the functions below are plpgsql, read at first call).
ALTER TYPE service_state ADD VALUE 'migrating' BEFORE 'terminating';

CREATE TABLE service_migrations (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    service_id           uuid NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    source_server_id     uuid NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    target_server_id     uuid NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    -- running → switched (the service is on the target) → completed;
    -- running → failed (compensated: the service stays on the source).
    state                text NOT NULL DEFAULT 'running'
                         CHECK (state IN ('running', 'switched', 'completed', 'failed')),
    -- The service's state before, given back on failure and at the switch.
    previous_state       service_state NOT NULL,
    previous_remote_id   text,
    grace_period_seconds integer NOT NULL CHECK (grace_period_seconds BETWEEN 0 AND 2592000),
    export_task_id       uuid NOT NULL,
    import_task_id       uuid NOT NULL,
    verify_task_id       uuid NOT NULL,
    terminate_task_id    uuid NOT NULL,
    cleanup_task_id      uuid,
    failed_step          text,
    reason               text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    switched_at          timestamptz,
    finished_at          timestamptz
);
-- One migration at a time per service.
CREATE UNIQUE INDEX service_migrations_open ON service_migrations (service_id)
    WHERE state IN ('running', 'switched');
CREATE INDEX service_migrations_tenant ON service_migrations (tenant_id, id);

-- A step task's state now: live, else archived.
CREATE FUNCTION panel1_migration_task_state(p_task uuid) RETURNS text
    LANGUAGE sql STABLE AS $$
    SELECT COALESCE((SELECT t.state::text FROM tasks t WHERE t.id = p_task),
                    (SELECT a.state::text FROM tasks_archive a WHERE a.id = p_task),
                    'unknown')
$$;
