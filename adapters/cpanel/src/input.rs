//! Reading a service's fields and params: which WHM account it is, its
//! domain, and the free-form params (`password`, `contactemail`, `reason`).
use panel1_sdk::{invalid_input, AdapterError, ServiceSpec};

// The checks every provider shares live in the SDK.
pub use panel1_sdk::input::{domain, email, field, param};

/// The WHM username of an existing service: its remote id, else the
/// requested username.
pub fn account_of(spec: &ServiceSpec) -> Result<String, AdapterError> {
    let user = field(&spec.remote_id)
        .or_else(|| field(&spec.username))
        .ok_or_else(|| invalid_input("service has neither a remote id nor a username"))?;
    if user.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid_input(format!(
            "`{}` is not a cPanel username",
            user.escape_debug()
        )));
    }
    Ok(user.to_string())
}
