//! Short constructors for the typed errors of the WIT world.
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
