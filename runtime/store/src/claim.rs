use crate::enqueue::col;
use crate::StoreError;
use serde_json::Value;
use sqlx::PgPool;
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

/// Claim up to `limit` available tasks in one statement:
/// - servers with room under their concurrency cap are locked
///   (`FOR UPDATE SKIP LOCKED`: concurrent claimers take other servers) while
///   their running tasks are counted, so the cap holds across workers;
///   completions never touch the server row (no hot-row contention);
/// - per server, due tasks in priority/run_at order, skipping any task whose
///   service has a running task or an older pending one (operations on one
///   service run one at a time, in order);
/// - each claimed task gets `attempt + 1`, `lease + 1` and a lease deadline.
pub async fn claim(
    pool: &PgPool,
    worker: &str,
    limit: i64,
    lease_ttl: Duration,
) -> Result<Vec<ClaimedTask>, StoreError> {
    let rows = sqlx::query(
        "WITH room AS (
             SELECT s.id, s.max_concurrency - (
                        SELECT count(*) FROM tasks r WHERE r.server_id = s.id AND r.state = 'running') AS room
             FROM servers s
             -- Scalar subqueries with LIMIT: probed per row through the
             -- partial indexes, never turned into a hash over all tasks. The
             -- ORDER BY is the index's: without it a generic plan may pick a
             -- seq scan that walks every finished row before an available one.
             WHERE (SELECT true FROM tasks t WHERE t.server_id = s.id AND t.state = 'available'
                    ORDER BY t.priority DESC, t.run_at, t.id LIMIT 1)
             ORDER BY s.id
             FOR UPDATE OF s SKIP LOCKED
         ),
         picked AS (
             SELECT p.id, p.server_id
             FROM room r
             CROSS JOIN LATERAL (
                 SELECT t.id, t.server_id
                 FROM tasks t
                 WHERE t.server_id = r.id
                   AND t.state = 'available'
                   AND t.run_at <= now()
                   AND (t.service_id IS NULL OR NOT COALESCE((
                        SELECT true FROM tasks o
                        WHERE o.service_id = t.service_id
                          AND o.id <> t.id
                          AND (o.state = 'running'
                               OR (o.state IN ('scheduled', 'available', 'retryable')
                                   AND (o.created_at, o.id) < (t.created_at, t.id)))
                        LIMIT 1), false))
                 ORDER BY t.priority DESC, t.run_at, t.id
                 LIMIT GREATEST(LEAST(r.room, $1), 0)
                 FOR UPDATE SKIP LOCKED
             ) p
             LIMIT $1
         ),
         claimed AS (
             UPDATE tasks t
             SET state = 'running', attempt = t.attempt + 1, lease = t.lease + 1, leased_by = $2,
                 lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
             -- By primary key: a join with `picked` (estimated at thousands
             -- of rows by the generic plan, whatever the limit) hashed the
             -- whole table on every claim.
             WHERE t.id = ANY (ARRAY(SELECT picked.id FROM picked))
             RETURNING t.id, t.tenant_id, t.server_id, t.service_id, t.operation, t.input, t.attempt,
                       t.max_attempts, t.lease, t.idempotency_key
         )
         -- The service's remote id as known now (an operation enqueued
         -- before provision finished learns it here).
         SELECT c.*, (SELECT sv.remote_id FROM services sv WHERE sv.id = c.service_id) AS service_remote_id
         FROM claimed c",
    )
    .bind(limit)
    .bind(worker)
    .bind(lease_ttl.as_secs_f64())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
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
        })
        .collect()
}
