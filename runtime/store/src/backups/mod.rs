//! Automated backups (issue 23 part 4; docs/backups.md, migrations/0021):
//! backup records, on-demand backups, policies that start backups on a
//! cron schedule spread over a window, following pending backups with
//! `backup-status` checks, and the retention prune. Backup tasks are
//! platform tasks (`panel1:backup:<backup>:<step>`): what they learn is
//! written in their completion's transaction ([`project`]).
pub mod policies;
mod project;
pub mod retention;
pub mod schedule;

pub(crate) use project::project;

use crate::StoreError;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// `backup-status` checks of a pending backup before it is given up as
/// failed.
pub const MAX_POLLS: i32 = 40;

/// How long after the `n`th check (0: after create-backup) the next one
/// runs: 1 s, doubling, at most 5 minutes (40 checks span about 3 hours).
pub fn poll_delay(n: u32) -> chrono::Duration {
    chrono::Duration::seconds(1i64 << n.min(9)).min(chrono::Duration::minutes(5))
}

/// Priority of an on-demand backup's task (a tenant's operation); policy
/// backups run at -5, below the tenant's own operations.
const REQUEST_PRIORITY: i16 = 0;

/// A backup record.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Backup {
    pub id: Uuid,
    pub service_id: Uuid,
    pub server_id: Uuid,
    pub policy_id: Option<Uuid>,
    /// `policy` or `request`.
    pub trigger: String,
    pub provider_backup_id: Option<String>,
    /// `pending`, `complete`, `failed`, `deleting`, `deleted`, `expired`.
    pub state: String,
    pub size_bytes: Option<i64>,
    pub details: Value,
    pub task_id: Option<Uuid>,
    pub polls: i32,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, service_id, server_id, policy_id, trigger, provider_backup_id, state,
    size_bytes, details, task_id, polls, failure_reason, created_at, completed_at, deleted_at";

pub const STATES: [&str; 6] = [
    "pending", "complete", "failed", "deleting", "deleted", "expired",
];

/// The tenant's backup.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<Backup>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(db)
    .await?)
}

/// The tenant's service's backups, newest first, before `before` (ids are
/// time-ordered), optionally in one state.
pub async fn list_for_service(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    service: Uuid,
    state: Option<&str>,
    before: Uuid,
    limit: i64,
) -> Result<Vec<Backup>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups
         WHERE service_id = $1 AND tenant_id = $2 AND id < $3 AND ($4::text IS NULL OR state = $4)
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(service)
    .bind(tenant)
    .bind(before)
    .bind(state)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Whether the adapter of the service's server can create backups, and its
/// name and world version (for the answer when it cannot).
pub async fn adapter_support(
    db: impl PgExecutor<'_>,
    service: Uuid,
    operation: &str,
) -> Result<(bool, String, String), StoreError> {
    Ok(sqlx::query_as(
        "SELECT av.world_version <> '0.1.0'
                  AND (av.info IS NULL OR COALESCE(av.info -> 'operations' ? $2, false)),
                a.name, av.world_version
         FROM services s JOIN servers sv ON sv.id = s.server_id
         JOIN adapter_versions av ON av.id = sv.adapter_version_id
         JOIN adapters a ON a.id = av.adapter_id
         WHERE s.id = $1",
    )
    .bind(service)
    .bind(operation)
    .fetch_one(db)
    .await?)
}

/// Start an on-demand backup of the service, in the caller's transaction
/// (the caller checked the tenant, the service's state and the adapter).
pub async fn request(conn: &mut PgConnection, service: Uuid) -> Result<Uuid, StoreError> {
    let id: Uuid = sqlx::query_scalar(
        "SELECT backup_id FROM panel1_backup_create(ARRAY[$1]::uuid[], NULL, 'request', $2)",
    )
    .bind(service)
    .bind(REQUEST_PRIORITY)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Delete a complete or expired backup on the provider (a `delete-backup`
/// task): `Ok(false)` when the backup is in another state. In the caller's
/// transaction.
pub async fn request_delete(
    conn: &mut PgConnection,
    tenant: Uuid,
    backup: Uuid,
) -> Result<bool, StoreError> {
    let row: Option<(Option<String>, Value)> = sqlx::query_as(
        "UPDATE backups b SET state = 'deleting', updated_at = now()
         FROM services s
         WHERE b.id = $1 AND b.tenant_id = $2 AND b.state IN ('complete', 'expired') AND s.id = b.service_id
         RETURNING b.provider_backup_id, panel1_service_input(s)",
    )
    .bind(backup)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((provider_id, service)) = row else {
        return Ok(false);
    };
    let input = json!({"service": service, "backup_id": provider_id});
    let now = Utc::now();
    let step = format!("delete-{}", now.timestamp_millis());
    project::followup(conn, backup, &step, "delete-backup", &input, now).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_back_off_to_five_minutes() {
        let secs: Vec<i64> = (0..12).map(|n| poll_delay(n).num_seconds()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }
}
