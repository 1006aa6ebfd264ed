//! The floor: how fast this Postgres can do the writes every job of the
//! issue needs, with nothing else in the way. Each job is claimed under a
//! lease counter in a narrow queue table (one claim index), then completed
//! in one transaction that writes the task's final state, an attempt row and
//! an outbox event, and deletes the queue row. No worker, no sandbox, no
//! JSON payloads to speak of, no caps, no service ordering, no rescuer, no
//! NOTIFY, and no contention between claimers: each connection claims from
//! its own shard of the queue. An upper bound on any queue with these writes
//! on this machine, run beside ours and the peer's, twice: with minimal
//! task/attempt/event tables, and with Panel1's own (`task_records`,
//! `task_attempts`, `events` with their indexes and trigger), which is the
//! ceiling of a narrow-queue design over Panel1's schema. (Claimers sharing
//! one queue also hit a Postgres limit: a `SKIP LOCKED` claim that follows a
//! row's update chain waits on the lock it finds there, and two such
//! claimers can deadlock for `deadlock_timeout`.)
//!
//! A third floor adds the sandbox: Panel1's tables, and each job also runs
//! the reference adapter's `info` in the sandbox (the worker's own call,
//! default limits) and stores its result: a bound on a worker of this
//! design that runs the no-op operation on Panel1's tables and keeps
//! what it returned.
use panel1_sandbox::{CallRequest, HostContext, LoadedAdapter, Operation, Outcome, Sandbox};
use serde_json::Value;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Where the task rows, attempts and events go.
#[derive(Clone, Copy)]
pub enum Tables {
    /// floor_tasks / floor_attempts / floor_events: primary keys only.
    Minimal,
    /// Panel1's task_records / task_attempts / events, for this tenant and server.
    Panel1 { tenant: Uuid, server: Uuid },
}

/// The sandbox call each job of the third floor makes.
#[derive(Clone)]
pub struct Call {
    pub sandbox: Arc<Sandbox>,
    pub adapter: Arc<LoadedAdapter>,
    pub context: Arc<HostContext>,
}

impl Call {
    /// Run `info` for the job `id` as the worker does; its result.
    async fn run(&self, id: Uuid) -> Value {
        let request = CallRequest {
            operation: Operation::Info,
            input: Value::Null,
            idempotency_key: id.to_string(),
            attempt: 1,
        };
        let report = self
            .sandbox
            .call(&self.adapter, self.context.clone(), &request)
            .await
            .unwrap();
        match report.outcome {
            Outcome::Ok { result } => result,
            other => panic!("info failed in the floor: {other:?}"),
        }
    }
}

impl Tables {
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Tables::Minimal => ("floor_tasks", "floor_attempts", "floor_events"),
            Tables::Panel1 { .. } => ("task_records", "task_attempts", "events"),
        }
    }
}

const SCHEMA: &str = "
DROP TABLE IF EXISTS floor_queue, floor_tasks, floor_attempts, floor_events;
CREATE TABLE floor_queue (
    id uuid PRIMARY KEY, shard integer NOT NULL, priority smallint NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(), lease bigint NOT NULL DEFAULT 0, locked_by text
);
CREATE INDEX floor_queue_available ON floor_queue (shard, priority DESC, run_at, id) WHERE locked_by IS NULL;
CREATE TABLE floor_tasks (
    id uuid PRIMARY KEY, tenant_id uuid NOT NULL, operation text NOT NULL, state text NOT NULL,
    attempt integer NOT NULL DEFAULT 0, lease bigint NOT NULL DEFAULT 0, result jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz
);
CREATE TABLE floor_attempts (
    task_id uuid NOT NULL, attempt integer NOT NULL, lease bigint NOT NULL, worker text,
    started_at timestamptz, finished_at timestamptz NOT NULL DEFAULT now(), outcome text NOT NULL,
    fuel bigint, wall_us bigint, peak_memory bigint, PRIMARY KEY (task_id, attempt)
);
CREATE TABLE floor_events (
    id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, kind text NOT NULL, task_id uuid,
    payload jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now()
);
";

/// Complete the jobs `$1` (ids) held under leases `$2`: queue row gone, task
/// final, attempt and event written, in one statement. With results, `$3`
/// holds each job's result; without, a small constant is stored.
fn complete(tables: Tables, results: bool) -> String {
    let (tasks, attempts, events) = tables.names();
    let (items, returning, result) = if results {
        (
            "unnest($1::uuid[], $2::int8[], $3::jsonb[]) AS h(id, lease, result)",
            ", h.result",
            "d.result",
        )
    } else {
        (
            "unnest($1::uuid[], $2::int8[]) AS h(id, lease)",
            "",
            "'{\"ok\": true}'",
        )
    };
    format!(
        "done AS (
             DELETE FROM floor_queue q USING {items}
             WHERE q.id = h.id AND q.lease = h.lease
             RETURNING q.id, q.lease{returning}
         ),
         task AS (
             UPDATE {tasks} t SET state = 'succeeded', attempt = t.attempt + 1, lease = d.lease,
                    result = {result}, updated_at = now(), finished_at = now()
             FROM done d WHERE t.id = d.id
             RETURNING t.id, t.tenant_id, t.attempt, t.lease
         ),
         attempt AS (
             INSERT INTO {attempts} (task_id, attempt, lease, worker, started_at, outcome, fuel,
                                     wall_us, peak_memory)
             SELECT id, attempt, lease, 'floor', now(), 'succeeded', 1000, 10, 65536 FROM task
         ),
         event AS (
             INSERT INTO {events} (tenant_id, kind, task_id, payload)
             SELECT tenant_id, 'task.succeeded', id, '{{\"state\": \"succeeded\"}}' FROM task
         )"
    )
}

