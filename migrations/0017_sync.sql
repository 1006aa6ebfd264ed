-- Service sync (reconciliation, issue 22 part 4): a run per server pages
-- through the adapter's `list-services` as platform tasks (0014, keys
-- `panel1:sync:<run>:<page>`), stages what each page saw, and on the last
-- page compares it with Panel1's services into a drift report; the
-- server's policy may then adopt unknown accounts or re-apply Panel1's
-- state. The store (runtime/store/src/sync/) calls these functions, in the
-- completion's own transaction for pages; docs/sync.md says what each does.

-- A time-ordered uuid (version 7), as the API's ids are: keyset pages walk
-- them newest first. (Postgres 15 has no uuidv7(); 0016 defines the same
-- function, so this one replaces it with an identical body.)
CREATE OR REPLACE FUNCTION panel1_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1), 'hex')::uuid
$$;

-- Per server: what a run may do and how often one starts on its own.
CREATE TABLE sync_settings (
    server_id     uuid PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    tenant_id     uuid NOT NULL,
    policy        text NOT NULL DEFAULT 'report' CHECK (policy IN ('report', 'adopt', 'reapply')),
    interval_secs integer NOT NULL DEFAULT 86400 CHECK (interval_secs BETWEEN 300 AND 2592000),
    recurring     boolean NOT NULL DEFAULT true,
    next_run_at   timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_settings_due ON sync_settings (next_run_at) WHERE recurring;

-- Every server has its settings from the start: the first recurring run is
-- one interval after the server was connected.
CREATE FUNCTION panel1_sync_settings_for_server() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_settings (server_id, tenant_id, next_run_at)
    VALUES (NEW.id, NEW.tenant_id, NEW.created_at + interval '1 day')
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER servers_sync_settings AFTER INSERT ON servers
    FOR EACH ROW EXECUTE FUNCTION panel1_sync_settings_for_server();
-- Servers connected before this migration: spread over the first day.
INSERT INTO sync_settings (server_id, tenant_id, next_run_at)
SELECT id, tenant_id, now() + random() * interval '1 day' FROM servers;

CREATE TABLE sync_runs (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    server_id        uuid NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    trigger          text NOT NULL CHECK (trigger IN ('schedule', 'request')),
    -- The server's policy when the run started (what the run may do).
    policy           text NOT NULL,
    state            text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'completed', 'failed')),
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    -- Pages listed so far; the cursor and task of the page in flight.
    pages            integer NOT NULL DEFAULT 0,
    cursor           text,
    page_task_id     uuid,
    remote_accounts  integer NOT NULL DEFAULT 0,
    missing_remotely integer NOT NULL DEFAULT 0,
    unknown_remotely integer NOT NULL DEFAULT 0,
    state_differs    integer NOT NULL DEFAULT 0,
    plan_differs     integer NOT NULL DEFAULT 0,
    skipped          integer NOT NULL DEFAULT 0,
    adopted          integer NOT NULL DEFAULT 0,
    reapplied        integer NOT NULL DEFAULT 0,
    error            text,
    CHECK ((state = 'running') = (finished_at IS NULL))
);
-- One run in progress per server.
CREATE UNIQUE INDEX sync_runs_one_running ON sync_runs (server_id) WHERE state = 'running';
CREATE INDEX sync_runs_tenant ON sync_runs (tenant_id, id);
CREATE INDEX sync_runs_server ON sync_runs (server_id, id);

-- What the pages of a running run saw; deleted when the run ends.
CREATE TABLE sync_remote_items (
    run_id    uuid NOT NULL REFERENCES sync_runs(id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL,
    remote_id text NOT NULL,
    state     text NOT NULL,
    plan      text,
    domain    text,
    PRIMARY KEY (run_id, remote_id)
);

-- The drift report: one row per difference; `skipped` rows are services a
-- difference was seen on while an operation was queued, running or had
-- changed them since the run started (not drift, never acted on).
CREATE TABLE sync_drift (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id         uuid NOT NULL REFERENCES sync_runs(id) ON DELETE CASCADE,
    tenant_id      uuid NOT NULL,
    server_id      uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('missing_remotely', 'unknown_remotely',
                                                 'state_differs', 'plan_differs', 'skipped')),
    service_id     uuid,
    remote_id      text,
    panel1_state   text,
    remote_state   text,
    panel1_plan    text,
    remote_plan    text,
    remote_domain  text,
    -- Why a `skipped` row was skipped.
    reason         text,
    -- What the policy did: `adopted`, or the operation enqueued
    -- (`suspend`, `unsuspend`, `change-package`) and its task.
    action         text,
    action_task_id uuid
);
CREATE INDEX sync_drift_run ON sync_drift (run_id, id);

