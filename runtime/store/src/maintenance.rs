//! Queue upkeep: heartbeats, the rescuer of expired leases, promotion of due
//! tasks, cancellation, operator retry, release on shutdown, pruning.
//!
//! An unfinished task has a row in `task_queue` (live state, attempt, lease)
//! beside its record in `task_records` (migrations/0006). Writes that match
//! a lease take the queue row first; the record follows in the same
//! statement or transaction.
use crate::enqueue::wake_workers;
use crate::{StoreError, TaskState};
use sqlx::{Acquire, PgConnection, PgPool, Postgres};
use std::time::Duration;
use uuid::Uuid;

/// Extend a lease; false if the lease is no longer held (stop working).
pub async fn heartbeat(
    pool: &PgPool,
    task_id: Uuid,
    lease: i64,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE task_queue SET lease_expires_at = now() + make_interval(secs => $3)
         WHERE task_id = $1 AND lease = $2 AND state = 'running'",
    )
    .bind(task_id)
    .bind(lease)
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Extend many leases in one statement (a worker's whole holding). Returns
/// the tasks whose lease still held; the others are lost (rescued,
/// cancelled or finished) and their work should stop.
pub async fn heartbeat_many(
    pool: &PgPool,
    held: &[(Uuid, i64)],
    ttl: Duration,
) -> Result<Vec<Uuid>, StoreError> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, leases) = ids_and_leases(held);
    Ok(sqlx::query_scalar(
        // The rows are locked in id order first, the order a batch
        // completion locks them in: locking them in the order the scan
        // met them deadlocked with a completion of the same leases.
        "UPDATE task_queue q SET lease_expires_at = now() + make_interval(secs => $3)
         WHERE q.task_id = ANY (ARRAY(
             SELECT l.task_id FROM task_queue l
             WHERE l.task_id = ANY ($1) AND l.lease = ($2::jsonb ->> l.task_id::text)::int8
               AND l.lease_expires_at IS NOT NULL
             ORDER BY l.task_id
             FOR UPDATE))
         RETURNING q.task_id",
    )
    .bind(ids)
    .bind(leases)
    .bind(ttl.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// Held leases as the statements above take them: the ids (found by primary
/// key) and a JSON map id → lease. A join with the pairs instead was
/// planned as a scan of the queue tested against every pair (one heartbeat
/// of 10 000 leases took a second). "Still running" is said as
/// `lease_expires_at IS NOT NULL` (the same, by the queue's CHECK):
/// `state = 'running'` invites the running index.
fn ids_and_leases(held: &[(Uuid, i64)]) -> (Vec<Uuid>, serde_json::Value) {
    let leases = held
        .iter()
        .map(|(id, lease)| (id.to_string(), serde_json::Value::from(*lease)))
        .collect::<serde_json::Map<_, _>>();
    (held.iter().map(|h| h.0).collect(), leases.into())
}

/// Give back claimed tasks that never started (a worker's local queue at
/// shutdown): available again at once, the claim's attempt not counted, no
/// attempt recorded. The lease moves on, so the old holder's writes are
/// stale. Returns how many went back.
pub async fn unclaim(pool: &PgPool, held: &[(Uuid, i64)]) -> Result<u64, StoreError> {
    if held.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let (ids, leases) = ids_and_leases(held);
    let servers: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE task_queue q SET state = 'available', attempt = q.attempt - 1, lease = q.lease + 1,
                lease_expires_at = NULL, leased_by = NULL, updated_at = now()
         WHERE q.task_id = ANY ($1) AND q.lease = ($2::jsonb ->> q.task_id::text)::int8
           AND q.lease_expires_at IS NOT NULL
         RETURNING q.server_id",
    )
    .bind(ids)
    .bind(leases)
    .fetch_all(&mut *tx)
    .await?;
    if !servers.is_empty() {
        no_longer_running(&mut tx, &servers).await?;
        wake_workers(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(servers.len() as u64)
}

/// Running tasks whose worker is gone go back to `retryable` (or `failed`
/// when out of attempts), with an `abandoned` attempt recorded and the
/// server's slot freed: at once when the worker's registered session has
/// ended (a killed process; migrations/0011), otherwise when the lease
/// expires (a worker alive but stuck, or partitioned). The lease counter
/// stays, so the lost worker's late writes are stale.
pub async fn rescue_expired(pool: &PgPool) -> Result<Vec<Uuid>, StoreError> {
    let mut tx = pool.begin().await?;
    let rescued: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "WITH dead AS (SELECT panel1_dead_workers() AS worker),
         expired AS (
             SELECT task_id, server_id, attempt, max_attempts, lease, leased_by,
                    attempt >= max_attempts AS exhausted,
                    lease_expires_at >= now() AS early
             FROM task_queue WHERE state = 'running'
               AND (lease_expires_at < now() OR leased_by IN (SELECT worker FROM dead))
             FOR UPDATE SKIP LOCKED
         ),
         gone AS (
             DELETE FROM task_queue q USING expired e WHERE q.task_id = e.task_id AND e.exhausted
         ),
         waiting AS (
             UPDATE task_queue q
             SET state = 'retryable', run_at = now(), lease_expires_at = NULL, leased_by = NULL,
                 updated_at = now()
             FROM expired e WHERE q.task_id = e.task_id AND NOT e.exhausted
         ),
         moved AS (
             UPDATE task_records t
             SET state = CASE WHEN e.exhausted THEN 'failed'::task_state ELSE 'retryable'::task_state END,
                 run_at = now(), attempt = e.attempt, lease = e.lease, updated_at = now(),
                 finished_at = CASE WHEN e.exhausted THEN now() END,
                 last_error = jsonb_build_object('source', 'host', 'kind', 'abandoned',
                                                 'message', CASE WHEN e.early
                                                     THEN 'the worker''s database session ended (the process died)'
                                                     ELSE 'the worker stopped heartbeating (lease expired)' END)
             FROM expired e WHERE t.id = e.task_id
             RETURNING t.id, t.state, t.tenant_id, t.service_id, e.server_id, e.attempt, e.lease, e.leased_by
         ),
         attempts AS (
             INSERT INTO task_attempts (task_id, attempt, lease, worker, outcome, error_kind, error_message)
             SELECT m.id, m.attempt, m.lease, m.leased_by, 'abandoned', 'abandoned',
                    CASE WHEN e.early THEN 'worker session ended' ELSE 'lease expired' END
             FROM moved m JOIN expired e ON e.task_id = m.id
             ON CONFLICT (task_id, attempt) DO NOTHING
         ),
         ev AS (
             INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
             SELECT tenant_id, 'task.rescued', id, service_id,
                    jsonb_build_object('attempt', attempt, 'state', state, 'worker', leased_by)
             FROM moved
         )
         SELECT id, server_id FROM moved",
    )
    .fetch_all(&mut *tx)
    .await?;
    let (ids, servers): (Vec<Uuid>, Vec<Uuid>) = rescued.into_iter().unzip();
    if !ids.is_empty() {
        no_longer_running(&mut tx, &servers).await?;
        wake_workers(&mut tx).await?;
    }
    crate::sessions::forget_stale_sessions(&mut tx).await?;
    tx.commit().await?;
    if !ids.is_empty() {
        tracing::warn!(count = ids.len(), "rescued tasks of dead or stuck workers");
    }
    Ok(ids)
}

/// Tasks on `servers` (one entry per task) stopped running: take them off
/// their servers' running counts (`server_load`, migrations/0006), in the
/// caller's transaction.
async fn no_longer_running(conn: &mut PgConnection, servers: &[Uuid]) -> Result<(), StoreError> {
    sqlx::query("SELECT panel1_add_load($1, array_fill(-1, ARRAY[cardinality($1)]))")
        .bind(servers)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Scheduled and retryable tasks whose time has come become available (and
/// wake the workers).
pub async fn promote_due(pool: &PgPool) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    // The record follows (its state is in no index: a HOT update).
    let n = sqlx::query(
        "WITH due AS (
             UPDATE task_queue SET state = 'available', updated_at = now()
             WHERE state IN ('scheduled', 'retryable') AND run_at <= now()
             RETURNING task_id
         )
         UPDATE task_records t SET state = 'available', updated_at = now()
         FROM due WHERE t.id = due.task_id",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n > 0 {
        wake_workers(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(n)
}

/// Cancel a task of this tenant that has not finished. A running task's
/// worker finds its completion stale and its slot is freed here. In its own
/// transaction, or in a savepoint of the caller's.
pub async fn cancel(
    db: impl Acquire<'_, Database = Postgres>,
    tenant_id: Uuid,
    task_id: Uuid,
) -> Result<TaskState, StoreError> {
    let mut tx = db.begin().await?;
    // The queue row first, as completions take it: whoever deletes it ends
    // the task, the other finds it gone.
    let cancelled: Option<(Uuid, bool)> = sqlx::query_as(
        "WITH gone AS (
             DELETE FROM task_queue q USING task_records t
             WHERE q.task_id = $1 AND t.id = q.task_id AND t.tenant_id = $2
             RETURNING q.task_id, q.server_id, q.attempt, q.lease, q.state = 'running' AS was_running
         )
         UPDATE task_records t
         SET state = 'cancelled', finished_at = now(), attempt = g.attempt, lease = g.lease + 1,
             updated_at = now()
         FROM gone g WHERE t.id = g.task_id
         RETURNING g.server_id, g.was_running",
    )
    .bind(task_id)
    .bind(tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((server, true)) = cancelled {
        no_longer_running(&mut tx, &[server]).await?;
    }
    if cancelled.is_none() {
        // No queue row: finished already, or not this tenant's.
        let state: Option<TaskState> =
            sqlx::query_scalar("SELECT state FROM task_records WHERE id = $1 AND tenant_id = $2")
                .bind(task_id)
                .bind(tenant_id)
                .fetch_optional(&mut *tx)
                .await?;
        return state.ok_or_else(|| StoreError::NotFound(format!("task {task_id}")));
    }
    sqlx::query("INSERT INTO events (tenant_id, kind, task_id, service_id, payload) SELECT $1, 'task.cancelled', $2, service_id, '{}' FROM task_records WHERE id = $2")
        .bind(tenant_id)
        .bind(task_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(TaskState::Cancelled)
}

/// Operator retry of a failed task: one more attempt, now.
pub async fn retry_failed(
    db: impl Acquire<'_, Database = Postgres>,
    tenant_id: Uuid,
    task_id: Uuid,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    // The record comes back to life with a queue row again.
    let sql = format!(
        "WITH revived AS (
             UPDATE task_records SET state = 'available', run_at = now(), finished_at = NULL,
                                     max_attempts = attempt + 1, updated_at = now()
             WHERE id = $1 AND tenant_id = $2 AND state = 'failed'
             RETURNING *
         )
         {}",
        crate::enqueue::queue_rows_for("revived")
    );
    let n = sqlx::query(&sql)
        .bind(task_id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 1 {
        sqlx::query("INSERT INTO events (tenant_id, kind, task_id, service_id, payload) SELECT $1, 'task.retried', $2, service_id, '{}' FROM task_records WHERE id = $2")
            .bind(tenant_id)
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        wake_workers(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

/// Give a claimed task back (graceful shutdown): available again at once,
/// lease bumped so nothing the releasing worker still writes counts.
pub async fn release(pool: &PgPool, task_id: Uuid, lease: i64) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    // The attempt still counts: the adapter may have done part of the work,
    // and the next attempt's number tells it to look before it acts.
    let server: Option<Uuid> = sqlx::query_scalar(
        "WITH released AS (
             UPDATE task_queue SET state = 'available', lease = lease + 1, lease_expires_at = NULL,
                                   leased_by = NULL, updated_at = now()
             WHERE task_id = $1 AND lease = $2 AND state = 'running'
             RETURNING task_id AS id, attempt, server_id
         ),
         attempts AS (
             INSERT INTO task_attempts (task_id, attempt, lease, outcome, error_kind, error_message)
             SELECT id, attempt, $2, 'abandoned', 'abandoned', 'released at worker shutdown' FROM released
             ON CONFLICT (task_id, attempt) DO NOTHING
         )
         SELECT server_id FROM released",
    )
    .bind(task_id)
    .bind(lease)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(server) = server {
        no_longer_running(&mut tx, &[server]).await?;
        wake_workers(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(server.is_some())
}

/// Move tasks finished more than `older_than` ago to `tasks_archive`, so the
/// hot table stays small. Returns how many moved.
pub async fn prune(pool: &PgPool, older_than: Duration) -> Result<u64, StoreError> {
    let n = sqlx::query(
        "WITH moved AS (
             DELETE FROM task_records WHERE finished_at < now() - make_interval(secs => $1) RETURNING *
         )
         INSERT INTO tasks_archive SELECT * FROM moved",
    )
    .bind(older_than.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n)
}

/// Completions dropped because their lease was stale.
pub async fn stale_completions(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE((SELECT value FROM queue_counters WHERE name = 'stale_completions'), 0)",
    )
    .fetch_one(pool)
    .await?)
}
