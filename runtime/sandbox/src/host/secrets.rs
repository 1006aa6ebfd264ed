use crate::bindings::panel1::provisioning::secrets::{Host, SecretError};
use crate::bindings::panel1::provisioning::secrets_reveal::Host as RevealHost;
use crate::egress::identity::is_identity;
use crate::egress::secrets::placeholder;
use crate::host_state::HostState;
use crate::log_buffer::LogLevel;

impl Host for HostState {
    fn placeholder(&mut self, name: String) -> Result<String, SecretError> {
        self.budget.charge_bytes(name.len());
        match self.context.secrets.iter().find(|s| s.name == name) {
            Some(s) if is_identity(&s.value) => Err(identity_denied(&name)),
            Some(_) => Ok(placeholder(&name)),
            None => Err(SecretError::NotFound(format!(
                "no secret named `{name}` is bound to this server"
            ))),
        }
    }

    fn names(&mut self) -> Vec<String> {
        self.context
            .secrets
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }
}

impl RevealHost for HostState {
    fn reveal(&mut self, name: String) -> Result<String, SecretError> {
        self.budget.charge_bytes(name.len());
        let Some(secret) = self.context.secrets.iter().find(|s| s.name == name) else {
            return Err(SecretError::NotFound(format!(
                "no secret named `{name}` is bound to this server"
            )));
        };
        if is_identity(&secret.value) {
            return Err(identity_denied(&name));
        }
        if !self.context.grants.secrets_reveal {
            self.log.host(
                LogLevel::Warn,
                &format!("secret reveal denied: `{name}` (the operator has not granted secrets-reveal to this adapter)"),
                Vec::new(),
            );
            return Err(SecretError::Denied(
                "secrets-reveal is not granted to this adapter".into(),
            ));
        }
        // Sticky binding: what the guest now knows may go only where the
        // secret may go, whatever form it takes.
        self.hooks.shared.guard.expose(&name);
        self.log.host(
            LogLevel::Info,
            &format!(
                "secret `{name}` revealed to the adapter (granted); the rest of this call may \
                 send requests only where it is bound"
            ),
            Vec::new(),
        );
        Ok(secret.value.clone())
    }
}

/// A client identity is the host's to present in TLS, never the guest's.
fn identity_denied(name: &str) -> SecretError {
    SecretError::Denied(format!(
        "secret `{name}` is a client identity: the host presents it in the TLS handshake to \
         the destinations it is bound to; it cannot be placed in a request or revealed"
    ))
}