-- Start a run on the tenant's server unless one is in progress: returns
-- the run and whether it is new (nothing when the server is not the
-- tenant's). The caller enqueues its first page in the same transaction.
CREATE FUNCTION panel1_sync_start(p_tenant uuid, p_server uuid, p_trigger text)
RETURNS TABLE(run_id uuid, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_policy text;
    v_run uuid;
BEGIN
    -- The settings row serializes starts on one server.
    SELECT s.policy INTO v_policy FROM sync_settings s
    WHERE s.server_id = p_server AND s.tenant_id = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Locked: a run being failed right now (panel1_sync_schedule) is
    -- waited for, and then seen ended.
    SELECT r.id INTO v_run FROM sync_runs r
    WHERE r.server_id = p_server AND r.state = 'running' FOR UPDATE;
    IF FOUND THEN
        RETURN QUERY SELECT v_run, false;
        RETURN;
    END IF;
    v_run := panel1_uuid_v7();
    INSERT INTO sync_runs (id, tenant_id, server_id, trigger, policy)
    VALUES (v_run, p_tenant, p_server, p_trigger, v_policy);
    RETURN QUERY SELECT v_run, true;
END
$$;

-- End a run as failed with the reason (an event says so).
CREATE FUNCTION panel1_sync_fail(p_run uuid, p_reason text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r sync_runs;
BEGIN
    UPDATE sync_runs SET state = 'failed', finished_at = now(), error = left(p_reason, 2000),
                         page_task_id = NULL, cursor = NULL
    WHERE id = p_run AND state = 'running'
    RETURNING * INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM sync_remote_items WHERE run_id = p_run;
    INSERT INTO events (tenant_id, kind, payload)
    VALUES (r.tenant_id, 'server.sync_failed',
            jsonb_build_object('run_id', r.id, 'server_id', r.server_id, 'pages', r.pages,
                               'error', r.error));
END
$$;

-- Runs whose page task ended without being projected (cancelled or
-- archived) fail; then recurring runs that are due start (each server
-- picked by one caller: SKIP LOCKED). Returns the runs started, whose first
-- pages the caller enqueues in the same transaction.
CREATE FUNCTION panel1_sync_schedule(p_limit integer)
RETURNS TABLE(run_id uuid, tenant_id uuid, server_id uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    d record;
    o record;
    v_state text;
BEGIN
    FOR o IN
        SELECT r.id, r.page_task_id FROM sync_runs r
        WHERE r.state = 'running' AND r.page_task_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM task_queue q WHERE q.task_id = r.page_task_id)
    LOOP
        -- Held by a completion now: it is being projected.
        PERFORM 1 FROM sync_runs r WHERE r.id = o.id AND r.state = 'running' FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;
        -- Again under the lock, on a fresh snapshot: still orphaned?
        PERFORM 1 FROM sync_runs r
        WHERE r.id = o.id AND r.state = 'running'
          AND NOT EXISTS (SELECT 1 FROM task_queue q WHERE q.task_id = r.page_task_id);
        IF NOT FOUND THEN
            CONTINUE;
        END IF;
        SELECT t.state::text INTO v_state FROM task_records t WHERE t.id = o.page_task_id;
        PERFORM panel1_sync_fail(o.id, format('the page task %s ended as %s without a result',
                                              o.page_task_id, coalesce(v_state, 'archived')));
    END LOOP;

    FOR d IN
        WITH due AS (
            SELECT s.server_id FROM sync_settings s
            WHERE s.recurring AND s.next_run_at <= now()
            ORDER BY s.next_run_at LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        )
        UPDATE sync_settings s SET next_run_at = now() + make_interval(secs => s.interval_secs)
        FROM due WHERE s.server_id = due.server_id
        RETURNING s.tenant_id, s.server_id
    LOOP
        RETURN QUERY
        SELECT x.run_id, d.tenant_id, d.server_id
        FROM panel1_sync_start(d.tenant_id, d.server_id, 'schedule') x WHERE x.created;
    END LOOP;
END
$$;

-- Record one page of a run (what `list-services` returned, or why the page
-- finally failed). Returns what comes next: `next` (enqueue page `page`
-- with the run's cursor), `finish` (the last page: compute the report),
-- `failed` or `ignored` (the run is not waiting for this task).
CREATE FUNCTION panel1_sync_page(p_run uuid, p_task uuid, p_remote_ids text[], p_states text[],
                                 p_plans text[], p_domains text[], p_next_cursor text,
                                 p_failure text, p_max_pages integer)
RETURNS TABLE(outcome text, tenant_id uuid, server_id uuid, page integer, cursor text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r sync_runs;
    n integer;
BEGIN
    SELECT * INTO r FROM sync_runs x WHERE x.id = p_run FOR UPDATE;
    IF NOT FOUND OR r.state <> 'running' OR r.page_task_id IS DISTINCT FROM p_task THEN
        RETURN QUERY SELECT 'ignored', NULL::uuid, NULL::uuid, NULL::integer, NULL::text;
        RETURN;
    END IF;
    IF p_failure IS NOT NULL THEN
        PERFORM panel1_sync_fail(p_run, format('page %s: %s', r.pages + 1, p_failure));
        RETURN QUERY SELECT 'failed', r.tenant_id, r.server_id, r.pages, NULL::text;
        RETURN;
    END IF;
    -- An account seen twice (offset paging while accounts come and go)
    -- keeps what was seen last.
    INSERT INTO sync_remote_items AS i (run_id, tenant_id, remote_id, state, plan, domain)
    SELECT DISTINCT ON (u.remote_id) p_run, r.tenant_id, u.remote_id, u.state, u.plan, u.domain
    FROM unnest(p_remote_ids, p_states, p_plans, p_domains) WITH ORDINALITY
         AS u(remote_id, state, plan, domain, n)
    ORDER BY u.remote_id, u.n DESC
    ON CONFLICT (run_id, remote_id) DO UPDATE
        SET state = EXCLUDED.state, plan = EXCLUDED.plan, domain = EXCLUDED.domain;
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE sync_runs x SET pages = x.pages + 1, remote_accounts = x.remote_accounts + n
    WHERE x.id = p_run;

    IF p_next_cursor IS NULL THEN
        RETURN QUERY SELECT 'finish', r.tenant_id, r.server_id, r.pages + 1, NULL::text;
    ELSIF r.pages + 1 >= p_max_pages THEN
        PERFORM panel1_sync_fail(p_run, format('the listing has more than %s pages', p_max_pages));
        RETURN QUERY SELECT 'failed', r.tenant_id, r.server_id, r.pages + 1, NULL::text;
    ELSIF p_next_cursor IS NOT DISTINCT FROM r.cursor THEN
        PERFORM panel1_sync_fail(p_run, format('page %s: the adapter returned the same cursor again', r.pages + 1));
        RETURN QUERY SELECT 'failed', r.tenant_id, r.server_id, r.pages + 1, NULL::text;
    ELSE
        UPDATE sync_runs x SET cursor = p_next_cursor WHERE x.id = p_run;
        RETURN QUERY SELECT 'next', r.tenant_id, r.server_id, r.pages + 1, p_next_cursor;
    END IF;
END
$$;

-- Why a service cannot be judged by this run (NULL: it can): an operation
-- is queued or running on it, one was accepted since the run started, or
-- it changed since. Platform tasks (usage samples, `panel1:` keys) never
-- move a service and do not count.
CREATE FUNCTION panel1_sync_busy(p_service uuid, p_updated_at timestamptz, p_since timestamptz)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM task_queue q JOIN task_records t ON t.id = q.task_id
                     WHERE q.service_id = p_service
                       AND NOT starts_with(coalesce(t.idempotency_key, ''), 'panel1:'))
            THEN 'an operation is queued or running on the service'
        WHEN EXISTS (SELECT 1 FROM task_records t
                     WHERE t.service_id = p_service AND t.created_at >= p_since
                       AND NOT starts_with(coalesce(t.idempotency_key, ''), 'panel1:'))
            THEN 'an operation on the service was accepted after the run started'
        WHEN p_updated_at >= p_since
            THEN 'the service changed after the run started'
    END
$$;

-- The last page is in: compare what the provider listed with the server's
-- services, store the report, apply the policy the run started with, and
-- raise the events. Returns the operations `reapply` wants enqueued (the
-- caller enqueues them through the normal task path, in this transaction,
-- and records their tasks with panel1_sync_acted).
CREATE FUNCTION panel1_sync_finish(p_run uuid, p_event_cap integer)
RETURNS TABLE(drift_id bigint, service_id uuid, operation text, input jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r sync_runs;
    v_adopted integer := 0;
    v_reapplied integer := 0;
    v_remote integer;
BEGIN
    SELECT * INTO r FROM sync_runs x WHERE x.id = p_run AND x.state = 'running' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    INSERT INTO sync_drift (run_id, tenant_id, server_id, kind, service_id, remote_id, panel1_state,
                            remote_state, panel1_plan, remote_plan, remote_domain, reason)
    WITH svc AS (
        -- Keyed as the one-live-service-per-account index keys them (0010).
        SELECT s.id, s.state::text AS state, s.plan, COALESCE(s.remote_id, s.spec->>'username') AS key,
               panel1_sync_busy(s.id, s.updated_at, r.started_at) AS busy
        FROM services s
        WHERE s.server_id = r.server_id AND s.tenant_id = r.tenant_id
    ),
    live AS (SELECT * FROM svc WHERE state <> 'terminated'),
    -- A terminated service's account may still be listed by a page read
    -- before its terminate ran.
    gone AS (
        SELECT DISTINCT ON (key) key, busy FROM svc
        WHERE state = 'terminated' AND busy IS NOT NULL AND key IS NOT NULL
        ORDER BY key
    ),
    remote AS (
        SELECT i.remote_id, i.state, i.plan, i.domain FROM sync_remote_items i
        WHERE i.run_id = p_run AND i.state <> 'terminated'
    ),
    pairs AS (
        SELECT l.id, l.state, l.plan, l.key, l.busy,
               x.remote_id, x.state AS rstate, x.plan AS rplan, x.domain AS rdomain
        FROM live l FULL JOIN remote x ON x.remote_id = l.key
    ),
    found AS (
        SELECT 'missing_remotely' AS kind, p.id, p.key AS remote_id, p.state, NULL AS rstate,
               p.plan, NULL AS rplan, NULL AS rdomain, p.busy
        FROM pairs p
        WHERE p.id IS NOT NULL AND p.remote_id IS NULL AND p.state IN ('active', 'suspended')
        UNION ALL
        SELECT 'unknown_remotely', NULL, p.remote_id, NULL, p.rstate, NULL, p.rplan, p.rdomain,
               (SELECT g.busy FROM gone g WHERE g.key = p.remote_id)
        FROM pairs p
        WHERE p.id IS NULL
        UNION ALL
        SELECT 'state_differs', p.id, p.remote_id, p.state, p.rstate, p.plan, p.rplan, p.rdomain, p.busy
        FROM pairs p
        WHERE p.id IS NOT NULL AND p.remote_id IS NOT NULL
          AND p.state IN ('active', 'suspended', 'failed') AND p.rstate <> p.state
        UNION ALL
        SELECT 'plan_differs', p.id, p.remote_id, p.state, p.rstate, p.plan, p.rplan, p.rdomain, p.busy
        FROM pairs p
        WHERE p.id IS NOT NULL AND p.remote_id IS NOT NULL AND p.state IN ('active', 'suspended')
          AND p.plan IS NOT NULL AND p.rplan IS NOT NULL AND p.plan <> p.rplan
    )
    SELECT r.id, r.tenant_id, r.server_id, f.kind, f.id, f.remote_id, f.state, f.rstate, f.plan,
           f.rplan, f.rdomain, NULL
    FROM found f WHERE f.busy IS NULL
    UNION ALL
    -- One `skipped` row per service (or account) however many differences.
    SELECT DISTINCT ON (coalesce(f.id::text, f.remote_id))
           r.id, r.tenant_id, r.server_id, 'skipped', f.id, f.remote_id, f.state, f.rstate, f.plan,
           f.rplan, f.rdomain, f.busy
    FROM found f WHERE f.busy IS NOT NULL;

    SELECT count(*) INTO v_remote FROM sync_remote_items i WHERE i.run_id = p_run;

    -- adopt: an account nobody in Panel1 holds, active or suspended on the
    -- provider, becomes a service of the server's tenant in that state.
    IF r.policy = 'adopt' THEN
        WITH cand AS (
            SELECT d.id AS drift_id, d.remote_id, d.remote_state, d.remote_plan, d.remote_domain,
                   panel1_uuid_v7() AS new_id
            FROM sync_drift d
            WHERE d.run_id = p_run AND d.kind = 'unknown_remotely'
              AND d.remote_state IN ('active', 'suspended')
            ORDER BY d.id
        ),
        made AS (
            -- A live service that took the account meanwhile wins (the
            -- one-live-service-per-account index).
            INSERT INTO services (id, tenant_id, server_id, remote_id, plan, spec, state)
            SELECT c.new_id, r.tenant_id, r.server_id, c.remote_id, c.remote_plan,
                   jsonb_build_object('domain', c.remote_domain, 'plan', c.remote_plan,
                                      'adopted_by_sync_run', r.id),
                   c.remote_state::service_state
            FROM cand c
            ON CONFLICT DO NOTHING
            RETURNING id
        ),
        marked AS (
            UPDATE sync_drift d SET action = 'adopted', service_id = c.new_id
            FROM cand c JOIN made m ON m.id = c.new_id
            WHERE d.id = c.drift_id
            RETURNING d.service_id, d.remote_id, d.remote_state, d.remote_plan, d.remote_domain
        ),
        told AS (
            INSERT INTO events (tenant_id, kind, service_id, payload)
            SELECT r.tenant_id, 'service.adopted', m.service_id,
                   jsonb_build_object('run_id', r.id, 'server_id', r.server_id,
                                      'remote_id', m.remote_id, 'state', m.remote_state,
                                      'plan', m.remote_plan, 'domain', m.remote_domain)
            FROM marked m
        )
        SELECT count(*) INTO v_adopted FROM marked;
    END IF;

    -- reapply: Panel1's state and plan go back to the provider through the
    -- ordinary operations; nothing is provisioned or terminated.
    IF r.policy = 'reapply' THEN
        -- The services, locked in id order (as an API action locks one),
        -- then judged again on a fresh snapshot: an operation accepted
        -- meanwhile wins.
        PERFORM 1 FROM services s
        WHERE s.id IN (SELECT d.service_id FROM sync_drift d
                       WHERE d.run_id = p_run AND d.kind IN ('state_differs', 'plan_differs'))
        ORDER BY s.id FOR UPDATE OF s;
        UPDATE sync_drift d
        SET action = CASE
                WHEN d.kind = 'plan_differs' THEN 'change-package'
                WHEN d.panel1_state = 'active' THEN 'unsuspend'
                ELSE 'suspend'
            END
        FROM services s
        WHERE d.run_id = p_run AND s.id = d.service_id
          AND s.state::text = d.panel1_state
          AND panel1_sync_busy(s.id, s.updated_at, r.started_at) IS NULL
          AND ((d.kind = 'state_differs'
                AND ((d.panel1_state = 'active' AND d.remote_state = 'suspended')
                  OR (d.panel1_state = 'suspended' AND d.remote_state = 'active')))
            OR (d.kind = 'plan_differs' AND s.plan IS NOT DISTINCT FROM d.panel1_plan));
        GET DIAGNOSTICS v_reapplied = ROW_COUNT;
    END IF;

    -- Events: one per difference on a Panel1 service (the first
    -- p_event_cap of them), then the summary.
    INSERT INTO events (tenant_id, kind, service_id, payload)
    SELECT r.tenant_id, 'service.drift_detected', d.service_id,
           jsonb_build_object('run_id', r.id, 'server_id', r.server_id, 'kind', d.kind,
                              'remote_id', d.remote_id, 'panel1_state', d.panel1_state,
                              'remote_state', d.remote_state, 'panel1_plan', d.panel1_plan,
                              'remote_plan', d.remote_plan, 'action', d.action)
    FROM sync_drift d
    WHERE d.run_id = p_run AND d.service_id IS NOT NULL
      AND d.kind IN ('missing_remotely', 'state_differs', 'plan_differs')
    ORDER BY d.id
    LIMIT p_event_cap;

    UPDATE sync_runs x
    SET state = 'completed', finished_at = now(), cursor = NULL, page_task_id = NULL,
        remote_accounts = v_remote,
        missing_remotely = c.missing, unknown_remotely = c.unknown, state_differs = c.states,
        plan_differs = c.plans, skipped = c.skipped, adopted = v_adopted, reapplied = v_reapplied
    FROM (
        SELECT count(*) FILTER (WHERE d.kind = 'missing_remotely') AS missing,
               count(*) FILTER (WHERE d.kind = 'unknown_remotely') AS unknown,
               count(*) FILTER (WHERE d.kind = 'state_differs') AS states,
               count(*) FILTER (WHERE d.kind = 'plan_differs') AS plans,
               count(*) FILTER (WHERE d.kind = 'skipped') AS skipped
        FROM sync_drift d WHERE d.run_id = p_run
    ) c
    WHERE x.id = p_run
    RETURNING * INTO r;
    DELETE FROM sync_remote_items i WHERE i.run_id = p_run;

    INSERT INTO events (tenant_id, kind, payload)
    VALUES (r.tenant_id, 'server.sync_completed',
            jsonb_build_object('run_id', r.id, 'server_id', r.server_id, 'policy', r.policy,
                               'pages', r.pages, 'remote_accounts', r.remote_accounts,
                               'missing_remotely', r.missing_remotely,
                               'unknown_remotely', r.unknown_remotely,
                               'state_differs', r.state_differs, 'plan_differs', r.plan_differs,
                               'skipped', r.skipped, 'adopted', r.adopted,
                               'reapplied', r.reapplied));

    -- The operations to enqueue, with the input an API action would give
    -- them (routes/services.rs: service_input).
    RETURN QUERY
    SELECT d.id, s.id, d.action,
           jsonb_build_object('service',
               coalesce((SELECT jsonb_object_agg(k.key, k.value) FROM jsonb_each(s.spec) k
                         WHERE k.key IN ('username', 'domain', 'contact_email', 'params')
                           AND k.value <> 'null'::jsonb), '{}'::jsonb)
               || jsonb_build_object('service_id', s.id::text, 'remote_id', s.remote_id,
                                     'plan', s.plan))
           || CASE d.action
                  WHEN 'change-package' THEN jsonb_build_object('plan', s.plan)
                  WHEN 'suspend' THEN jsonb_build_object('reason', 'Panel1 sync re-applied the suspension')
                  ELSE '{}'::jsonb
              END
    FROM sync_drift d JOIN services s ON s.id = d.service_id
    WHERE d.run_id = p_run AND d.action IN ('suspend', 'unsuspend', 'change-package')
    ORDER BY d.id;
END
$$;

-- Record the task a `reapply` action was enqueued as.
CREATE FUNCTION panel1_sync_acted(p_drift bigint[], p_task uuid[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE sync_drift d SET action_task_id = u.task
    FROM unnest(p_drift, p_task) AS u(drift, task)
    WHERE d.id = u.drift
$$;
