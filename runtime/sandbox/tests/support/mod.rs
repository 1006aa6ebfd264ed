//! Test support: the built adapter components, a shared sandbox, and fake
//! HTTP servers on 127.0.0.1.
#![allow(dead_code)]
pub mod echo;
pub mod fake_panel;
pub mod listeners;

use panel1_sandbox::{
    CallReport, CallRequest, HostContext, LoadedAdapter, Operation, Outcome, Sandbox,
    SandboxConfig, StaticResolver, SystemResolver,
};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// `adapters/dist` (built by `just adapters`), or `PANEL1_ADAPTERS_DIR`.
pub fn adapters_dir() -> PathBuf {
    std::env::var_os("PANEL1_ADAPTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist"))
}

/// The bytes of a built adapter. Missing components fail the test loudly:
/// the suite never skips.
pub fn component(name: &str) -> Vec<u8> {
    let path = adapters_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}. Build the adapters first: `just adapters` (or ./dev adapters)",
            path.display()
        )
    })
}

/// Names the tests resolve without DNS: they point at internal addresses
/// (nothing listens there; the point is that the host refuses to connect).
pub fn test_resolver() -> StaticResolver {
    StaticResolver::new()
        .with("internal.test", &["10.0.0.1".parse().unwrap()])
        .with("metadata.test", &["169.254.169.254".parse().unwrap()])
        .with("mapped.test", &["::ffff:127.0.0.1".parse().unwrap()])
        .with("loopback.test", &["127.0.0.1".parse().unwrap()])
        .with("panel.test", &["127.0.0.1".parse().unwrap()])
        .with_fallback(SystemResolver)
}

/// One sandbox per test binary: engines and compiled components are shared
/// like in a worker process.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        Sandbox::new(SandboxConfig {
            resolver: Arc::new(test_resolver()),
            ..SandboxConfig::default()
        })
        .expect("sandbox")
    })
}

pub fn load(name: &str) -> Arc<LoadedAdapter> {
    sandbox()
        .load(&component(name))
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

pub fn request(op: Operation, input: Value) -> CallRequest {
    CallRequest {
        operation: op,
        input,
        idempotency_key: "task-1".into(),
        attempt: 1,
    }
}

pub async fn call(
    adapter: &LoadedAdapter,
    ctx: HostContext,
    op: Operation,
    input: Value,
) -> CallReport {
    sandbox()
        .call(adapter, Arc::new(ctx), &request(op, input))
        .await
        .expect("valid input")
}

pub fn service(id: &str) -> Value {
    json!({ "service": { "service_id": id } })
}

pub fn service_with(id: &str, params: Value) -> Value {
    json!({ "service": { "service_id": id, "params": params } })
}

/// The sandbox kind of a report, or a panic showing the report.
pub fn sandbox_kind(r: &CallReport) -> String {
    match &r.outcome {
        Outcome::SandboxError { kind, .. } => kind.to_string(),
        other => panic!("expected a sandbox error, got {other:?}\nlog: {:#?}", r.log),
    }
}

pub fn adapter_error(r: &CallReport) -> (String, String) {
    match &r.outcome {
        Outcome::AdapterError { kind, message, .. } => (kind.to_string(), message.clone()),
        other => panic!(
            "expected an adapter error, got {other:?}\nlog: {:#?}",
            r.log
        ),
    }
}

pub fn ok(r: &CallReport) -> &Value {
    match &r.outcome {
        Outcome::Ok { result } => result,
        other => panic!(
            "expected success, got {other:?}\nlog: {:#?}\nhttp: {:#?}",
            r.log, r.http
        ),
    }
}

/// After a hostile call, the same process still runs a normal operation.
pub async fn assert_healthy() {
    let reference = load("reference");
    let r = call(
        &reference,
        HostContext::default(),
        Operation::Info,
        Value::Null,
    )
    .await;
    assert_eq!(ok(&r)["name"], "reference");
}

/// Everything recorded about a call, as text (for "never appears" checks).
pub fn report_text(r: &CallReport) -> String {
    serde_json::to_string(r).unwrap()
}
