//! Tasks: the record of every operation (with its attempts and their sandbox
//! metrics), cancel and operator retry. Finished tasks that were moved to the
//! archive are still found by id.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::Page;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::service_actions::refuse_after_terminate;
use crate::routes::{ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks))
        .routes(routes!(get_task))
        .routes(routes!(cancel_task))
        .routes(routes!(retry_task))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Task {
    pub id: Uuid,
    pub server_id: Uuid,
    pub service_id: Option<Uuid>,
    pub operation: String,
    /// `scheduled`, `available`, `running`, `retryable`, `succeeded`,
    /// `failed` or `cancelled`.
    pub state: String,
    #[schema(value_type = Object)]
    pub input: Value,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub idempotency_key: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub last_error: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why a task that could run does not start: `dependencies` while it
    /// waits on other tasks (a migration's later steps), `server_down`
    /// while its server's circuit breaker is open (it starts when the
    /// server recovers; no attempt is spent meanwhile).
    pub waiting_for: Option<String>,
}

/// One attempt and what it cost in the sandbox.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Attempt {
    pub attempt: i32,
    pub worker: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    /// `succeeded`, `adapter-error`, `sandbox-error`, `abandoned`, `internal`.
    pub outcome: String,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub fuel: Option<i64>,
    pub wall_us: Option<i64>,
    pub peak_memory: Option<i64>,
    pub http_requests: Option<i32>,
    pub http_denied: Option<i32>,
    /// The adapter's log lines for this attempt (secrets redacted).
    #[schema(value_type = Option<Object>)]
    pub log: Option<Value>,
    /// The outbound HTTP exchanges (method, URL, status, bytes, timing).
    #[schema(value_type = Option<Object>)]
    pub http: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    pub attempts: Vec<Attempt>,
}

const COLUMNS: &str = "id, server_id, service_id, operation, state::text AS state, input, attempt,
    max_attempts, run_at, idempotency_key, result, last_error, created_at, updated_at, finished_at,
    CASE WHEN state = 'scheduled' AND EXISTS (SELECT 1 FROM task_waits w WHERE w.task_id = id)
         THEN 'dependencies'
         WHEN state IN ('scheduled', 'available', 'retryable') AND panel1_server_down(server_id)
         THEN 'server_down' END AS waiting_for";

/// A migration's steps are moved by their migration only (docs/migration.md).
fn refuse_migration_step(task: &Task, verb: &str) -> ApiResult<()> {
    let key = task.idempotency_key.as_deref().unwrap_or_default();
    if key.starts_with("panel1:migration:") {
        return Err(ApiError::Conflict(format!(
            "task {} is a step of a service migration; it cannot be {verb} on its own",
            task.id
        )));
    }
    Ok(())
}

/// Enqueue in the caller's transaction and return the task as stored.
pub async fn enqueue_task(
    conn: &mut PgConnection,
    tenant: Uuid,
    server: Uuid,
    service: Option<Uuid>,
    operation: &str,
    input: Value,
) -> ApiResult<Task> {
    let new = panel1_store::NewTask::new(tenant, server, service, operation, input);
    let (id, _) = panel1_store::enqueue(conn, &new).await?;
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM tasks WHERE id = $1"))
            .bind(id)
            .fetch_one(conn)
            .await?,
    )
}

/// A task of this tenant, hot or archived.
pub async fn load_task(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<Task> {
    load_task_in(&mut *state.pool.acquire().await?, tenant, id).await
}

/// [`load_task`] on this connection (a request's transaction sees its own writes).
pub async fn load_task_in(conn: &mut PgConnection, tenant: Uuid, id: Uuid) -> ApiResult<Task> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE id = $1 AND tenant_id = $2
         UNION ALL SELECT {COLUMNS} FROM tasks_archive WHERE id = $1 AND tenant_id = $2
         LIMIT 1"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("task {id}")))
}

