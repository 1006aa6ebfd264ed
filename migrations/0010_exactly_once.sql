-- Idempotent POSTs, exactly once (issue 18). The API now writes the key,
-- the request's fingerprint and its answer in the transaction of the
-- request's effect (runtime/api/src/idempotency.rs): a row exists only for
-- a request that committed, always with its answer. The "in progress" rows
-- of the old scheme (status NULL, a 120 s lease) are leftovers of requests
-- that never answered; removing them lets their retries run.
DELETE FROM api_idempotency WHERE status IS NULL;
ALTER TABLE api_idempotency ALTER COLUMN status SET NOT NULL;
