-- The queue moves out of the task record into a narrow table.
--
-- A task's record (operation, input, result, error) is wide and indexed for
-- the API; its claim, heartbeats and hand-offs only need a few fields. Every
-- claim rewrote the whole record and all its indexes (never a HOT update:
-- `state` was in the partial indexes' predicates). Now:
--
-- - `task_records` (the old `tasks` table) is written when a task is
--   created and when it leaves a state outside the hot path (promotion,
--   retry, completion, cancel, rescue). `state` is never `running` there and
--   is in no index, so those writes are HOT unless `finished_at` is set.
-- - `task_queue` holds one narrow row per unfinished task: its live state,
--   attempt, lease and lease deadline. Claims, heartbeats, hand-offs and the
--   per-server running count touch only it. The row is deleted when the
--   task finishes or is cancelled.
-- - The view `tasks` is the task as the API shows it: the record with the
--   queue row's live fields over it. Read through it; write the tables.
ALTER TABLE tasks RENAME TO task_records;

CREATE TABLE task_queue (
    task_id          uuid PRIMARY KEY REFERENCES task_records(id) ON DELETE CASCADE,
    server_id        uuid NOT NULL,
    service_id       uuid,
    state            task_state NOT NULL CHECK (state IN ('scheduled', 'available', 'running', 'retryable')),
    priority         smallint NOT NULL,
    run_at           timestamptz NOT NULL,
    attempt          integer NOT NULL CHECK (attempt >= 0),
    max_attempts     integer NOT NULL CHECK (max_attempts > 0),
    -- Incremented on every claim; every later write must match it.
    lease            bigint NOT NULL,
    leased_by        text,
    lease_expires_at timestamptz,
    -- The record's, for the order of a service's operations.
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
);

INSERT INTO task_queue (task_id, server_id, service_id, state, priority, run_at, attempt, max_attempts,
                        lease, leased_by, lease_expires_at, created_at, updated_at)
SELECT id, server_id, service_id, state, priority, run_at, attempt, max_attempts,
       lease, leased_by, lease_expires_at, created_at, updated_at
FROM task_records WHERE state NOT IN ('succeeded', 'failed', 'cancelled');

-- The claim path, the running count (and the rescuer's running set), one
-- running operation per service, a service's pending operations in order,
-- promotion of due tasks: all on the queue now.
DROP INDEX tasks_one_running_per_service;
DROP INDEX tasks_available;
DROP INDEX tasks_pending_by_service;
DROP INDEX tasks_due;
DROP INDEX tasks_running_by_server;
CREATE INDEX task_queue_available ON task_queue (server_id, priority DESC, run_at, task_id) WHERE state = 'available';
CREATE INDEX task_queue_running ON task_queue (server_id) WHERE state = 'running';
CREATE UNIQUE INDEX task_queue_one_running_per_service ON task_queue (service_id)
    WHERE state = 'running' AND service_id IS NOT NULL;
CREATE INDEX task_queue_by_service ON task_queue (service_id, created_at, task_id) WHERE service_id IS NOT NULL;
CREATE INDEX task_queue_due ON task_queue (run_at) WHERE state IN ('scheduled', 'retryable');

-- The lease holder and deadline live in the queue row only. A claimed
-- task's record keeps the state it was claimed from (`available`).
ALTER TABLE task_records DROP COLUMN leased_by, DROP COLUMN lease_expires_at;
ALTER TABLE tasks_archive DROP COLUMN leased_by, DROP COLUMN lease_expires_at;
UPDATE task_records SET state = 'available' WHERE state = 'running';
ALTER TABLE task_records ADD CONSTRAINT task_records_never_running CHECK (state <> 'running');

CREATE VIEW tasks AS
SELECT t.id, t.tenant_id, t.server_id, t.service_id, t.operation, t.input,
       COALESCE(q.state, t.state) AS state,
       t.priority,
       COALESCE(q.run_at, t.run_at) AS run_at,
       COALESCE(q.attempt, t.attempt) AS attempt,
       COALESCE(q.max_attempts, t.max_attempts) AS max_attempts,
       COALESCE(q.lease, t.lease) AS lease,
       q.leased_by, q.lease_expires_at,
       t.idempotency_key, t.result, t.last_error, t.created_at,
       GREATEST(t.updated_at, q.updated_at) AS updated_at,
       t.finished_at
FROM task_records t LEFT JOIN task_queue q ON q.task_id = t.id;

-- What runs on each server, kept as a count instead of counted: a claim
-- counted the server's running rows twice (before and after its lock), and
-- with hundreds running (a worker's local queue, completions on their way)
-- each count cost 1.5-6 ms. The count is the sum of a server's shards.
-- Fresh claims add to shard 0, under the server lock they already take (so
-- each claim sees every earlier claim's addition); everything else that
-- ends a run (completion, hand-off, rescue, cancel, release) adds to the
-- shard of its connection (`panel1_load_shard`), so concurrent completions
-- never wait on each other's row, and a shard may go negative. A completion
-- not yet committed is still counted: the cap errs on the safe side. Every
-- writer of task_queue.state = 'running' keeps the sum equal to the count
-- (the tests check it).
CREATE TABLE server_load (
    server_id uuid NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    shard     smallint NOT NULL,
    running   integer NOT NULL,
    PRIMARY KEY (server_id, shard)
);
INSERT INTO server_load (server_id, shard, running)
SELECT server_id, 0, count(*) FROM task_queue WHERE state = 'running' GROUP BY server_id;

-- (These helpers are plpgsql, whose plans are kept per connection: a SQL
-- function that cannot be inlined is parsed and planned on every call.)
CREATE FUNCTION panel1_load_shard() RETURNS smallint LANGUAGE plpgsql STABLE AS
$$ BEGIN RETURN (1 + pg_backend_pid() % 63)::smallint; END $$;

-- Tasks running on a server.
CREATE FUNCTION panel1_running(p_server uuid) RETURNS integer LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT COALESCE(sum(running), 0)::integer FROM server_load WHERE server_id = p_server);
END $$;

-- Add each delta to this connection's shard of its server (a server whose
-- deltas sum to zero is not written). In server order, so two writers that
-- share a shard take its rows in the same order.
CREATE FUNCTION panel1_add_load(p_servers uuid[], p_deltas integer[]) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO server_load (server_id, shard, running)
    SELECT d.server_id, panel1_load_shard(), sum(d.delta)
    FROM unnest(p_servers, p_deltas) AS d(server_id, delta)
    GROUP BY d.server_id HAVING sum(d.delta) <> 0
    ORDER BY d.server_id
    ON CONFLICT (server_id, shard) DO UPDATE SET running = server_load.running + EXCLUDED.running;
END $$;

-- claim_on_servers (0004) on the queue. The claimed rows' record fields come
-- from task_records by primary key (read only).
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
        SELECT r.id, r.room FROM unnest(p_servers, p_room) AS r(id, room)
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

-- claim_tasks (0004): servers with available work and room are locked, then
-- their running tasks counted with a snapshot taken after the lock; both on
-- the queue now.
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
    -- Read with this statement's snapshot, taken after the locks.
    SELECT array_agg(s.max_concurrency - panel1_running(s.id) ORDER BY ord)
      INTO rooms
      FROM unnest(locked) WITH ORDINALITY AS l(id, ord) JOIN servers s ON s.id = l.id;
    -- What was claimed counts on shard 0 before the locks are released.
    RETURN QUERY
    WITH c AS (
        SELECT * FROM claim_on_servers(locked, rooms, p_limit, p_worker, p_lease_secs)
    ),
    added AS (
        INSERT INTO server_load (server_id, shard, running)
        SELECT c.server_id, 0, count(*) FROM c GROUP BY c.server_id ORDER BY c.server_id
        ON CONFLICT (server_id, shard) DO UPDATE SET running = server_load.running + EXCLUDED.running
    )
    SELECT * FROM c;
END
$$;

-- complete_tasks (0004) on the queue: a finished task's queue row is
-- deleted, a retried one's goes back to waiting; either way the record takes
-- the outcome (with the attempt and lease it ran under), the attempt is
-- recorded, the service moved and the events written, in one commit. Rows
-- whose lease no longer matches are skipped and counted as stale.
CREATE OR REPLACE FUNCTION complete_tasks(p_items jsonb, p_handoff integer, p_worker text, p_lease_secs double precision)
RETURNS TABLE (
    applied boolean, id uuid, tenant_id uuid, server_id uuid, service_id uuid, operation text,
    input jsonb, attempt integer, max_attempts integer, lease bigint,
    idempotency_key text, service_remote_id text
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    by_id jsonb;
    final_ids uuid[];
    waiting_ids uuid[];
    done_ids uuid[];
    done_servers uuid[];
    freed_servers uuid[];
    freed_room integer[];
    n_done integer;
BEGIN
    PERFORM set_config('panel1.defer_events_notify', 'on', true);
    -- The queue rows are found by primary key from id arrays and matched to
    -- their item through a jsonb map, with no join for a plan to get wrong:
    -- a generic plan of a join with the items, which it estimates at 100
    -- rows, and task_queue, whose running share it takes from the last
    -- ANALYZE, seq-scanned the queue on every completion or compared every
    -- item with every running row.
    SELECT jsonb_object_agg((e->>'id')::uuid::text, e),
           array_agg((e->>'id')::uuid) FILTER (WHERE e->>'state' IN ('succeeded', 'failed', 'cancelled')),
           array_agg((e->>'id')::uuid) FILTER (WHERE e->>'state' NOT IN ('succeeded', 'failed', 'cancelled'))
      INTO by_id, final_ids, waiting_ids
      FROM jsonb_array_elements(p_items) e;
    WITH i AS (
        SELECT * FROM jsonb_to_recordset(p_items)
            AS i(id uuid, lease bigint, state task_state, run_at timestamptz, result jsonb,
                 error jsonb, event_kind text, event_payload jsonb, worker text,
                 started_at timestamptz, outcome text, error_kind text, error_message text,
                 fuel bigint, wall_us bigint, peak_memory bigint, http_requests integer,
                 http_denied integer, log jsonb, http jsonb, service_touch boolean,
                 service_state service_state, remote_id text, plan text, reason text)
    ),
    -- "Running" is said as `lease_expires_at IS NOT NULL` (the same, by
    -- the table's CHECK): `state = 'running'` invites the running index.
    finished AS (
        DELETE FROM task_queue q
        WHERE q.task_id = ANY (final_ids)
          AND q.lease = (by_id -> q.task_id::text ->> 'lease')::bigint
          AND q.lease_expires_at IS NOT NULL
        RETURNING q.task_id, q.server_id, q.attempt, q.lease
    ),
    waiting AS (
        UPDATE task_queue q
        SET state = (by_id -> q.task_id::text ->> 'state')::task_state,
            run_at = COALESCE((by_id -> q.task_id::text ->> 'run_at')::timestamptz, q.run_at),
            lease_expires_at = NULL, leased_by = NULL, updated_at = now()
        WHERE q.task_id = ANY (waiting_ids)
          AND q.lease = (by_id -> q.task_id::text ->> 'lease')::bigint
          AND q.lease_expires_at IS NOT NULL
        RETURNING q.task_id, q.server_id, q.attempt, q.lease
    ),
    ended AS (
        SELECT * FROM finished UNION ALL SELECT * FROM waiting
    ),
    done AS (
        UPDATE task_records t
        SET state = i.state, run_at = COALESCE(i.run_at, t.run_at), attempt = e.attempt, lease = e.lease,
            result = i.result, last_error = i.error, updated_at = now(),
            finished_at = CASE WHEN i.state IN ('succeeded', 'failed', 'cancelled') THEN now() END
        FROM ended e JOIN i ON i.id = e.task_id
        -- By primary key, one probe per row. Not `= ANY (ids)` as well: an
        -- array key is sorted again on every probe (500 items: 30 ms).
        WHERE t.id = e.task_id
        RETURNING t.id, t.tenant_id, e.server_id, t.service_id, e.attempt, e.lease
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

    IF n_done = 0 THEN
        RETURN;
    END IF;
    IF p_handoff > 0 THEN
        -- One slot per finished task on its server; fewer if the cap was
        -- lowered below what runs there now. The finished tasks are still
        -- in the count here (their release is written below, with the
        -- hand-off's additions, as one change per server).
        SELECT array_agg(f.server_id),
               array_agg(LEAST(f.n, s.max_concurrency - panel1_running(f.server_id) + f.n))
          INTO freed_servers, freed_room
          FROM (SELECT x AS server_id, count(*)::integer AS n FROM unnest(done_servers) AS x GROUP BY x) f
          JOIN servers s ON s.id = f.server_id;
        RETURN QUERY
        WITH c AS (
            SELECT * FROM claim_on_servers(freed_servers, freed_room, p_handoff, p_worker, p_lease_secs)
        ),
        deltas AS (
            SELECT x AS server_id, -1 AS delta FROM unnest(done_servers) AS x
            UNION ALL
            SELECT c.server_id, 1 FROM c
        ),
        -- As panel1_add_load, but a data-modifying CTE: it runs even when
        -- nothing was handed off.
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
