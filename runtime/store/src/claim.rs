use crate::enqueue::col;
use crate::StoreError;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// A task claimed by a worker. `lease` must accompany every later write.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub server_id: Uuid,
    pub service_id: Option<Uuid>,
    pub operation: String,
    pub input: Value,
    pub attempt: i32,
    pub max_attempts: i32,
    pub lease: i64,
    pub idempotency_key: Option<String>,
}

/// Claim up to `limit` available tasks in one round trip (`claim_tasks`,
/// migrations/0003, 0004 and 0006):
/// - servers with available work are locked (`FOR UPDATE SKIP LOCKED`:
///   concurrent claimers take other servers), then their kept running count
///   (`server_load`) is read with a snapshot taken after the lock, so the cap
///   holds across workers; completions never touch the server row (no
///   hot-row contention);
/// - per server, due tasks in priority/run_at order, skipping any task whose
///   service has a running task or an older pending one (operations on one
///   service run one at a time, in order);
/// - each claimed task's queue row gets `attempt + 1`, `lease + 1` and a
///   lease deadline; the record is not written.
///
/// Runs on `db`: the pool, or a connection the caller keeps.
pub async fn claim<'c>(
    db: impl sqlx::PgExecutor<'c>,
    worker: &str,
    limit: i64,
    lease_ttl: Duration,
) -> Result<Vec<ClaimedTask>, StoreError> {
    let rows = sqlx::query("SELECT * FROM claim_tasks($1, $2, $3)")
        .bind(limit.clamp(0, i32::MAX as i64) as i32)
        .bind(worker)
        .bind(lease_ttl.as_secs_f64())
        .fetch_all(db)
        .await?;
    rows.iter().map(claimed_from_row).collect()
}

/// A row of `claim_on_servers`' shape (claim_tasks, a completion's hand-off).
pub(crate) fn claimed_from_row(r: &sqlx::postgres::PgRow) -> Result<ClaimedTask, StoreError> {
    let mut input: Value = col(r, "input")?;
    let remote: Option<String> = col(r, "service_remote_id")?;
    let service = input.get_mut("service").and_then(Value::as_object_mut);
    if let (Some(remote), Some(service)) = (remote, service) {
        if service.get("remote_id").is_none_or(Value::is_null) {
            service.insert("remote_id".into(), Value::String(remote));
        }
    }
    Ok(ClaimedTask {
        id: col(r, "id")?,
        tenant_id: col(r, "tenant_id")?,
        server_id: col(r, "server_id")?,
        service_id: col(r, "service_id")?,
        operation: col(r, "operation")?,
        input,
        attempt: col(r, "attempt")?,
        max_attempts: col(r, "max_attempts")?,
        lease: col(r, "lease")?,
        idempotency_key: col(r, "idempotency_key")?,
    })
}
