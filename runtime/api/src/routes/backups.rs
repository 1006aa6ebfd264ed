//! Backups of a service (docs/backups.md): start one on demand, list and
//! read the records, restore one (an ordinary `restore-backup` task, in the
//! service's order of operations), delete one on the provider. The backup
//! tasks run on workers; this API never calls the adapter. Every query is
//! scoped to the caller's tenant.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::{Page, PageParams};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::service_actions::refuse_after_terminate;
use crate::routes::tasks::{enqueue_task, Task};
use crate::routes::{Accepted, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use panel1_store::backups as store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_backup, list_backups))
        .routes(routes!(get_backup, delete_backup))
        .routes(routes!(restore_backup))
}

/// States a service can be backed up or restored in.
const BACKUP_STATES: [&str; 2] = ["active", "suspended"];

fn state_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&store::STATES)
}

fn trigger_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&["policy", "request"])
}

/// A backup record: one backup of a service on its provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct Backup {
    pub id: Uuid,
    pub service_id: Uuid,
    pub server_id: Uuid,
    /// The policy that took it (absent: on demand, or its policy was
    /// deleted; such backups are never pruned by retention).
    pub policy_id: Option<Uuid>,
    #[schema(schema_with = trigger_schema)]
    pub trigger: String,
    /// The provider's id of the backup, once the adapter answered.
    pub provider_backup_id: Option<String>,
    /// `pending` (being made), `complete`, `failed`, `deleting`, `deleted`
    /// (removed from the provider) or `expired` (past retention but kept on
    /// the provider, see `failure_reason`).
    #[schema(schema_with = state_schema)]
    pub state: String,
    pub size_bytes: Option<i64>,
    /// What the provider said about it (string values).
    #[schema(value_type = Object)]
    pub details: Value,
    /// The create-backup task.
    pub task_id: Option<Uuid>,
    /// `backup-status` checks made while it was pending.
    pub status_checks: i32,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<store::Backup> for Backup {
    fn from(b: store::Backup) -> Self {
        Backup {
            id: b.id,
            service_id: b.service_id,
            server_id: b.server_id,
            policy_id: b.policy_id,
            trigger: b.trigger,
            provider_backup_id: b.provider_backup_id,
            state: b.state,
            size_bytes: b.size_bytes,
            details: b.details,
            task_id: b.task_id,
            status_checks: b.polls,
            failure_reason: b.failure_reason,
            created_at: b.created_at,
            completed_at: b.completed_at,
            deleted_at: b.deleted_at,
        }
    }
}

/// A restore: the backup and the `restore-backup` task.
#[derive(Debug, Serialize, ToSchema)]
pub struct Restore {
    pub backup: Backup,
    pub task: Task,
}

fn no_backup(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("backup {id}"))
}

/// The service (locked) in a state a backup or restore is accepted in,
/// with its adapter able to run `operation`.
async fn backup_target(
    conn: &mut PgConnection,
    tenant: Uuid,
    service: Uuid,
    operation: &str,
) -> ApiResult<(Uuid, Value)> {
    let row: Option<(Uuid, String, Value)> = sqlx::query_as(
        "SELECT s.server_id, s.state::text, panel1_service_input(s)
         FROM services s WHERE s.id = $1 AND s.tenant_id = $2 FOR UPDATE",
    )
    .bind(service)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    let (server, state, input) =
        row.ok_or_else(|| ApiError::NotFound(format!("service {service}")))?;
    let (supported, adapter, world) =
        store::adapter_support(&mut *conn, service, operation).await?;
    if !supported {
        return Err(ApiError::validation(
            "service_id",
            format!(
                "the service's adapter {adapter:?} (world {world}) does not support backups: \
                 it has no {operation}"
            ),
        ));
    }
    let verb = operation.trim_end_matches("-backup");
    if !BACKUP_STATES.contains(&state.as_str()) {
        return Err(ApiError::Conflict(format!(
            "cannot {verb} a backup of a service that is {state}"
        )));
    }
    refuse_after_terminate(conn, service, operation).await?;
    Ok((server, input))
}

/// Back the service up now: a `create-backup` task on its server, in its
/// order of operations; the record is `pending` until the provider says the
/// backup is complete (followed with `backup-status` checks). Such a backup
/// is never pruned by a policy's retention.
#[utoipa::path(post, path = "/v1/services/{id}/backups", tag = "backups", params(("id" = Uuid, Path)),
    responses((status = 202, body = Backup),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The service is not active or suspended, or is being terminated"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "The service's adapter does not support backups")),
    security(("api_key" = [])))]
