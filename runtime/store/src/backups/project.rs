//! What a finished backup task did, written in its completion's
//! transaction (platform tasks, 0014): the record moves, a pending backup
//! gets its next `backup-status` check, a completed one of a policy is
//! followed by the retention prune, and `backup.completed` /
//! `backup.failed` are written. Adapter output is untrusted and read
//! defensively: only database errors are returned (they fail and retry the
//! whole completion batch).
use super::retention::{self, Retention};
use super::{poll_delay, MAX_POLLS};
use crate::{ClaimedTask, StoreError, TaskOutcome};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// Longest provider backup id and detail value kept.
const MAX_ID: usize = 255;
const MAX_DETAIL: usize = 1000;
const MAX_DETAILS: usize = 32;

/// Which step of a backup a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Create,
    Status,
    /// A delete asked for through the API.
    Delete,
    /// A delete the retention prune asked for.
    Prune,
}

/// `panel1:backup:<backup>:<step>` (a status check's step is `status-<n>`,
/// an API delete's `delete-<ms>`: a delete may be asked for again after one
/// failed).
pub(crate) fn parse_key(key: &str) -> Option<(Uuid, Step)> {
    let rest = key.strip_prefix("panel1:backup:")?;
    let (id, step) = rest.split_once(':')?;
    let step = match step {
        "create" => Step::Create,
        "prune" => Step::Prune,
        s if s.starts_with("status-") => Step::Status,
        s if s.starts_with("delete-") => Step::Delete,
        _ => return None,
    };
    Some((id.parse().ok()?, step))
}

/// What the provider said about a backup.
#[derive(Debug, PartialEq)]
struct Info {
    id: Option<String>,
    state: &'static str,
    size: Option<i64>,
    details: Value,
}

fn info_of(result: &Value) -> Info {
    let id = result
        .get("backup_id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty() && s.len() <= MAX_ID && !s.contains('\0'))
        .map(String::from);
    let state = match result.get("state").and_then(Value::as_str) {
        Some("complete") => "complete",
        Some("pending") => "pending",
        _ => "failed",
    };
    let size = result
        .get("size_bytes")
        .and_then(Value::as_u64)
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let mut details = Map::new();
    if let Some(d) = result.get("details").and_then(Value::as_object) {
        for (k, v) in d.iter().take(MAX_DETAILS) {
            if let Some(s) = v.as_str() {
                if k.len() <= 64 && s.chars().count() <= MAX_DETAIL {
                    details.insert(k.clone(), json!(s));
                }
            }
        }
    }
    Info {
        id,
        state,
        size,
        details: Value::Object(details),
    }
}

/// A failed outcome as a reason.
fn reason(operation: &str, outcome: &TaskOutcome) -> String {
    let cut = |s: &str| s.chars().take(MAX_DETAIL).collect::<String>();
    match outcome {
        TaskOutcome::Succeeded { .. } => String::new(),
        TaskOutcome::AdapterError { kind, message, .. } => {
            format!("{operation} failed ({kind}): {}", cut(message))
        }
        TaskOutcome::SandboxError { kind, message } => {
            format!(
                "{operation} was stopped by the sandbox ({kind}): {}",
                cut(message)
            )
        }
        TaskOutcome::Internal { message } => format!("{operation}: {}", cut(message)),
    }
}

pub(crate) async fn project(
    tx: &mut PgConnection,
    task: &ClaimedTask,
    outcome: &TaskOutcome,
) -> Result<(), StoreError> {
    let Some((backup, step)) = task.idempotency_key.as_deref().and_then(parse_key) else {
        tracing::warn!(task = %task.id, "a backup task without a backup in its key");
        return Ok(());
    };
    match step {
        Step::Create | Step::Status => followed(tx, task, backup, outcome).await,
        Step::Delete | Step::Prune => deleted(tx, backup, step, outcome).await,
    }
}

/// A create-backup or backup-status answer for a pending backup.
async fn followed(
    tx: &mut PgConnection,
    task: &ClaimedTask,
    backup: Uuid,
    outcome: &TaskOutcome,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT provider_backup_id, polls FROM backups WHERE id = $1 AND state = 'pending' FOR UPDATE",
    )
    .bind(backup)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let known: Option<String> = row.try_get("provider_backup_id")?;
    let polls: i32 = row.try_get("polls")?;
    let result = match outcome {
        TaskOutcome::Succeeded { result } => result,
        failed => return fail(tx, backup, &reason(&task.operation, failed)).await,
    };
    let info = info_of(result);
    let Some(provider_id) = info.id.clone().or(known) else {
        return fail(tx, backup, "create-backup answered without a backup_id").await;
    };
    match info.state {
        "complete" => {
            sqlx::query(
                "UPDATE backups SET state = 'complete', provider_backup_id = $2, size_bytes = $3,
                        details = $4, completed_at = now(), updated_at = now()
                 WHERE id = $1",
            )
            .bind(backup)
            .bind(&provider_id)
            .bind(info.size)
            .bind(&info.details)
            .execute(&mut *tx)
            .await?;
            event(tx, backup, "backup.completed").await?;
            prune(tx, backup, service_input(task)).await
        }
        "pending" if polls >= MAX_POLLS => {
            let why = format!("still pending on the provider after {MAX_POLLS} status checks");
            fail(tx, backup, &why).await
        }
        "pending" => {
            sqlx::query(
                "UPDATE backups SET provider_backup_id = $2, details = $3, polls = polls + 1,
                        updated_at = now()
                 WHERE id = $1",
            )
            .bind(backup)
            .bind(&provider_id)
            .bind(&info.details)
            .execute(&mut *tx)
            .await?;
            let run_at = Utc::now() + poll_delay(polls as u32);
            let input = json!({"service": service_input(task), "backup_id": provider_id});
            followup(
                tx,
                backup,
                &format!("status-{}", polls + 1),
                "backup-status",
                &input,
                run_at,
            )
            .await
        }
        _ => {
            let why = match info.details.get("reason").and_then(Value::as_str) {
                Some(r) => format!("the provider reports the backup failed: {r}"),
                None => "the provider reports the backup failed".to_string(),
            };
            sqlx::query("UPDATE backups SET provider_backup_id = $2, details = $3 WHERE id = $1")
                .bind(backup)
                .bind(&provider_id)
                .bind(&info.details)
                .execute(&mut *tx)
                .await?;
            fail(tx, backup, &why).await
        }
    }
}

