-- Request limits every API process shares: several `panel1 serve`
-- processes behind one load balancer must not multiply a key's rate or an
-- address's failed authentications by their number. The state lives here,
-- in unlogged tables: it is rewritten on most requests (no WAL for it), and
-- losing it in a Postgres crash only forgives everyone once.

-- Per API key: GCRA, one "theoretical arrival time" per key. A request is
-- admitted when, after adding one emission interval (1 s / rate) to
-- max(tat, now), the bucket is at most `burst` intervals ahead of now.
CREATE UNLOGGED TABLE api_rate_limits (
    key_id uuid PRIMARY KEY,
    tat    timestamptz NOT NULL
);

-- Per client address (IPv6 per /64): failures in the current window.
CREATE UNLOGGED TABLE api_auth_failures (
    addr         inet PRIMARY KEY,
    window_start timestamptz NOT NULL,
    failures     integer NOT NULL
);

-- One round trip per request: is the address blocked, is the key valid
-- (by prefix and SHA-256; a wrong key counts against the address), and may
-- the key make one more request. `outcome` is 'ok', 'unauthorized',
-- 'address-blocked' or 'rate-limited'; `wait` says how long the last two
-- last. The key's columns are set only for 'ok'.
CREATE FUNCTION panel1_admit(
    p_prefix      text,
    p_hash        bytea,
    p_addr        inet,
    p_fail_max    integer,
    p_fail_window interval,
    p_per_second  integer,
    p_burst       integer
) RETURNS TABLE (outcome text, wait interval, key_id uuid, tenant_id uuid, scopes text[])
LANGUAGE plpgsql AS $$
DECLARE
    now_ timestamptz := clock_timestamp();
    step interval := interval '1 second' / greatest(p_per_second, 1);
    k    record;
    blocked_until timestamptz;
    ahead timestamptz;
BEGIN
    -- Now and then, forget what no longer matters (rows are per key and
    -- per address, so a scan of guesses cannot grow them for long).
    IF random() < 0.001 THEN
        DELETE FROM api_rate_limits WHERE tat < now_ - interval '1 hour';
        DELETE FROM api_auth_failures WHERE window_start + p_fail_window < now_;
    END IF;

    IF p_addr IS NOT NULL THEN
        SELECT f.window_start + p_fail_window INTO blocked_until
        FROM api_auth_failures f
        WHERE f.addr = p_addr AND f.failures >= p_fail_max
          AND f.window_start + p_fail_window > now_;
        IF FOUND THEN
            RETURN QUERY SELECT 'address-blocked'::text, blocked_until - now_,
                                NULL::uuid, NULL::uuid, NULL::text[];
            RETURN;
        END IF;
    END IF;

    SELECT a.id, a.tenant_id, a.scopes,
           a.last_used_at IS NULL OR a.last_used_at < now_ - interval '1 minute' AS stale
    INTO k
    FROM api_keys a
    WHERE a.prefix = p_prefix AND a.hash = p_hash AND a.revoked_at IS NULL;
    IF NOT FOUND THEN
        IF p_addr IS NOT NULL THEN
            INSERT INTO api_auth_failures AS f (addr, window_start, failures)
            VALUES (p_addr, now_, 1)
            ON CONFLICT (addr) DO UPDATE SET
                window_start = CASE WHEN f.window_start + p_fail_window <= now_
                                    THEN now_ ELSE f.window_start END,
                failures = CASE WHEN f.window_start + p_fail_window <= now_
                                THEN 1 ELSE f.failures + 1 END;
        END IF;
        RETURN QUERY SELECT 'unauthorized'::text, NULL::interval,
                            NULL::uuid, NULL::uuid, NULL::text[];
        RETURN;
    END IF;

    -- At most one write a minute per key for its last use.
    IF k.stale THEN
        UPDATE api_keys SET last_used_at = now_ WHERE id = k.id;
    END IF;

    INSERT INTO api_rate_limits AS r (key_id, tat) VALUES (k.id, now_ + step)
    ON CONFLICT ON CONSTRAINT api_rate_limits_pkey DO UPDATE SET tat = greatest(r.tat, now_) + step
        WHERE greatest(r.tat, now_) + step - step * p_burst <= now_;
    IF NOT FOUND THEN
        SELECT greatest(r.tat, now_) + step - step * p_burst INTO ahead
        FROM api_rate_limits r WHERE r.key_id = k.id;
        RETURN QUERY SELECT 'rate-limited'::text, ahead - now_,
                            NULL::uuid, NULL::uuid, NULL::text[];
        RETURN;
    END IF;

    RETURN QUERY SELECT 'ok'::text, NULL::interval, k.id, k.tenant_id, k.scopes;
END
$$;
