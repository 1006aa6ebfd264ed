-- Claims run in a function so that the per-server cap is counted after the
-- server rows are locked. A single statement counts running tasks with the
-- snapshot it started with: a claim committed by another worker between that
-- snapshot and our lock was invisible, and the cap could be passed (a stress
-- test saw 4 running on a server capped at 2). A VOLATILE function takes a
-- fresh snapshot for each of its statements (READ COMMITTED), so the count
-- below sees every claim committed before we held the lock, in one round trip.
CREATE FUNCTION claim_tasks(p_limit integer, p_worker text, p_lease_secs double precision)
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
    -- Servers with available work and (as far as this snapshot knows) room,
    -- at most one per task wanted, locked; concurrent claimers skip to
    -- others. The probe's ORDER BY is the index's: without it a generic plan
    -- may seq-scan every finished row before an available one.
    SELECT array_agg(l.id) INTO locked FROM (
        SELECT s.id FROM servers s
        WHERE (SELECT true FROM tasks t WHERE t.server_id = s.id AND t.state = 'available'
               ORDER BY t.priority DESC, t.run_at, t.id LIMIT 1)
          AND s.max_concurrency > (SELECT count(*) FROM tasks r WHERE r.server_id = s.id AND r.state = 'running')
        ORDER BY s.id
        LIMIT p_limit
        FOR UPDATE OF s SKIP LOCKED
    ) l;
    IF locked IS NULL THEN
        -- Every such server is being claimed from right now (a claim holds
        -- its lock for well under a millisecond): wait briefly for the first
        -- rather than come back empty, so claimers on one busy server take
        -- turns instead of idling until the next wake-up.
        BEGIN
            PERFORM set_config('lock_timeout', '20ms', true);
            SELECT array_agg(l.id) INTO locked FROM (
                SELECT s.id FROM servers s
                WHERE (SELECT true FROM tasks t WHERE t.server_id = s.id AND t.state = 'available'
                       ORDER BY t.priority DESC, t.run_at, t.id LIMIT 1)
                  AND s.max_concurrency > (SELECT count(*) FROM tasks r WHERE r.server_id = s.id AND r.state = 'running')
                ORDER BY s.id
                LIMIT 1
                FOR UPDATE OF s
            ) l;
        EXCEPTION WHEN lock_not_available THEN
            RETURN;
        END;
        PERFORM set_config('lock_timeout', timeout, true);
        IF locked IS NULL THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    WITH room AS (
        SELECT s.id, s.max_concurrency - (
                   SELECT count(*) FROM tasks r WHERE r.server_id = s.id AND r.state = 'running') AS room
        FROM servers s
        WHERE s.id = ANY (locked)
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
              -- One operation per service at a time, in order.
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
