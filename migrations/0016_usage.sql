-- Usage time series (issue 22 part 3; docs/usage.md).
--
-- Collection rides on platform tasks (0014): every worker's upkeep calls
-- panel1_usage_schedule about once a second; it enqueues, per server and
-- per interval, one `usage` task per active service at a fixed offset of
-- the interval (a hash of the service id), keyed `panel1:usage:<service>:<ms>`.
-- When such a task succeeds the store calls panel1_usage_record in the
-- completion's transaction: raw samples, the service's hourly and daily
-- rollups (upserts) and the limit-crossing events. Server rollups (what the
-- per-server and per-tenant aggregates read) are recomputed for the open
-- buckets by panel1_usage_upkeep once a minute, which also prunes.

-- A v7 (time-ordered) uuid, as Uuid::now_v7 makes them: task ids are
-- compared and paged by id.
CREATE FUNCTION panel1_uuid_v7() RETURNS uuid
    LANGUAGE sql VOLATILE
    AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- Per server: how often its services are sampled and up to when
-- occurrences were enqueued. A row is made for every server the first time
-- the scheduler sees it (no trigger on `servers`), starting an interval
-- later; setting a schedule starts it at once.
CREATE TABLE usage_schedules (
    server_id uuid PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- The API accepts 60 s and more; the store lets tests go down to 2 s.
    interval_secs integer NOT NULL DEFAULT 3600 CHECK (interval_secs BETWEEN 2 AND 604800),
    enabled boolean NOT NULL DEFAULT true,
    scheduled_until timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_schedules_due ON usage_schedules (scheduled_until) WHERE enabled;
CREATE INDEX usage_schedules_tenant ON usage_schedules (tenant_id);

-- Raw samples: one row per metric per collection. Appended in time order,
-- so a BRIN index on `at` serves retention and time-range scans at a tiny
-- size; per-service reads go by (service_id, at).
CREATE TABLE usage_samples (
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    server_id uuid NOT NULL,
    service_id uuid NOT NULL,
    at timestamptz NOT NULL,
    metric text NOT NULL,
    value double precision NOT NULL,
    unit text NOT NULL
);
CREATE INDEX usage_samples_service ON usage_samples (service_id, at);
CREATE INDEX usage_samples_at ON usage_samples USING brin (at);

-- A service's hourly and daily figures, kept by the projection.
CREATE TABLE usage_rollups (
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    server_id uuid NOT NULL,
    service_id uuid NOT NULL,
    width text NOT NULL CHECK (width IN ('hour', 'day')),
    bucket timestamptz NOT NULL,
    metric text NOT NULL,
    unit text NOT NULL,
    samples integer NOT NULL,
    sum double precision NOT NULL,
    min double precision NOT NULL,
    max double precision NOT NULL,
    last double precision NOT NULL,
    last_at timestamptz NOT NULL,
    PRIMARY KEY (service_id, width, bucket, metric)
);
CREATE INDEX usage_rollups_bucket ON usage_rollups (width, bucket);

-- A server's figures per bucket: `total` is the sum of its services' last
-- values in the bucket, `services` how many reported, `max` the largest
-- single value. Kept by panel1_usage_upkeep (up to a minute behind).
CREATE TABLE usage_server_rollups (
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    server_id uuid NOT NULL,
    width text NOT NULL CHECK (width IN ('hour', 'day')),
    bucket timestamptz NOT NULL,
    metric text NOT NULL,
    unit text NOT NULL,
    services integer NOT NULL,
    total double precision NOT NULL,
    max double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, width, bucket, metric)
);
CREATE INDEX usage_server_rollups_tenant ON usage_server_rollups (tenant_id, width, bucket);
CREATE INDEX usage_server_rollups_bucket ON usage_server_rollups (width, bucket);

-- Whether each limited metric of a service was over its limit at the last
-- sample: an event is written only when this flips.
CREATE TABLE usage_limit_state (
    service_id uuid NOT NULL,
    metric text NOT NULL,
    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    over boolean NOT NULL,
    value double precision NOT NULL,
    lim double precision NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (service_id, metric)
);