fn service_input(task: &ClaimedTask) -> Value {
    task.input.get("service").cloned().unwrap_or(Value::Null)
}

async fn fail(tx: &mut PgConnection, backup: Uuid, why: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE backups SET state = 'failed', failure_reason = $2, completed_at = now(), updated_at = now()
         WHERE id = $1",
    )
    .bind(backup)
    .bind(why.replace('\0', "\u{fffd}"))
    .execute(&mut *tx)
    .await?;
    event(tx, backup, "backup.failed").await
}

/// `backup.completed` or `backup.failed`, with the record's summary.
async fn event(tx: &mut PgConnection, backup: Uuid, kind: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (tenant_id, kind, task_id, service_id, payload)
         SELECT b.tenant_id, $2, b.task_id, b.service_id,
                jsonb_build_object('backup_id', b.id, 'server_id', b.server_id,
                                   'policy_id', b.policy_id, 'trigger', b.trigger, 'state', b.state,
                                   'provider_backup_id', b.provider_backup_id,
                                   'size_bytes', b.size_bytes, 'failure_reason', b.failure_reason)
         FROM backups b WHERE b.id = $1",
    )
    .bind(backup)
    .bind(kind)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub(crate) async fn followup(
    tx: &mut PgConnection,
    backup: Uuid,
    step: &str,
    operation: &str,
    input: &Value,
    run_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("SELECT panel1_backup_followup($1, $2, $3, $4, $5)")
        .bind(backup)
        .bind(step)
        .bind(operation)
        .bind(input)
        .bind(run_at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// After a policy's backup completed: keep what the policy's retention
/// keeps of the service's complete backups under that policy, and delete
/// the rest on the provider (`delete-backup` tasks, step `prune`).
pub(crate) async fn prune(
    tx: &mut PgConnection,
    backup: Uuid,
    service: Value,
) -> Result<(), StoreError> {
    let policy: Option<(Uuid, Uuid, i32, i32, i32)> = sqlx::query_as(
        "SELECT p.id, b.service_id, p.keep_daily, p.keep_weekly, p.keep_monthly
         FROM backups b JOIN backup_policies p ON p.id = b.policy_id WHERE b.id = $1",
    )
    .bind(backup)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((policy, svc, daily, weekly, monthly)) = policy else {
        return Ok(());
    };
    let rule = Retention {
        daily: daily.max(0) as u32,
        weekly: weekly.max(0) as u32,
        monthly: monthly.max(0) as u32,
    };
    let rows: Vec<(Uuid, DateTime<Utc>, Option<String>)> = sqlx::query_as(
        "SELECT id, created_at, provider_backup_id FROM backups
         WHERE service_id = $1 AND policy_id = $2 AND state = 'complete'
         ORDER BY id FOR UPDATE",
    )
    .bind(svc)
    .bind(policy)
    .fetch_all(&mut *tx)
    .await?;
    let dates: Vec<(Uuid, DateTime<Utc>)> = rows.iter().map(|(id, at, _)| (*id, *at)).collect();
    let kept = retention::keep(&dates, rule);
    for (id, _, provider_id) in rows.iter().filter(|(id, _, _)| !kept.contains(id)) {
        sqlx::query("UPDATE backups SET state = 'deleting', updated_at = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let input = json!({"service": service, "backup_id": provider_id});
        followup(tx, *id, "prune", "delete-backup", &input, Utc::now()).await?;
    }
    Ok(())
}

/// A delete-backup answer. Deleted when it succeeded. A prune the adapter
/// cannot carry out (`unsupported`, or any final failure) leaves the backup
/// `expired` with the reason, kept on the provider, instead of retrying
/// forever; a delete asked for through the API goes back to `complete`.
async fn deleted(
    tx: &mut PgConnection,
    backup: Uuid,
    step: Step,
    outcome: &TaskOutcome,
) -> Result<(), StoreError> {
    let (state, why) = match (outcome, step) {
        (TaskOutcome::Succeeded { .. }, _) => ("deleted", None),
        (TaskOutcome::AdapterError { kind, .. }, Step::Prune) if kind == "unsupported" => (
            "expired",
            Some(
                "past retention, but the adapter cannot delete backups (delete-backup is \
                 unsupported): kept on the provider"
                    .to_string(),
            ),
        ),
        (failed, Step::Prune) => (
            "expired",
            Some(format!(
                "past retention, not deleted: {}",
                reason("delete-backup", failed)
            )),
        ),
        (failed, _) => ("complete", Some(reason("delete-backup", failed))),
    };
    sqlx::query(
        "UPDATE backups SET state = $2, failure_reason = COALESCE($3, failure_reason),
                deleted_at = CASE WHEN $2 = 'deleted' THEN now() END, updated_at = now()
         WHERE id = $1 AND state = 'deleting'",
    )
    .bind(backup)
    .bind(state)
    .bind(why)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let id = Uuid::now_v7();
        assert_eq!(
            parse_key(&format!("panel1:backup:{id}:create")),
            Some((id, Step::Create))
        );
        assert_eq!(
            parse_key(&format!("panel1:backup:{id}:status-3")),
            Some((id, Step::Status))
        );
        assert_eq!(
            parse_key(&format!("panel1:backup:{id}:prune")),
            Some((id, Step::Prune))
        );
        assert_eq!(
            parse_key(&format!("panel1:backup:{id}:delete-17")),
            Some((id, Step::Delete))
        );
        assert_eq!(parse_key(&format!("panel1:backup:{id}:other")), None);
        assert_eq!(parse_key("panel1:backup:nope:create"), None);
        assert_eq!(parse_key(&format!("panel1:usage:{id}:1")), None);
    }

    #[test]
    fn answers_are_read_defensively() {
        let i = info_of(
            &json!({"backup_id": "b1", "state": "complete", "size_bytes": 10,
                                "details": {"path": "/x", "n": 1, "long": "y".repeat(2000)}}),
        );
        assert_eq!(i.id.as_deref(), Some("b1"));
        assert_eq!(i.state, "complete");
        assert_eq!(i.size, Some(10));
        assert_eq!(i.details, json!({"path": "/x"}));
        let i = info_of(&json!({"backup_id": "", "state": "weird", "size_bytes": -1}));
        assert_eq!((i.id, i.state, i.size), (None, "failed", None));
        assert_eq!(info_of(&json!(null)).state, "failed");
    }
}
