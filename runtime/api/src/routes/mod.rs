//! The `/v1` resources, one file each, and the small pieces they share.
pub mod adapters;
pub mod backup_policies;
pub mod backups;
pub mod bulk;
pub mod health;
pub mod migrations;
pub mod secrets;
pub mod server_health;
pub mod server_update;
pub mod servers;
pub mod service_actions;
pub mod services;
pub mod shadow_runs;
pub mod sync;
pub mod tasks;
pub mod tenants;
pub mod usage;
mod webhook_input;
pub mod webhooks;

use crate::problem::{ApiError, FieldError};
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

pub use crate::input::{ApiJson, ApiPath, ApiQuery, OptionalApiJson};

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => {
                // "Failed to deserialize ...: <path>: <message>"
                let text = e.body_text();
                let detail = text.split_once("target type: ").map_or(&text[..], |x| x.1);
                let (field, message) = match detail.split_once(": ") {
                    Some((path, msg)) if !path.contains(' ') => (path.to_string(), msg),
                    _ => (String::new(), detail),
                };
                // serde adds " at line L column C"; the path already says where.
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(message)
                    .to_string();
                ApiError::Validation(vec![FieldError { field, message }])
            }
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::BadRequest(format!("the body is not valid JSON: {}", e.body_text()))
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ),
            JsonRejection::BytesRejection(_) => {
                ApiError::BadRequest("the body could not be read (too large or interrupted)".into())
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

/// 201 with a JSON body.
pub struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, Json(self.0)).into_response()
    }
}

/// 202: the work was accepted as a task.
pub struct Accepted<T>(pub T);

impl<T: Serialize> IntoResponse for Accepted<T> {
    fn into_response(self) -> Response {
        (StatusCode::ACCEPTED, Json(self.0)).into_response()
    }
}

pub struct NoContent;

impl IntoResponse for NoContent {
    fn into_response(self) -> Response {
        StatusCode::NO_CONTENT.into_response()
    }
}

pub fn validate_name(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}
