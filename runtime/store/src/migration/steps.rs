//! What each step's final outcome does to its migration, in the step's
//! completion transaction (called only when that completion applied, like
//! every platform task's projection). The order of the steps is the task
//! dependencies' work (migrations/0020): a step that fails has already
//! cancelled the steps after it when this runs.
use super::{event, service_event};
use crate::dependencies::enqueue_after;
use crate::platform::PlatformTask;
use crate::{ClaimedTask, NewTask, StoreError, TaskOutcome};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct Open {
    tenant_id: Uuid,
    service_id: Uuid,
    target_server_id: Uuid,
    state: String,
    grace_period_seconds: i32,
    import_task_id: Uuid,
    verify_task_id: Uuid,
    terminate_task_id: Uuid,
}

/// `panel1:migration:<id>:<step>` → (id, step).
fn parse(task: &ClaimedTask) -> Option<(Uuid, &str)> {
    let key = task.idempotency_key.as_deref()?;
    let rest = key.strip_prefix(&PlatformTask::Migration.key(&[]))?;
    let (id, step) = rest.split_once(':')?;
    Some((id.parse().ok()?, step))
}

/// Why a step failed, for the record ("import-service failed: …").
fn failure(task: &ClaimedTask, outcome: &TaskOutcome) -> String {
    let message = match outcome {
        TaskOutcome::Succeeded { .. } => "",
        TaskOutcome::AdapterError { kind, message, .. } => {
            return format!("{} failed ({kind}): {message}", task.operation)
        }
        TaskOutcome::SandboxError { kind, message } => {
            return format!(
                "{} stopped by the sandbox ({kind}): {message}",
                task.operation
            )
        }
        TaskOutcome::Internal { message } => message.as_str(),
    };
    format!("{} failed: {message}", task.operation)
}

pub(crate) async fn project(
    tx: &mut PgConnection,
    task: &ClaimedTask,
    outcome: &TaskOutcome,
) -> Result<(), StoreError> {
    let Some((id, step)) = parse(task) else {
        return Ok(());
    };
    let Some(m): Option<Open> = sqlx::query_as(
        "SELECT tenant_id, service_id, target_server_id, state, grace_period_seconds,
                import_task_id, verify_task_id, terminate_task_id
         FROM service_migrations WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(());
    };
    let result = match outcome {
        TaskOutcome::Succeeded { result } => Some(result),
        _ => None,
    };
    match (step, result) {
        ("cleanup", _) => {
            let what = if result.is_some() {
                "cleaned_up"
            } else {
                "cleanup_failed"
            };
            let why = result.is_none().then(|| failure(task, outcome));
            event(
                tx,
                id,
                what,
                json!({"step": "cleanup", "cleanup_error": why}),
            )
            .await
        }
        // A late step of a migration that already ended changes nothing.
        _ if m.state == "failed" || m.state == "completed" => Ok(()),
        ("export", Some(r)) => {
            // The import carries the package the export answered.
            sqlx::query(
                "UPDATE task_records SET input = jsonb_set(input, '{transfer}', $2) WHERE id = $1",
            )
            .bind(m.import_task_id)
            .bind(r)
            .execute(&mut *tx)
            .await?;
            event(tx, id, "progress", json!({"step": "export"})).await
        }
        ("import", Some(r)) => {
            // The verify asks for the service by the id the target gave it.
            if let Some(remote) = r["remote_id"].as_str().filter(|s| !s.is_empty()) {
                sqlx::query(
                    "UPDATE task_records SET input = jsonb_set(input, '{service,remote_id}', to_jsonb($2::text))
                     WHERE id = $1",
                )
                .bind(m.verify_task_id)
                .bind(remote)
                .execute(&mut *tx)
                .await?;
            }
            event(tx, id, "progress", json!({"step": "import"})).await
        }
        ("verify", Some(r)) => match r["state"].as_str() {
            Some("active") | Some("suspended") => switch(tx, id, &m, r).await,
            other => {
                let why = format!(
                    "status on the target answered {:?}, not an active or suspended service",
                    other.unwrap_or("nothing")
                );
                fail(tx, id, &m, "verify", &why, true).await
            }
        },
        ("terminate", r) => {
            let why = r.is_none().then(|| failure(task, outcome));
            sqlx::query(
                "UPDATE service_migrations
                 SET state = 'completed', failed_step = CASE WHEN $2::text IS NOT NULL THEN 'terminate' END,
                     reason = $2, finished_at = now(), updated_at = now()
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&why)
            .execute(&mut *tx)
            .await?;
            event(tx, id, "completed", json!({"step": "terminate"})).await
        }
        (step @ ("export" | "import" | "verify"), None) => {
            // An import refused with `conflict` found the name taken on the
            // target by an account that is not this migration's: cleaning
            // up would terminate someone else's account.
            let taken = step == "import"
                && matches!(outcome, TaskOutcome::AdapterError { kind, .. } if kind == "conflict");
            let mut why = format!("{step}: {}", failure(task, outcome));
            if taken {
                why.push_str(
                    "; the target was left as it is (the account there is not this migration's)",
                );
            }
            fail(tx, id, &m, step, &why, step != "export" && !taken).await
        }
        _ => Ok(()),
    }
}

