-- The REST API's tables: API keys, idempotent POST replays, adapter version
-- inspection, and the wake-up for event streams.

-- API keys: only a SHA-256 of the key is stored. `prefix` (the key's first
-- characters, not secret) finds the row; the hash is compared in constant
-- time. tenant_id NULL = a platform key (tenants, built-in adapters).
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    tenant_id     uuid REFERENCES tenants(id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix        text NOT NULL UNIQUE,
    hash          bytea NOT NULL CHECK (length(hash) = 32),
    scopes        text[] NOT NULL CHECK (cardinality(scopes) > 0
                      AND scopes <@ ARRAY['platform', 'admin', 'write', 'read']::text[]),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    -- Platform keys carry the platform scope, tenant keys never do.
    CHECK ((tenant_id IS NULL) = ('platform' = ANY (scopes)))
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

-- `Idempotency-Key` on POST: the first answer is kept and replayed for the
-- same key and body; another body under the same key is refused. `owner` is
-- the tenant id, or the nil uuid for platform keys.
CREATE TABLE api_idempotency (
    owner         uuid NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    method        text NOT NULL,
    path          text NOT NULL,
    request_hash  text NOT NULL,
    status        smallint,            -- NULL while the first request runs
    body          jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, key)
);
CREATE INDEX api_idempotency_age ON api_idempotency (created_at);

-- An uploaded version is validated and compiled by the API, then inspected by
-- a worker (which runs `info` in the sandbox: the API never runs adapters).
-- Servers can only be created on a `ready` version.
CREATE TYPE adapter_version_status AS ENUM ('inspecting', 'ready', 'rejected');
ALTER TABLE adapter_versions
    ADD COLUMN status         adapter_version_status NOT NULL DEFAULT 'inspecting',
    ADD COLUMN info           jsonb,
    ADD COLUMN config_schema  jsonb,
    ADD COLUMN rejection      text,
    ADD COLUMN inspected_at   timestamptz,
    ADD CONSTRAINT adapter_version_inspected
        CHECK ((status = 'inspecting') = (inspected_at IS NULL)),
    ADD CONSTRAINT adapter_version_ready_has_info
        CHECK (status <> 'ready' OR (info IS NOT NULL AND config_schema IS NOT NULL));
CREATE INDEX adapter_versions_inspecting ON adapter_versions (created_at) WHERE status = 'inspecting';

-- Server secrets are named by servers; listing secrets by server goes through here.
CREATE INDEX server_secrets_secret ON server_secrets (secret_id);
CREATE INDEX services_server ON services (server_id);
CREATE INDEX tasks_service ON tasks (service_id, created_at) WHERE service_id IS NOT NULL;
CREATE INDEX events_task ON events (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX events_service ON events (service_id) WHERE service_id IS NOT NULL;

-- Event streams wake on this channel (one notification per statement, not
-- per row; the payload is the newest id). Streams read the table itself, so
-- a lost notification only delays, it never loses an event.
CREATE FUNCTION panel1_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('panel1_events', '');
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION panel1_events_notify();

-- Adapter versions waiting for inspection wake the workers.
CREATE FUNCTION panel1_adapter_version_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('panel1_adapters', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER adapter_versions_notify AFTER INSERT ON adapter_versions
    FOR EACH ROW WHEN (NEW.status = 'inspecting') EXECUTE FUNCTION panel1_adapter_version_notify();
