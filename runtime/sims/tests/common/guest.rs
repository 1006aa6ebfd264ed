//! Shared by the adapter tests: one sandbox per test binary, the real
//! adapter components from `adapters/dist`, and readers of a call report.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use panel1_sandbox::{CallReport, LoadedAdapter, Outcome, Sandbox, SandboxConfig};
use serde_json::Value;

pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(SandboxConfig::default()).expect("sandbox"))
}

/// `adapters/dist/<name>.wasm` (built by `bash adapters/build.sh`), or the
/// one in `PANEL1_ADAPTERS_DIR`. Missing is a failure, never a skip.
pub fn load(name: &str) -> Arc<LoadedAdapter> {
    let dir = std::env::var_os("PANEL1_ADAPTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist"));
    let path = dir.join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; build it with `bash adapters/build.sh`",
            path.display()
        )
    });
    sandbox()
        .load(&bytes)
        .unwrap_or_else(|e| panic!("{name}.wasm loads: {e}"))
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

/// `(kind, message)` of an adapter error, or a panic showing the report.
pub fn error(r: &CallReport) -> (String, String) {
    match &r.outcome {
        Outcome::AdapterError { kind, message, .. } => (kind.to_string(), message.clone()),
        other => panic!(
            "expected an adapter error, got {other:?}\nlog: {:#?}\nhttp: {:#?}",
            r.log, r.http
        ),
    }
}

/// A status result's detail.
pub fn detail<'a>(result: &'a Value, key: &str) -> Option<&'a str> {
    result["details"][key].as_str()
}

/// A URL with its query percent-decoded, to search for secrets.
pub fn decode(url: &str) -> String {
    url::form_urlencoded::parse(url.as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Everything recorded about a call, as text: the report as JSON and each
/// exchange's decoded URL.
pub fn report_texts(report: &CallReport) -> Vec<String> {
    let mut texts = vec![serde_json::to_string(report).unwrap()];
    texts.extend(report.http.iter().map(|x| decode(&x.url)));
    texts
}