fn state_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&STATES)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskFilter {
    #[param(schema_with = state_schema)]
    pub state: Option<String>,
    pub service_id: Option<Uuid>,
    pub server_id: Option<Uuid>,
    pub operation: Option<String>,
    /// Items per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

const STATES: [&str; 7] = [
    "scheduled",
    "available",
    "running",
    "retryable",
    "succeeded",
    "failed",
    "cancelled",
];

/// List tasks (newest first; the hot table: archived tasks by id only).
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", params(TaskFilter),
    responses((status = 200, body = Page<Task>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn list_tasks(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(f): ApiQuery<TaskFilter>,
) -> ApiResult<Json<Page<Task>>> {
    let tenant = p.tenant(Scope::Read)?;
    ApiError::check_one_of("state", f.state.as_deref(), &STATES)?;
    let page = crate::pagination::PageParams {
        limit: f.limit,
        cursor: f.cursor,
    };
    let limit = page.limit()?;
    let rows: Vec<Task> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE tenant_id = $1 AND id < $2
           AND ($3::text IS NULL OR state::text = $3)
           AND ($4::uuid IS NULL OR service_id = $4)
           AND ($5::uuid IS NULL OR server_id = $5)
           AND ($6::text IS NULL OR operation = $6)
         ORDER BY id DESC LIMIT $7"
    ))
    .bind(tenant)
    .bind(page.before())
    .bind(&f.state)
    .bind(f.service_id)
    .bind(f.server_id)
    .bind(&f.operation)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |t| t.id)))
}

/// Get a task with its attempts.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = Uuid, Path)),
    responses((status = 200, body = TaskDetail), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_task(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<TaskDetail>> {
    let tenant = p.tenant(Scope::Read)?;
    let task = load_task(&state, tenant, id).await?;
    let attempts: Vec<Attempt> = sqlx::query_as(
        "SELECT attempt, worker, started_at, finished_at, outcome, error_kind, error_message, fuel, wall_us,
                peak_memory, http_requests, http_denied,
                -- Workers store an empty capture as NULL; an abandoned attempt captured nothing.
                CASE WHEN outcome <> 'abandoned' THEN COALESCE(log, '[]') END AS log,
                CASE WHEN outcome <> 'abandoned' THEN COALESCE(http, '[]') END AS http
         FROM task_attempts WHERE task_id = $1 ORDER BY attempt",
    )
    .bind(task.id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(TaskDetail { task, attempts }))
}

/// Cancel a task that has not finished (a finished one is returned as is).
/// Tasks waiting on it are cancelled too.
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = Uuid, Path)),
    responses((status = 200, body = Task), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "A step of a service migration")),
    security(("api_key" = [])))]
async fn cancel_task(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Task>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = effect.begin().await?;
    let task = load_task_in(&mut tx, tenant, id).await?;
    if task.finished_at.is_none() {
        refuse_migration_step(&task, "cancelled")?;
    }
    match panel1_store::cancel(&mut *tx, tenant, id).await {
        // Archived: finished long ago, nothing to cancel.
        Ok(_) | Err(panel1_store::StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Json(load_task_in(&mut tx, tenant, id).await?))
}

/// A failed task of a service runs again only where it still means what it
/// meant: on the server the service is on now (a migration moved it: the
/// old server's account is gone, and a terminate run there would free the
/// username on the new one for a second service), never on a service that
/// is migrating or terminated, and nothing after an accepted terminate.
/// Under the service row's lock, as the service actions take it.
async fn refuse_stale_retry(
    tx: &mut sqlx::PgConnection,
    task: &Task,
    service: Uuid,
) -> ApiResult<()> {
    let (state, server): (String, Uuid) =
        sqlx::query_as("SELECT state::text, server_id FROM services WHERE id = $1 FOR UPDATE")
            .bind(service)
            .fetch_one(&mut *tx)
            .await?;
    let what = format!("retry {} of service {service}", task.operation);
    if server != task.server_id {
        return Err(ApiError::Conflict(format!(
            "cannot {what}: the service moved to server {server} after this task ran on {}; \
             start a new operation instead",
            task.server_id
        )));
    }
    if task.operation != "terminate" {
        refuse_after_terminate(tx, service, &format!("retry {}", task.operation)).await?;
    }
    if state == "migrating" || state == "terminated" {
        return Err(ApiError::Conflict(format!(
            "cannot {what}: the service is {state}"
        )));
    }
    Ok(())
}

/// Retry a failed task once more, now.
#[utoipa::path(post, path = "/v1/tasks/{id}/retry", tag = "tasks", params(("id" = Uuid, Path)),
    responses((status = 200, body = Task), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn retry_task(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Task>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = effect.begin().await?;
    let task = load_task_in(&mut tx, tenant, id).await?;
    refuse_migration_step(&task, "retried")?;
    if let Some(service) = task.service_id {
        refuse_stale_retry(&mut tx, &task, service).await?;
    }
    if !panel1_store::retry_failed(&mut *tx, tenant, id).await? {
        return Err(ApiError::Conflict(format!(
            "only failed tasks can be retried; this one is {}",
            task.state
        )));
    }
    Ok(Json(load_task_in(&mut tx, tenant, id).await?))
}
