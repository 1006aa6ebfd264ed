use crate::backoff::retry_delay;
use crate::claim::ClaimedTask;
use crate::{ServiceState, StoreError, TaskState};
use chrono::{DateTime, Utc};
use panel1_types::CallMetrics;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};

/// How an attempt ended, as the worker saw it.
#[derive(Debug, Clone)]
pub enum TaskOutcome {
    Succeeded {
        result: Value,
    },
    /// The adapter's typed error (`transient` is retried).
    AdapterError {
        kind: String,
        message: String,
        retry_after_ms: Option<u64>,
    },
    /// The sandbox stopped the call (`deadline` is retried; fuel, memory and
    /// traps are deterministic and fail at once).
    SandboxError {
        kind: String,
        message: String,
    },
    /// A host-side failure (database, artifact store ...): retried.
    Internal {
        message: String,
    },
}

/// What the worker measured and captured for the attempt.
#[derive(Debug, Clone, Default)]
pub struct AttemptRecord {
    pub worker: String,
    pub started_at: Option<DateTime<Utc>>,
    pub metrics: CallMetrics,
    pub log: Value,
    pub http: Value,
}

/// What the completion did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Succeeded,
    Retrying {
        run_at: DateTime<Utc>,
    },
    Failed,
    /// The lease no longer matched (the task was rescued and re-claimed, or
    /// cancelled): nothing was written; counted in `stale_completions`.
    Stale,
}

fn retryable(outcome: &TaskOutcome) -> Option<Option<u64>> {
    match outcome {
        TaskOutcome::AdapterError {
            kind,
            retry_after_ms,
            ..
        } if kind == "transient" => Some(*retry_after_ms),
        TaskOutcome::SandboxError { kind, .. } if kind == "deadline" => Some(None),
        TaskOutcome::Internal { .. } => Some(None),
        _ => None,
    }
}

/// Record the attempt and move the task (and its service) in one
/// transaction, only if the caller still holds the lease.
pub async fn complete(
    pool: &PgPool,
    task: &ClaimedTask,
    outcome: &TaskOutcome,
    record: &AttemptRecord,
) -> Result<Applied, StoreError> {
    let mut tx = pool.begin().await?;
    let applied = complete_in(&mut tx, task, outcome, record).await?;
    tx.commit().await?;
    if applied == Applied::Stale {
        count_stale(pool, 1).await?;
    }
    Ok(applied)
}

/// Complete many tasks in one transaction (one commit for the batch: the
/// batch completer's path). Each keeps its own lease check; stale ones are
/// skipped and counted. Results are in input order.
pub async fn complete_batch(
    pool: &PgPool,
    items: &[(ClaimedTask, TaskOutcome, AttemptRecord)],
) -> Result<Vec<Applied>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(items.len());
    for (task, outcome, record) in items {
        out.push(complete_in(&mut tx, task, outcome, record).await?);
    }
    tx.commit().await?;
    let stale = out.iter().filter(|a| **a == Applied::Stale).count();
    if stale > 0 {
        count_stale(pool, stale as i64).await?;
    }
    Ok(out)
}

async fn complete_in(
    tx: &mut PgConnection,
    task: &ClaimedTask,
    outcome: &TaskOutcome,
    record: &AttemptRecord,
) -> Result<Applied, StoreError> {
    let (state, run_at, result, error) = match outcome {
        TaskOutcome::Succeeded { result } => {
            (TaskState::Succeeded, None, Some(result.clone()), None)
        }
        other => {
            let error = error_json(other);
            match retryable(other) {
                Some(retry_after) if task.attempt < task.max_attempts => {
                    let delay = retry_delay(task.attempt as u32, retry_after);
                    let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    (TaskState::Retryable, Some(at), None, Some(error))
                }
                _ => (TaskState::Failed, None, None, Some(error)),
            }
        }
    };
    let updated = sqlx::query(
        "UPDATE tasks
         SET state = $3, run_at = COALESCE($4, run_at), result = $5, last_error = $6,
             lease_expires_at = NULL, leased_by = NULL, updated_at = now(),
             finished_at = CASE WHEN $3 IN ('succeeded', 'failed', 'cancelled') THEN now() END
         WHERE id = $1 AND lease = $2 AND state = 'running'",
    )
    .bind(task.id)
    .bind(task.lease)
    .bind(state)
    .bind(run_at)
    .bind(&result)
    .bind(&error)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        tracing::warn!(task = %task.id, lease = task.lease, "stale completion dropped: the lease is no longer held");
        return Ok(Applied::Stale);
    }
    insert_attempt(&mut *tx, task, outcome, record).await?;
    if let Some(service_id) = task.service_id {
        apply_to_service(&mut *tx, task, service_id, outcome, state).await?;
    }
    let kind = match state {
        TaskState::Succeeded => "task.succeeded",
        TaskState::Retryable => "task.retrying",
        _ => "task.failed",
    };
    sqlx::query("INSERT INTO events (tenant_id, kind, task_id, service_id, payload) VALUES ($1, $2, $3, $4, $5)")
        .bind(task.tenant_id)
        .bind(kind)
        .bind(task.id)
        .bind(task.service_id)
        .bind(json!({"operation": task.operation, "attempt": task.attempt, "state": state, "run_at": run_at, "error": error}))
        .execute(&mut *tx)
        .await?;
    Ok(match state {
        TaskState::Succeeded => Applied::Succeeded,
        TaskState::Retryable => Applied::Retrying {
            run_at: run_at.unwrap_or_else(Utc::now),
        },
        _ => Applied::Failed,
    })
}

