//! `Idempotency-Key` on POST, exactly once. A POST's writes go through one
//! transaction, the request's [`Effect`]; under a key, the key, the request's
//! fingerprint and the answer are written into that same transaction before
//! it commits. So a request either committed with its answer or left nothing
//! behind: a retry after a crash replays the original answer, a retry of a
//! request that never committed runs it, and there is no "in progress" state
//! to wait out.
//!
//! - Same key, same request, answered: the stored answer, with
//!   `Idempotent-Replayed: true`.
//! - Same key, another request (method, path, content type or body): 422.
//! - Same key while the first request's transaction is open: the second
//!   waits for it (a transaction-scoped lock on the key), then replays its
//!   answer or, if it rolled back, runs. After [`LOCK_WAIT`] it gets a 409
//!   with `Retry-After: 1`, which clears the moment the first ends.
//! - Only successful (2xx) answers are stored: an error answer wrote nothing
//!   (its transaction is rolled back), so the retry runs again.
mod effect;
mod faults;

pub use effect::{Effect, EffectTx};

use crate::auth::Principal;
use crate::problem::{ApiError, PROBLEM_JSON};
use crate::state::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use std::time::Duration;
use uuid::Uuid;

pub const HEADER: &str = "idempotency-key";
/// Kept this long; an older key can be used again.
pub const RETENTION_HOURS: i64 = 24;
/// How long a duplicate waits for the first request's transaction before
/// it is answered 409 (retry).
pub const LOCK_WAIT: Duration = Duration::from_secs(5);
/// Largest answer stored (ours are small JSON documents; one that echoes
/// megabytes of a tenant's values is refused with 413, and rolled back).
pub const MAX_STORED_ANSWER: usize = 16 << 20;
/// The first key of the two-key advisory lock space used for idempotency
/// keys (the second is a hash of owner and key).
const LOCK_CLASS: i32 = 7_120_018;

/// The middleware: gives every POST its [`Effect`] and, under a key, replays
/// or stores the answer.
pub async fn idempotent(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let (req, claim) = match req.headers().get(HEADER) {
        None => (req, None),
        Some(_) => {
            let (req, claim) = fingerprint(&state, req).await?;
            (req, Some(claim))
        }
    };
    if let Some(claim) = &claim {
        let mut conn = state.pool.acquire().await?;
        if let Some(stored) = claim.stored(&mut conn).await? {
            return claim.replay(stored);
        }
    }
    let effect = Effect::new(state.pool.clone(), claim);
    let mut req = req;
    req.extensions_mut().insert(effect.clone());
    let resp = next.run(req).await;
    effect.finish(resp).await
}

/// Who used which key for which request.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    owner: Uuid,
    key: String,
    path: String,
    hash: String,
}

/// An answer stored under a key.
pub(crate) struct Stored {
    hash: String,
    status: i16,
    body: Option<serde_json::Value>,
}

/// Read the key and the whole body, and hash the request.
async fn fingerprint(state: &AppState, req: Request) -> Result<(Request, Claim), ApiError> {
    let key = req
        .headers()
        .get(HEADER)
        .and_then(|k| k.to_str().ok())
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
        .map_err(|e| ApiError::reading_body(&e, limit))?;
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
    let claim = Claim {
        owner,
        key,
        path: parts.uri.path().to_string(),
        hash: hex::encode(h.finalize()),
    };
    Ok((Request::from_parts(parts, Body::from(bytes)), claim))
}

impl Claim {
    /// The answer committed under this key, if any (and not expired).
    async fn stored(&self, conn: &mut PgConnection) -> Result<Option<Stored>, sqlx::Error> {
        let row: Option<(String, i16, Option<serde_json::Value>)> = sqlx::query_as(
            "SELECT request_hash, status, body FROM api_idempotency
             WHERE owner = $1 AND key = $2 AND created_at >= now() - make_interval(hours => $3)",
        )
        .bind(self.owner)
        .bind(&self.key)
        .bind(RETENTION_HOURS as i32)
        .fetch_optional(conn)
        .await?;
        Ok(row.map(|(hash, status, body)| Stored { hash, status, body }))
    }