/// The verify succeeded: the service is on the target from now on, in the
/// state it had; the source's terminate may run once the grace has passed.
async fn switch(
    tx: &mut PgConnection,
    id: Uuid,
    m: &Open,
    status: &Value,
) -> Result<(), StoreError> {
    let remote = status["remote_id"].as_str().filter(|s| !s.is_empty());
    let taken: Option<Uuid> = sqlx::query_scalar(
        "SELECT o.id FROM services s JOIN services o
           ON o.server_id = $2 AND o.id <> s.id AND o.state <> 'terminated'
          AND COALESCE(o.remote_id, o.spec->>'username') = COALESCE($3, s.remote_id, s.spec->>'username')
         WHERE s.id = $1",
    )
    .bind(m.service_id)
    .bind(m.target_server_id)
    .bind(remote)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(other) = taken {
        let why = format!("switch: service {other} took the account on the target meanwhile");
        return fail(tx, id, m, "switch", &why, true).await;
    }
    sqlx::query(
        "UPDATE services s
         SET server_id = m.target_server_id, state = m.previous_state,
             remote_id = COALESCE($2, s.remote_id), failure_reason = NULL, updated_at = now()
         FROM service_migrations m WHERE m.id = $1 AND s.id = m.service_id",
    )
    .bind(id)
    .bind(remote)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE service_migrations SET state = 'switched', switched_at = now(), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    // The terminate was released by this completion (its dependency
    // succeeded, so it is `scheduled`, due now); it starts after the grace
    // period from now.
    let grace = f64::from(m.grace_period_seconds);
    sqlx::query(
        "WITH q AS (
             UPDATE task_queue SET run_at = now() + make_interval(secs => $2), updated_at = now()
             WHERE task_id = $1 AND state = 'scheduled'
             RETURNING task_id, run_at
         )
         UPDATE task_records t SET run_at = q.run_at, updated_at = now()
         FROM q WHERE t.id = q.task_id",
    )
    .bind(m.terminate_task_id)
    .bind(grace)
    .execute(&mut *tx)
    .await?;
    service_event(tx, m.service_id, id).await?;
    event(tx, id, "switched", json!({"step": "switch"})).await
}

/// A step before the switch failed: the steps not yet run are cancelled,
/// the service goes back to its state on the source, the migration keeps
/// the step and the reason, and the target is cleaned up when the import
/// had started there.
async fn fail(
    tx: &mut PgConnection,
    id: Uuid,
    m: &Open,
    step: &str,
    why: &str,
    clean_target: bool,
) -> Result<(), StoreError> {
    let steps = [m.import_task_id, m.verify_task_id, m.terminate_task_id];
    sqlx::query(
        "WITH gone AS (
             DELETE FROM task_queue WHERE task_id = ANY ($1) AND state <> 'running' RETURNING task_id
         )
         UPDATE task_records t
         SET state = 'cancelled', finished_at = now(), updated_at = now(),
             last_error = jsonb_build_object('source', 'host', 'kind', 'migration_failed', 'message', $2::text)
         FROM gone WHERE t.id = gone.task_id AND t.finished_at IS NULL",
    )
    .bind(&steps[..])
    .bind(why)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE service_migrations
         SET state = 'failed', failed_step = $2, reason = $3, finished_at = now(), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(step)
    .bind(why)
    .execute(&mut *tx)
    .await?;
    restore_service(tx, id).await?;
    if clean_target {
        let target = (m.tenant_id, m.target_server_id, m.verify_task_id);
        clean_target_after(tx, id, target, &[]).await?;
    }
    service_event(tx, m.service_id, id).await?;
    event(tx, id, "failed", json!({"step": step})).await
}

/// A migration that ended before its switch: the service goes back to the
/// state it had on the source.
pub(super) async fn restore_service(tx: &mut PgConnection, id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE services s SET state = m.previous_state, updated_at = now()
         FROM service_migrations m WHERE m.id = $1 AND s.id = m.service_id AND s.state = 'migrating'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The migration's `cleanup` step: `terminate` on the target, run once
/// `after` have ended. `target` is the tenant, the target server and the
/// verify step (whose input names the service as the target knows it).
pub(super) async fn clean_target_after(
    tx: &mut PgConnection,
    id: Uuid,
    (tenant, target_server, verify_task): (Uuid, Uuid, Uuid),
    after: &[Uuid],
) -> Result<(), StoreError> {
    let input: Value = sqlx::query_scalar("SELECT input FROM task_records WHERE id = $1")
        .bind(verify_task)
        .fetch_one(&mut *tx)
        .await?;
    let mut cleanup = NewTask::new(
        tenant,
        target_server,
        None,
        "terminate",
        json!({"service": input["service"]}),
    );
    cleanup.idempotency_key = Some(PlatformTask::Migration.key(&[&id.to_string(), "cleanup"]));
    let (task, _) = enqueue_after(tx, &cleanup, after).await?;
    sqlx::query("UPDATE service_migrations SET cleanup_task_id = $2 WHERE id = $1")
        .bind(id)
        .bind(task)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