async fn create_backup(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Accepted<Backup>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = effect.begin().await?;
    backup_target(&mut tx, tenant, id, "create-backup").await?;
    let backup = store::request(&mut tx, id).await?;
    let b = store::get(&mut *tx, tenant, backup)
        .await?
        .ok_or_else(|| no_backup(backup))?;
    Ok(Accepted(b.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BackupQuery {
    #[param(schema_with = state_schema)]
    pub state: Option<String>,
    /// Items per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// The service's backups, newest first.
#[utoipa::path(get, path = "/v1/services/{id}/backups", tag = "backups",
    params(("id" = Uuid, Path), BackupQuery),
    responses((status = 200, body = Page<Backup>),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn list_backups(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<BackupQuery>,
) -> ApiResult<Json<Page<Backup>>> {
    let tenant = p.tenant(Scope::Read)?;
    ApiError::check_one_of("state", q.state.as_deref(), &store::STATES)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM services WHERE id = $1 AND tenant_id = $2)",
    )
    .bind(id)
    .bind(tenant)
    .fetch_one(&state.pool)
    .await?;
    if !exists {
        return Err(ApiError::NotFound(format!("service {id}")));
    }
    let rows = store::list_for_service(
        &state.pool,
        tenant,
        id,
        q.state.as_deref(),
        page.before(),
        limit + 1,
    )
    .await?;
    let rows: Vec<Backup> = rows.into_iter().map(Into::into).collect();
    Ok(Json(Page::from_rows(rows, limit, |b| b.id)))
}

#[utoipa::path(get, path = "/v1/backups/{id}", tag = "backups", params(("id" = Uuid, Path)),
    responses((status = 200, body = Backup),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_backup(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Backup>> {
    let tenant = p.tenant(Scope::Read)?;
    let b = store::get(&state.pool, tenant, id)
        .await?
        .ok_or_else(|| no_backup(id))?;
    Ok(Json(b.into()))
}

/// Restore the service from this backup: an ordinary `restore-backup` task
/// (events, attempts, retries like any operation), run in the service's
/// order of operations. The backup must be `complete` (or `expired`: still
/// on the provider).
#[utoipa::path(post, path = "/v1/backups/{id}/restore", tag = "backups", params(("id" = Uuid, Path)),
    responses((status = 202, body = Restore),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The backup is not on the provider, or the service cannot be restored now"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "The service's adapter cannot restore backups")),
    security(("api_key" = [])))]
async fn restore_backup(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Accepted<Restore>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = effect.begin().await?;
    let b = store::get(&mut *tx, tenant, id)
        .await?
        .ok_or_else(|| no_backup(id))?;
    let (server, service) = backup_target(&mut tx, tenant, b.service_id, "restore-backup").await?;
    let provider_id = match (b.state.as_str(), &b.provider_backup_id) {
        ("complete" | "expired", Some(pid)) => pid.clone(),
        (state, _) => {
            return Err(ApiError::Conflict(format!(
                "backup {id} is {state}: only a complete (or expired) backup can be restored"
            )))
        }
    };
    let input = json!({"service": service, "backup_id": provider_id});
    let task = enqueue_task(
        &mut tx,
        tenant,
        server,
        Some(b.service_id),
        "restore-backup",
        input,
    )
    .await?;
    Ok(Accepted(Restore {
        backup: b.into(),
        task,
    }))
}

/// Delete the backup on the provider (a `delete-backup` task); the record
/// stays, `deleting` and then `deleted`. A delete that fails puts it back
/// to `complete` with the reason.
#[utoipa::path(delete, path = "/v1/backups/{id}", tag = "backups", params(("id" = Uuid, Path)),
    responses((status = 202, body = Backup),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The backup is not on the provider (pending, failed, deleting or deleted)"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "The service's adapter cannot delete backups")),
    security(("api_key" = [])))]
async fn delete_backup(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Accepted<Backup>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = state.pool.begin().await?;
    let b = store::get(&mut *tx, tenant, id)
        .await?
        .ok_or_else(|| no_backup(id))?;
    let (supported, adapter, world) =
        store::adapter_support(&mut *tx, b.service_id, "delete-backup").await?;
    if !supported {
        return Err(ApiError::validation(
            "id",
            format!("the service's adapter {adapter:?} (world {world}) cannot delete backups"),
        ));
    }
    if !store::request_delete(&mut tx, tenant, id).await? {
        return Err(ApiError::Conflict(format!(
            "backup {id} is {}: only a complete or expired backup can be deleted",
            b.state
        )));
    }
    let b = store::get(&mut *tx, tenant, id)
        .await?
        .ok_or_else(|| no_backup(id))?;
    tx.commit().await?;
    Ok(Accepted(b.into()))
}
