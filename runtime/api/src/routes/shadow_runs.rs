//! Shadow runs of candidate adapter versions and their promotion
//! (docs/shadow-runs.md). The API only enqueues a run (a `shadow_runs`
//! row); a worker replays the recorded attempts against the candidate and
//! stores the report. Every query names the caller's tenant.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::{Page, PageParams};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::adapters::{visible_version_in, AdapterVersion};
use crate::routes::servers::validate_config;
use crate::routes::{Accepted, ApiPath, ApiQuery, OptionalApiJson};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_shadow_run, list_shadow_runs))
        .routes(routes!(get_shadow_run))
        .routes(routes!(promote))
}

const DEFAULT_ATTEMPTS: i32 = 50;
const MAX_ATTEMPTS: i32 = 200;
const RUN_STATES: [&str; 4] = ["pending", "running", "completed", "failed"];

fn run_state_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&RUN_STATES)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowRunInput {
    /// Replay the newest this many recorded attempts (1–200, default 50).
    #[schema(minimum = 1, maximum = 200)]
    pub max_attempts: Option<i32>,
}

/// A shadow run: recorded attempts of the adapter's current version(s)
/// replayed against the candidate, recorded responses served by the host.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ShadowRun {
    pub id: Uuid,
    pub candidate_version_id: Uuid,
    #[schema(schema_with = run_state_schema)]
    pub state: String,
    pub max_attempts: i32,
    /// Once `completed`: nothing differed.
    pub clean: Option<bool>,
    /// A report with differences was accepted at promotion.
    pub accepted_at: Option<DateTime<Utc>>,
    /// Why a `failed` run failed.
    pub failure: Option<String>,
    /// Once `completed`: `clean`, `totals`, `baseline_version_ids` and per
    /// attempt the request differences (`unrecorded`, `not-made`,
    /// `body-shape`, `denied`) and the outcome difference.
    #[schema(value_type = Option<Object>)]
    pub report: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const SELECT_RUN: &str = "SELECT id, candidate_version_id, state, max_attempts, clean, accepted_at,
    failure, report, created_at, finished_at FROM shadow_runs";

struct Candidate {
    adapter_id: Uuid,
    candidate: bool,
    status: String,
    config_schema: Option<Value>,
}

/// The tenant's own version (locked); a built-in one is a 409, another
/// tenant's a 404.
async fn own_version(
    conn: &mut PgConnection,
    p: &Principal,
    tenant: Uuid,
    id: Uuid,
) -> ApiResult<Candidate> {
    let row: Option<(Uuid, bool, String, Option<Value>)> = sqlx::query_as(
        "SELECT v.adapter_id, v.candidate, v.status::text, v.config_schema
         FROM adapter_versions v JOIN adapters a ON a.id = v.adapter_id
         WHERE v.id = $1 AND a.tenant_id = $2 FOR UPDATE OF v",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some((adapter_id, candidate, status, config_schema)) => Ok(Candidate {
            adapter_id,
            candidate,
            status,
            config_schema,
        }),
        None => {
            visible_version_in(conn, p, id).await?;
            Err(ApiError::Conflict(format!(
                "adapter version {id} is built-in: only a tenant's own candidates are shadow-run and promoted"
            )))
        }
    }
}

fn not_candidate(id: Uuid) -> ApiError {
    ApiError::Conflict(format!(
        "adapter version {id} is not a candidate (upload with ?candidate=true; a promoted one stays promoted)"
    ))
}

