//! Build the sandbox's host context from a server's stored runtime.
use panel1_sandbox::{EgressPolicy, Grants, HostContext, Limits, SecretBinding};
use panel1_store::setup::ServerRuntime;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// What a task on a server needs of the server's settings, built once per
/// read of them (the worker caches it briefly): every task of a burst on
/// one server shares one host context.
pub struct ServerSettings {
    pub adapter_version_id: Uuid,
    /// Keep each attempt's HTTP exchanges (crate::recording).
    pub record_exchanges: bool,
    /// The host context, or why the stored settings cannot make one.
    pub context: Result<Arc<HostContext>, String>,
}

impl ServerSettings {
    pub fn new(rt: &ServerRuntime) -> Self {
        ServerSettings {
            adapter_version_id: rt.adapter_version_id,
            record_exchanges: rt.record_exchanges,
            context: host_context(rt).map(Arc::new),
        }
    }
}

/// Config values are strings to the adapter; JSON scalars are rendered
/// plainly, structures as JSON.
fn config_map(config: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Value::Object(map) = config {
        for (k, v) in map {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            out.insert(k.clone(), s);
        }
    }
    out
}

fn host_context(rt: &ServerRuntime) -> Result<HostContext, String> {
    let egress: EgressPolicy = serde_json::from_value(rt.egress.clone())
        .map_err(|e| format!("server egress policy: {e}"))?;
    let grants: Grants = serde_json::from_value(rt.grants.clone()).unwrap_or_default();
    let limits: Limits =
        serde_json::from_value(rt.limits.clone()).map_err(|e| format!("server limits: {e}"))?;
    Ok(HostContext {
        config: config_map(&rt.config),
        secrets: rt
            .secrets
            .iter()
            .map(|(name, value, destinations)| SecretBinding {
                name: name.clone(),
                value: value.clone(),
                destinations: destinations.clone(),
            })
            .collect(),
        egress,
        grants,
        limits,
    })
}
