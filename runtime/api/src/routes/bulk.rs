//! Bulk operations (docs/bulk.md): one action on many services, as one
//! ordinary child task per selected service, created in the request's
//! transaction (so `Idempotency-Key` covers it) by one set-based statement
//! (store/src/bulk.rs, migrations/0018). The actions, their input checks
//! and the states they are accepted in are the single-service routes'
//! (routes/services.rs).
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::{Page, PageParams};
use crate::problem::{ApiError, ApiResult, FieldError, Problem};
use crate::routes::servers::tenant_server;
use crate::routes::service_actions::{check_reason, LIVE, TERMINABLE};
use crate::routes::services::{check_opt, STATES};
use crate::routes::{Accepted, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use panel1_store::bulk::{self as store, Control, Created, MAX_SERVICES};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_bulk, list_bulk))
        .routes(routes!(get_bulk))
        .routes(routes!(pause_bulk))
        .routes(routes!(resume_bulk))
        .routes(routes!(cancel_bulk))
}

/// The actions a bulk can run: the single-service route's name, the task
/// operation it enqueues and the states it is accepted in.
const ACTIONS: [(&str, &str, &[&str]); 5] = [
    ("suspend", "suspend", LIVE),
    ("unsuspend", "unsuspend", LIVE),
    ("terminate", "terminate", TERMINABLE),
    ("change-package", "change-package", LIVE),
    ("refresh-status", "status", LIVE),
];

fn action_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&ACTIONS.map(|a| a.0))
}

fn service_state_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&STATES)
}

fn bulk_state_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&BULK_STATES)
}

const BULK_STATES: [&str; 4] = ["running", "paused", "cancelled", "completed"];

/// Which services: explicit ids, or filters (every given one must hold),
/// or `all`. Only the caller's services are ever selected.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkSelector {
    /// These services (1 to 100 000; alone). An id the caller has no
    /// service for is a 422 naming it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 100000)]
    pub service_ids: Option<Vec<Uuid>>,
    /// The services of this server (one of the caller's, else 422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<Uuid>,
    /// The services on this plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub plan: Option<String>,
    /// The services in this state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = service_state_schema)]
    pub state: Option<String>,
    /// Every service of the caller (alone, and `true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBulk {
    /// The action, as the single-service route names it.
    #[schema(schema_with = action_schema)]
    pub action: String,
    pub selector: BulkSelector,
    /// `suspend` only: shown on the provider side where it supports one.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// `change-package` only (required there): the plan to move to.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub plan: Option<String>,
}

/// A selected service that could not take the action.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Skipped {
    pub service_id: Uuid,
    pub reason: String,
}

/// A bulk operation and its children's progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bulk {
    pub id: Uuid,
    /// `suspend`, `unsuspend`, `terminate`, `change-package`, `refresh-status`.
    pub action: String,
    /// The task operation each child runs.
    pub operation: String,
    #[schema(value_type = Object)]
    pub selector: Value,
    /// What every child's input has beside `service` (`reason`, `plan`).
    #[schema(value_type = Object)]
    pub input: Value,
    /// `running`, `paused` (children that have not started wait),
    /// `cancelled` (they were cancelled; `finished_at` once the running
    /// ones ended) or `completed`.
    pub state: String,
    /// Child tasks (one per service that could take the action).
    pub total: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub cancelled: i32,
    pub running: i32,
    /// Not started yet (scheduled, available, or waiting to retry).
    pub waiting: i32,
    /// Selected services that could not take the action (no task).
    pub skipped: i32,
    /// The first 100 of them, with why.
    pub skipped_some: Vec<Skipped>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<store::Bulk> for Bulk {
    fn from(b: store::Bulk) -> Bulk {
        Bulk {
            id: b.id,
            action: b.action,
            operation: b.operation,
            selector: b.selector,
            input: b.input,
            state: b.state,
            total: b.total,
            succeeded: b.succeeded,
            failed: b.failed,
            cancelled: b.cancelled,
            running: b.running,
            waiting: b.waiting,
            skipped: b.skipped,
            skipped_some: serde_json::from_value(b.skipped_some).unwrap_or_default(),
            created_at: b.created_at,
            updated_at: b.updated_at,
            finished_at: b.finished_at,
        }
    }
}

