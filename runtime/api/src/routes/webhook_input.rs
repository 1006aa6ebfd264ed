//! What a webhook request may carry: URLs, event filters, secrets and
//! descriptions, each checked to a field error naming where it is wrong.
use crate::problem::{ApiError, ApiResult, FieldError};
use base64::Engine as _;

const MAX_EVENT_TYPES: usize = 64;

pub(super) fn check_url(field: &str, raw: &str) -> Result<(), FieldError> {
    let bad = |m: &str| FieldError {
        field: field.into(),
        message: m.into(),
    };
    if raw.len() > 2048 {
        return Err(bad("at most 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad(
            "must be https:// (or http:// where the operator allows it)",
        ));
    }
    if url.host().is_none() {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials (user:password@)"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a #fragment"));
    }
    Ok(())
}

pub(super) fn check_event_types(types: &[String]) -> Result<Vec<String>, FieldError> {
    if types.len() > MAX_EVENT_TYPES {
        return Err(FieldError {
            field: "event_types".into(),
            message: format!("at most {MAX_EVENT_TYPES}"),
        });
    }
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    let mut out: Vec<String> = Vec::new();
    for (i, t) in types.iter().enumerate() {
        let ok = t.len() <= 64
            && t.split_once('.')
                .is_some_and(|(family, kind)| word(family) && (kind == "*" || word(kind)));
        if !ok {
            return Err(FieldError {
                field: format!("event_types/{i}"),
                message: "an event kind (`service.updated`) or family (`task.*`)".into(),
            });
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

pub(super) fn check_secret(field: &str, secret: &str) -> Result<(), FieldError> {
    let decoded = secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    match decoded {
        Some(key) if (24..=64).contains(&key.len()) => Ok(()),
        _ => Err(FieldError {
            field: field.into(),
            message: "`whsec_` followed by 24–64 random bytes in base64".into(),
        }),
    }
}

pub(super) fn check_description(text: &str) -> Result<(), FieldError> {
    if text.chars().count() > 500 {
        return Err(FieldError {
            field: "description".into(),
            message: "at most 500 characters".into(),
        });
    }
    Ok(())
}

pub(super) fn all_ok(results: Vec<Result<(), FieldError>>) -> ApiResult<()> {
    let errors: Vec<FieldError> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs() {
        assert!(check_url("url", "https://billing.example.com/hooks?x=1").is_ok());
        for bad in ["ftp://x/", "https://u:p@x/", "not a url", "https://x/#frag"] {
            assert!(check_url("url", bad).is_err(), "{bad}");
        }
        let ok = check_event_types(&["task.*".into(), "service.updated".into(), "task.*".into()])
            .unwrap();
        assert_eq!(ok, ["task.*", "service.updated"]);
        assert_eq!(
            check_event_types(&["service".into()]).unwrap_err().field,
            "event_types/0"
        );
        assert!(check_event_types(&["Task.x".into()]).is_err());
        assert!(check_secret("s", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(check_secret("s", "whsec_AAAA").is_err());
        assert!(check_secret("s", "secret").is_err());
    }
}
