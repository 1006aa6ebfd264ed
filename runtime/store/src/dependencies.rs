//! Task dependencies: a task may wait on other tasks (migrations/0020).
//!
//! A waiting task's queue row is parked (`scheduled`, run_at far in the
//! future), so no claim path and no promotion sees it, and the claims'
//! index scans stay as they were. When the last task it waits on succeeds,
//! a trigger releases it (available, or scheduled until its own run_at);
//! when one fails or is cancelled, the trigger cancels it with the reason
//! (`last_error.kind = "dependency"`), and its own waiters in turn.
use crate::{NewTask, StoreError};
use sqlx::PgConnection;
use uuid::Uuid;

/// What making a task wait did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// It waits for at least one unfinished task.
    Waiting,
    /// Every task it names had already succeeded: it runs as enqueued.
    Ready,
    /// One it names had already failed or been cancelled: it is cancelled.
    Settled,
}

/// Make the queued, not yet running task `task` wait on `deps` (tasks of
/// its tenant, unfinished or finished). In the transaction that enqueued it
/// and before anything waits on it (so no cycle can form).
pub async fn wait_on(
    conn: &mut PgConnection,
    task: Uuid,
    deps: &[Uuid],
) -> Result<Waiting, StoreError> {
    if deps.is_empty() {
        return Ok(Waiting::Ready);
    }
    let r: Result<String, sqlx::Error> = sqlx::query_scalar("SELECT panel1_task_wait($1, $2)")
        .bind(task)
        .bind(deps)
        .fetch_one(&mut *conn)
        .await;
    match r {
        Ok(s) if s == "waiting" => Ok(Waiting::Waiting),
        Ok(s) if s == "ready" => Ok(Waiting::Ready),
        Ok(_) => Ok(Waiting::Settled),
        // The function's own refusals (not waitable, unknown or foreign
        // dependencies, itself) are the caller's mistake.
        Err(sqlx::Error::Database(d))
            if matches!(d.code().as_deref(), Some("55000") | Some("22023")) =>
        {
            Err(StoreError::Invalid(d.message().to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Enqueue `task` waiting on `deps` (see [`wait_on`]), in the caller's
/// transaction. Returns the task id and what waiting did.
pub async fn enqueue_after(
    conn: &mut PgConnection,
    task: &NewTask,
    deps: &[Uuid],
) -> Result<(Uuid, Waiting), StoreError> {
    let (id, created) = crate::enqueue(conn, task).await?;
    if !created {
        return Err(StoreError::Invalid(format!(
            "idempotency key {:?} already names task {id}",
            task.idempotency_key
        )));
    }
    Ok((id, wait_on(conn, id, deps).await?))
}

/// The tasks `task` waits on (or waited on), in id order.
pub async fn dependencies_of<'c>(
    db: impl sqlx::PgExecutor<'c>,
    task: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT depends_on FROM task_dependencies WHERE task_id = $1 ORDER BY depends_on",
    )
    .bind(task)
    .fetch_all(db)
    .await?)
}

/// Whether `task` is waiting on unfinished tasks now.
pub async fn is_waiting<'c>(db: impl sqlx::PgExecutor<'c>, task: Uuid) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM task_waits WHERE task_id = $1)")
            .bind(task)
            .fetch_one(db)
            .await?,
    )
}
