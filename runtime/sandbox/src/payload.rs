//! JSON shapes of operation inputs and outputs (snake_case, as stored in
//! tasks and shown by the CLI) and their conversion to and from WIT types.
use crate::bindings::wit;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The service an operation acts on.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceInput {
    pub service_id: String,
    pub remote_id: Option<String>,
    pub username: Option<String>,
    pub domain: Option<String>,
    pub plan: Option<String>,
    pub contact_email: Option<String>,
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionInput {
    pub service: ServiceInput,
    #[serde(default)]
    pub password_secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceOpInput {
    pub service: ServiceInput,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePackageInput {
    pub service: ServiceInput,
    pub plan: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordInput {
    pub service: ServiceInput,
    pub password_secret: String,
}

fn default_limit() -> u32 {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default = "default_limit")]
    pub limit: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyInput {}

/// Parse `input` (null counts as `{}`) into `T`, with the JSON path of the
/// problem in the message.
pub fn parse<T: for<'de> Deserialize<'de>>(input: &Value) -> Result<T, String> {
    let input = if input.is_null() {
        json!({})
    } else {
        input.clone()
    };
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

impl ServiceInput {
    pub fn to_wit(&self) -> wit::ServiceSpec {
        wit::ServiceSpec {
            service_id: self.service_id.clone(),
            remote_id: self.remote_id.clone(),
            username: self.username.clone(),
            domain: self.domain.clone(),
            plan: self.plan.clone(),
            contact_email: self.contact_email.clone(),
            params: self
                .params
                .iter()
                .map(|(k, v)| wit::KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        }
    }
}

/// Key-value lists as a JSON object (details of statuses, backups, transfers).
pub(crate) fn kv_map(items: &[wit::KeyValue]) -> Value {
    Value::Object(
        items
            .iter()
            .map(|kv| (kv.key.clone(), Value::String(kv.value.clone())))
            .collect(),
    )
}

pub fn state_name(s: wit::RemoteState) -> &'static str {
    match s {
        wit::RemoteState::Active => "active",
        wit::RemoteState::Suspended => "suspended",
        wit::RemoteState::Terminated => "terminated",
        wit::RemoteState::Pending => "pending",
        wit::RemoteState::Unknown => "unknown",
    }
}

pub fn operation_name(op: wit::Operation) -> &'static str {
    use wit::Operation as O;
    match op {
        O::TestConnection => "test-connection",
        O::Provision => "provision",
        O::Suspend => "suspend",
        O::Unsuspend => "unsuspend",
        O::Terminate => "terminate",
        O::Status => "status",
        O::ChangePackage => "change-package",
        O::ChangePassword => "change-password",
        O::ListServices => "list-services",
        O::Usage => "usage",
        O::LoginUrl => "login-url",
    }
}

pub fn status_json(s: &wit::ServiceStatus) -> Value {
    json!({
        "remote_id": s.remote_id,
        "state": state_name(s.state),
        "plan": s.plan,
        "domain": s.domain,
        "details": kv_map(&s.details),
    })
}

pub fn info_json(i: &wit::AdapterInfo) -> Value {
    json!({
        "name": i.name,
        "version": i.version,
        "description": i.description,
        "operations": distinct(i.operations.iter().map(|o| operation_name(*o))),
        // Kept as the adapter's text (JSON Schema): validating it is the
        // registry's job at upload, not every call's.
        "config_schema": i.config_schema,
        "egress": i.egress,
        "secrets": i.secrets,
    })
}

/// Each name once, in first-seen order: listing an operation twice means
/// nothing, and a list of a million costs the host one entry.
pub(crate) fn distinct(names: impl Iterator<Item = &'static str>) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for name in names {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

pub fn connection_json(c: &wit::ConnectionInfo) -> Value {
    json!({ "server_version": c.server_version, "details": kv_map(&c.details) })
}

pub fn page_json(p: &wit::ServicePage) -> Value {
    json!({ "items": p.items.iter().map(status_json).collect::<Vec<_>>(), "next_cursor": p.next_cursor })
}

pub fn usage_json(u: &wit::UsageReport) -> Value {
    json!({
        "remote_id": u.remote_id,
        "metrics": u.metrics.iter().map(|m| json!({"name": m.name, "value": m.value, "unit": m.unit})).collect::<Vec<_>>(),
    })
}

pub fn login_json(l: &wit::LoginLink) -> Value {
    json!({ "url": l.url, "expires_at": l.expires_at })
}
