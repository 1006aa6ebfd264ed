use crate::backoff::retry_delay;
use crate::claim::ClaimedTask;
use crate::{ServiceState, StoreError, TaskState};
use chrono::{DateTime, Utc};
use panel1_types::CallMetrics;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

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
    let items = [(task.clone(), outcome.clone(), record.clone())];
    let mut applied = complete_batch(pool, &items).await?;
    Ok(applied.pop().unwrap_or(Applied::Stale))
}

/// Complete many tasks in one transaction with set-based statements: one
/// UPDATE (each row still checked against its own lease), one INSERT of the
/// attempts and one of the events, whatever the batch size. Stale items are
/// skipped and counted. Results are in input order.
pub async fn complete_batch(
    pool: &PgPool,
    items: &[(ClaimedTask, TaskOutcome, AttemptRecord)],
) -> Result<Vec<Applied>, StoreError> {
    let decided: Vec<Decision> = items.iter().map(|(t, o, _)| decide(t, o)).collect();
    let mut tx = pool.begin().await?;
    let applied_ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE tasks t
         SET state = i.state::task_state, run_at = COALESCE(i.run_at, t.run_at),
             result = NULLIF(i.result, 'null'::jsonb), last_error = NULLIF(i.error, 'null'::jsonb),
             lease_expires_at = NULL, leased_by = NULL, updated_at = now(),
             finished_at = CASE WHEN i.state IN ('succeeded', 'failed', 'cancelled') THEN now() END
         FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::timestamptz[], $5::jsonb[], $6::jsonb[])
              AS i(id, lease, state, run_at, result, error)
         WHERE t.id = i.id AND t.lease = i.lease AND t.state = 'running'
         RETURNING t.id",
    )
    .bind(items.iter().map(|(t, _, _)| t.id).collect::<Vec<_>>())
    .bind(items.iter().map(|(t, _, _)| t.lease).collect::<Vec<_>>())
    .bind(decided.iter().map(|d| state_name(d.state).to_string()).collect::<Vec<_>>())
    .bind(decided.iter().map(|d| d.run_at).collect::<Vec<_>>())
    .bind(decided.iter().map(|d| d.result.clone().unwrap_or(Value::Null)).collect::<Vec<_>>())
    .bind(decided.iter().map(|d| d.error.clone().unwrap_or(Value::Null)).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let applied: std::collections::HashSet<Uuid> = applied_ids.into_iter().collect();
    let live: Vec<usize> = (0..items.len())
        .filter(|i| applied.contains(&items[*i].0.id))
        .collect();
    if !live.is_empty() {
        insert_attempts(&mut tx, items, &live).await?;
        for &i in &live {
            let (task, outcome, _) = &items[i];
            if let Some(service_id) = task.service_id {
                apply_to_service(&mut tx, task, service_id, outcome, decided[i].state).await?;
            }
        }
        sqlx::query(
            "INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::jsonb[])",
        )
        .bind(
            live.iter()
                .map(|&i| items[i].0.tenant_id)
                .collect::<Vec<_>>(),
        )
        .bind(
            live.iter()
                .map(|&i| event_kind(decided[i].state).to_string())
                .collect::<Vec<_>>(),
        )
        .bind(live.iter().map(|&i| items[i].0.id).collect::<Vec<_>>())
        .bind(
            live.iter()
                .map(|&i| items[i].0.service_id)
                .collect::<Vec<_>>(),
        )
        .bind(
            live.iter()
                .map(|&i| event_payload(&items[i].0, &decided[i]))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let stale = items.len() - live.len();
    if stale > 0 {
        tracing::warn!(
            count = stale,
            "stale completions dropped: leases no longer held"
        );
        count_stale(pool, stale as i64).await?;
    }
    Ok(items
        .iter()
        .zip(&decided)
        .map(|((t, _, _), d)| {
            if applied.contains(&t.id) {
                d.applied()
            } else {
                Applied::Stale
            }
        })
        .collect())
}

/// What a completion will write for a task.
struct Decision {
    state: TaskState,
    run_at: Option<DateTime<Utc>>,
    result: Option<Value>,
    error: Option<Value>,
}

impl Decision {
    fn applied(&self) -> Applied {
        match self.state {
            TaskState::Succeeded => Applied::Succeeded,
            TaskState::Retryable => Applied::Retrying {
                run_at: self.run_at.unwrap_or_else(Utc::now),
            },
            _ => Applied::Failed,
        }
    }
}

fn decide(task: &ClaimedTask, outcome: &TaskOutcome) -> Decision {
    match outcome {
        TaskOutcome::Succeeded { result } => Decision {
            state: TaskState::Succeeded,
            run_at: None,
            result: Some(result.clone()),
            error: None,
        },
        other => {
            let error = Some(error_json(other));
            match retryable(other) {
                Some(retry_after) if task.attempt < task.max_attempts => {
                    let delay = retry_delay(task.attempt as u32, retry_after);
                    let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    Decision {
                        state: TaskState::Retryable,
                        run_at: Some(at),
                        result: None,
                        error,
                    }
                }
                _ => Decision {
                    state: TaskState::Failed,
                    run_at: None,
                    result: None,
                    error,
                },
            }
        }
    }
}

fn state_name(s: TaskState) -> &'static str {
    match s {
        TaskState::Scheduled => "scheduled",
        TaskState::Available => "available",
        TaskState::Running => "running",
        TaskState::Retryable => "retryable",
        TaskState::Succeeded => "succeeded",
        TaskState::Failed => "failed",
        TaskState::Cancelled => "cancelled",
    }
}

fn event_kind(state: TaskState) -> &'static str {
    match state {
        TaskState::Succeeded => "task.succeeded",
        TaskState::Retryable => "task.retrying",
        _ => "task.failed",
    }
}

