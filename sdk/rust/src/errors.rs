//! Short constructors for the typed errors of the WIT world, and the helpers
//! adapters use to name and recognise errors.
use crate::{AdapterError, TransientError};

pub fn invalid_input(msg: impl Into<String>) -> AdapterError {
    AdapterError::InvalidInput(msg.into())
}
pub fn auth_failed(msg: impl Into<String>) -> AdapterError {
    AdapterError::AuthFailed(msg.into())
}
pub fn not_found(msg: impl Into<String>) -> AdapterError {
    AdapterError::NotFound(msg.into())
}
pub fn conflict(msg: impl Into<String>) -> AdapterError {
    AdapterError::Conflict(msg.into())
}
pub fn permanent(msg: impl Into<String>) -> AdapterError {
    AdapterError::Permanent(msg.into())
}
pub fn unsupported(op: &str) -> AdapterError {
    AdapterError::Unsupported(format!(
        "operation `{op}` is not implemented by this adapter"
    ))
}
/// Retry later; `retry_after_ms` when the provider said how long to wait.
pub fn transient(msg: impl Into<String>, retry_after_ms: Option<u64>) -> AdapterError {
    AdapterError::Transient(TransientError {
        message: msg.into(),
        retry_after_ms,
    })
}

/// The error case's WIT name (`invalid-input`, `transient`, ...): a stable
/// word for log fields, where the message would be too long or too varied.
pub fn kind_name(e: &AdapterError) -> &'static str {
    match e {
        AdapterError::InvalidInput(_) => "invalid-input",
        AdapterError::AuthFailed(_) => "auth-failed",
        AdapterError::NotFound(_) => "not-found",
        AdapterError::Conflict(_) => "conflict",
        AdapterError::Transient(_) => "transient",
        AdapterError::Permanent(_) => "permanent",
        AdapterError::Unsupported(_) => "unsupported",
    }
}

/// Case-insensitive "`message` contains `phrase`": adapters recognise a
/// provider's error reasons by a phrase, not by their exact text.
pub fn says(message: &str, phrase: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains(&phrase.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_the_wit_case_names() {
        let cases = [
            (invalid_input("x"), "invalid-input"),
            (auth_failed("x"), "auth-failed"),
            (not_found("x"), "not-found"),
            (conflict("x"), "conflict"),
            (transient("x", Some(5)), "transient"),
            (permanent("x"), "permanent"),
            (unsupported("usage"), "unsupported"),
        ];
        for (e, name) in cases {
            assert_eq!(kind_name(&e), name, "{e:?}");
        }
    }

    #[test]
    fn says_ignores_case() {
        assert!(says(
            "User bob is Already Suspended.",
            "is already suspended"
        ));
        assert!(says(
            "Account with this name already exists",
            "ALREADY EXISTS"
        ));
        assert!(!says("Account does not exist", "already exists"));
    }
}