/// Claim up to `limit` available jobs of shard `shard` (parameters); the
/// lease moves on.
fn claim(shard: &str, limit: &str) -> String {
    format!(
        "UPDATE floor_queue q SET lease = q.lease + 1, locked_by = 'floor'
         WHERE q.id = ANY (ARRAY(
             SELECT id FROM floor_queue WHERE shard = {shard} AND locked_by IS NULL
             ORDER BY priority DESC, run_at, id LIMIT {limit} FOR UPDATE SKIP LOCKED))
         RETURNING q.id, q.lease"
    )
}

/// Best jobs/s over `concurrencies` (each a fresh load of `n` jobs): one
/// commit per job (`batch` 1: each statement completes the job held and
/// claims the next, as a hand-off does) or batches of `batch` (claim, then
/// complete, two commits per batch). Like Panel1's completions, the floor
/// defers the outbox NOTIFY (`panel1.defer_events_notify`). With `call`,
/// each job runs it between its claim and its completion, which stores the
/// call's result.
pub async fn floor(
    pool: &PgPool,
    tables: Tables,
    call: Option<&Call>,
    n: usize,
    batch: usize,
    concurrencies: &[usize],
) -> f64 {
    let mut best: f64 = 0.0;
    let (tasks, _, _) = tables.names();
    for &conc in concurrencies {
        sqlx::raw_sql(SCHEMA).execute(pool).await.unwrap();
        let (tenant, server) = match tables {
            Tables::Minimal => (Uuid::new_v4(), None),
            Tables::Panel1 { tenant, server } => {
                sqlx::query("TRUNCATE task_records, task_queue, task_attempts, events, task_dependencies, task_waits")
                    .execute(pool)
                    .await
                    .unwrap();
                (tenant, Some(server))
            }
        };
        let load = match server {
            None => {
                "INSERT INTO floor_tasks (id, tenant_id, operation, state)
                     SELECT id, $1, 'info', 'available' FROM ids"
            }
            Some(_) => {
                "INSERT INTO task_records (id, tenant_id, server_id, operation, input, state)
                        SELECT id, $1, $4, 'info', '{}', 'available' FROM ids"
            }
        };
        sqlx::query(&format!(
            "WITH ids AS (SELECT gen_random_uuid() AS id, g % $3 AS shard FROM generate_series(1, $2) g),
             q AS (INSERT INTO floor_queue (id, shard) SELECT id, shard FROM ids)
             {load}"
        ))
        .bind(tenant)
        .bind(n as i64)
        .bind(conc as i64)
        .bind(server.unwrap_or(tenant))
        .execute(pool)
        .await
        .unwrap();
        sqlx::raw_sql(&format!("VACUUM ANALYZE floor_queue, {tasks}"))
            .execute(pool)
            .await
            .unwrap();
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for shard in 0..conc {
            let pool = pool.clone();
            let call = call.cloned();
            set.spawn(async move { drain(&pool, tables, call, shard as i32, batch).await });
        }
        let mut done = 0;
        while let Some(r) = set.join_next().await {
            done += r.unwrap();
        }
        let rate = n as f64 / t0.elapsed().as_secs_f64();
        let succeeded: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {tasks} WHERE state = 'succeeded'"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            (done, succeeded as usize),
            (n, n),
            "the floor completed every job once"
        );
        best = best.max(rate);
    }
    sqlx::raw_sql("DROP TABLE floor_queue, floor_tasks, floor_attempts, floor_events")
        .execute(pool)
        .await
        .unwrap();
    best
}

/// One connection's loop until nothing is left; returns the jobs it completed.
async fn drain(
    pool: &PgPool,
    tables: Tables,
    call: Option<Call>,
    shard: i32,
    batch: usize,
) -> usize {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET panel1.defer_events_notify = 'on'")
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut completed = 0;
    let mut held: Vec<(Uuid, i64)> = Vec::new();
    let complete_ctes = complete(tables, call.is_some());
    // The hand-off's shard follows the completion's parameters.
    let shard_param = if call.is_some() { "$4" } else { "$3" };
    let handoff = format!(
        "WITH {complete_ctes}, claimed AS ({}) SELECT id, lease FROM claimed",
        claim(shard_param, "1")
    );
    let claim_batch = claim("$1", "$2");
    let complete_batch = format!("WITH {complete_ctes} SELECT count(*) FROM task");
    loop {
        let ids: Vec<Uuid> = held.iter().map(|h| h.0).collect();
        let leases: Vec<i64> = held.iter().map(|h| h.1).collect();
        let mut results = Vec::new();
        if let Some(call) = &call {
            for id in &ids {
                results.push(call.run(*id).await);
            }
        }
        completed += held.len();
        if batch == 1 {
            let mut q = sqlx::query_as(&handoff).bind(&ids).bind(&leases);
            if call.is_some() {
                q = q.bind(&results);
            }
            held = q.bind(shard).fetch_all(&mut *conn).await.unwrap();
        } else {
            if !held.is_empty() {
                let mut q = sqlx::query_scalar(&complete_batch).bind(&ids).bind(&leases);
                if call.is_some() {
                    q = q.bind(&results);
                }
                let n: i64 = q.fetch_one(&mut *conn).await.unwrap();
                assert_eq!(n as usize, held.len());
            }
            held = sqlx::query_as(&claim_batch)
                .bind(shard)
                .bind(batch as i64)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        }
        if held.is_empty() {
            return completed;
        }
    }
}
