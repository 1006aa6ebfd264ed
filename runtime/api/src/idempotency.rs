//! `Idempotency-Key` on POST: the first answer is stored and replayed for the
//! same key and the same request; the same key with another request is a
//! 422; a key whose first request is still running is a 409 with
//! `Retry-After`. Server errors are not stored (the client may retry them).
use crate::auth::Principal;
use crate::problem::{ApiError, PROBLEM_JSON};
use crate::state::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const HEADER: &str = "idempotency-key";
/// A first request that has not answered after this long is presumed dead
/// (its server crashed) and the key can be used again.
const ABANDONED_AFTER_SECS: f64 = 120.0;
/// Kept this long.
pub const RETENTION_HOURS: i64 = 24;

pub async fn idempotent(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let Some(key) = req.headers().get(HEADER) else {
        return Ok(next.run(req).await);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::validation(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )
        })?
        .to_string();
    let owner = req
        .extensions()
        .get::<Principal>()
        .map(Principal::owner)
        .ok_or(ApiError::Unauthorized)?;
    let (parts, body) = req.into_parts();
    let limit = state.config.max_body_bytes;
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge(limit))?;
    let path = parts.uri.path().to_string();
    let mut h = Sha256::new();
    h.update(parts.method.as_str());
    h.update([0]);
    h.update(parts.uri.to_string());
    h.update([0]);
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        h.update(ct.as_bytes());
    }
    h.update([0]);
    h.update(&bytes);
    let hash = hex::encode(h.finalize());

    if let Some(replay) = claim_key(&state, owner, &key, &path, &hash).await? {
        return Ok(replay);
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    finish(&state, owner, &key, resp).await
}

/// Take the key for this request, or answer from what it already holds.
async fn claim_key(
    state: &AppState,
    owner: Uuid,
    key: &str,
    path: &str,
    hash: &str,
) -> Result<Option<Response>, ApiError> {
    let taken = sqlx::query(
        "INSERT INTO api_idempotency (owner, key, method, path, request_hash) VALUES ($1, $2, 'POST', $3, $4)
         ON CONFLICT (owner, key) DO UPDATE
           SET path = EXCLUDED.path, request_hash = EXCLUDED.request_hash, created_at = now()
           WHERE api_idempotency.created_at < now() - make_interval(hours => $5)
              OR (api_idempotency.status IS NULL
                  AND api_idempotency.created_at < now() - make_interval(secs => $6))",
    )
    .bind(owner)
    .bind(key)
    .bind(path)
    .bind(hash)
    .bind(RETENTION_HOURS as i32)
    .bind(ABANDONED_AFTER_SECS)
    .execute(&state.pool)
    .await?
    .rows_affected();
    if taken == 1 {
        return Ok(None);
    }
    let (stored_hash, status, body): (String, Option<i16>, Option<serde_json::Value>) =
        sqlx::query_as(
            "SELECT request_hash, status, body FROM api_idempotency WHERE owner = $1 AND key = $2",
        )
        .bind(owner)
        .bind(key)
        .fetch_one(&state.pool)
        .await?;
    if stored_hash != hash {
        return Err(ApiError::IdempotencyMismatch(
            "this Idempotency-Key was used with a different request (method, path or body); use a new key"
                .into(),
        ));
    }
    let Some(status) = status else {
        return Err(ApiError::IdempotencyInProgress);
    };
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    let mut resp = match body {
        Some(b) => (status, axum::Json(b)).into_response(),
        None => status.into_response(),
    };
    let h = resp.headers_mut();
    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    if status.is_client_error() {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    }
    Ok(Some(resp))
}

/// Store the answer (or free the key after a server error / rate limit).
async fn finish(
    state: &AppState,
    owner: Uuid,
    key: &str,
    resp: Response,
) -> Result<Response, ApiError> {
    let status = resp.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        sqlx::query("DELETE FROM api_idempotency WHERE owner = $1 AND key = $2")
            .bind(owner)
            .bind(key)
            .execute(&state.pool)
            .await?;
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let bytes = to_bytes(body, 16 << 20)
        .await
        .map_err(|e| ApiError::internal("reading the response to store", e))?;
    let json: Option<serde_json::Value> = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    sqlx::query("UPDATE api_idempotency SET status = $3, body = $4 WHERE owner = $1 AND key = $2")
        .bind(owner)
        .bind(key)
        .bind(status.as_u16() as i16)
        .bind(json)
        .execute(&state.pool)
        .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
