-- Issue 19: recorded attempts, candidate adapter versions and shadow runs
-- (docs/shadow-runs.md). No functions: the statements live in
-- runtime/store/src/shadow.rs.

-- Opt-in per server: the worker keeps each attempt's HTTP exchanges.
ALTER TABLE servers ADD COLUMN record_exchanges boolean NOT NULL DEFAULT false;

-- A candidate is uploaded beside the version servers run and is used by no
-- server until it is promoted (which needs a clean or accepted shadow run).
ALTER TABLE adapter_versions
    ADD COLUMN candidate    boolean NOT NULL DEFAULT false,
    ADD COLUMN promoted_at  timestamptz;

-- One attempt's exchanges, redacted as `panel1 adapter run --record` writes
-- them (secrets as placeholders), capped per exchange and per attempt.
-- Pruned after 14 days by the workers' upkeep. Not a foreign key to
-- task_attempts: it is written right after the attempt's completion commits.
CREATE TABLE attempt_recordings (
    task_id             uuid NOT NULL,
    attempt             integer NOT NULL,
    tenant_id           uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    server_id           uuid NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    adapter_version_id  uuid NOT NULL REFERENCES adapter_versions(id) ON DELETE CASCADE,
    operation           text NOT NULL,
    input               jsonb NOT NULL,
    -- {"status": "ok" | "adapter-error" | "sandbox-error", "kind": ...}
    outcome             jsonb NOT NULL,
    -- The exchanges of a `panel1-http-fixture` (version 1).
    exchanges           jsonb NOT NULL,
    -- false when a cap cut a body or dropped exchanges: not replayed.
    complete            boolean NOT NULL,
    bytes               integer NOT NULL CHECK (bytes >= 0),
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, attempt)
);
CREATE INDEX attempt_recordings_version ON attempt_recordings (tenant_id, adapter_version_id, recorded_at DESC);
CREATE INDEX attempt_recordings_age ON attempt_recordings (recorded_at);

-- A shadow run replays recorded attempts against a candidate, in a worker.
-- The row is the queue entry: `pending` until a worker leases it.
CREATE TABLE shadow_runs (
    id                    uuid PRIMARY KEY,
    tenant_id             uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    candidate_version_id  uuid NOT NULL REFERENCES adapter_versions(id) ON DELETE CASCADE,
    max_attempts          integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 200),
    state                 text NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'running', 'completed', 'failed')),
    leased_by             text,
    lease_expires_at      timestamptz,
    tries                 integer NOT NULL DEFAULT 0,
    report                jsonb,
    clean                 boolean,
    failure               text,
    accepted_at           timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    finished_at           timestamptz,
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL)),
    CHECK ((state IN ('completed', 'failed')) = (finished_at IS NOT NULL)),
    CHECK ((state = 'completed') = (clean IS NOT NULL))
);
CREATE INDEX shadow_runs_candidate ON shadow_runs (tenant_id, candidate_version_id, created_at DESC);
CREATE INDEX shadow_runs_open ON shadow_runs (created_at) WHERE state IN ('pending', 'running');

-- New runs wake the workers (a slow poll covers a lost notification).
CREATE FUNCTION panel1_shadow_run_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('panel1_shadow_runs', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER shadow_runs_notify AFTER INSERT ON shadow_runs
    FOR EACH ROW EXECUTE FUNCTION panel1_shadow_run_notify();
