//! Service migrations (docs/migration.md): move a service to another server
//! of the same adapter as dependent steps (export → import → verify →
//! switch → terminate on the source after a grace period), accepted in the
//! request's transaction (so `Idempotency-Key` covers it) by
//! `panel1_store::migration::create`.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::{Page, PageParams};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::{Accepted, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use panel1_store::migration::{self as store, CancelRefused, NewMigration, Refused};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(migrate_service))
        .routes(routes!(list_migrations))
        .routes(routes!(get_migration))
        .routes(routes!(cancel_migration))
}

/// The grace period when none is given: an hour.
const DEFAULT_GRACE_SECS: i64 = 3600;
/// At most 30 days.
const MAX_GRACE_SECS: i64 = 2_592_000;

const MIGRATION_STATES: [&str; 4] = ["running", "switched", "completed", "failed"];

fn migration_state_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&MIGRATION_STATES)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateBody {
    /// One of the caller's servers, running the same adapter as the
    /// service's server (a 0.2.0 adapter with export-service and
    /// import-service).
    pub target_server_id: Uuid,
    /// How long the service is kept on the source after the switch before
    /// it is terminated there (default 3600; 0 = at once).
    #[schema(minimum = 0, maximum = 2592000)]
    pub grace_period_seconds: Option<i64>,
}

/// One step of a migration and the state of its task.
#[derive(Debug, Serialize, ToSchema)]
pub struct MigrationStep {
    /// `export`, `import`, `verify`, `switch`, `terminate`, then `cleanup`
    /// when a failed migration cleans up the target.
    pub name: String,
    /// The step's task (`GET /v1/tasks/{id}`); none for `switch`, which
    /// Panel1 does itself when `verify` succeeds.
    pub task_id: Option<Uuid>,
    /// The task's state (`scheduled` while it waits on the step before;
    /// `cancelled` when an earlier step failed).
    pub state: String,
}

/// A service's move from one server to another.
#[derive(Debug, Serialize, ToSchema)]
pub struct Migration {
    pub id: Uuid,
    pub service_id: Uuid,
    pub source_server_id: Uuid,
    pub target_server_id: Uuid,
    /// `running`, `switched` (the service is on the target; the source is
    /// terminated after the grace period), `completed`, `failed` (the
    /// service stays on the source in its previous state).
    #[schema(schema_with = migration_state_schema)]
    pub state: String,
    pub grace_period_seconds: i32,
    /// The step that failed: `export`, `import`, `verify`, `switch`, or
    /// `terminate` (a completed migration whose source could not be
    /// terminated); `cancel` for one cancelled before its switch.
    pub failed_step: Option<String>,
    /// Why it failed (the adapter's error for that step).
    pub reason: Option<String>,
    pub steps: Vec<MigrationStep>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub switched_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<store::Migration> for Migration {
    fn from(m: store::Migration) -> Migration {
        Migration {
            id: m.id,
            service_id: m.service_id,
            source_server_id: m.source_server_id,
            target_server_id: m.target_server_id,
            state: m.state,
            grace_period_seconds: m.grace_period_seconds,
            failed_step: m.failed_step,
            reason: m.reason,
            steps: m
                .steps
                .into_iter()
                .map(|s| MigrationStep {
                    name: s.name,
                    task_id: s.task_id,
                    state: s.state,
                })
                .collect(),
            created_at: m.created_at,
            updated_at: m.updated_at,
            switched_at: m.switched_at,
            finished_at: m.finished_at,
        }
    }
}

/// Move a service to another server of the same adapter. The service is
/// `migrating` until the switch (or the failure), and nothing else is
/// accepted for it meanwhile.
#[utoipa::path(post, path = "/v1/services/{id}/migrate", tag = "services", params(("id" = Uuid, Path)),
    request_body = MigrateBody,
    responses((status = 202, body = Migration),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The service cannot move now (its state, an operation in flight, the account taken on the target)"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid body, a target that is not the caller's, or a move that is unsupported (another adapter, an adapter without export/import)")),
    security(("api_key" = [])))]
