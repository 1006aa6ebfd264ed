//! Service sync: start a run on a server (its pages run as tasks on
//! workers; this API never calls the adapter), read runs and their drift
//! reports, and read or set a server's policy and interval
//! (docs/sync.md). Every query is scoped to the caller's tenant.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::{Page, PageParams};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::{Accepted, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use panel1_store::sync::{self as store, Policy, Trigger};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_sync))
        .routes(routes!(get_policy, put_policy))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(list_drift))
}

const POLICIES: [&str; 3] = ["report", "adopt", "reapply"];
const RUN_STATES: [&str; 3] = ["running", "completed", "failed"];
const KINDS: [&str; 5] = [
    "missing_remotely",
    "unknown_remotely",
    "state_differs",
    "plan_differs",
    "skipped",
];

fn policy_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&POLICIES)
}

fn run_state_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&RUN_STATES)
}

fn kind_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&KINDS)
}

/// A sync run: the provider's `list-services` paged through and compared
/// with the server's services. Counts are final once `state` is not
/// `running`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncRun {
    pub id: Uuid,
    pub server_id: Uuid,
    /// `schedule` (recurring) or `request` (`POST /v1/servers/{id}/sync`).
    pub trigger: String,
    /// The server's policy when the run started.
    #[schema(schema_with = policy_schema)]
    pub policy: String,
    #[schema(schema_with = run_state_schema)]
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Pages listed.
    pub pages: i32,
    /// Accounts the provider listed.
    pub remote_accounts: i32,
    /// Active or suspended in Panel1, not listed by the provider.
    pub missing_remotely: i32,
    /// Listed by the provider, held by no Panel1 service.
    pub unknown_remotely: i32,
    pub state_differs: i32,
    pub plan_differs: i32,
    /// Services with a difference that were busy (an operation queued,
    /// running, or since the run started): not counted as drift.
    pub skipped: i32,
    /// Unknown accounts made services (policy `adopt`).
    pub adopted: i32,
    /// Operations enqueued (policy `reapply`).
    pub reapplied: i32,
    /// Why a failed run failed.
    pub error: Option<String>,
}

impl From<store::SyncRun> for SyncRun {
    fn from(r: store::SyncRun) -> Self {
        SyncRun {
            id: r.id,
            server_id: r.server_id,
            trigger: r.trigger,
            policy: r.policy,
            state: r.state,
            started_at: r.started_at,
            finished_at: r.finished_at,
            pages: r.pages,
            remote_accounts: r.remote_accounts,
            missing_remotely: r.missing_remotely,
            unknown_remotely: r.unknown_remotely,
            state_differs: r.state_differs,
            plan_differs: r.plan_differs,
            skipped: r.skipped,
            adopted: r.adopted,
            reapplied: r.reapplied,
            error: r.error,
        }
    }
}

/// One item of a drift report.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftItem {
    pub id: i64,
    #[schema(schema_with = kind_schema)]
    pub kind: String,
    /// The Panel1 service (for `unknown_remotely`: the adopted one, if any).
    pub service_id: Option<Uuid>,
    pub remote_id: Option<String>,
    pub panel1_state: Option<String>,
    pub remote_state: Option<String>,
    pub panel1_plan: Option<String>,
    pub remote_plan: Option<String>,
    pub remote_domain: Option<String>,
    /// Why a `skipped` item was skipped.
    pub reason: Option<String>,
    /// What the policy did: `adopted`, `suspend`, `unsuspend` or
    /// `change-package`.
    pub action: Option<String>,
    /// The task of a re-applied operation.
    pub action_task_id: Option<Uuid>,
}

impl From<store::DriftItem> for DriftItem {
    fn from(d: store::DriftItem) -> Self {
        DriftItem {
            id: d.id,
            kind: d.kind,
            service_id: d.service_id,
            remote_id: d.remote_id,
            panel1_state: d.panel1_state,
            remote_state: d.remote_state,
            panel1_plan: d.panel1_plan,
            remote_plan: d.remote_plan,
            remote_domain: d.remote_domain,
            reason: d.reason,
            action: d.action,
            action_task_id: d.action_task_id,
        }
    }
}

/// A server's sync settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncPolicy {
    #[schema(schema_with = policy_schema)]
    pub policy: String,
    pub interval_seconds: i32,
    /// Whether runs start on their own every `interval_seconds`.
    pub recurring: bool,
    /// When the next recurring run starts (if `recurring`).
    pub next_run_at: DateTime<Utc>,
}

