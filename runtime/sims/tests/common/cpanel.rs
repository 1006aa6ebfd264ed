//! Shared by the cpanel adapter tests: the real `cpanel.wasm` in the real
//! sandbox, talking HTTPS over loopback to a simulator whose self-signed
//! certificate is pinned on the egress rule, with the WHM token bound as the
//! `whm-token` secret to 127.0.0.1:PORT.
//!
//! Every call goes through [`Whm::call`], which checks that nothing recorded
//! about it (result, error, log lines, http exchanges) holds the token or a
//! password the test registered, nor the account's actual password in any
//! 24-character window (how a generated password would show up).
#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use panel1_sandbox::{
    CallReport, CallRequest, EgressPolicy, EgressRule, HostContext, LoadedAdapter, Operation,
    SecretBinding,
};
use panel1_sims::{Account, AuthOutcome, LoggedRequest, SimConfig, WhmSimulator};
use serde_json::{json, Value};

use crate::guest::{decode, load, sandbox};
pub use crate::guest::{detail, error, ok};

pub const TOKEN: &str = "WHMTOKEN7Q2R9X4K1M8P5V3B6N0C";
/// Length of the password the adapter generates.
pub const GENERATED_LEN: usize = 24;

fn adapter() -> Arc<LoadedAdapter> {
    static ADAPTER: OnceLock<Arc<LoadedAdapter>> = OnceLock::new();
    ADAPTER.get_or_init(|| load("cpanel")).clone()
}

/// A simulator and a context for the adapter against it.
pub struct Whm {
    pub sim: WhmSimulator,
    pub ctx: HostContext,
    /// Strings no report may contain (the token, passwords).
    secrets: Mutex<Vec<String>>,
}

impl Whm {
    pub async fn start() -> Whm {
        let sim = WhmSimulator::start(SimConfig::with_token(TOKEN))
            .await
            .expect("simulator starts");
        let ctx = context(&sim, TOKEN, Some(sim.cert_sha256()));
        Whm {
            sim,
            ctx,
            secrets: Mutex::new(vec![TOKEN.to_string()]),
        }
    }

    pub fn port(&self) -> u16 {
        self.sim.addr().port()
    }

    /// `request_timeout_ms` in the server config.
    pub fn set_request_timeout_ms(&mut self, ms: u64) {
        self.ctx
            .config
            .insert("request_timeout_ms".into(), ms.to_string());
    }

    /// Replace the egress rule (e.g. without the pin).
    pub fn set_rule(&mut self, rule: &str) {
        self.ctx.egress = EgressPolicy::new(vec![EgressRule::parse(rule).expect("rule parses")]);
    }

    /// `https://127.0.0.1:PORT/json-api/`
    pub fn rule_url(&self) -> String {
        format!("{}/json-api/", self.sim.base_url())
    }

    /// Bind a further secret (a password) to the simulator and forbid its
    /// value in every report.
    pub fn bind_secret(&mut self, name: &str, value: &str) {
        self.ctx.secrets.push(SecretBinding {
            name: name.into(),
            value: value.into(),
            destinations: vec![format!("127.0.0.1:{}", self.port())],
        });
        self.forbid(value);
    }

    /// Bind `whm-token` to a different value (a wrong token).
    pub fn bind_token(&mut self, token: &str) {
        self.ctx.secrets.retain(|s| s.name != "whm-token");
        self.ctx.secrets.push(token_binding(&self.sim, token));
        self.forbid(token);
    }

    /// A string (and its form encoding) no report may contain.
    pub fn forbid(&self, value: &str) {
        let mut secrets = self.secrets.lock().unwrap();
        secrets.push(value.to_string());
        let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        if encoded != value {
            secrets.push(encoded);
        }
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
        self.assert_nothing_secret(&report);
        report
    }

    /// Neither the token nor a registered password appears in the result,
    /// the error, the log lines (with fields) or the http exchanges (URLs
    /// percent-decoded too); and no 24-character window of that text is the
    /// password of an account the simulator holds.
    pub fn assert_nothing_secret(&self, report: &CallReport) {
        let mut texts = vec![serde_json::to_string(report).unwrap()];
        for x in &report.http {
            texts.push(decode(&x.url));
        }
        let secrets = self.secrets.lock().unwrap().clone();
        for s in &secrets {
            for t in &texts {
                assert!(!t.contains(s.as_str()), "a secret leaked into {t}");
            }
        }
        let accounts = self.sim.accounts();
        for t in &texts {
            let chars: Vec<char> = t.chars().collect();
            for w in chars.windows(GENERATED_LEN) {
                let w: String = w.iter().collect();
                for a in &accounts {
                    assert!(
                        !a.password_matches(&w),
                        "the password of `{}` leaked: {t}",
                        a.user
                    );
                }
            }
        }
    }

    /// Every request the simulator saw so far was well formed.
    pub fn assert_well_formed(&self) {
        assert_well_formed(&self.sim.request_log());
    }

    pub fn account(&self, user: &str) -> Account {
        self.sim
            .account(user)
            .unwrap_or_else(|| panic!("the simulator has no account `{user}`"))
    }
}

pub fn assert_well_formed(log: &[LoggedRequest]) {
    for r in log {
        assert!(r.well_formed(), "malformed request: {r:#?}");
    }
}

/// Requests that authenticated with a wrong token.
pub fn wrong_auth(log: &[LoggedRequest]) -> usize {
    log.iter().filter(|r| r.auth == AuthOutcome::Wrong).count()
}

fn token_binding(sim: &WhmSimulator, token: &str) -> SecretBinding {
    SecretBinding {
        name: "whm-token".into(),
        value: token.into(),
        destinations: vec![format!("127.0.0.1:{}", sim.addr().port())],
    }
}

/// The server connection as an operator would set it up: config, the token
/// bound to the simulator, egress to its `/json-api/` (pinned or not).
pub fn context(sim: &WhmSimulator, token: &str, pin: Option<&str>) -> HostContext {
    let mut config = BTreeMap::new();
    config.insert("host".to_string(), "127.0.0.1".to_string());
    config.insert("port".to_string(), sim.addr().port().to_string());
    config.insert("whm_user".to_string(), sim.whm_user().to_string());
    let mut rule = format!("{}/json-api/", sim.base_url());
    if let Some(pin) = pin {
        rule = format!("{rule} sha256:{pin}");
    }
    HostContext {
        config,
        secrets: vec![token_binding(sim, token)],
        egress: EgressPolicy::new(vec![EgressRule::parse(&rule).expect("rule parses")]),
        ..HostContext::default()
    }
}

/// `{"service": {...}}` for an existing account.
pub fn service(user: &str) -> Value {
    json!({ "service": { "service_id": format!("svc-{user}"), "remote_id": user } })
}

/// A provision request.
pub fn new_service(user: &str, domain: &str, plan: Option<&str>) -> Value {
    json!({ "service": {
        "service_id": format!("svc-{user}"), "username": user, "domain": domain, "plan": plan,
    } })
}

/// The `whm call` log lines' `function` fields, in order.
pub fn whm_calls(r: &CallReport) -> Vec<String> {
    r.log
        .iter()
        .filter(|e| e.message == "whm call")
        .filter_map(|e| e.fields.iter().find(|(k, _)| k == "function"))
        .map(|(_, v)| v.clone())
        .collect()
}
