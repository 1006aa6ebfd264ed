//! Worker sessions: a worker's liveness tied to a database connection it
//! keeps open (migrations/0011), so the rescuer reclaims a dead worker's
//! tasks at once instead of after their leases.
use crate::error::StoreError;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// The backend a worker registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub worker: String,
    pub backend_pid: i32,
    pub backend_start: DateTime<Utc>,
}

/// Register `worker` as alive for as long as `conn` stays open.
pub async fn register_session(
    conn: &mut PgConnection,
    worker: &str,
) -> Result<SessionKey, StoreError> {
    let (backend_pid, backend_start): (i32, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO worker_sessions (worker, backend_pid, backend_start)
         SELECT $1, pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()
         ON CONFLICT DO NOTHING
         RETURNING backend_pid, backend_start",
    )
    .bind(worker)
    .fetch_one(&mut *conn)
    .await?;
    Ok(SessionKey {
        worker: worker.to_string(),
        backend_pid,
        backend_start,
    })
}

/// A worker that stops cleanly takes its sessions out.
pub async fn end_sessions(pool: &PgPool, worker: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM worker_sessions WHERE worker = $1")
        .bind(worker)
        .execute(pool)
        .await?;
    Ok(())
}

/// Drop sessions that can no longer tell anything: those from before the
/// server's last start, and dead ones whose worker holds no running task.
pub(crate) async fn forget_stale_sessions(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM worker_sessions s
         WHERE s.registered_at < pg_postmaster_start_time()
            OR (s.worker IN (SELECT panel1_dead_workers())
                AND NOT EXISTS (SELECT 1 FROM task_queue q
                                WHERE q.state = 'running' AND q.leased_by = s.worker))",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
