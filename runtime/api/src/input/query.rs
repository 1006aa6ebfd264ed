//! Query strings: decoded here (not lossily: text that is not UTF-8 is
//! refused, as is NUL), then deserialized; a value of the wrong type is named
//! by its parameter.
use super::{check_text, printable};
use crate::problem::{ApiError, FieldError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Uri;
use serde::de::DeserializeOwned;

/// Query parameters, checked at the edge.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        let mut errors = Vec::new();
        for segment in raw.split('&').filter(|s| !s.is_empty()) {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            let key = match decode(key) {
                Ok(k) => k,
                Err(lossy) => {
                    errors.push(not_utf8(&lossy, "the parameter name"));
                    continue;
                }
            };
            let name = printable(&key);
            if let Err(mut e) = check_text(&name, &key) {
                e.message = format!("the parameter name {}", e.message);
                errors.push(e);
                continue;
            }
            match decode(value) {
                Ok(v) => errors.extend(check_text(&name, &v).err()),
                Err(_) => errors.push(not_utf8(&name, "the value")),
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        deserialize(&parts.uri, raw).map(ApiQuery)
    }
}

fn not_utf8(field: &str, what: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: format!("{what} is not valid UTF-8 once percent-decoded"),
    }
}

#[allow(clippy::disallowed_types)]
fn deserialize<T: DeserializeOwned>(uri: &Uri, raw: &str) -> Result<T, ApiError> {
    use axum::extract::Query;
    let whole = match Query::<T>::try_from_uri(uri) {
        Ok(Query(t)) => return Ok(t),
        Err(e) => e.body_text(),
    };
    let why = |text: &str| {
        text.trim_start_matches("Failed to deserialize query string: ")
            .to_string()
    };
    // serde_urlencoded does not say which parameter failed: find it by
    // trying each alone.
    for segment in raw.split('&').filter(|s| !s.is_empty()) {
        let Ok(alone) = format!("/?{segment}").parse::<Uri>() else {
            continue;
        };
        if let Err(e) = Query::<T>::try_from_uri(&alone) {
            let key = segment.split_once('=').map_or(segment, |x| x.0);
            let key = decode(key).unwrap_or_else(|lossy| lossy);
            return Err(ApiError::validation(&printable(&key), why(&e.body_text())));
        }
    }
    Err(ApiError::validation("query", why(&whole)))
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX` a
/// byte, a malformed escape stays as it is); `Err` holds a lossy rendering
/// when the bytes are not UTF-8.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%')
            .then(|| b.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (b[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', None) => out.push(b' '),
            (c, None) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_like_a_form_and_refuses_non_utf8() {
        assert_eq!(decode("a+b%20c%2Bd%zz%4").unwrap(), "a b c+d%zz%4");
        assert_eq!(decode("%00").unwrap(), "\0");
        assert_eq!(decode("%C3%A9").unwrap(), "é");
        assert!(decode("%FF").is_err());
        assert!(decode("%C3").is_err());
    }
}