/// Start a shadow run of a candidate version.
///
/// A worker replays the newest recorded attempts (servers with
/// `record_exchanges`) of the adapter's other, non-candidate versions in
/// this tenant against the candidate; `GET` the run for its report.
#[utoipa::path(post, path = "/v1/adapters/{id}/shadow-runs", tag = "adapters",
    params(("id" = Uuid, Path, description = "The candidate version")),
    request_body = ShadowRunInput,
    responses((status = 202, body = ShadowRun),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn start_shadow_run(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    OptionalApiJson(body): OptionalApiJson<ShadowRunInput>,
) -> ApiResult<Accepted<ShadowRun>> {
    let tenant = p.tenant(Scope::Write)?;
    let max = body.max_attempts.unwrap_or(DEFAULT_ATTEMPTS);
    if !(1..=MAX_ATTEMPTS).contains(&max) {
        return Err(ApiError::validation("max_attempts", "must be 1 to 200"));
    }
    let mut tx = effect.begin().await?;
    let v = own_version(&mut tx, &p, tenant, id).await?;
    if !v.candidate {
        return Err(not_candidate(id));
    }
    match v.status.as_str() {
        "ready" => {}
        "inspecting" => {
            return Err(ApiError::Conflict(
                "the candidate is still being inspected; retry in a moment".into(),
            ))
        }
        _ => {
            return Err(ApiError::Conflict(
                "the candidate was rejected at inspection".into(),
            ))
        }
    }
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attempt_recordings r JOIN adapter_versions v ON v.id = r.adapter_version_id
         WHERE r.tenant_id = $1 AND v.adapter_id = $2 AND r.adapter_version_id <> $3
           AND NOT v.candidate AND r.complete",
    )
    .bind(tenant)
    .bind(v.adapter_id)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if recorded == 0 {
        return Err(ApiError::Conflict(
            "nothing to replay: no recorded attempts of this adapter's current version in this \
             tenant (create a server with record_exchanges: true and let it run tasks)"
                .into(),
        ));
    }
    let run: ShadowRun = sqlx::query_as(&format!(
        "WITH r AS (INSERT INTO shadow_runs (id, tenant_id, candidate_version_id, max_attempts)
                    VALUES ($1, $2, $3, $4) RETURNING *)
         {} ",
        SELECT_RUN.replace("FROM shadow_runs", "FROM r")
    ))
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(id)
    .bind(max)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Accepted(run))
}

