//! Path parameters: decoded by axum (text that is not UTF-8 is refused),
//! checked for NUL, then parsed; a malformed id is named by its parameter.
use super::check_text;
use crate::problem::ApiError;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, RawPathParamsRejection};
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// Path parameters, checked at the edge.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|r| match r {
                RawPathParamsRejection::InvalidUtf8InPathParam(e) => {
                    ApiError::validation("path", e.body_text())
                }
                other => ApiError::internal("path parameters", other.body_text()),
            })?;
        let mut errors = Vec::new();
        let mut only = None;
        for (key, value) in &raw {
            errors.extend(check_text(key, value).err());
            only = Some(key.to_string());
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        if raw.iter().count() != 1 {
            only = None;
        }
        #[allow(clippy::disallowed_types)]
        let parsed = axum::extract::Path::<T>::from_request_parts(parts, state).await;
        match parsed {
            Ok(p) => Ok(ApiPath(p.0)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let kind = e.into_kind();
                let field = match &kind {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::DeserializeError { key, .. } => key.clone(),
                    _ => only.unwrap_or_else(|| "path".into()),
                };
                let message = match &kind {
                    ErrorKind::ParseErrorAtKey { expected_type, .. }
                    | ErrorKind::ParseError { expected_type, .. }
                    | ErrorKind::ParseErrorAtIndex { expected_type, .. } => {
                        format!("is not a valid {}", type_name(expected_type))
                    }
                    other => other.to_string(),
                };
                Err(ApiError::validation(&field, message))
            }
            Err(other) => Err(ApiError::internal("path parameters", other.body_text())),
        }
    }
}

/// `uuid::Uuid` → `UUID`, `i64` → `integer`.
fn type_name(rust: &str) -> &str {
    match rust.rsplit("::").next().unwrap_or(rust) {
        "Uuid" => "UUID",
        "i64" | "i32" | "u64" | "u32" => "integer",
        other => other,
    }
}
