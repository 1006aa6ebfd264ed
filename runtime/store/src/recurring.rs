//! Recurring tasks (health checks, usage collection, backups): a cron
//! expression (5 fields, or 6 with seconds) that enqueues a task when due.
//! Safe to run from every worker: due rows are locked with SKIP LOCKED and
//! each occurrence has its own idempotency key.
use crate::enqueue::{enqueue, NewTask};
use crate::StoreError;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Row};
use std::str::FromStr;
use uuid::Uuid;

/// The first occurrence of `cron` strictly after `after`.
pub fn next_run(cron: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
    let c = croner::Cron::from_str(cron)
        .map_err(|e| StoreError::Invalid(format!("cron `{cron}`: {e}")))?;
    c.find_next_occurrence(&after, false)
        .map_err(|e| StoreError::Invalid(format!("cron `{cron}` has no next occurrence: {e}")))
}

/// Register a recurring operation; returns its id.
pub async fn add_recurring(
    pool: &PgPool,
    tenant: Uuid,
    server: Uuid,
    service: Option<Uuid>,
    operation: &str,
    input: &Value,
    cron: &str,
) -> Result<Uuid, StoreError> {
    let first = next_run(cron, Utc::now())?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO recurring_tasks (id, tenant_id, server_id, service_id, operation, input, cron, next_run_at)
         SELECT $1, $2, s.id, $4, $5, $6, $7, $8 FROM servers s WHERE s.id = $3 AND s.tenant_id = $2",
    )
    .bind(id)
    .bind(tenant)
    .bind(server)
    .bind(service)
    .bind(operation)
    .bind(input)
    .bind(cron)
    .bind(first)
    .execute(pool)
    .await?;
    Ok(id)
}

/// Enqueue every due occurrence and move each schedule to its next time.
/// Occurrences missed while no worker ran are collapsed into one.
pub async fn enqueue_due_recurring(pool: &PgPool) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT id, tenant_id, server_id, service_id, operation, input, cron, next_run_at
         FROM recurring_tasks WHERE enabled AND next_run_at <= now()
         ORDER BY next_run_at LIMIT 100 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    let now = Utc::now();
    let mut n = 0;
    for r in rows {
        let id: Uuid = r.try_get("id")?;
        let due: DateTime<Utc> = r.try_get("next_run_at")?;
        let cron: String = r.try_get("cron")?;
        let mut task = NewTask::new(
            r.try_get("tenant_id")?,
            r.try_get("server_id")?,
            r.try_get("service_id")?,
            &r.try_get::<String, _>("operation")?,
            r.try_get("input")?,
        );
        task.idempotency_key = Some(format!("recurring:{id}:{}", due.timestamp_millis()));
        task.max_attempts = 3;
        enqueue(&mut tx, &task).await?;
        let next = next_run(&cron, now.max(due))?;
        sqlx::query("UPDATE recurring_tasks SET next_run_at = $2 WHERE id = $1")
            .bind(id)
            .bind(next)
            .execute(&mut *tx)
            .await?;
        n += 1;
    }
    tx.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_advances() {
        let t = DateTime::parse_from_rfc3339("2026-01-01T10:07:30Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            next_run("*/15 * * * *", t).unwrap().to_rfc3339(),
            "2026-01-01T10:15:00+00:00"
        );
        assert_eq!(
            next_run("0 3 * * *", t).unwrap().to_rfc3339(),
            "2026-01-02T03:00:00+00:00"
        );
        assert_eq!(
            next_run("*/10 * * * * *", t).unwrap().to_rfc3339(),
            "2026-01-01T10:07:40+00:00"
        );
        assert!(next_run("every tuesday", t).is_err());
    }
}