async fn migrate_service(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<MigrateBody>,
) -> ApiResult<Accepted<Migration>> {
    let tenant = p.tenant(Scope::Write)?;
    let grace = body.grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECS);
    if !(0..=MAX_GRACE_SECS).contains(&grace) {
        return Err(ApiError::validation(
            "grace_period_seconds",
            format!("0 to {MAX_GRACE_SECS}"),
        ));
    }
    let mut tx = effect.begin().await?;
    let new = NewMigration {
        tenant_id: tenant,
        service_id: id,
        target_server_id: body.target_server_id,
        grace_period_seconds: grace as i32,
    };
    let created = store::create(&mut tx, &new).await.map_err(|e| match e {
        Refused::ServiceNotFound(_) => ApiError::NotFound(format!("service {id}")),
        Refused::TargetNotFound(_) => ApiError::validation("target_server_id", "no such server"),
        Refused::Unsupported(why) => ApiError::validation("target_server_id", why),
        Refused::Conflict(why) => ApiError::Conflict(why),
        Refused::Store(e) => e.into(),
    })?;
    let m = store::get(&mut *tx, tenant, created)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("migration {created} vanished")))?;
    Ok(Accepted(m.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MigrationFilter {
    /// Only this service's migrations.
    pub service_id: Option<Uuid>,
    #[param(schema_with = migration_state_schema)]
    pub state: Option<String>,
    /// Items per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// List migrations, newest first.
#[utoipa::path(get, path = "/v1/migrations", tag = "services", params(MigrationFilter),
    responses((status = 200, body = Page<Migration>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn list_migrations(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(f): ApiQuery<MigrationFilter>,
) -> ApiResult<Json<Page<Migration>>> {
    let tenant = p.tenant(Scope::Read)?;
    ApiError::check_one_of("state", f.state.as_deref(), &MIGRATION_STATES)?;
    let page = PageParams {
        limit: f.limit,
        cursor: f.cursor,
    };
    let limit = page.limit()?;
    let rows = store::list(
        &state.pool,
        tenant,
        page.before(),
        f.service_id,
        f.state.as_deref(),
        limit + 1,
    )
    .await?;
    let rows: Vec<Migration> = rows.into_iter().map(Migration::from).collect();
    Ok(Json(Page::from_rows(rows, limit, |m| m.id)))
}

/// Get a migration with its steps now.
#[utoipa::path(get, path = "/v1/migrations/{id}", tag = "services", params(("id" = Uuid, Path)),
    responses((status = 200, body = Migration), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_migration(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Migration>> {
    let tenant = p.tenant(Scope::Read)?;
    let m = store::get(&state.pool, tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("migration {id}")))?;
    Ok(Json(m.into()))
}

/// Cancel a migration that has not switched yet: the steps not started are
/// cancelled, the service goes back to its previous state on the source,
/// and the target is cleaned up (a `cleanup` step) when the import may have
/// made anything there. The migration ends `failed` with `failed_step`
/// `cancel`. A step already running finishes first; its outcome changes
/// nothing.
#[utoipa::path(post, path = "/v1/migrations/{id}/cancel", tag = "services", params(("id" = Uuid, Path)),
    responses((status = 200, body = Migration),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The migration has switched (the service is on the target) or has already ended")),
    security(("api_key" = [])))]
async fn cancel_migration(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Migration>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = effect.begin().await?;
    store::cancel(&mut tx, tenant, id)
        .await
        .map_err(|e| match e {
            CancelRefused::NotFound(_) => ApiError::NotFound(format!("migration {id}")),
            CancelRefused::Conflict(why) => ApiError::Conflict(why),
            CancelRefused::Store(e) => e.into(),
        })?;
    let m = store::get(&mut *tx, tenant, id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("migration {id} vanished")))?;
    Ok(Json(m.into()))
}
