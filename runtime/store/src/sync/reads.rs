//! Reading runs and their drift reports, always within one tenant.
use crate::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// A sync run and its counts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SyncRun {
    pub id: Uuid,
    pub server_id: Uuid,
    /// `schedule` or `request`.
    pub trigger: String,
    pub policy: String,
    /// `running`, `completed` or `failed`.
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub pages: i32,
    pub remote_accounts: i32,
    pub missing_remotely: i32,
    pub unknown_remotely: i32,
    pub state_differs: i32,
    pub plan_differs: i32,
    pub skipped: i32,
    pub adopted: i32,
    pub reapplied: i32,
    pub error: Option<String>,
}

const RUN_COLUMNS: &str = "id, server_id, trigger, policy, state, started_at, finished_at, pages,
    remote_accounts, missing_remotely, unknown_remotely, state_differs, plan_differs, skipped,
    adopted, reapplied, error";

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub server_id: Option<Uuid>,
    pub state: Option<String>,
}

/// The tenant's runs, newest first, with ids below `before`.
pub async fn list_runs(
    pool: &PgPool,
    tenant: Uuid,
    filter: &RunFilter,
    before: Uuid,
    limit: i64,
) -> Result<Vec<SyncRun>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs
         WHERE tenant_id = $1 AND id < $2
           AND ($3::uuid IS NULL OR server_id = $3) AND ($4::text IS NULL OR state = $4)
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(tenant)
    .bind(before)
    .bind(filter.server_id)
    .bind(&filter.state)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn get_run(
    conn: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<SyncRun>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await?)
}

/// One difference (or a skipped service) of a run's report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DriftItem {
    pub id: i64,
    /// `missing_remotely`, `unknown_remotely`, `state_differs`,
    /// `plan_differs` or `skipped`.
    pub kind: String,
    pub service_id: Option<Uuid>,
    pub remote_id: Option<String>,
    pub panel1_state: Option<String>,
    pub remote_state: Option<String>,
    pub panel1_plan: Option<String>,
    pub remote_plan: Option<String>,
    pub remote_domain: Option<String>,
    pub reason: Option<String>,
    pub action: Option<String>,
    pub action_task_id: Option<Uuid>,
}

/// Which items of a report to list.
#[derive(Debug, Clone, Default)]
pub struct DriftFilter {
    pub kind: Option<String>,
    pub service_id: Option<Uuid>,
}

/// A run's items in report order, ids above `after` (the run must be the
/// tenant's: check with [`get_run`]).
pub async fn drift(
    pool: &PgPool,
    tenant: Uuid,
    run: Uuid,
    filter: &DriftFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<DriftItem>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, kind, service_id, remote_id, panel1_state, remote_state, panel1_plan,
                remote_plan, remote_domain, reason, action, action_task_id
         FROM sync_drift
         WHERE run_id = $1 AND tenant_id = $2 AND id > $3
           AND ($4::text IS NULL OR kind = $4) AND ($5::uuid IS NULL OR service_id = $5)
         ORDER BY id LIMIT $6",
    )
    .bind(run)
    .bind(tenant)
    .bind(after)
    .bind(&filter.kind)
    .bind(filter.service_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
