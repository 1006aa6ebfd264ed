//! Shared by the plesk adapter tests: the real `plesk.wasm` in the real
//! sandbox, talking HTTPS over loopback to the Plesk simulator whose
//! self-signed certificate is pinned on the egress rule, with the API key
//! bound as the `plesk-api-key` secret to 127.0.0.1:PORT.
//!
//! Every call goes through [`Plesk::call`], which checks that nothing
//! recorded about it (result, error, log lines, http exchanges) holds the
//! API key or a password the test registered.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use panel1_sandbox::{
    CallReport, CallRequest, EgressPolicy, EgressRule, HostContext, LoadedAdapter, Operation,
    SecretBinding,
};
use panel1_sims::plesk::{PleskConfig, PleskSimulator};
use panel1_sims::LoggedRequest;
use serde_json::{json, Value};

use crate::guest::{load, report_texts, sandbox};

pub const KEY: &str = "a1b2c3d4-5e6f-4a0b-9c8d-7e6f5a4b3c2d";

fn adapter() -> Arc<LoadedAdapter> {
    static ADAPTER: OnceLock<Arc<LoadedAdapter>> = OnceLock::new();
    ADAPTER.get_or_init(|| load("plesk")).clone()
}

pub struct Plesk {
    pub sim: PleskSimulator,
    pub ctx: HostContext,
    secrets: Mutex<Vec<String>>,
}

impl Plesk {
    pub async fn start() -> Plesk {
        let sim = PleskSimulator::start(PleskConfig::with_key(KEY))
            .await
            .expect("simulator starts");
        Plesk::with(sim)
    }

    /// Around a simulator started with its own config (key [`KEY`]).
    pub fn with(sim: PleskSimulator) -> Plesk {
        let ctx = context(&sim, KEY, Some(sim.cert_sha256()));
        Plesk {
            sim,
            ctx,
            secrets: Mutex::new(vec![KEY.to_string()]),
        }
    }

    pub fn port(&self) -> u16 {
        self.sim.addr().port()
    }

    pub fn set_config(&mut self, key: &str, value: &str) {
        self.ctx.config.insert(key.into(), value.into());
    }

    /// Replace the egress rules (e.g. without the pin, or none).
    pub fn set_rules(&mut self, rules: &[&str]) {
        let rules = rules
            .iter()
            .map(|r| EgressRule::parse(r).expect("rule parses"))
            .collect();
        self.ctx.egress = EgressPolicy::new(rules);
    }

    /// `https://127.0.0.1:PORT/api/v2/`
    pub fn rule_url(&self) -> String {
        format!("{}/", self.sim.api_url())
    }

    /// Bind a further secret (a password) to the simulator and forbid its
    /// value in every report.
    pub fn bind_secret(&mut self, name: &str, value: &str) {
        self.ctx.secrets.retain(|s| s.name != name);
        self.ctx.secrets.push(SecretBinding {
            name: name.into(),
            value: value.into(),
            destinations: vec![format!("127.0.0.1:{}", self.port())],
        });
        let json = serde_json::to_string(value).unwrap();
        let mut secrets = self.secrets.lock().unwrap();
        secrets.push(value.to_string());
        // As it would stand inside the report's JSON text.
        secrets.push(json[1..json.len() - 1].to_string());
    }

    pub async fn call(&self, op: Operation, input: Value) -> CallReport {
        self.call_attempt(op, input, 1).await
    }

    /// One call, then the secrecy checks on everything recorded about it.
    pub async fn call_attempt(&self, op: Operation, input: Value, attempt: u32) -> CallReport {
        let request = CallRequest {
            operation: op,
            input,
            idempotency_key: format!("task-{op:?}"),
            attempt,
        };
        let report = sandbox()
            .call(&adapter(), Arc::new(self.ctx.clone()), &request)
            .await
            .expect("the input matches the operation");
        let secrets = self.secrets.lock().unwrap().clone();
        for t in report_texts(&report) {
            for s in &secrets {
                assert!(!t.contains(s.as_str()), "a secret leaked into {t}");
            }
        }
        report
    }

    /// Every request the simulator saw so far was well formed per Plesk's
    /// description.
    pub fn assert_well_formed(&self) {
        assert_well_formed(&self.sim.request_log());
    }
}

pub fn assert_well_formed(log: &[LoggedRequest]) {
    for r in log {
        assert!(r.well_formed(), "malformed request: {r:#?}");
    }
}

/// The server connection as an operator would set it up: config, the key
/// bound to the simulator, egress to its `/api/v2/` (pinned or not).
pub fn context(sim: &PleskSimulator, key: &str, pin: Option<&str>) -> HostContext {
    let mut config = BTreeMap::new();
    config.insert("host".to_string(), "127.0.0.1".to_string());
    config.insert("port".to_string(), sim.addr().port().to_string());
    let mut rule = format!("{}/", sim.api_url());
    if let Some(pin) = pin {
        rule = format!("{rule} sha256:{pin}");
    }
    HostContext {
        config,
        secrets: vec![SecretBinding {
            name: "plesk-api-key".into(),
            value: key.into(),
            destinations: vec![format!("127.0.0.1:{}", sim.addr().port())],
        }],
        egress: EgressPolicy::new(vec![EgressRule::parse(&rule).expect("rule parses")]),
        ..HostContext::default()
    }
}

/// `{"service": {...}}` for an existing subscription.
pub fn service(domain: &str) -> Value {
    json!({ "service": { "service_id": format!("svc-{domain}"), "remote_id": domain } })
}

/// A provision request.
pub fn new_service(login: &str, domain: &str, plan: Option<&str>) -> Value {
    json!({ "service": {
        "service_id": format!("svc-{login}"), "username": login, "domain": domain, "plan": plan,
        "contact_email": format!("{login}@example.net"),
    } })
}

/// The `plesk call` log lines' `call` fields, in order.
pub fn plesk_calls(r: &CallReport) -> Vec<String> {
    r.log
        .iter()
        .filter(|e| e.message == "plesk call")
        .filter_map(|e| e.fields.iter().find(|(k, _)| k == "call"))
        .map(|(_, v)| v.clone())
        .collect()
}
