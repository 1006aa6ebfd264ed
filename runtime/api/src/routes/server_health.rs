//! A server's health as the workers' recurring checks see it
//! (migrations/0015): the state with its reason and since when, the
//! settings, whether the circuit breaker holds the server's tasks, and the
//! history of changes. The API only reads it and changes the settings; the
//! checks run in workers.
use crate::auth::{Principal, Scope};
use crate::problem::{ApiError, ApiResult, FieldError, Problem};
use crate::routes::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use panel1_store::health::HealthSettings;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_health, update_health))
}

/// Changes of state kept in the answer (newest first).
const HISTORY: i64 = 50;

/// The state in brief, as on the server itself.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct HealthSummary {
    /// `unknown` (not checked yet, checks off, or the adapter cannot
    /// tell), `healthy`, `degraded` (failing, or slow) or `down`
    /// (unreachable: its tasks are held until it recovers).
    pub state: String,
    pub reason: Option<String>,
    pub since: DateTime<Utc>,
    pub last_checked_at: Option<DateTime<Utc>>,
}

/// How the server is checked.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct HealthSettingsView {
    pub enabled: bool,
    /// Seconds between checks while healthy.
    pub interval_secs: i32,
    /// Seconds between checks while degraded or down.
    pub recheck_secs: i32,
    /// Failed checks in a row that make the server `down`; only failures
    /// that say it cannot be reached (`transient`, `deadline`) count: a
    /// refused credential or a permanent error makes it `degraded`, and its
    /// tasks keep failing fast with that error.
    pub down_after: i32,
    /// A check slower than this (ms) makes the server `degraded`.
    pub slow_ms: i32,
}

/// One change of state.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct HealthTransition {
    pub from_state: String,
    pub to_state: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServerHealth {
    pub server_id: Uuid,
    #[serde(flatten)]
    pub summary: HealthSummary,
    /// Failed checks in a row.
    pub failures: i32,
    pub last_latency_ms: Option<i32>,
    pub last_error_kind: Option<String>,
    pub next_check_at: DateTime<Utc>,
    /// The circuit breaker is open: the server's tasks wait (no attempt is
    /// spent) until it recovers.
    pub breaker_open: bool,
    /// Tasks of this server ready to run but held by the breaker.
    pub held_tasks: i64,
    pub settings: HealthSettingsView,
    /// The latest changes of state, newest first.
    pub history: Vec<HealthTransition>,
}

/// Health settings to change; absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthSettingsInput {
    /// Off: no checks, the state becomes `unknown` and held tasks start.
    pub enabled: Option<bool>,
    #[schema(minimum = 2, maximum = 86400)]
    pub interval_secs: Option<i32>,
    #[schema(minimum = 1, maximum = 86400)]
    pub recheck_secs: Option<i32>,
    #[schema(minimum = 1, maximum = 100)]
    pub down_after: Option<i32>,
    #[schema(minimum = 1, maximum = 600000)]
    pub slow_ms: Option<i32>,
}

/// The brief state of a server of this tenant (for the server view).
pub async fn summary(conn: &mut PgConnection, server: Uuid) -> ApiResult<Option<HealthSummary>> {
    Ok(sqlx::query_as(
        "SELECT state, reason, since, last_checked_at FROM server_health WHERE server_id = $1",
    )
    .bind(server)
    .fetch_optional(conn)
    .await?)
}

/// Everything of a server's health row, read at once.
#[derive(sqlx::FromRow)]
struct HealthRow {
    #[sqlx(flatten)]
    summary: HealthSummary,
    #[sqlx(flatten)]
    settings: HealthSettingsView,
    failures: i32,
    last_latency_ms: Option<i32>,
    last_error_kind: Option<String>,
    next_check_at: DateTime<Utc>,
    held_tasks: i64,
}

async fn load(state: &AppState, tenant: Uuid, server: Uuid) -> ApiResult<ServerHealth> {
    let mut conn = state.pool.acquire().await?;
    let row: HealthRow = sqlx::query_as(
        "SELECT h.state, h.reason, h.since, h.last_checked_at, h.enabled, h.interval_secs,
                h.recheck_secs, h.down_after, h.slow_ms, h.failures, h.last_latency_ms,
                h.last_error_kind, h.next_check_at,
                (SELECT count(*) FROM task_queue q
                 WHERE q.server_id = h.server_id AND q.state = 'available' AND h.state = 'down')
                    AS held_tasks
         FROM server_health h WHERE h.server_id = $1 AND h.tenant_id = $2",
    )
    .bind(server)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("server {server}")))?;
    let history: Vec<HealthTransition> = sqlx::query_as(
        "SELECT from_state, to_state, reason, at FROM server_health_transitions
         WHERE server_id = $1 AND tenant_id = $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(server)
    .bind(tenant)
    .bind(HISTORY)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ServerHealth {
        server_id: server,
        breaker_open: row.summary.state == "down",
        summary: row.summary,
        failures: row.failures,
        last_latency_ms: row.last_latency_ms,
        last_error_kind: row.last_error_kind,
        next_check_at: row.next_check_at,
        held_tasks: row.held_tasks,
        settings: row.settings,
        history,
    })
}

/// A server's health, its check settings and its latest changes of state.
#[utoipa::path(get, path = "/v1/servers/{id}/health", tag = "servers", params(("id" = Uuid, Path)),
    responses((status = 200, body = ServerHealth), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_health(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ServerHealth>> {
    let tenant = p.tenant(Scope::Read)?;
    Ok(Json(load(&state, tenant, id).await?))
}

/// Change how a server is checked; a check follows at once.
#[utoipa::path(patch, path = "/v1/servers/{id}/health", tag = "servers", params(("id" = Uuid, Path)),
    request_body = HealthSettingsInput,
    responses((status = 200, body = ServerHealth), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn update_health(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<HealthSettingsInput>,
) -> ApiResult<Json<ServerHealth>> {
    let tenant = p.tenant(Scope::Write)?;
    let settings = validate(&body)?;
    if !panel1_store::health::set_health_settings(&state.pool, tenant, id, &settings).await? {
        return Err(ApiError::NotFound(format!("server {id}")));
    }
    Ok(Json(load(&state, tenant, id).await?))
}

fn validate(b: &HealthSettingsInput) -> ApiResult<HealthSettings> {
    let mut errors = Vec::new();
    let mut check = |field: &str, v: Option<i32>, lo: i32, hi: i32| {
        if let Some(v) = v {
            if !(lo..=hi).contains(&v) {
                errors.push(FieldError {
                    field: format!("/{field}"),
                    message: format!("must be {lo} to {hi}"),
                });
            }
        }
    };
    check("interval_secs", b.interval_secs, 2, 86400);
    check("recheck_secs", b.recheck_secs, 1, 86400);
    check("down_after", b.down_after, 1, 100);
    check("slow_ms", b.slow_ms, 1, 600_000);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(HealthSettings {
        enabled: b.enabled,
        interval_secs: b.interval_secs,
        recheck_secs: b.recheck_secs,
        down_after: b.down_after,
        slow_ms: b.slow_ms,
    })
}
