-- Automated backups (issue 23 part 4; docs/backups.md).
--
-- Backup policies (per tenant, optionally per plan and/or server) start
-- `create-backup` platform tasks (0014) on a cron schedule, spread over a
-- window; each backup is a record here, followed with `backup-status`
-- tasks while the provider says `pending`. After a policy's backup
-- completes the store keeps the newest backup of each of the last N days,
-- ISO weeks and months (runtime/store/src/backups/retention.rs) and deletes
-- the others on the provider with `delete-backup` tasks. Everything a task
-- learns is written in its completion's transaction
-- (runtime/store/src/backups/project.rs); `backup.completed` and
-- `backup.failed` are ordinary events (so webhooks, 0013).

CREATE TABLE backup_policies (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name text NOT NULL,
    -- Scope: NULL means any. The most specific policy covers a service
    -- (plan and server, then plan, then server, then tenant-wide).
    plan text,
    server_id uuid REFERENCES servers(id) ON DELETE CASCADE,
    -- 5 fields from the API; the store also takes 6 (seconds) for tests.
    cron text NOT NULL,
    window_secs integer NOT NULL CHECK (window_secs BETWEEN 0 AND 86400),
    keep_daily integer NOT NULL CHECK (keep_daily BETWEEN 0 AND 366),
    keep_weekly integer NOT NULL CHECK (keep_weekly BETWEEN 0 AND 260),
    keep_monthly integer NOT NULL CHECK (keep_monthly BETWEEN 0 AND 120),
    enabled boolean NOT NULL DEFAULT true,
    -- The occurrence being (or next to be) spread over its window, and up
    -- to where in it services were enqueued.
    occurrence_at timestamptz NOT NULL,
    scheduled_until timestamptz NOT NULL,
    -- What the latest occurrence did (accumulated over its passes).
    run_at timestamptz,
    run_enqueued integer NOT NULL DEFAULT 0,
    run_skipped_unsupported integer NOT NULL DEFAULT 0,
    run_skipped_busy integer NOT NULL DEFAULT 0,
    run_window_closed boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (keep_daily + keep_weekly + keep_monthly > 0)
);
-- One policy per scope.
CREATE UNIQUE INDEX backup_policies_scope ON backup_policies
    (tenant_id, (COALESCE(plan, '')), (COALESCE(server_id, '00000000-0000-0000-0000-000000000000'::uuid)));
CREATE INDEX backup_policies_due ON backup_policies (occurrence_at) WHERE enabled;

CREATE TABLE backups (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    service_id uuid NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    server_id uuid NOT NULL,
    -- NULL for an on-demand backup, or once its policy was deleted: never
    -- pruned by retention then.
    policy_id uuid REFERENCES backup_policies(id) ON DELETE SET NULL,
    trigger text NOT NULL CHECK (trigger IN ('policy', 'request')),
    -- The provider's id, once create-backup answered.
    provider_backup_id text,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'complete', 'failed', 'deleting', 'deleted', 'expired')),
    size_bytes bigint,
    details jsonb NOT NULL DEFAULT '{}',
    -- The create-backup task, and the backup-status checks made so far.
    task_id uuid,
    polls integer NOT NULL DEFAULT 0,
    -- The task of the step in flight (create, a status check, a delete):
    -- a pending or deleting backup whose step task left the queue without
    -- its completion (cancelled) is found by it.
    step_task_id uuid,
    failure_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    deleted_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backups_service ON backups (service_id, id);
CREATE INDEX backups_tenant ON backups (tenant_id, id);
CREATE INDEX backups_retention ON backups (service_id, policy_id, created_at) WHERE state = 'complete';
CREATE INDEX backups_pending ON backups (service_id) WHERE state = 'pending';
CREATE INDEX backups_in_flight ON backups (updated_at) WHERE state IN ('pending', 'deleting');

-- A service as an operation's `service` input (the shape the API and the
-- usage scheduler give it).
CREATE FUNCTION panel1_service_input(s services) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'service_id', s.id::text, 'remote_id', s.remote_id, 'plan', s.plan,
        'username', s.spec -> 'username', 'domain', s.spec -> 'domain',
        'contact_email', s.spec -> 'contact_email', 'params', s.spec -> 'params'))
$$;