pub(crate) async fn count_stale(pool: &PgPool, n: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO queue_counters (name, value) VALUES ('stale_completions', $1)
         ON CONFLICT (name) DO UPDATE SET value = queue_counters.value + $1",
    )
    .bind(n)
    .execute(pool)
    .await?;
    Ok(())
}

fn error_json(outcome: &TaskOutcome) -> Value {
    match outcome {
        TaskOutcome::Succeeded { .. } => Value::Null,
        TaskOutcome::AdapterError {
            kind,
            message,
            retry_after_ms,
        } => {
            json!({"source": "adapter", "kind": kind, "message": message, "retry_after_ms": retry_after_ms})
        }
        TaskOutcome::SandboxError { kind, message } => {
            json!({"source": "sandbox", "kind": kind, "message": message})
        }
        TaskOutcome::Internal { message } => {
            json!({"source": "host", "kind": "internal", "message": message})
        }
    }
}

async fn insert_attempt(
    conn: &mut PgConnection,
    task: &ClaimedTask,
    outcome: &TaskOutcome,
    r: &AttemptRecord,
) -> Result<(), StoreError> {
    let (label, kind, message) = match outcome {
        TaskOutcome::Succeeded { .. } => ("succeeded", None, None),
        TaskOutcome::AdapterError { kind, message, .. } => {
            ("adapter-error", Some(kind.clone()), Some(message.clone()))
        }
        TaskOutcome::SandboxError { kind, message } => {
            ("sandbox-error", Some(kind.clone()), Some(message.clone()))
        }
        TaskOutcome::Internal { message } => (
            "internal",
            Some("internal".to_string()),
            Some(message.clone()),
        ),
    };
    let m = &r.metrics;
    sqlx::query(
        "INSERT INTO task_attempts (task_id, attempt, lease, worker, started_at, outcome, error_kind, error_message,
                                    fuel, wall_us, peak_memory, http_requests, http_denied, log, http)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (task_id, attempt) DO NOTHING",
    )
    .bind(task.id)
    .bind(task.attempt)
    .bind(task.lease)
    .bind(&r.worker)
    .bind(r.started_at)
    .bind(label)
    .bind(kind)
    .bind(message)
    .bind(m.fuel_consumed as i64)
    .bind(m.wall_us as i64)
    .bind(m.peak_memory_bytes as i64)
    .bind(m.http_requests as i32)
    .bind(m.http_denied as i32)
    .bind(&r.log)
    .bind(&r.http)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The service side of a finished operation, in the same transaction.
async fn apply_to_service(
    conn: &mut PgConnection,
    task: &ClaimedTask,
    service_id: uuid::Uuid,
    outcome: &TaskOutcome,
    state: TaskState,
) -> Result<(), StoreError> {
    let (next, remote_id, plan, reason): (
        Option<ServiceState>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = match outcome {
        TaskOutcome::Succeeded { result } => {
            let remote = result["remote_id"].as_str().map(String::from);
            let plan = result["plan"].as_str().map(String::from);
            let next = match task.operation.as_str() {
                "provision" | "unsuspend" => Some(ServiceState::Active),
                "suspend" => Some(ServiceState::Suspended),
                "terminate" => Some(ServiceState::Terminated),
                "status" => match result["state"].as_str() {
                    Some("active") => Some(ServiceState::Active),
                    Some("suspended") => Some(ServiceState::Suspended),
                    Some("terminated") => Some(ServiceState::Terminated),
                    _ => None,
                },
                _ => None,
            };
            let remote = if task.operation == "provision" {
                remote
            } else {
                None
            };
            (next, remote, plan, None)
        }
        // Only a final failure touches the service; a retry leaves it as is.
        _ if state != TaskState::Failed => return Ok(()),
        other => {
            let reason = error_json(other)["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let next = (task.operation == "provision").then_some(ServiceState::Failed);
            (
                next,
                None,
                None,
                Some(format!("{} failed: {reason}", task.operation)),
            )
        }
    };
    sqlx::query(
        "UPDATE services
         SET state = COALESCE($2, state), remote_id = COALESCE($3, remote_id), plan = COALESCE($4, plan),
             failure_reason = $5, updated_at = now()
         WHERE id = $1",
    )
    .bind(service_id)
    .bind(next)
    .bind(remote_id)
    .bind(plan)
    .bind(&reason)
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO events (tenant_id, kind, task_id, service_id, payload) VALUES ($1, 'service.updated', $2, $3, $4)")
        .bind(task.tenant_id)
        .bind(task.id)
        .bind(service_id)
        .bind(json!({"state": next, "failure_reason": reason}))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
