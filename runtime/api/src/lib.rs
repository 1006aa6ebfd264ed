//! Panel1's REST API under `/v1`: it validates, writes rows (service + task +
//! event in one transaction) and answers; it never runs adapters. Errors are
//! `application/problem+json`; the OpenAPI document is generated from the
//! handlers and served at `/v1/openapi.json`.

pub mod auth;
pub mod console;
pub mod events;
pub mod idempotency;
pub mod input;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod state;
pub mod tenant_slots;

pub use auth::{bootstrap_platform_key, create_key, Scope};
pub use metrics::ApiMetrics;
pub use state::{ApiConfig, AppState};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use openapi::ApiDoc;
use problem::ApiError;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The whole OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    split().2
}

fn split() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (v1, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::tenants::router())
        .merge(routes::adapters::router())
        .merge(routes::shadow_runs::router())
        .merge(routes::secrets::router())
        .merge(routes::servers::router())
        .merge(routes::server_health::router())
        .merge(routes::services::router())
        .merge(routes::tasks::router())
        .merge(routes::bulk::router())
        .merge(routes::migrations::router())
        .merge(routes::webhooks::router())
        .merge(routes::sync::router())
        .merge(routes::usage::router())
        .merge(routes::backups::router())
        .merge(routes::backup_policies::router())
        .routes(routes!(events::stream_events))
        .split_for_parts();
    let (open, open_doc) = routes::health::router().split_for_parts();
    doc.merge(open_doc);
    // These read the routes' operations and schemas: after the merge.
    openapi::ErrorAnswers.modify(&mut doc);
    openapi::LimitMaxima.modify(&mut doc);
    (v1, open, doc)
}

/// The HTTP application.
pub fn router(state: AppState) -> Router {
    let (v1, open, doc) = split();
    let doc = std::sync::Arc::new(doc);
    // Layers run outside-in: count, then authenticate (and rate-limit), then
    // idempotency, then the handler.
    let v1 = v1
        .layer(from_fn_with_state(state.clone(), idempotency::idempotent))
        .layer(from_fn_with_state(state.clone(), auth::authenticate));
    Router::new()
        .merge(v1)
        .merge(open)
        // The web console: pages and its session; not in the document.
        .merge(console::router())
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        // After the merge, so every route has it (axum still sets `Allow`).
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::MethodNotAllowed(method.to_string())
        })
        .layer(from_fn_with_state(state.clone(), count_requests))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    state
        .metrics
        .request(&method, &route, resp.status().as_u16());
    resp
}
