//! The web console: static HTML, CSS and JavaScript modules embedded in the
//! binary (no build step, no Node at run time), served at `/` by the same
//! process as the API. The pages call the `/v1` REST API and its event
//! stream like any client; the only server-side pieces here are the assets
//! and the session (sign-in with an API key, see [`session`]).
//!
//! Every console response carries a strict Content-Security-Policy (no
//! inline script or style, nothing from another origin, no framing) and
//! `nosniff` / `no-referrer`. These routes are not part of `/v1` and not in
//! the OpenAPI document.
pub mod assets;
pub mod session;

use crate::input::ApiPath;
use crate::problem::ApiError;
use crate::state::AppState;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/console/assets/{file}", get(asset))
        .route(
            "/console/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .layer(map_response(security_headers))
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        h.insert(name, HeaderValue::from_static(value));
    }
    // Sessions and pages are per user: never kept by a shared cache.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn index() -> Response {
    assets::respond(assets::INDEX_HTML, "text/html; charset=utf-8")
}

// Only names in the embedded table are answered: no file system behind it.
async fn asset(ApiPath(file): ApiPath<String>) -> Response {
    match assets::find(&file) {
        Some((body, content_type)) => assets::respond(body, content_type),
        None => {
            ApiError::NotFound(format!("console asset `{}`", file.escape_default())).into_response()
        }
    }
}
