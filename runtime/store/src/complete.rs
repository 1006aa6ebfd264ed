use crate::backoff::retry_delay;
use crate::claim::{claimed_from_row, ClaimedTask};
use crate::completion_row::{as_i64, CompletionColumns, CompletionRow, COMPLETE_BATCH_SQL};
use crate::enqueue::col;
use crate::platform::{self, PlatformTask};
use crate::{ServiceState, StoreError, TaskState};
use chrono::{DateTime, Utc};
use panel1_types::CallMetrics;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;
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

/// Complete many tasks in one transaction (see [`complete_and_claim`]).
pub async fn complete_batch(
    pool: &PgPool,
    items: &[(ClaimedTask, TaskOutcome, AttemptRecord)],
) -> Result<Vec<Applied>, StoreError> {
    Ok(complete_and_claim(pool, items, None).await?.0)
}

/// Hand the finished tasks' slots to the next tasks on the same servers.
#[derive(Debug, Clone)]
pub struct Handoff<'a> {
    /// Most tasks claimed (at most one per finished task, per server).
    pub limit: usize,
    pub worker: &'a str,
    pub lease_ttl: Duration,
}

/// Complete many tasks in one round trip and one commit (`complete_batch`,
/// migrations/0008; `complete_one`, 0007 and 0009, for a single task): each row
/// checked against its own lease, the attempts
/// recorded, services moved, events written; stale items are skipped and
/// counted. Results are in input order. With a [`Handoff`], the same
/// transaction claims up to one task per finished task on the same server:
/// that never adds to a server's running count, so no server lock is taken
/// (a worker completing one task at a time thus needs one commit per task).
/// Event streams are not woken by this commit: call [`wake_event_streams`]
/// after it (coalesced, outside the transaction).
pub async fn complete_and_claim(
    pool: &PgPool,
    items: &[(ClaimedTask, TaskOutcome, AttemptRecord)],
    handoff: Option<Handoff<'_>>,
) -> Result<(Vec<Applied>, Vec<ClaimedTask>), StoreError> {
    if items.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // A result whose service fields could never be stored fails here,
    // before it reaches (and fails) the whole statement.
    let oversized: Vec<Option<TaskOutcome>> =
        items.iter().map(|(t, o, _)| oversized(t, o)).collect();
    let outcome_of = |i: usize| oversized[i].as_ref().unwrap_or(&items[i].1);
    let decided: Vec<Decision> = items
        .iter()
        .enumerate()
        .map(|(i, (t, _, _))| decide(t, outcome_of(i)))
        .collect();
    let mut rows: Vec<CompletionRow> = items
        .iter()
        .zip(&decided)
        .enumerate()
        .map(|(i, ((task, _, record), d))| {
            completion_row(task, outcome_of(i), record, d).without_nul()
        })
        .collect();
    let (limit, worker, ttl) = match &handoff {
        Some(h) => (h.limit, h.worker, h.lease_ttl),
        None => (0, "", Duration::ZERO),
    };
    let limit = limit.min(i32::MAX as usize) as i32;
    // One item (per-task mode, or a quiet batch) takes the function of
    // plain statements (migrations/0007, 0009); a batch the one of typed arrays
    // (0008).
    let query = if rows.len() == 1 {
        let item = serde_json::to_value(rows.pop())
            .map_err(|e| StoreError::Invalid(format!("completion item: {e}")))?;
        sqlx::query("SELECT * FROM complete_one($1, $2, $3, $4)").bind(item)
    } else {
        // In id order, the order `heartbeat_many` locks its rows in: a batch
        // locking them in completion order deadlocked with a heartbeat.
        rows.sort_by_key(|r| r.id);
        CompletionColumns::from_rows(rows).bind(sqlx::query(COMPLETE_BATCH_SQL))
    };
    let query = query.bind(limit).bind(worker).bind(ttl.as_secs_f64());
    // A platform task's findings (usage samples, a sync page) are written in
    // the completion's own transaction, only for items it applied.
    let platform_items = items.iter().any(|(t, _, _)| PlatformTask::of(t).is_some());
    let mut tx = match platform_items {
        true => Some(pool.begin().await?),
        false => None,
    };
    let rows = match tx.as_mut() {
        Some(tx) => query.fetch_all(&mut **tx).await?,
        None => query.fetch_all(pool).await?,
    };
    let mut applied = std::collections::HashSet::new();
    let mut claimed = Vec::new();
    for r in &rows {
        if col::<bool>(r, "applied")? {
            applied.insert(col::<Uuid>(r, "id")?);
        } else {
            claimed.push(claimed_from_row(r)?);
        }
    }
    if let Some(mut tx) = tx {
        let finished = items
            .iter()
            .zip(&decided)
            .filter(|((t, _, _), d)| applied.contains(&t.id) && d.state.is_final());
        for ((task, outcome, _), _) in finished {
            platform::project(&mut tx, task, outcome).await?;
        }
        tx.commit().await?;
    }
    let stale = items.len() - applied.len();
    if stale > 0 {
        tracing::warn!(
            count = stale,
            "stale completions dropped: leases no longer held"
        );
    }
    let results = items
        .iter()
        .zip(&decided)
        .map(|((t, _, _), d)| {
            if applied.contains(&t.id) {
                d.applied()
            } else {
                Applied::Stale
            }
        })
        .collect();
    Ok((results, claimed))
}