    /// In the request's transaction: wait for any other transaction holding
    /// this key, then read what it left. `Ok(None)`: the key is ours until
    /// this transaction ends.
    async fn lock(&self, conn: &mut PgConnection) -> Result<Option<Stored>, ApiError> {
        // A constant, formatted in: SET takes no parameters.
        sqlx::query(&format!(
            "SET LOCAL lock_timeout = {}",
            LOCK_WAIT.as_millis()
        ))
        .execute(&mut *conn)
        .await?;
        let locked =
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text || '/' || $3))")
                .bind(LOCK_CLASS)
                .bind(self.owner)
                .bind(&self.key)
                .execute(&mut *conn)
                .await;
        match locked {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                return Err(ApiError::IdempotencyInProgress)
            }
            other => {
                other?;
            }
        }
        // The handler's own locks wait as long as they always did.
        sqlx::query("SET LOCAL lock_timeout TO DEFAULT")
            .execute(&mut *conn)
            .await?;
        Ok(self.stored(conn).await?)
    }

    /// Write the answer under the key (in the request's transaction, which
    /// holds the key's lock).
    async fn store(
        &self,
        conn: &mut PgConnection,
        status: StatusCode,
        body: Option<serde_json::Value>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO api_idempotency (owner, key, method, path, request_hash, status, body)
             VALUES ($1, $2, 'POST', $3, $4, $5, $6)
             ON CONFLICT (owner, key) DO UPDATE
               SET path = EXCLUDED.path, request_hash = EXCLUDED.request_hash,
                   status = EXCLUDED.status, body = EXCLUDED.body, created_at = now()",
        )
        .bind(self.owner)
        .bind(&self.key)
        .bind(&self.path)
        .bind(&self.hash)
        .bind(status.as_u16() as i16)
        .bind(body)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// The stored answer, or 422 if it was another request's.
    fn replay(&self, stored: Stored) -> Result<Response, ApiError> {
        if stored.hash != self.hash {
            return Err(ApiError::IdempotencyMismatch(
                "this Idempotency-Key was used with a different request (method, path or body); use a new key"
                    .into(),
            ));
        }
        let status = StatusCode::from_u16(stored.status as u16).unwrap_or(StatusCode::OK);
        let mut resp = match stored.body {
            Some(b) => (status, axum::Json(b)).into_response(),
            None => status.into_response(),
        };
        let h = resp.headers_mut();
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
        // Answers stored before only 2xx were kept can be problems.
        if status.is_client_error() {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        }
        Ok(resp)
    }
}

/// The answer's body as stored (JSON, or nothing).
async fn buffer(resp: Response) -> Result<(Response, Option<serde_json::Value>), ApiError> {
    let (parts, body) = resp.into_parts();
    // The handler's answer is in memory already: the only failure is its
    // length, which the request decided (e.g. megabytes of `params`).
    let bytes = to_bytes(body, MAX_STORED_ANSWER)
        .await
        .map_err(|_| ApiError::AnswerTooLarge(MAX_STORED_ANSWER))?;
    let json = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    Ok((Response::from_parts(parts, Body::from(bytes)), json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_too_large_to_keep_is_a_413_not_a_500() {
        let fits = Response::new(Body::from(vec![b' '; MAX_STORED_ANSWER]));
        assert!(buffer(fits).await.is_ok());
        let over = Response::new(Body::from(vec![b' '; MAX_STORED_ANSWER + 1]));
        let err = buffer(over).await.expect_err("over the limit");
        assert!(matches!(err, ApiError::AnswerTooLarge(_)), "{err:?}");
        let answer = err.into_response();
        assert_eq!(answer.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);
    }
}