/// The store's request for `body`, checked as the single routes check
/// theirs; field paths name what is wrong.
async fn request(state: &AppState, tenant: Uuid, body: NewBulk) -> ApiResult<store::NewBulk> {
    let Some(&(action, operation, allowed)) = ACTIONS.iter().find(|a| a.0 == body.action) else {
        let names = ACTIONS.map(|a| a.0).join(", ");
        return Err(ApiError::validation("action", format!("one of {names}")));
    };
    if body.reason.is_some() && action != "suspend" {
        return Err(ApiError::validation("reason", "only for suspend"));
    }
    if body.plan.is_some() && action != "change-package" {
        return Err(ApiError::validation("plan", "only for change-package"));
    }
    let input = match action {
        "suspend" => {
            let reason = body.reason.unwrap_or_default();
            check_reason(&reason)?;
            json!({ "reason": reason })
        }
        "change-package" => {
            let plan = body
                .plan
                .ok_or_else(|| ApiError::validation("plan", "required for change-package"))?;
            check_opt("plan", &Some(plan.clone()), 128)?;
            json!({ "plan": plan })
        }
        _ => json!({}),
    };
    let sel = body.selector;
    let filtered = sel.server_id.is_some() || sel.plan.is_some() || sel.state.is_some();
    match (&sel.service_ids, filtered, sel.all) {
        (Some(_), true, _) | (Some(_), _, Some(_)) | (None, true, Some(_)) => {
            return Err(ApiError::validation(
                "selector",
                "give service_ids, or filters (server_id, plan, state), or all: one of the three",
            ))
        }
        (None, false, None) => {
            return Err(ApiError::validation(
                "selector",
                "select services: service_ids, a filter (server_id, plan, state), or all: true",
            ))
        }
        (None, false, Some(false)) => {
            return Err(ApiError::validation(
                "selector.all",
                "must be true when given",
            ))
        }
        _ => {}
    }
    if let Some(ids) = &sel.service_ids {
        if ids.is_empty() || ids.len() > MAX_SERVICES as usize {
            return Err(ApiError::validation(
                "selector.service_ids",
                format!("1 to {MAX_SERVICES} ids"),
            ));
        }
    }
    check_opt("selector.plan", &sel.plan, 128)?;
    ApiError::check_one_of("selector.state", sel.state.as_deref(), &STATES)?;
    if let Some(server) = sel.server_id {
        // Another tenant's server is "no such server", as for a new service.
        tenant_server(state, tenant, server)
            .await
            .map_err(|e| match e {
                ApiError::NotFound(_) => {
                    ApiError::validation("selector.server_id", "no such server")
                }
                other => other,
            })?;
    }
    Ok(store::NewBulk {
        tenant_id: tenant,
        action: action.into(),
        operation: operation.into(),
        input,
        selector: serde_json::to_value(&sel).unwrap_or_default(),
        service_ids: sel.service_ids,
        server_id: sel.server_id,
        plan: sel.plan,
        state: sel.state,
        allowed: allowed.iter().map(|s| s.to_string()).collect(),
    })
}