-- When the upkeep last ran (one row): one worker does it per period.
CREATE TABLE usage_upkeep (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    ran_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO usage_upkeep DEFAULT VALUES;

-- Enqueue the usage occurrences that fell due since each server's last
-- pass, for up to p_max_servers servers (rows locked SKIP LOCKED, so
-- concurrent workers take other servers). A service's occurrences are the
-- instants k * interval + offset (epoch-aligned), offset a hash of its id:
-- a server's services are spread evenly over the interval. Only the latest
-- occurrence of a window is enqueued (missed ones collapse), none while the
-- service still has a usage task queued, and the key makes each one unique.
-- Returns how many tasks were created.
CREATE FUNCTION panel1_usage_schedule(p_max_servers integer) RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    n integer;
BEGIN
    -- A server first seen here starts after one default interval: the
    -- first pass over a new server (or every server, after this migration)
    -- is not a burst of samples, and a short-lived one never gets any.
    INSERT INTO usage_schedules (server_id, tenant_id, scheduled_until)
    SELECT s.id, s.tenant_id, now() + interval '3600 seconds' FROM servers s
    WHERE NOT EXISTS (SELECT 1 FROM usage_schedules u WHERE u.server_id = s.id)
    ON CONFLICT DO NOTHING;

    WITH due AS (
        SELECT u.server_id, u.interval_secs::bigint * 1000 AS every_ms,
               (extract(epoch FROM u.scheduled_until) * 1000)::bigint AS since_ms
        FROM usage_schedules u
        WHERE u.enabled AND u.scheduled_until < now()
        ORDER BY u.scheduled_until
        LIMIT p_max_servers
        FOR UPDATE SKIP LOCKED
    ),
    advanced AS (
        UPDATE usage_schedules u SET scheduled_until = now()
        FROM due d WHERE u.server_id = d.server_id
    ),
    occ AS (
        SELECT s.id, s.tenant_id, s.server_id, s.remote_id, s.plan, s.spec,
               x.k * d.every_ms + x.off AS at_ms, d.since_ms
        FROM due d
        JOIN services s ON s.server_id = d.server_id AND s.state = 'active'
        CROSS JOIN LATERAL (
            SELECT (((hashtextextended(s.id::text, 0) % d.every_ms) + d.every_ms) % d.every_ms) AS off
        ) o
        CROSS JOIN LATERAL (
            SELECT ((extract(epoch FROM now()) * 1000)::bigint - o.off) / d.every_ms AS k, o.off
        ) x
    ),
    fresh AS (
        SELECT o.* FROM occ o
        WHERE o.at_ms > o.since_ms
          AND NOT EXISTS (
              SELECT 1 FROM task_queue q JOIN task_records r ON r.id = q.task_id
              WHERE q.service_id = o.id AND r.idempotency_key LIKE 'panel1:usage:%')
    ),
    t AS (
        INSERT INTO task_records (id, tenant_id, server_id, service_id, operation, input, state,
                                  run_at, max_attempts, priority, idempotency_key, created_at)
        SELECT panel1_uuid_v7(), f.tenant_id, f.server_id, f.id, 'usage',
               jsonb_build_object('service', jsonb_strip_nulls(jsonb_build_object(
                   'service_id', f.id::text, 'remote_id', f.remote_id, 'plan', f.plan,
                   'username', f.spec -> 'username', 'domain', f.spec -> 'domain',
                   'contact_email', f.spec -> 'contact_email', 'params', f.spec -> 'params'))),
               'available', now(), 3, -10,
               'panel1:usage:' || f.id::text || ':' || f.at_ms::text, clock_timestamp()
        FROM fresh f
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
    SELECT count(*) INTO n FROM q;
    IF n > 0 THEN
        PERFORM pg_notify('panel1_tasks', '');
    END IF;
    RETURN n;
END
$$;

-- Record one successful collection (called in the completion's
-- transaction; the caller has checked names, values and units and removed
-- duplicate names). A `<x>_used` metric with a `<x>_limit` beside it (> 0;
-- 0 means unlimited) is checked: `service.usage_limit_exceeded` when it goes
-- over, `service.usage_limit_cleared` when it comes back within.
CREATE FUNCTION panel1_usage_record(p_tenant uuid, p_server uuid, p_service uuid,
                                    p_names text[], p_values double precision[], p_units text[])
    RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_at timestamptz := now();
BEGIN
    INSERT INTO usage_samples (tenant_id, server_id, service_id, at, metric, value, unit)
    SELECT p_tenant, p_server, p_service, v_at, m.n, m.v, m.u
    FROM unnest(p_names, p_values, p_units) AS m(n, v, u);

    INSERT INTO usage_rollups AS r (tenant_id, server_id, service_id, width, bucket, metric, unit,
                                    samples, sum, min, max, last, last_at)
    SELECT p_tenant, p_server, p_service, w.width, date_trunc(w.width, v_at, 'UTC'), m.n, m.u,
           1, m.v, m.v, m.v, m.v, v_at
    FROM unnest(p_names, p_values, p_units) AS m(n, v, u)
    CROSS JOIN (VALUES ('hour'), ('day')) AS w(width)
    ON CONFLICT (service_id, width, bucket, metric) DO UPDATE
    SET samples = r.samples + 1, sum = r.sum + EXCLUDED.sum,
        min = LEAST(r.min, EXCLUDED.min), max = GREATEST(r.max, EXCLUDED.max),
        last = CASE WHEN EXCLUDED.last_at >= r.last_at THEN EXCLUDED.last ELSE r.last END,
        last_at = GREATEST(r.last_at, EXCLUDED.last_at), unit = EXCLUDED.unit;

    -- One usage task per service runs at a time (the queue's service
    -- order), so the state read here is not raced.
    WITH pairs AS (
        SELECT u.n AS metric, u.v AS value, l.v AS lim, u.u AS unit
        FROM unnest(p_names, p_values, p_units) AS u(n, v, u)
        JOIN unnest(p_names, p_values) AS l(n, v) ON l.n = left(u.n, -5) || '_limit'
        WHERE right(u.n, 5) = '_used' AND l.v > 0
    ),
    flips AS (
        SELECT p.*, p.value > p.lim AS over
        FROM pairs p
        LEFT JOIN usage_limit_state s ON s.service_id = p_service AND s.metric = p.metric
        WHERE (p.value > p.lim) IS DISTINCT FROM COALESCE(s.over, false)
    ),
    kept AS (
        INSERT INTO usage_limit_state AS s (service_id, metric, tenant_id, over, value, lim, changed_at)
        SELECT p_service, p.metric, p_tenant, p.value > p.lim, p.value, p.lim, v_at FROM pairs p
        ON CONFLICT (service_id, metric) DO UPDATE
        SET value = EXCLUDED.value, lim = EXCLUDED.lim,
            changed_at = CASE WHEN s.over <> EXCLUDED.over THEN EXCLUDED.changed_at ELSE s.changed_at END,
            over = EXCLUDED.over
    )
    INSERT INTO events (tenant_id, kind, service_id, payload)
    SELECT p_tenant,
           CASE WHEN f.over THEN 'service.usage_limit_exceeded' ELSE 'service.usage_limit_cleared' END,
           p_service,
           jsonb_build_object('metric', f.metric, 'value', f.value, 'limit', f.lim, 'unit', f.unit,
                              'at', v_at)
    FROM flips f
    ORDER BY f.metric;
END
$$;

-- Recompute the server rollups of the open buckets (this hour and the
-- last, today and yesterday: samples are stamped when recorded, so nothing
-- lands earlier) and prune what is past retention, in batches. Runs when
-- the last run is at least p_every old (one caller wins; the others skip).
-- Returns false when it did not run.
CREATE FUNCTION panel1_usage_upkeep(p_every interval, p_raw interval, p_hourly interval,
                                    p_daily interval, p_batch integer)
    RETURNS boolean
    LANGUAGE plpgsql
    AS $$
DECLARE
    h0 timestamptz := date_trunc('hour', now(), 'UTC') - interval '1 hour';
    d0 timestamptz := date_trunc('day', now(), 'UTC') - interval '1 day';
BEGIN
    PERFORM 1 FROM usage_upkeep WHERE ran_at <= now() - p_every FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE usage_upkeep SET ran_at = now();

    INSERT INTO usage_server_rollups AS a (tenant_id, server_id, width, bucket, metric, unit,
                                           services, total, max, updated_at)
    SELECT r.tenant_id, r.server_id, r.width, r.bucket, r.metric, max(r.unit), count(*),
           sum(r.last), max(r.max), now()
    FROM usage_rollups r
    WHERE (r.width = 'hour' AND r.bucket >= h0) OR (r.width = 'day' AND r.bucket >= d0)
    GROUP BY r.tenant_id, r.server_id, r.width, r.bucket, r.metric
    ON CONFLICT (server_id, width, bucket, metric) DO UPDATE
    SET unit = EXCLUDED.unit, services = EXCLUDED.services, total = EXCLUDED.total,
        max = EXCLUDED.max, updated_at = EXCLUDED.updated_at;

    PERFORM panel1_usage_prune(p_raw, p_hourly, p_daily, p_batch);
    RETURN true;
END
$$;

-- Delete what is past retention, at most p_batch rows per table per call
-- (the next run takes the rest). Returns the rows deleted.
CREATE FUNCTION panel1_usage_prune(p_raw interval, p_hourly interval, p_daily interval,
                                   p_batch integer)
    RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    total bigint := 0;
    k bigint;
BEGIN
    DELETE FROM usage_samples WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM usage_samples WHERE at < now() - p_raw LIMIT p_batch));
    GET DIAGNOSTICS k = ROW_COUNT;
    total := total + k;
    DELETE FROM usage_rollups WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM usage_rollups
        WHERE (width = 'hour' AND bucket < now() - p_hourly) OR (width = 'day' AND bucket < now() - p_daily)
        LIMIT p_batch));
    GET DIAGNOSTICS k = ROW_COUNT;
    total := total + k;
    DELETE FROM usage_server_rollups WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM usage_server_rollups
        WHERE (width = 'hour' AND bucket < now() - p_hourly) OR (width = 'day' AND bucket < now() - p_daily)
        LIMIT p_batch));
    GET DIAGNOSTICS k = ROW_COUNT;
    RETURN total + k;
END
$$;
