//! Unauthenticated operational endpoints: liveness, readiness, metrics.
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database answers and its schema is this build's.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&state.pool)
        .await
        .map_err(|e| ApiError::Unavailable(format!("readiness: {e}")))?;
    let expected = panel1_store::MIGRATOR.iter().count() as i64;
    if applied < expected {
        return Err(ApiError::Unavailable(format!(
            "{applied} of {expected} migrations applied"
        )));
    }
    Ok(Json(Health { status: "ready" }))
}

/// Prometheus metrics (OpenMetrics text exposition).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text format", body = String,
               content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let text = state
        .metrics
        .render(&state.pool)
        .await
        .map_err(|e| ApiError::Unavailable(format!("metrics: {e}")))?;
    // Must equal the content_type documented above (the API fuzz checks).
    Ok(([(header::CONTENT_TYPE, OPENMETRICS)], text))
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
