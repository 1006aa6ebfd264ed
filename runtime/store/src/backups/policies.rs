//! Backup policies: per tenant, optionally scoped to a plan and/or a
//! server; a cron schedule, a spread window and a retention. The most
//! specific policy covers a service (plan and server, then plan, then
//! server, then tenant-wide; `panel1_backup_policy_for`, migrations/0021).
use super::retention::Retention;
use crate::{next_run, StoreError};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

/// Longest spread window (a day).
pub const MAX_WINDOW_SECS: i32 = 86_400;

/// A policy as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Policy {
    pub id: Uuid,
    pub name: String,
    pub plan: Option<String>,
    pub server_id: Option<Uuid>,
    pub cron: String,
    pub window_secs: i32,
    pub keep_daily: i32,
    pub keep_weekly: i32,
    pub keep_monthly: i32,
    pub enabled: bool,
    /// The occurrence being spread over its window now, or the next one.
    pub occurrence_at: DateTime<Utc>,
    /// The latest occurrence that started, and what it did so far.
    pub run_at: Option<DateTime<Utc>>,
    pub run_enqueued: i32,
    pub run_skipped_unsupported: i32,
    pub run_skipped_busy: i32,
    pub run_window_closed: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, plan, server_id, cron, window_secs, keep_daily, keep_weekly,
    keep_monthly, enabled, occurrence_at, run_at, run_enqueued, run_skipped_unsupported,
    run_skipped_busy, run_window_closed, created_at, updated_at";

/// What a new policy or a change says.
#[derive(Debug, Clone)]
pub struct PolicySpec {
    pub name: String,
    pub plan: Option<String>,
    pub server_id: Option<Uuid>,
    pub cron: String,
    pub window_secs: i32,
    pub retention: Retention,
    pub enabled: bool,
}

/// A cron expression of 5 fields (minute hour day-of-month month
/// day-of-week), or 6 with seconds first when `seconds` (the store's tests
/// run policies every second; the API takes 5).
pub fn check_cron(cron: &str, seconds: bool) -> Result<(), String> {
    let fields = cron.split_whitespace().count();
    if fields != 5 && !(seconds && fields == 6) {
        return Err(format!(
            "5 fields (minute hour day-of-month month day-of-week), not {fields}"
        ));
    }
    // Parsing it is finding its next occurrence (recurring.rs).
    next_run(cron, Utc::now()).map(|_| ()).map_err(|e| match e {
        StoreError::Invalid(m) => m,
        e => e.to_string(),
    })
}

fn check(spec: &PolicySpec) -> Result<(), StoreError> {
    check_cron(&spec.cron, true).map_err(StoreError::Invalid)?;
    if !(0..=MAX_WINDOW_SECS).contains(&spec.window_secs) {
        return Err(StoreError::Invalid(format!(
            "window: 0 to {MAX_WINDOW_SECS} seconds"
        )));
    }
    spec.retention.check().map_err(StoreError::Invalid)
}

/// Create a policy of the tenant. A server that is not the tenant's is
/// `NotFound`; a scope another policy has is a unique violation (23505).
pub async fn create(
    conn: &mut PgConnection,
    tenant: Uuid,
    spec: &PolicySpec,
) -> Result<Policy, StoreError> {
    check(spec)?;
    let first = next_run(&spec.cron, Utc::now())?;
    let row = sqlx::query_as(&format!(
        "INSERT INTO backup_policies (id, tenant_id, name, plan, server_id, cron, window_secs,
                                      keep_daily, keep_weekly, keep_monthly, enabled,
                                      occurrence_at, scheduled_until)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12
         WHERE $5::uuid IS NULL OR EXISTS (SELECT 1 FROM servers WHERE id = $5 AND tenant_id = $2)
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(&spec.name)
    .bind(&spec.plan)
    .bind(spec.server_id)
    .bind(&spec.cron)
    .bind(spec.window_secs)
    .bind(spec.retention.daily as i32)
    .bind(spec.retention.weekly as i32)
    .bind(spec.retention.monthly as i32)
    .bind(spec.enabled)
    .bind(first)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or_else(|| StoreError::NotFound(format!("server {:?}", spec.server_id)))
}

pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<Policy>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backup_policies WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(db)
    .await?)
}

/// Newest first, before `before`.
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    before: Uuid,
    limit: i64,
) -> Result<Vec<Policy>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backup_policies WHERE tenant_id = $1 AND id < $2
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(tenant)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Change a policy's name, schedule, window, retention or whether it runs
/// (its scope stays). A new schedule, window or enabling starts from the
/// schedule's next occurrence; a window in progress is left. A new
/// retention applies at each service's next completed backup.
/// `None`: not the tenant's policy. A `change` that fails writes nothing
/// (its error is returned and the transaction rolled back).
pub async fn update(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
    change: impl FnOnce(&mut PolicySpec) -> Result<(), StoreError>,
) -> Result<Option<Policy>, StoreError> {
    let mut tx = pool.begin().await?;
    let Some(old) = sqlx::query_as::<_, Policy>(&format!(
        "SELECT {COLUMNS} FROM backup_policies WHERE id = $1 AND tenant_id = $2 FOR UPDATE"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let mut spec = PolicySpec {
        name: old.name.clone(),
        plan: old.plan.clone(),
        server_id: old.server_id,
        cron: old.cron.clone(),
        window_secs: old.window_secs,
        retention: Retention {
            daily: old.keep_daily as u32,
            weekly: old.keep_weekly as u32,
            monthly: old.keep_monthly as u32,
        },
        enabled: old.enabled,
    };
    change(&mut spec)?;
    check(&spec)?;
    let restart = spec.cron != old.cron
        || spec.window_secs != old.window_secs
        || (spec.enabled && !old.enabled);
    let next = if restart {
        Some(next_run(&spec.cron, Utc::now())?)
    } else {
        None
    };
    let row = sqlx::query_as(&format!(
        "UPDATE backup_policies
         SET name = $3, cron = $4, window_secs = $5, keep_daily = $6, keep_weekly = $7,
             keep_monthly = $8, enabled = $9, updated_at = now(),
             occurrence_at = COALESCE($10, occurrence_at),
             scheduled_until = COALESCE($10, scheduled_until)
         WHERE id = $1 AND tenant_id = $2
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(tenant)
    .bind(&spec.name)
    .bind(&spec.cron)
    .bind(spec.window_secs)
    .bind(spec.retention.daily as i32)
    .bind(spec.retention.weekly as i32)
    .bind(spec.retention.monthly as i32)
    .bind(spec.enabled)
    .bind(next)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(row))
}

/// Delete a policy: its backups stay, as if taken on demand (never pruned).
pub async fn delete(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("DELETE FROM backup_policies WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .execute(pool)
            .await?
            .rows_affected()
            > 0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_has_five_fields_or_six_for_the_store() {
        assert!(check_cron("0 3 * * *", false).is_ok());
        assert!(check_cron("*/15 2-5 * * 1-5", false).is_ok());
        assert!(check_cron("* * * * * *", false).is_err());
        assert!(check_cron("* * * * * *", true).is_ok());
        assert!(check_cron("0 3 * *", false).is_err());
        assert!(check_cron("61 3 * * *", false).is_err());
        assert!(check_cron("every day", false).is_err());
        assert!(check_cron("", false).is_err());
    }
}