/// Start a bulk operation: one child task per selected service that can
/// take the action now (the others are listed as skipped). At most 100 000
/// services per bulk.
#[utoipa::path(post, path = "/v1/bulk", tag = "bulk", request_body = NewBulk,
    responses((status = 202, body = Bulk),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "No selected service can take the action now (each one's reason in the detail)"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn create_bulk(
    State(state): State<AppState>,
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiJson(body): ApiJson<NewBulk>,
) -> ApiResult<Accepted<Bulk>> {
    let tenant = p.tenant(Scope::Write)?;
    let new = request(&state, tenant, body).await?;
    let mut tx = effect.begin().await?;
    let id = match store::create(&mut tx, &new).await? {
        Created::Bulk { id, .. } => id,
        Created::Missing(missing) => {
            let given = new.service_ids.unwrap_or_default();
            return Err(ApiError::Validation(
                missing
                    .iter()
                    .take(20)
                    .map(|m| FieldError {
                        field: format!(
                            "selector.service_ids[{}]",
                            given.iter().position(|g| g == m).unwrap_or(0)
                        ),
                        message: "no such service".into(),
                    })
                    .collect(),
            ));
        }
        Created::TooMany(_) => {
            return Err(ApiError::validation(
                "selector",
                format!(
                "matches more than {MAX_SERVICES} services; narrow it (by server, plan or state)"
            ),
            ))
        }
        Created::NoneMatched => return Err(ApiError::validation("selector", "matches no service")),
        Created::NoneEligible { matched, skipped } => {
            let first: Vec<Skipped> = serde_json::from_value(skipped).unwrap_or_default();
            let why = first.first().map_or(String::new(), |s| {
                format!(" (service {}: {})", s.service_id, s.reason)
            });
            return Err(ApiError::Conflict(format!(
                "none of the {matched} selected services can take {}{why}",
                new.action
            )));
        }
    };
    let bulk = store::get(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("bulk {id} vanished in its own transaction")))?;
    Ok(Accepted(bulk.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BulkFilter {
    #[param(schema_with = bulk_state_schema)]
    pub state: Option<String>,
    /// Items per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// List bulk operations, newest first (counts as of the last second).
#[utoipa::path(get, path = "/v1/bulk", tag = "bulk", params(BulkFilter),
    responses((status = 200, body = Page<Bulk>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn list_bulk(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(f): ApiQuery<BulkFilter>,
) -> ApiResult<Json<Page<Bulk>>> {
    let tenant = p.tenant(Scope::Read)?;
    ApiError::check_one_of("state", f.state.as_deref(), &BULK_STATES)?;
    let page = PageParams {
        limit: f.limit,
        cursor: f.cursor,
    };
    let limit = page.limit()?;
    let rows = store::list(
        &state.pool,
        tenant,
        page.before(),
        f.state.as_deref(),
        limit + 1,
    )
    .await?;
    let rows: Vec<Bulk> = rows.into_iter().map(Bulk::from).collect();
    Ok(Json(Page::from_rows(rows, limit, |b| b.id)))
}

/// Get a bulk operation with its children's counts now.
#[utoipa::path(get, path = "/v1/bulk/{id}", tag = "bulk", params(("id" = Uuid, Path)),
    responses((status = 200, body = Bulk), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_bulk(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Bulk>> {
    let tenant = p.tenant(Scope::Read)?;
    let bulk = store::get(&mut *state.pool.acquire().await?, tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("bulk {id}")))?;
    Ok(Json(bulk.into()))
}

/// Pause, resume or cancel in the request's transaction; 409 when the
/// bulk's state does not allow it (a finished bulk cannot be paused).
async fn control(effect: &Effect, p: &Principal, id: Uuid, what: Control) -> ApiResult<Json<Bulk>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = effect.begin().await?;
    let after = store::control(&mut tx, tenant, id, what)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("bulk {id}")))?;
    if !what.took_effect(&after) {
        let verb = match what {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Cancel => "cancel",
        };
        return Err(ApiError::Conflict(format!(
            "cannot {verb} a bulk that is {after}"
        )));
    }
    let bulk = store::get(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("bulk {id}")))?;
    Ok(Json(bulk.into()))
}

/// Pause: children that have not started wait (running ones finish).
#[utoipa::path(post, path = "/v1/bulk/{id}/pause", tag = "bulk", params(("id" = Uuid, Path)),
    responses((status = 200, body = Bulk), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn pause_bulk(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Bulk>> {
    control(&effect, &p, id, Control::Pause).await
}

/// Resume a paused bulk: its waiting children can start again.
#[utoipa::path(post, path = "/v1/bulk/{id}/resume", tag = "bulk", params(("id" = Uuid, Path)),
    responses((status = 200, body = Bulk), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn resume_bulk(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Bulk>> {
    control(&effect, &p, id, Control::Resume).await
}

/// Cancel: children that have not started are cancelled (running ones
/// finish); the bulk ends `cancelled`.
#[utoipa::path(post, path = "/v1/bulk/{id}/cancel", tag = "bulk", params(("id" = Uuid, Path)),
    responses((status = 200, body = Bulk), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn cancel_bulk(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Bulk>> {
    control(&effect, &p, id, Control::Cancel).await
}
