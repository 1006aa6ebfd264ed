//! The request log: what clients sent, judged against the spec. Secrets
//! (the token, passwords) never get in.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How the request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthOutcome {
    Ok,
    Missing,
    Wrong,
}

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    /// The operation: WHM's function (`/json-api/<function>`), Plesk's
    /// `METHOD /path-template`; empty for paths the API does not have.
    pub function: String,
    /// Query and form parameters, or a JSON body's fields (nested values as
    /// JSON); password-, token- and key-like values redacted.
    pub params: BTreeMap<String, String>,
    pub auth: AuthOutcome,
    /// WHM: `api.version=1` was given. Providers without a version
    /// parameter (Plesk) set it true.
    pub api_version_1: bool,
    /// Missing or invalid parameters, unknown ones (prefixed `warning:`), a
    /// missing `api.version=1`.
    pub problems: Vec<String>,
    /// HTTP status sent (0: the connection was dropped instead).
    pub status: u16,
    /// WHM: `metadata.result` (or API 0's status) of a JSON answer.
    pub result: Option<u8>,
    /// The injected fault that shaped the answer, if any.
    pub fault: Option<String>,
}

impl LoggedRequest {
    /// Authenticated, API 1, and nothing wrong or unknown in the parameters.
    pub fn well_formed(&self) -> bool {
        self.auth == AuthOutcome::Ok && self.api_version_1 && self.problems.is_empty()
    }
}

pub const REDACTED: &str = "[redacted]";

/// Parameters whose values are secrets.
pub(crate) fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["pass", "token", "secret", "key", "hash"]
        .iter()
        .any(|s| n.contains(s))
}

/// A JSON value with secret-named fields redacted at any depth.
pub(crate) fn redact_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret(k) && !v.is_null() {
                        Value::String(REDACTED.into())
                    } else {
                        redact_json(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        other => other.clone(),
    }
}

pub(crate) fn redact(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .map(|(k, v)| {
            let v = if is_secret(k) {
                REDACTED.into()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// Write the log as JSON lines.
pub fn write_jsonl(log: &[LoggedRequest], path: &Path) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for entry in log {
        serde_json::to_writer(&mut out, entry)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let p: BTreeMap<String, String> = [("user", "bob"), ("password", "x"), ("pass", "y")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = redact(&p);
        assert_eq!(r["user"], "bob");
        assert_eq!(r["password"], REDACTED);
        assert_eq!(r["pass"], REDACTED);
    }
}
