//! Secrets by reference. [`placeholder`] returns text that stands for the
//! secret; put it in a header, the query or the body of a request and the host
//! substitutes the value when (and only when) the destination is one the
//! secret is bound to. The value never enters the adapter.
use crate::bindings::panel1::provisioning::secrets as raw;
use crate::{invalid_input, AdapterError};

pub use raw::SecretError;

/// Placeholder for secret `name`; a missing secret is `invalid-input`.
pub fn placeholder(name: &str) -> Result<String, AdapterError> {
    raw::placeholder(name).map_err(|e| match e {
        SecretError::NotFound(m) | SecretError::Denied(m) => {
            invalid_input(format!("secret `{name}`: {m}"))
        }
    })
}

/// Names of the secrets available to this call.
pub fn names() -> Vec<String> {
    raw::names()
}

/// The plaintext of a secret. Using this makes the component import
/// `secrets-reveal`: the operator must grant it, or every call is denied.
/// Prefer [`placeholder`].
pub fn reveal(name: &str) -> Result<String, SecretError> {
    crate::bindings::panel1::provisioning::secrets_reveal::reveal(name)
}