-- Whether an adapter version can create backups: world 0.2.0 or later, and
-- (once inspected) `create-backup` among the operations its info lists.
CREATE FUNCTION panel1_backup_supported(p_world text, p_info jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT p_world <> '0.1.0' AND (p_info IS NULL OR COALESCE(p_info -> 'operations' ? 'create-backup', false))
$$;

-- The policy covering a service: the most specific of its tenant's that
-- match (plan and server, then plan, then server, then tenant-wide),
-- enabled or not (a disabled specific policy opts its services out).
CREATE FUNCTION panel1_backup_policy_for(p_tenant uuid, p_plan text, p_server uuid) RETURNS uuid
    LANGUAGE sql STABLE
    AS $$
    SELECT p.id FROM backup_policies p
    WHERE p.tenant_id = p_tenant
      AND (p.plan IS NULL OR p.plan = p_plan)
      AND (p.server_id IS NULL OR p.server_id = p_server)
    ORDER BY (p.plan IS NOT NULL) DESC, (p.server_id IS NOT NULL) DESC
    LIMIT 1
$$;

-- A service's fixed place in a window of p_window_ms (as usage spreads:
-- a hash of its id), so 10 000 services never start at once and each
-- starts at the same point of every window.
CREATE FUNCTION panel1_backup_offset_ms(p_service uuid, p_window_ms bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT ((hashtextextended(p_service::text, 0) % GREATEST(p_window_ms, 1)) + GREATEST(p_window_ms, 1))
           % GREATEST(p_window_ms, 1)
$$;

-- Start a backup of each service: the record (`pending`) and its
-- create-backup platform task (`panel1:backup:<backup>:create`, no
-- task.created event: 0014), in the caller's transaction. The task is
-- ordered with the service's other operations; its follow-ups are not.
CREATE FUNCTION panel1_backup_create(p_services uuid[], p_policy uuid, p_trigger text,
                                     p_priority smallint)
    RETURNS TABLE (backup_id uuid, task_id uuid, service_id uuid)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH sel AS MATERIALIZED (
        SELECT panel1_uuid_v7() AS bid, panel1_uuid_v7() AS tid, s.id AS sid, s.tenant_id,
               s.server_id, panel1_service_input(s) AS input
        FROM services s WHERE s.id = ANY (p_services)
        ORDER BY s.id
    ),
    t AS (
        INSERT INTO task_records (id, tenant_id, server_id, service_id, operation, input, state,
                                  run_at, max_attempts, priority, idempotency_key, created_at)
        SELECT x.tid, x.tenant_id, x.server_id, x.sid, 'create-backup',
               jsonb_build_object('service', x.input), 'available', now(), 3, p_priority,
               'panel1:backup:' || x.bid::text || ':create', clock_timestamp()
        FROM sel x
        RETURNING *
    ),
    q AS (
        INSERT INTO task_queue (task_id, server_id, service_id, state, priority, run_at, attempt,
                                max_attempts, lease, created_at, updated_at)
        SELECT id, server_id, service_id, state, priority, run_at, attempt, max_attempts, lease,
               created_at, updated_at
        FROM t
        RETURNING task_id
    ),
    b AS (
        INSERT INTO backups (id, tenant_id, service_id, server_id, policy_id, trigger, task_id,
                             step_task_id)
        SELECT x.bid, x.tenant_id, x.sid, x.server_id, p_policy, p_trigger, x.tid, x.tid FROM sel x
        RETURNING id, task_id, service_id
    )
    SELECT b.id, b.task_id, b.service_id FROM b;
    IF FOUND THEN
        PERFORM pg_notify('panel1_tasks', '');
    END IF;
END
$$;

-- One pass of a policy's open window: start a backup of every service the
-- policy covers whose offset falls in [p_from_ms, p_to_ms) of the window
-- of p_window_ms beginning at the occurrence. Services of active or
-- suspended state only; a service whose adapter cannot create backups, or
-- that still has a pending backup, is skipped and counted.
CREATE FUNCTION panel1_backup_policy_pass(p_policy uuid, p_from_ms bigint, p_to_ms bigint,
                                          p_window_ms bigint)
    RETURNS TABLE (enqueued integer, skipped_unsupported integer, skipped_busy integer)
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_tenant uuid;
    v_plan text;
    v_server uuid;
    ids uuid[];
    n_unsupported integer;
    n_busy integer;
    n integer;
BEGIN
    SELECT p.tenant_id, p.plan, p.server_id INTO v_tenant, v_plan, v_server
    FROM backup_policies p WHERE p.id = p_policy;
    WITH due AS (
        SELECT s.id, av.world_version, av.info
        FROM services s
        JOIN servers sv ON sv.id = s.server_id
        JOIN adapter_versions av ON av.id = sv.adapter_version_id
        WHERE s.tenant_id = v_tenant AND s.state IN ('active', 'suspended')
          AND (v_plan IS NULL OR s.plan = v_plan)
          AND (v_server IS NULL OR s.server_id = v_server)
          AND panel1_backup_offset_ms(s.id, p_window_ms) >= p_from_ms
          AND panel1_backup_offset_ms(s.id, p_window_ms) < p_to_ms
          AND panel1_backup_policy_for(s.tenant_id, s.plan, s.server_id) = p_policy
    ),
    judged AS (
        SELECT d.id,
               CASE WHEN NOT panel1_backup_supported(d.world_version, d.info) THEN 'unsupported'
                    WHEN EXISTS (SELECT 1 FROM backups b WHERE b.service_id = d.id AND b.state = 'pending')
                    THEN 'busy'
                    ELSE 'due' END AS verdict
        FROM due d
    )
    SELECT array_agg(j.id) FILTER (WHERE j.verdict = 'due'),
           count(*) FILTER (WHERE j.verdict = 'unsupported'),
           count(*) FILTER (WHERE j.verdict = 'busy')
      INTO ids, n_unsupported, n_busy
      FROM judged j;
    SELECT count(*) INTO n FROM panel1_backup_create(COALESCE(ids, '{}'), p_policy, 'policy', -5::smallint);
    RETURN QUERY SELECT n, n_unsupported, n_busy;
END
$$;

-- A follow-up platform task of a backup (`backup-status`, `delete-backup`),
-- keyed `panel1:backup:<backup>:<step>`, due at p_run_at. It carries no
-- service id in the queue: a check scheduled minutes ahead would otherwise
-- hold back the service's later operations (one at a time, in order), and
-- neither operation changes the account.
CREATE FUNCTION panel1_backup_followup(p_backup uuid, p_step text, p_operation text,
                                       p_input jsonb, p_run_at timestamptz)
    RETURNS uuid
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_task uuid;
    v_state task_state := CASE WHEN p_run_at > now() THEN 'scheduled' ELSE 'available' END;
BEGIN
    WITH t AS (
        INSERT INTO task_records (id, tenant_id, server_id, service_id, operation, input, state,
                                  run_at, max_attempts, priority, idempotency_key, created_at)
        SELECT panel1_uuid_v7(), b.tenant_id, b.server_id, NULL, p_operation, p_input, v_state,
               GREATEST(p_run_at, now()), 5, -5, 'panel1:backup:' || b.id::text || ':' || p_step,
               clock_timestamp()
        FROM backups b WHERE b.id = p_backup
        ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING *
    ),
    q AS (
        INSERT INTO task_queue (task_id, server_id, service_id, state, priority, run_at, attempt,
                                max_attempts, lease, created_at, updated_at)
        SELECT id, server_id, service_id, state, priority, run_at, attempt, max_attempts, lease,
               created_at, updated_at
        FROM t
        RETURNING task_id
    )
    SELECT q.task_id INTO v_task FROM q;
    UPDATE backups SET step_task_id = v_task WHERE id = p_backup AND v_task IS NOT NULL;
    IF v_task IS NOT NULL AND v_state = 'available' THEN
        PERFORM pg_notify('panel1_tasks', '');
    END IF;
    RETURN v_task;
END
$$;

-- Backups whose step task left the queue without a completion (a tenant
-- or operator cancelled it): a pending one fails (`backup.failed`), a
-- deleting one goes back to complete. Only rows untouched for p_quiet
-- (a completion that just moved a row changed updated_at, so a row it
-- holds is re-checked and skipped). Returns how many were settled.
CREATE FUNCTION panel1_backup_sweep(p_quiet interval) RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    n integer;
BEGIN
    WITH orphans AS (
        UPDATE backups b
        SET state = CASE WHEN b.state = 'pending' THEN 'failed' ELSE 'complete' END,
            failure_reason = CASE WHEN b.state = 'pending'
                                  THEN 'its task was cancelled before the backup completed'
                                  ELSE 'the delete-backup task was cancelled' END,
            completed_at = CASE WHEN b.state = 'pending' THEN now() ELSE b.completed_at END,
            updated_at = now()
        WHERE b.state IN ('pending', 'deleting') AND b.updated_at < now() - p_quiet
          AND NOT EXISTS (SELECT 1 FROM task_queue q WHERE q.task_id = b.step_task_id)
        RETURNING b.*
    ),
    failed AS (
        INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
        SELECT o.tenant_id, 'backup.failed', o.task_id, o.service_id,
               jsonb_build_object('backup_id', o.id, 'server_id', o.server_id,
                                  'policy_id', o.policy_id, 'trigger', o.trigger, 'state', o.state,
                                  'provider_backup_id', o.provider_backup_id,
                                  'size_bytes', o.size_bytes, 'failure_reason', o.failure_reason)
        FROM orphans o WHERE o.state = 'failed'
    )
    SELECT count(*) INTO n FROM orphans;
    RETURN n;
END
$$;