/// Wake the event streams (`panel1_events`) after completions committed:
/// completions defer that NOTIFY (it would serialize their commits). The
/// webhook loops are woken too (`panel1_webhooks`) when a delivery is due:
/// the fan-out trigger defers its wake-up with the events' (migrations/0026).
/// The check is the first row of an index. A disabled endpoint's backlog is
/// not in it (parked by the claim, migrations/0027), so it cannot keep the
/// check true: only a delivery written since the last claim can.
pub async fn wake_event_streams(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT pg_notify('panel1_events', ''),
                CASE WHEN EXISTS (SELECT 1 FROM webhook_deliveries
                                   WHERE state = 'pending' AND NOT held
                                     AND next_attempt_at <= now())
                     THEN pg_notify('panel1_webhooks', '') END",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// What a completion will write for a task.
struct Decision {
    state: TaskState,
    run_at: Option<DateTime<Utc>>,
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
        TaskOutcome::Succeeded { .. } => Decision {
            state: TaskState::Succeeded,
            run_at: None,
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
                        error,
                    }
                }
                _ => Decision {
                    state: TaskState::Failed,
                    run_at: None,
                    error,
                },
            }
        }
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

/// What the completion writes for one task.
fn completion_row(
    task: &ClaimedTask,
    outcome: &TaskOutcome,
    r: &AttemptRecord,
    d: &Decision,
) -> CompletionRow {
    let (label, kind, message) = attempt_labels(outcome);
    let platform = PlatformTask::of(task).is_some();
    let change = task
        .service_id
        .filter(|_| !platform)
        .and_then(|_| service_change(task, outcome, d.state));
    let touch = change.is_some();
    let change = change.unwrap_or_default();
    CompletionRow {
        id: task.id,
        lease: task.lease,
        state: d.state.as_str(),
        run_at: d.run_at,
        // A JSON null is stored as SQL NULL, as `complete_one`'s
        // jsonb_to_record reads it. (Cloned once, from the outcome: a
        // result can be a large document.)
        result: match outcome {
            TaskOutcome::Succeeded { result } if !result.is_null() => Some(result.clone()),
            _ => None,
        },
        error: d.error.clone().filter(|v| !v.is_null()),
        // A platform task's outcome goes to its own tables instead.
        event_kind: (!platform).then(|| event_kind(d.state)),
        event_payload: event_payload(task, d),
        worker: r.worker.clone(),
        started_at: r.started_at,
        outcome: label,
        error_kind: kind,
        error_message: message,
        fuel: as_i64(r.metrics.fuel_consumed),
        wall_us: as_i64(r.metrics.wall_us),
        peak_memory: as_i64(r.metrics.peak_memory_bytes),
        http_requests: r.metrics.http_requests.min(i32::MAX as u32) as i32,
        http_denied: r.metrics.http_denied.min(i32::MAX as u32) as i32,
        log: non_empty(&r.log),
        http: non_empty(&r.http),
        service_touch: touch,
        service_state: change.state.map(ServiceState::as_str),
        remote_id: change.remote_id,
        plan: change.plan,
        reason: change.reason,
    }
}

fn non_empty(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(a) if a.is_empty() => None,
        other => Some(other.clone()),
    }
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

/// Longest `remote_id` or `plan` a result may set on its service: they are
/// indexed (a btree entry holds at most ~2.7 kB) and shown everywhere.
pub const MAX_SERVICE_FIELD_BYTES: usize = 255;

/// The failure that replaces a successful outcome whose `remote_id` or
/// `plan` is too long to store; `None` for every other outcome.
fn oversized(task: &ClaimedTask, outcome: &TaskOutcome) -> Option<TaskOutcome> {
    let TaskOutcome::Succeeded { result } = outcome else {
        return None;
    };
    if PlatformTask::of(task).is_some() || task.service_id.is_none() {
        return None;
    }
    ["remote_id", "plan"].into_iter().find_map(|field| {
        let value = result[field].as_str()?;
        (value.len() > MAX_SERVICE_FIELD_BYTES).then(|| TaskOutcome::SandboxError {
            kind: "invalid-output".into(),
            message: format!(
                "the result's `{field}` is {} bytes, over the {MAX_SERVICE_FIELD_BYTES} a service can store",
                value.len()
            ),
        })
    })
}

/// What a finished operation does to its service (written in the same
/// transaction as the task): `None` leaves the service alone.
#[derive(Debug, Default, PartialEq)]
struct ServiceChange {
    state: Option<ServiceState>,
    remote_id: Option<String>,
    plan: Option<String>,
    /// The failure reason; `None` clears an earlier one.
    reason: Option<String>,
}

fn service_change(
    task: &ClaimedTask,
    outcome: &TaskOutcome,
    state: TaskState,
) -> Option<ServiceChange> {
    match outcome {
        TaskOutcome::Succeeded { result } => {
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
            let remote_id = if task.operation == "provision" {
                result["remote_id"].as_str().map(String::from)
            } else {
                None
            };
            Some(ServiceChange {
                state: next,
                remote_id,
                plan: result["plan"].as_str().map(String::from),
                reason: None,
            })
        }
        // Only a final failure touches the service; a retry leaves it as is.
        _ if state != TaskState::Failed => None,
        other => {
            let reason = error_json(other)["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            Some(ServiceChange {
                state: (task.operation == "provision").then_some(ServiceState::Failed),
                reason: Some(format!("{} failed: {reason}", task.operation)),
                ..ServiceChange::default()
            })
        }
    }
}
