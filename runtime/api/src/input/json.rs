//! JSON bodies: parsed once as a `Value`, every string and key checked
//! (with its JSON Pointer), then deserialized into the handler's type.
use super::{printable, unstorable};
use crate::problem::{ApiError, ApiResult, FieldError};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON body (`Content-Type: application/json` or `…+json`), checked at
/// the edge; rejections are problem documents naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body that may be absent (empty or whitespace only: `T::default()`).
pub struct OptionalApiJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalApiJson(T::default()));
        }
        parse_json(&bytes).map(OptionalApiJson)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_body(req: Request, state: &AppState) -> ApiResult<Bytes> {
    Bytes::from_request(req, state)
        .await
        .map_err(|r| body_error(r, state.config.max_body_bytes))
}

/// Too large (the body limit) is 413; a body that did not arrive in time is
/// 408; anything else about reading it is 400.
pub(crate) fn body_error(r: BytesRejection, limit: usize) -> ApiError {
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(limit),
        _ if crate::server::is_body_timeout(&r) => ApiError::BodyTimeout,
        _ => ApiError::BadRequest("the body could not be read (interrupted)".into()),
    }
}

/// Parse, check every string, then deserialize `T`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let mut errors = Vec::new();
    check_value(&value, &mut String::new(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // axum's own decoding keeps serde's path to a wrongly typed field.
    #[allow(clippy::disallowed_types)]
    let decoded = axum::Json::<T>::from_bytes(bytes);
    decoded.map(|j| j.0).map_err(ApiError::from)
}

/// Every unstorable string or key under `v`, by JSON Pointer.
fn check_value(v: &Value, pointer: &mut String, errors: &mut Vec<FieldError>) {
    match v {
        Value::String(s) => {
            if let Some(why) = unstorable(s) {
                errors.push(FieldError {
                    field: pointer.clone(),
                    message: why.to_string(),
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                check_value(item, pointer, errors);
                pointer.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&printable(&key.replace('~', "~0").replace('/', "~1")));
                if let Some(why) = unstorable(key) {
                    errors.push(FieldError {
                        field: pointer.clone(),
                        message: format!("key {why}"),
                    });
                }
                check_value(item, pointer, errors);
                pointer.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[allow(dead_code)]
        params: std::collections::BTreeMap<String, String>,
    }

    fn fields(body: &str) -> Vec<String> {
        match parse_json::<Value>(body.as_bytes()) {
            Err(ApiError::Validation(e)) => e.into_iter().map(|f| f.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_nul_is_found_by_pointer() {
        assert_eq!(fields(r#"{"reason":"a\u0000"}"#), ["/reason"]);
        assert_eq!(
            fields(r#"{"params":{"k\u0000":"v","ok":"x\u0000y"}}"#),
            ["/params/k\\u{0}", "/params/ok"]
        );
        assert_eq!(fields(r#"{"a/b":[1,{"c~":"\u0000"}]}"#), ["/a~1b/1/c~0"]);
        assert!(parse_json::<Body>(br#"{"params":{"k":"v"}}"#).is_ok());
    }

    #[test]
    fn syntax_is_400_and_types_name_the_field() {
        assert!(matches!(
            parse_json::<Body>(b"{\"params\":"),
            Err(ApiError::BadRequest(_))
        ));
        match parse_json::<Body>(br#"{"params":{"k":5}}"#) {
            Err(ApiError::Validation(e)) => assert!(e[0].field.starts_with("params"), "{e:?}"),
            other => panic!("{other:?}"),
        }
    }
}