/// Get a shadow run and, once completed, its report.
#[utoipa::path(get, path = "/v1/adapters/{id}/shadow-runs/{run_id}", tag = "adapters",
    params(("id" = Uuid, Path), ("run_id" = Uuid, Path)),
    responses((status = 200, body = ShadowRun),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_shadow_run(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath((id, run_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<ShadowRun>> {
    let tenant = p.tenant(Scope::Read)?;
    sqlx::query_as(&format!(
        "{SELECT_RUN} WHERE id = $1 AND candidate_version_id = $2 AND tenant_id = $3"
    ))
    .bind(run_id)
    .bind(id)
    .bind(tenant)
    .fetch_optional(&state.pool)
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::NotFound(format!("shadow run {run_id}")))
}

/// A shadow run in a list: its report's `totals` only (the whole report is
/// at `GET .../shadow-runs/{run_id}`).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ShadowRunSummary {
    pub id: Uuid,
    pub candidate_version_id: Uuid,
    #[schema(schema_with = run_state_schema)]
    pub state: String,
    pub max_attempts: i32,
    pub clean: Option<bool>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
    /// Once `completed`: attempts replayed, differing, and by kind.
    #[schema(value_type = Option<Object>)]
    pub totals: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// List a candidate's shadow runs, newest first.
#[utoipa::path(get, path = "/v1/adapters/{id}/shadow-runs", tag = "adapters",
    params(("id" = Uuid, Path, description = "The candidate version"), PageParams),
    responses((status = 200, body = Page<ShadowRunSummary>),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn list_shadow_runs(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<ShadowRunSummary>>> {
    let tenant = p.tenant(Scope::Read)?;
    let limit = page.limit()?;
    let mut conn = state.pool.acquire().await?;
    // An unknown (or another tenant's) version is a 404, not an empty list.
    visible_version_in(&mut conn, &p, id).await?;
    let rows: Vec<ShadowRunSummary> = sqlx::query_as(
        "SELECT id, candidate_version_id, state, max_attempts, clean, accepted_at, failure,
                report -> 'totals' AS totals, created_at, finished_at
         FROM shadow_runs
         WHERE tenant_id = $1 AND candidate_version_id = $2 AND id < $3
         ORDER BY id DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(id)
    .bind(page.before())
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |r| r.id)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteInput {
    /// Promote although the latest shadow run found differences (they
    /// were reviewed). Not needed for a clean run.
    #[serde(default)]
    pub accept: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Promotion {
    pub version: AdapterVersion,
    /// The shadow run that allowed it.
    pub shadow_run_id: Uuid,
    /// Its report had differences that were accepted.
    pub accepted: bool,
    /// The tenant's servers moved from the replayed version(s) to this one.
    pub servers: Vec<Uuid>,
}

/// Promote a candidate: the tenant's servers on the version(s) its latest
/// shadow run replayed now use it.
///
/// Only when that run completed clean, or with `{"accept": true}` (or an
/// earlier accept) when it found differences; otherwise 409 saying why.
#[utoipa::path(post, path = "/v1/adapters/{id}/promote", tag = "adapters",
    params(("id" = Uuid, Path, description = "The candidate version")),
    request_body = PromoteInput,
    responses((status = 200, body = Promotion),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn promote(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    OptionalApiJson(body): OptionalApiJson<PromoteInput>,
) -> ApiResult<Json<Promotion>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = effect.begin().await?;
    let v = own_version(&mut tx, &p, tenant, id).await?;
    if !v.candidate {
        return Err(not_candidate(id));
    }
    let latest: Option<ShadowRun> = sqlx::query_as(&format!(
        "{SELECT_RUN} WHERE tenant_id = $1 AND candidate_version_id = $2
         ORDER BY created_at DESC, id DESC LIMIT 1 FOR UPDATE"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let run = latest.ok_or_else(|| {
        ApiError::Conflict(format!(
            "no shadow run of {id} yet: POST /v1/adapters/{id}/shadow-runs first"
        ))
    })?;
    let accepted = match (run.state.as_str(), run.clean) {
        ("completed", Some(true)) => false,
        ("completed", _) if run.accepted_at.is_some() || body.accept => true,
        ("completed", _) => {
            let t = run.report.as_ref().map(|r| &r["totals"]);
            let n = |k: &str| t.and_then(|t| t[k].as_u64()).unwrap_or(0);
            return Err(ApiError::Conflict(format!(
                "the latest shadow run {} found differences in {} of {} attempts ({} request, {} \
                 outcome); review GET /v1/adapters/{id}/shadow-runs/{}, then promote with \
                 {{\"accept\": true}}",
                run.id,
                n("differing_attempts"),
                n("attempts"),
                n("request_differences"),
                n("outcome_differences"),
                run.id
            )));
        }
        ("failed", _) => {
            return Err(ApiError::Conflict(format!(
                "the latest shadow run {} failed ({}); start another",
                run.id,
                run.failure.as_deref().unwrap_or("no reason given")
            )))
        }
        (state, _) => {
            return Err(ApiError::Conflict(format!(
                "the latest shadow run {} is {state}; promote once it has completed",
                run.id
            )))
        }
    };
    if accepted && run.accepted_at.is_none() {
        sqlx::query("UPDATE shadow_runs SET accepted_at = now() WHERE id = $1")
            .bind(run.id)
            .execute(&mut *tx)
            .await?;
    }
    let baseline: Vec<Uuid> = run
        .report
        .as_ref()
        .and_then(|r| r["baseline_version_ids"].as_array())
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let servers: Vec<(Uuid, String, Value)> = sqlx::query_as(
        "SELECT s.id, s.name, s.config FROM servers s JOIN adapter_versions v ON v.id = s.adapter_version_id
         WHERE s.tenant_id = $1 AND s.adapter_version_id = ANY($2) AND v.adapter_id = $3
         ORDER BY s.id FOR UPDATE OF s",
    )
    .bind(tenant)
    .bind(&baseline)
    .bind(v.adapter_id)
    .fetch_all(&mut *tx)
    .await?;
    if let Some(schema) = &v.config_schema {
        for (_, name, config) in &servers {
            validate_config(schema, config).map_err(|_| {
                ApiError::Conflict(format!(
                    "server {name:?}'s config does not satisfy the candidate's config schema"
                ))
            })?;
        }
    }
    let ids: Vec<Uuid> = servers.iter().map(|s| s.0).collect();
    sqlx::query("UPDATE servers SET adapter_version_id = $1 WHERE id = ANY($2) AND tenant_id = $3")
        .bind(id)
        .bind(&ids)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE adapter_versions SET candidate = false, promoted_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(Json(Promotion {
        version: visible_version_in(&mut tx, &p, id).await?,
        shadow_run_id: run.id,
        accepted,
        servers: ids,
    }))
}
