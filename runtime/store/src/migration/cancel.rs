//! Cancelling a migration before its switch (`POST
//! /v1/migrations/{id}/cancel`): it ends `failed` with `failed_step =
//! "cancel"`, the steps not yet started are cancelled, the service goes
//! back to its state on the source, and the target is cleaned up when the
//! import may have made anything there.
//!
//! A step already running is not interrupted (a provider call cannot be
//! taken back half way); its completion changes nothing of an ended
//! migration (steps.rs). When that step is the import, the target's
//! cleanup waits on it: it runs once the import has succeeded (or at once
//! when it already had); an import that fails made nothing to clean up.
use super::event;
use crate::StoreError;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

/// Why a migration was not cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelRefused {
    #[error("migration {0} not found")]
    NotFound(Uuid),
    /// It has switched or already ended.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CancelRefused {
    fn from(e: sqlx::Error) -> Self {
        CancelRefused::Store(e.into())
    }
}

#[derive(sqlx::FromRow)]
struct Open {
    tenant_id: Uuid,
    service_id: Uuid,
    target_server_id: Uuid,
    state: String,
    export_task_id: Uuid,
    import_task_id: Uuid,
    verify_task_id: Uuid,
    terminate_task_id: Uuid,
}

const REASON: &str = "cancelled on request before the switch";

/// Cancel the tenant's migration `id`, in the caller's transaction.
pub async fn cancel(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> Result<(), CancelRefused> {
    let m: Open = sqlx::query_as(
        "SELECT tenant_id, service_id, target_server_id, state,
                export_task_id, import_task_id, verify_task_id, terminate_task_id
         FROM service_migrations WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(CancelRefused::NotFound(id))?;
    match m.state.as_str() {
        "running" => {}
        "switched" => {
            return Err(CancelRefused::Conflict(format!(
                "migration {id} has switched: the service runs on the target server now, and only \
                 the source's terminate is left (cancel is possible only before the switch)"
            )))
        }
        ended => {
            return Err(CancelRefused::Conflict(format!(
                "migration {id} has already ended ({ended}): there is nothing to cancel"
            )))
        }
    }
    let steps = [
        m.export_task_id,
        m.import_task_id,
        m.verify_task_id,
        m.terminate_task_id,
    ];
    // The steps not started: gone from the queue, their records cancelled
    // (what waits on them is settled by the dependencies' trigger).
    sqlx::query(
        "WITH gone AS (
             DELETE FROM task_queue WHERE task_id = ANY ($1) AND state <> 'running' RETURNING task_id
         )
         UPDATE task_records t
         SET state = 'cancelled', finished_at = now(), updated_at = now(),
             last_error = jsonb_build_object('source', 'host', 'kind', 'migration_cancelled',
                                             'message', $2::text)
         FROM gone WHERE t.id = gone.task_id AND t.finished_at IS NULL",
    )
    .bind(&steps[..])
    .bind(REASON)
    .execute(&mut *tx)
    .await?;
    let import: String = sqlx::query_scalar("SELECT state::text FROM task_records WHERE id = $1")
        .bind(m.import_task_id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE service_migrations
         SET state = 'failed', failed_step = 'cancel', reason = $2, finished_at = now(), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(REASON)
    .execute(&mut *tx)
    .await?;
    super::steps::restore_service(tx, id).await?;
    // The import succeeded or is running: the target may hold the account.
    if import == "succeeded" || import == "running" {
        let target = (m.tenant_id, m.target_server_id, m.verify_task_id);
        super::steps::clean_target_after(tx, id, target, &[m.import_task_id]).await?;
    }
    super::service_event(tx, m.service_id, id).await?;
    event(tx, id, "cancelled", json!({"step": "cancel"})).await?;
    Ok(())
}
