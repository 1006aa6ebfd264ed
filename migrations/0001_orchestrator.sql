-- Panel1 orchestrator schema. Forward-only: change it with a new migration.
-- Invariants are enforced here, not only in Rust (see the comments).

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- An adapter is a named line of immutable versions. tenant_id NULL = built-in
-- (visible to every tenant).
CREATE TABLE adapters (
    id          uuid PRIMARY KEY,
    tenant_id   uuid REFERENCES tenants(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (tenant_id, name)
);

CREATE TABLE adapter_versions (
    id             uuid PRIMARY KEY,
    adapter_id     uuid NOT NULL REFERENCES adapters(id) ON DELETE CASCADE,
    version        text NOT NULL,
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    world_version  text NOT NULL,
    component      bytea NOT NULL,
    report         jsonb NOT NULL,
    deprecated     boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (adapter_id, version),
    UNIQUE (adapter_id, sha256)
);

-- A connection to one provider endpoint. `max_concurrency` caps the running
-- tasks on it (all tenants together); claims count them under a lock on this
-- row (see runtime/store/src/claim.rs).
CREATE TABLE servers (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                text NOT NULL,
    adapter_version_id  uuid NOT NULL REFERENCES adapter_versions(id),
    config              jsonb NOT NULL DEFAULT '{}',
    egress              jsonb NOT NULL DEFAULT '{"rules": []}',
    grants              jsonb NOT NULL DEFAULT '{}',
    limits              jsonb NOT NULL DEFAULT '{}',
    max_concurrency     integer NOT NULL DEFAULT 4 CHECK (max_concurrency > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- Secrets: AEAD ciphertext only; the plaintext never reaches the database.
CREATE TABLE secrets (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (name ~ '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$'),
    key_id        text NOT NULL,
    nonce         bytea NOT NULL,
    ciphertext    bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- Which secrets a server may use, and where each may be sent.
CREATE TABLE server_secrets (
    server_id     uuid NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    secret_id     uuid NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    destinations  text[] NOT NULL CHECK (cardinality(destinations) > 0),
    PRIMARY KEY (server_id, secret_id)
);

CREATE TYPE service_state AS ENUM (
    'pending', 'provisioning', 'active', 'suspended', 'terminating', 'terminated', 'failed'
);

CREATE TABLE services (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    server_id       uuid NOT NULL REFERENCES servers(id),
    remote_id       text,
    plan            text,
    spec            jsonb NOT NULL DEFAULT '{}',
    state           service_state NOT NULL DEFAULT 'pending',
    failure_reason  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX services_tenant ON services (tenant_id, created_at);

-- The closed task state set (see runtime/store/src/task_state.rs).
CREATE TYPE task_state AS ENUM (
    'scheduled', 'available', 'running', 'retryable', 'succeeded', 'failed', 'cancelled'
);

CREATE TABLE tasks (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    server_id         uuid NOT NULL REFERENCES servers(id),
    service_id        uuid REFERENCES services(id),
    operation         text NOT NULL,
    input             jsonb NOT NULL DEFAULT '{}',
    state             task_state NOT NULL,
    priority          smallint NOT NULL DEFAULT 0,
    run_at            timestamptz NOT NULL DEFAULT now(),
    attempt           integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    -- Incremented on every claim; every later write must match it.
    lease             bigint NOT NULL DEFAULT 0,
    leased_by         text,
    lease_expires_at  timestamptz,
    idempotency_key   text,
    result            jsonb,
    last_error        jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL)),
    CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
);
-- Idempotency keys are unique per tenant.
CREATE UNIQUE INDEX tasks_idempotency ON tasks (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- At most one running operation per service, whatever the workers do.
CREATE UNIQUE INDEX tasks_one_running_per_service ON tasks (service_id) WHERE state = 'running';
-- The claim path: due work in order.
CREATE INDEX tasks_available ON tasks (server_id, priority DESC, run_at, id) WHERE state = 'available';
CREATE INDEX tasks_pending_by_service ON tasks (service_id, created_at, id) WHERE state IN ('scheduled', 'available', 'retryable');
CREATE INDEX tasks_due ON tasks (run_at) WHERE state IN ('scheduled', 'retryable');
CREATE INDEX tasks_leases ON tasks (lease_expires_at) WHERE state = 'running';
CREATE INDEX tasks_running_by_server ON tasks (server_id) WHERE state = 'running';
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX tasks_tenant ON tasks (tenant_id, created_at);

-- One row per attempt, whatever its outcome (a rescued attempt included).
CREATE TABLE task_attempts (
    task_id        uuid NOT NULL,
    attempt        integer NOT NULL,
    lease          bigint NOT NULL,
    worker         text,
    started_at     timestamptz,
    finished_at    timestamptz NOT NULL DEFAULT now(),
    outcome        text NOT NULL CHECK (outcome IN ('succeeded', 'adapter-error', 'sandbox-error', 'abandoned', 'internal')),
    error_kind     text,
    error_message  text,
    fuel           bigint,
    wall_us        bigint,
    peak_memory    bigint,
    http_requests  integer,
    http_denied    integer,
    log            jsonb,
    http           jsonb,
    PRIMARY KEY (task_id, attempt)
);

-- Finished tasks leave the hot table (see `prune`).
CREATE TABLE tasks_archive (LIKE tasks INCLUDING DEFAULTS);

-- The outbox: written in the same transaction as the change it describes.
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    kind        text NOT NULL,
    task_id     uuid,
    service_id  uuid,
    payload     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_tenant ON events (tenant_id, id);

-- Recurring work (health checks, usage, backups): a cron expression that
-- enqueues a task when due.
CREATE TABLE recurring_tasks (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    server_id     uuid NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    service_id    uuid REFERENCES services(id) ON DELETE CASCADE,
    operation     text NOT NULL,
    input         jsonb NOT NULL DEFAULT '{}',
    cron          text NOT NULL,
    next_run_at   timestamptz NOT NULL,
    enabled       boolean NOT NULL DEFAULT true
);
CREATE INDEX recurring_due ON recurring_tasks (next_run_at) WHERE enabled;

-- Counters the queue keeps in the database (stale completions dropped ...).
CREATE TABLE queue_counters (
    name   text PRIMARY KEY,
    value  bigint NOT NULL DEFAULT 0
);
