//! Every error answer is `application/problem+json` (RFC 9457) with a stable
//! `type`. Internal failures are logged with an id and answered generically:
//! no database or internal text ever reaches a client.
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A field that failed validation: where (a JSON path) and why.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FieldError {
    /// JSON path of the field in the request (`/config/port`, `name`).
    pub field: String,
    pub message: String,
}

/// The problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the problem kind, e.g. `/problems/not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For internal errors: the id under which the failure was logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} is not allowed on this endpoint (see the Allow header)")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    IdempotencyMismatch(String),
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress,
    #[error("request body too large (limit {0} bytes)")]
    TooLarge(usize),
    #[error(
        "the answer to this request would be over {0} bytes, more than is kept to replay an \
         Idempotency-Key; nothing was done: send smaller values, or the request without a key"
    )]
    AnswerTooLarge(usize),
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    #[error(
        "this tenant already has {0} event streams open, the most it may; close one and retry"
    )]
    TooManyStreams(usize),
    #[error(
        "this tenant already has {0} uploads compiling, the most it may; retry when one is done"
    )]
    TooManyCompiles(usize),
    #[error("{0}")]
    Unavailable(String),
    /// Logged with its source; the client sees only an id.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Validation(vec![FieldError {
            field: field.to_string(),
            message: message.into(),
        }])
    }

    /// `value`, when given, must be one of `allowed` (a filter naming a
    /// state or kind): otherwise a field error listing them.
    pub fn check_one_of(field: &str, value: Option<&str>, allowed: &[&str]) -> ApiResult<()> {
        match value {
            Some(v) if !allowed.contains(&v) => Err(ApiError::validation(
                field,
                format!("one of {}", allowed.join(", ")),
            )),
            _ => Ok(()),
        }
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(format!("{context}: {e}"))
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Validation failed",
            ),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            IdempotencyMismatch(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused with another request",
            ),
            IdempotencyInProgress => (
                StatusCode::CONFLICT,
                "idempotency-in-progress",
                "Request in progress",
            ),
            TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Payload too large",
            ),
            AnswerTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "answer-too-large",
                "Answer too large to keep",
            ),
            BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Request body timeout",
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            TooManyStreams(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams",
                "Too many open event streams",
            ),
            TooManyCompiles(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-compiles",
                "Too many uploads compiling",
            ),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    pub fn to_problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let mut p = Problem {
            kind: format!("/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors: Vec::new(),
            error_id: None,
        };
        match self {
            ApiError::Validation(errors) => {
                p.detail = match errors.as_slice() {
                    [one] => format!("{}: {}", one.field, one.message),
                    _ => format!("{} fields are invalid", errors.len()),
                };
                p.errors = errors.clone();
            }
            ApiError::Internal(source) => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                tracing::error!(error_id = %id, error = %source, "internal error answered 500");
                p.detail = format!("the server failed to answer; it was logged as {id}");
                p.error_id = Some(id);
            }
            ApiError::Unavailable(source) => {
                tracing::warn!(error = %source, "answered 503");
                p.detail = "the server cannot answer right now; retry shortly".into();
            }
            _ => {}
        }
        p
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // The database is down or restarting: the client may retry.
            // A connection cut mid-conversation can also surface as a
            // protocol error or a crashed connection worker.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::PoolClosed => ApiError::Unavailable(format!("database: {e}")),
            sqlx::Error::Database(d) if d.code().is_some_and(|c| transient_sqlstate(&c)) => {
                ApiError::Unavailable(format!("database: {e}"))
            }
            _ => ApiError::internal("database", e),
        }
    }
}

/// SQLSTATEs that say "not now" rather than "wrong": a connection lost (08),
/// the server shutting down, restarting or not accepting yet (57P01-57P03),
/// out of connections or resources (53), a serialization failure or
/// deadlock (40001, 40P01). The client gets 503 and may retry; with an
/// Idempotency-Key the retry is safe (the effect and its key commit together).
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
}

impl From<panel1_store::StoreError> for ApiError {
    fn from(e: panel1_store::StoreError) -> Self {
        use panel1_store::StoreError;
        match e {
            StoreError::Db(db) => db.into(),
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Invalid(why) => ApiError::BadRequest(why),
            other => ApiError::internal("store", other),
        }
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.to_problem();
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let ApiError::RateLimited { retry_after_secs } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if let ApiError::BodyTimeout = self {
            // The rest of the body may still be on its way: not reusable.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let ApiError::TooManyStreams(_) = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(5u64));
        }
        if let ApiError::IdempotencyInProgress
        | ApiError::Unavailable(_)
        | ApiError::TooManyCompiles(_) = self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A body that could not be read whole: too large, or too slow.
    pub fn reading_body(e: &axum::Error, limit: usize) -> ApiError {
        if crate::server::is_body_timeout(e) {
            ApiError::BodyTimeout
        } else {
            ApiError::TooLarge(limit)
        }
    }
}
