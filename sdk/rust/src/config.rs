//! The server's non-secret settings.
use crate::bindings::panel1::provisioning::config as raw;
use crate::{invalid_input, AdapterError};

/// One setting, if present.
pub fn get(key: &str) -> Option<String> {
    raw::get(key)
}

/// A required setting; a missing one is an `invalid-input` error naming it.
pub fn require(key: &str) -> Result<String, AdapterError> {
    raw::get(key).ok_or_else(|| invalid_input(format!("server config is missing `{key}`")))
}

/// All settings, sorted by key.
pub fn all() -> Vec<(String, String)> {
    raw::all()
}
