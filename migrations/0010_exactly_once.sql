-- Idempotent POSTs, exactly once (issue 18). The API now writes the key,
-- the request's fingerprint and its answer in the transaction of the
-- request's effect (runtime/api/src/idempotency.rs): a row exists only for
-- a request that committed, always with its answer. The "in progress" rows
-- of the old scheme (status NULL, a 120 s lease) are leftovers of requests
-- that never answered; removing them lets their retries run.
DELETE FROM api_idempotency WHERE status IS NULL;
ALTER TABLE api_idempotency ALTER COLUMN status SET NOT NULL;

-- One remote account, one service: a service's identity on its server (the
-- adapter's remote id once known, else the username it was created with)
-- is unique among the server's live services. A terminated service frees
-- it. Concurrent creates of the same account are serialized by the index:
-- the second waits for the first and is refused (the API answers 409 naming
-- the service that holds the account). If live duplicates exist from
-- before, this migration fails until they are terminated (it cannot know
-- which one of them the account belongs to).
CREATE UNIQUE INDEX services_live_remote_account
    ON services (server_id, (COALESCE(remote_id, spec->>'username')))
    WHERE state <> 'terminated';