fn event_payload(task: &ClaimedTask, d: &Decision) -> Value {
    json!({"operation": task.operation, "attempt": task.attempt, "state": d.state, "run_at": d.run_at, "error": d.error})
}

async fn insert_attempts(
    conn: &mut PgConnection,
    items: &[(ClaimedTask, TaskOutcome, AttemptRecord)],
    live: &[usize],
) -> Result<(), StoreError> {
    let mut cols = AttemptColumns::default();
    for &i in live {
        let (task, outcome, r) = &items[i];
        let (label, kind, message) = attempt_labels(outcome);
        cols.task_id.push(task.id);
        cols.attempt.push(task.attempt);
        cols.lease.push(task.lease);
        cols.worker.push(r.worker.clone());
        cols.started_at.push(r.started_at);
        cols.outcome.push(label.to_string());
        cols.error_kind.push(kind);
        cols.error_message.push(message);
        cols.fuel.push(r.metrics.fuel_consumed as i64);
        cols.wall_us.push(r.metrics.wall_us as i64);
        cols.peak_memory.push(r.metrics.peak_memory_bytes as i64);
        cols.http_requests.push(r.metrics.http_requests as i32);
        cols.http_denied.push(r.metrics.http_denied as i32);
        cols.log.push(r.log.clone());
        cols.http.push(r.http.clone());
    }
    sqlx::query(
        "INSERT INTO task_attempts (task_id, attempt, lease, worker, started_at, outcome, error_kind, error_message,
                                    fuel, wall_us, peak_memory, http_requests, http_denied, log, http)
         SELECT * FROM unnest($1::uuid[], $2::int4[], $3::int8[], $4::text[], $5::timestamptz[], $6::text[],
                              $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::int4[],
                              $13::int4[], $14::jsonb[], $15::jsonb[])
         ON CONFLICT (task_id, attempt) DO NOTHING",
    )
    .bind(cols.task_id)
    .bind(cols.attempt)
    .bind(cols.lease)
    .bind(cols.worker)
    .bind(cols.started_at)
    .bind(cols.outcome)
    .bind(cols.error_kind)
    .bind(cols.error_message)
    .bind(cols.fuel)
    .bind(cols.wall_us)
    .bind(cols.peak_memory)
    .bind(cols.http_requests)
    .bind(cols.http_denied)
    .bind(cols.log)
    .bind(cols.http)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(Default)]
struct AttemptColumns {
    task_id: Vec<Uuid>,
    attempt: Vec<i32>,
    lease: Vec<i64>,
    worker: Vec<String>,
    started_at: Vec<Option<DateTime<Utc>>>,
    outcome: Vec<String>,
    error_kind: Vec<Option<String>>,
    error_message: Vec<Option<String>>,
    fuel: Vec<i64>,
    wall_us: Vec<i64>,
    peak_memory: Vec<i64>,
    http_requests: Vec<i32>,
    http_denied: Vec<i32>,
    log: Vec<Value>,
    http: Vec<Value>,
}

fn attempt_labels(outcome: &TaskOutcome) -> (&'static str, Option<String>, Option<String>) {
    match outcome {
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
    }
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
