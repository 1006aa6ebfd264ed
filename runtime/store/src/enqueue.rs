use crate::{ServiceState, StoreError, TaskState};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use std::sync::LazyLock;
use uuid::Uuid;

/// The channel workers LISTEN on; a notification is sent (at commit) for
/// every task that becomes available.
pub const TASKS_CHANNEL: &str = "panel1_tasks";

/// A task to enqueue.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub tenant_id: Uuid,
    pub server_id: Uuid,
    pub service_id: Option<Uuid>,
    /// WIT operation name (`provision`, `suspend`, ...).
    pub operation: String,
    pub input: Value,
    /// Unique per tenant: enqueueing the same key again returns the first task.
    pub idempotency_key: Option<String>,
    /// Run later (scheduled); `None` = now.
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    pub priority: i16,
}

impl NewTask {
    pub fn new(
        tenant_id: Uuid,
        server_id: Uuid,
        service_id: Option<Uuid>,
        operation: &str,
        input: Value,
    ) -> Self {
        NewTask {
            tenant_id,
            server_id,
            service_id,
            operation: operation.to_string(),
            input,
            idempotency_key: None,
            run_at: None,
            max_attempts: 5,
            priority: 0,
        }
    }
}

/// Everything an enqueue writes, in one statement built once (one round
/// trip: the API's enqueue and pickup latency both wait on it): the record
/// and its queue row (migrations/0006), the service's new state, the
/// `task.created` event, and for a task due now the workers' wake-up
/// (delivered at commit). A known idempotency key writes nothing and
/// returns no row.
static ENQUEUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH t AS (
             INSERT INTO task_records (id, tenant_id, server_id, service_id, operation, input, state,
                                       run_at, max_attempts, priority, idempotency_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()), $9, $10, $11, clock_timestamp())
             ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING *
         ),
         q AS ({} RETURNING task_id),
         moved AS (
             UPDATE services SET state = $12, updated_at = now()
             WHERE $12 IS NOT NULL AND id = (SELECT t.service_id FROM t)
         ),
         created AS (
             INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
             SELECT t.tenant_id, 'task.created', t.id, t.service_id,
                    jsonb_build_object('operation', t.operation, 'state', t.state)
             FROM t
         )
         SELECT q.task_id, CASE WHEN $7 = 'available' THEN pg_notify('{TASKS_CHANNEL}', '') END
         FROM q",
        queue_rows_for("t")
    )
});

/// The state a service enters when an operation on it is accepted (`None`:
/// the enqueue leaves the service's row as it was).
pub fn service_state_on_enqueue(operation: &str) -> Option<ServiceState> {
    match operation {
        "provision" => Some(ServiceState::Provisioning),
        "terminate" => Some(ServiceState::Terminating),
        _ => None,
    }
}

/// Enqueue in the caller's transaction (so the API writes service + task +
/// event atomically). Returns the task id and whether it was created (false:
/// the idempotency key already named a task, whose id is returned).
pub async fn enqueue(conn: &mut PgConnection, task: &NewTask) -> Result<(Uuid, bool), StoreError> {
    let id = Uuid::now_v7();
    let scheduled = task.run_at.is_some_and(|t| t > Utc::now());
    let state = if scheduled {
        TaskState::Scheduled
    } else {
        TaskState::Available
    };
    let row = sqlx::query(&ENQUEUE_SQL)
        .bind(id)
        .bind(task.tenant_id)
        .bind(task.server_id)
        .bind(task.service_id)
        .bind(&task.operation)
        .bind(&task.input)
        .bind(state)
        .bind(task.run_at)
        .bind(task.max_attempts)
        .bind(task.priority)
        .bind(&task.idempotency_key)
        .bind(
            task.service_id
                .and_then(|_| service_state_on_enqueue(&task.operation)),
        )
        .fetch_optional(&mut *conn)
        .await?;
    if row.is_none() {
        let existing: Uuid = sqlx::query_scalar(
            "SELECT id FROM task_records WHERE tenant_id = $1 AND idempotency_key = $2",
        )
        .bind(task.tenant_id)
        .bind(&task.idempotency_key)
        .fetch_one(&mut *conn)
        .await?;
        return Ok((existing, false));
    }
    Ok((id, true))
}

/// The statement that gives the new records `cte` (a `RETURNING *` of
/// task_records) their queue rows, as they start: same state, run_at,
/// attempt and lease.
pub fn queue_rows_for(cte: &str) -> String {
    format!(
        "INSERT INTO task_queue (task_id, server_id, service_id, state, priority, run_at, attempt,
                                 max_attempts, lease, created_at, updated_at)
         SELECT id, server_id, service_id, state, priority, run_at, attempt, max_attempts, lease,
                created_at, updated_at
         FROM {cte}"
    )
}

/// Tell listening workers there is work (delivered when the caller's
/// transaction commits).
pub(crate) async fn wake_workers(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(TASKS_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Read one column of a row by name (small helper for the other modules).
pub(crate) fn col<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r sqlx::postgres::PgRow,
    name: &str,
) -> Result<T, StoreError> {
    Ok(row.try_get(name)?)
}
