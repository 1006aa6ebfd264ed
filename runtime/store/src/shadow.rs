//! Recorded attempts and shadow runs (migrations/0024, docs/shadow-runs.md):
//! the worker stores an opted-in server's attempt exchanges, and leases
//! shadow runs the API enqueued, replays recordings against the candidate
//! and stores the report. Every statement names the tenant.
use crate::StoreError;
use serde_json::Value;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// The channel that announces a new shadow run.
pub const SHADOW_RUNS_CHANNEL: &str = "panel1_shadow_runs";

/// How long recordings are kept.
pub const RECORDING_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

/// A run is given up after this many leases (a worker dying mid-run).
pub const MAX_TRIES: i32 = 3;

/// One attempt's exchanges, as the worker stores them.
pub struct NewRecording<'a> {
    pub task_id: Uuid,
    pub attempt: i32,
    pub tenant_id: Uuid,
    pub server_id: Uuid,
    pub adapter_version_id: Uuid,
    pub operation: &'a str,
    pub input: &'a Value,
    pub outcome: &'a Value,
    pub exchanges: &'a Value,
    pub complete: bool,
    pub bytes: i32,
}

pub async fn insert_recording(pool: &PgPool, r: &NewRecording<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO attempt_recordings (task_id, attempt, tenant_id, server_id, adapter_version_id,
             operation, input, outcome, exchanges, complete, bytes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (task_id, attempt) DO NOTHING",
    )
    .bind(r.task_id)
    .bind(r.attempt)
    .bind(r.tenant_id)
    .bind(r.server_id)
    .bind(r.adapter_version_id)
    .bind(r.operation)
    .bind(r.input)
    .bind(r.outcome)
    .bind(r.exchanges)
    .bind(r.complete)
    .bind(r.bytes)
    .execute(pool)
    .await?;
    Ok(())
}

/// Delete recordings older than `older_than` (the workers' upkeep).
pub async fn prune_recordings(pool: &PgPool, older_than: Duration) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM attempt_recordings WHERE recorded_at < now() - make_interval(secs => $1)",
    )
    .bind(older_than.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected())
}

/// A shadow run a worker holds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeasedRun {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub candidate_version_id: Uuid,
    pub max_attempts: i32,
    pub tries: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Lease the oldest pending run (or one whose lease ran out).
pub async fn lease_run(
    pool: &PgPool,
    worker: &str,
    ttl: Duration,
) -> Result<Option<LeasedRun>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE shadow_runs SET state = 'running', leased_by = $1,
             lease_expires_at = now() + make_interval(secs => $2), tries = tries + 1
         WHERE id = (SELECT id FROM shadow_runs
                     WHERE state = 'pending' OR (state = 'running' AND lease_expires_at < now())
                     ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, tenant_id, candidate_version_id, max_attempts, tries, created_at",
    )
    .bind(worker)
    .bind(ttl.as_secs_f64())
    .fetch_optional(pool)
    .await?)
}

/// A recorded attempt to replay.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recorded {
    pub task_id: Uuid,
    pub attempt: i32,
    pub server_id: Uuid,
    pub adapter_version_id: Uuid,
    pub operation: String,
    pub input: Value,
    pub outcome: Value,
    pub exchanges: Value,
}

/// The candidate's adapter, if the version is the tenant's.
pub async fn candidate_adapter(
    pool: &PgPool,
    tenant: Uuid,
    version: Uuid,
) -> Result<Uuid, StoreError> {
    sqlx::query_scalar(
        "SELECT v.adapter_id FROM adapter_versions v JOIN adapters a ON a.id = v.adapter_id
         WHERE v.id = $1 AND a.tenant_id = $2",
    )
    .bind(version)
    .bind(tenant)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("adapter version {version}")))
}

/// The newest `limit` complete recordings of the adapter's non-candidate
/// versions in the tenant made up to `until`, oldest first.
pub async fn recordings_to_replay(
    pool: &PgPool,
    tenant: Uuid,
    adapter: Uuid,
    candidate: Uuid,
    until: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<Vec<Recorded>, StoreError> {
    let mut rows: Vec<Recorded> = sqlx::query_as(
        "SELECT r.task_id, r.attempt, r.server_id, r.adapter_version_id, r.operation, r.input,
                r.outcome, r.exchanges
         FROM attempt_recordings r JOIN adapter_versions v ON v.id = r.adapter_version_id
         WHERE r.tenant_id = $1 AND v.adapter_id = $2 AND r.adapter_version_id <> $3
           AND NOT v.candidate AND r.complete AND r.recorded_at <= $4
         ORDER BY r.recorded_at DESC, r.task_id DESC LIMIT $5",
    )
    .bind(tenant)
    .bind(adapter)
    .bind(candidate)
    .bind(until)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.reverse();
    Ok(rows)
}

/// Store the report of a run this worker still holds.
pub async fn complete_run(
    pool: &PgPool,
    run: Uuid,
    worker: &str,
    report: &Value,
    clean: bool,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE shadow_runs SET state = 'completed', report = $3, clean = $4, finished_at = now(),
             lease_expires_at = NULL
         WHERE id = $1 AND leased_by = $2 AND state = 'running'",
    )
    .bind(run)
    .bind(worker)
    .bind(report)
    .bind(clean)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Fail a run with the reason (nothing to replay, the candidate does not load…).
pub async fn fail_run(
    pool: &PgPool,
    run: Uuid,
    worker: &str,
    reason: &str,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE shadow_runs SET state = 'failed', failure = $3, finished_at = now(),
             lease_expires_at = NULL
         WHERE id = $1 AND leased_by = $2 AND state = 'running'",
    )
    .bind(run)
    .bind(worker)
    .bind(reason)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}