impl From<store::Settings> for SyncPolicy {
    fn from(s: store::Settings) -> Self {
        SyncPolicy {
            policy: s.policy.as_str().to_string(),
            interval_seconds: s.interval_secs,
            recurring: s.recurring,
            next_run_at: s.next_run_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncPolicyInput {
    /// `report` (store the report and raise events), `adopt` (also make
    /// unknown accounts services of this tenant) or `reapply` (also enqueue
    /// suspend, unsuspend or change-package so the provider matches
    /// Panel1 again; never provision or terminate).
    #[schema(schema_with = policy_schema)]
    pub policy: String,
    /// Seconds between recurring runs, 300 to 2592000 (30 days); default
    /// 86400.
    #[schema(minimum = 300, maximum = 2592000)]
    pub interval_seconds: Option<i64>,
    /// Default true.
    pub recurring: Option<bool>,
}

fn no_server(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("server {id}"))
}

fn no_run(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("sync run {id}"))
}

/// Sync the server now: a run pages through the provider's accounts as
/// tasks, then stores the drift report. When a run is already in progress
/// on the server, that run is answered (runs never overlap).
#[utoipa::path(post, path = "/v1/servers/{id}/sync", tag = "sync", params(("id" = Uuid, Path)),
    responses((status = 202, body = SyncRun),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn start_sync(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Accepted<SyncRun>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = effect.begin().await?;
    let (run, _) = store::start_run(&mut tx, tenant, id, Trigger::Request)
        .await?
        .ok_or_else(|| no_server(id))?;
    let run = store::get_run(&mut *tx, tenant, run)
        .await?
        .ok_or_else(|| no_run(run))?;
    Ok(Accepted(run.into()))
}

#[utoipa::path(get, path = "/v1/servers/{id}/sync-policy", tag = "sync", params(("id" = Uuid, Path)),
    responses((status = 200, body = SyncPolicy),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_policy(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<SyncPolicy>> {
    let tenant = p.tenant(Scope::Read)?;
    let s = store::settings(&mut *state.pool.acquire().await?, tenant, id)
        .await?
        .ok_or_else(|| no_server(id))?;
    Ok(Json(s.into()))
}

/// Set the server's policy and interval (absent fields take their
/// defaults). A shorter interval brings the next recurring run forward.
#[utoipa::path(put, path = "/v1/servers/{id}/sync-policy", tag = "sync", params(("id" = Uuid, Path)),
    request_body = SyncPolicyInput,
    responses((status = 200, body = SyncPolicy),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn put_policy(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SyncPolicyInput>,
) -> ApiResult<Json<SyncPolicy>> {
    let tenant = p.tenant(Scope::Write)?;
    let policy = Policy::parse(&body.policy)
        .ok_or_else(|| ApiError::validation("policy", "one of report, adopt, reapply"))?;
    let interval = body.interval_seconds.unwrap_or(86_400);
    let range = i64::from(store::MIN_INTERVAL_SECS)..=i64::from(store::MAX_INTERVAL_SECS);
    if !range.contains(&interval) {
        return Err(ApiError::validation(
            "interval_seconds",
            format!(
                "must be {} to {} (30 days)",
                store::MIN_INTERVAL_SECS,
                store::MAX_INTERVAL_SECS
            ),
        ));
    }
    let s = store::set_settings(
        &mut *state.pool.acquire().await?,
        tenant,
        id,
        policy,
        interval as i32,
        body.recurring.unwrap_or(true),
    )
    .await?
    .ok_or_else(|| no_server(id))?;
    Ok(Json(s.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    pub server_id: Option<Uuid>,
    #[param(schema_with = run_state_schema)]
    pub state: Option<String>,
    /// Items per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// The tenant's sync runs, newest first.
#[utoipa::path(get, path = "/v1/sync-runs", tag = "sync", params(RunQuery),
    responses((status = 200, body = Page<SyncRun>)), security(("api_key" = [])))]
async fn list_runs(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> ApiResult<Json<Page<SyncRun>>> {
    let tenant = p.tenant(Scope::Read)?;
    if let Some(s) = q.state.as_deref() {
        if !RUN_STATES.contains(&s) {
            return Err(ApiError::validation(
                "state",
                "one of running, completed, failed",
            ));
        }
    }
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let filter = store::RunFilter {
        server_id: q.server_id,
        state: q.state,
    };
    let rows = store::list_runs(&state.pool, tenant, &filter, page.before(), limit + 1).await?;
    let rows: Vec<SyncRun> = rows.into_iter().map(Into::into).collect();
    Ok(Json(Page::from_rows(rows, limit, |r| r.id)))
}

#[utoipa::path(get, path = "/v1/sync-runs/{id}", tag = "sync", params(("id" = Uuid, Path)),
    responses((status = 200, body = SyncRun),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_run(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<SyncRun>> {
    let tenant = p.tenant(Scope::Read)?;
    let run = store::get_run(&state.pool, tenant, id)
        .await?
        .ok_or_else(|| no_run(id))?;
    Ok(Json(run.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DriftQuery {
    #[param(schema_with = kind_schema)]
    pub kind: Option<String>,
    pub service_id: Option<Uuid>,
    /// Items per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DriftPage {
    pub items: Vec<DriftItem>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<i64>,
}

/// A run's drift report, in the order it was found.
#[utoipa::path(get, path = "/v1/sync-runs/{id}/drift", tag = "sync",
    params(("id" = Uuid, Path), DriftQuery),
    responses((status = 200, body = DriftPage),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn list_drift(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<DriftQuery>,
) -> ApiResult<Json<DriftPage>> {
    let tenant = p.tenant(Scope::Read)?;
    ApiError::check_one_of("kind", q.kind.as_deref(), &KINDS)?;
    let limit = PageParams {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    store::get_run(&state.pool, tenant, id)
        .await?
        .ok_or_else(|| no_run(id))?;
    let filter = store::DriftFilter {
        kind: q.kind,
        service_id: q.service_id,
    };
    let mut rows = store::drift(
        &state.pool,
        tenant,
        id,
        &filter,
        q.cursor.unwrap_or(0),
        limit + 1,
    )
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(Json(DriftPage {
        next_cursor: if more {
            rows.last().map(|d| d.id)
        } else {
            None
        },
        items: rows.into_iter().map(Into::into).collect(),
    }))
}
