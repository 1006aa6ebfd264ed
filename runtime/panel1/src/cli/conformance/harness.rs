//! Runs the adapter's calls for the checks: the real sandbox, the loaded
//! component, and every report kept (the secrecy check reads them all).
use panel1_sandbox::{
    CallReport, CallRequest, HostContext, LoadedAdapter, Operation, Outcome, Sandbox,
};
use panel1_types::AdapterErrorKind;
use serde_json::Value;
use std::sync::Arc;

/// The suite's own input did not fit the operation (a bug in the suite,
/// never the adapter's fault).
#[derive(Debug, thiserror::Error)]
#[error("the suite's input for `{operation}` was refused by the sandbox: {message}")]
pub struct CallError {
    pub operation: &'static str,
    pub message: String,
}

pub struct Harness<'a> {
    sandbox: &'a Sandbox,
    adapter: Arc<LoadedAdapter>,
    /// Every call's report, in order.
    pub reports: Vec<(Operation, CallReport)>,
}

impl<'a> Harness<'a> {
    pub fn new(sandbox: &'a Sandbox, adapter: Arc<LoadedAdapter>) -> Harness<'a> {
        Harness {
            sandbox,
            adapter,
            reports: Vec::new(),
        }
    }

    /// One call with an idempotency key and attempt number; the report is
    /// kept and returned.
    pub async fn call(
        &mut self,
        ctx: &HostContext,
        operation: Operation,
        input: Value,
        key: &str,
        attempt: u32,
    ) -> Result<CallReport, CallError> {
        let request = CallRequest {
            operation,
            input,
            idempotency_key: key.to_string(),
            attempt,
        };
        let report = self
            .sandbox
            .call(&self.adapter, Arc::new(ctx.clone()), &request)
            .await
            .map_err(|e| CallError {
                operation: operation.as_str(),
                message: e.to_string(),
            })?;
        self.reports.push((operation, report.clone()));
        Ok(report)
    }
}

/// The result of a successful call.
pub fn ok_result(r: &CallReport) -> Option<&Value> {
    match &r.outcome {
        Outcome::Ok { result } => Some(result),
        _ => None,
    }
}

/// The kind of a typed error.
pub fn error_kind(r: &CallReport) -> Option<AdapterErrorKind> {
    match &r.outcome {
        Outcome::AdapterError { kind, .. } => Some(*kind),
        _ => None,
    }
}

/// `state` of a status result.
pub fn state(result: &Value) -> &str {
    result["state"].as_str().unwrap_or("")
}

/// Longest adapter message quoted in a row.
const MESSAGE_MAX: usize = 300;

fn clip(s: &str) -> String {
    let s = s.trim();
    if s.len() <= MESSAGE_MAX {
        return s.to_string();
    }
    let mut end = MESSAGE_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// How a call ended, in a few words: `ok (state active)`,
/// `transient: … (retry after 7000 ms)`, `stopped by the host (deadline): …`.
pub fn describe(r: &CallReport) -> String {
    match &r.outcome {
        Outcome::Ok { result } => match result["state"].as_str() {
            Some(s) => format!("ok (state {s})"),
            None => "ok".to_string(),
        },
        Outcome::AdapterError {
            kind,
            message,
            retry_after_ms,
        } => {
            let retry = retry_after_ms
                .map(|ms| format!(" (retry after {ms} ms)"))
                .unwrap_or_default();
            format!("{kind}: {}{retry}", clip(message))
        }
        Outcome::SandboxError { kind, message } => {
            format!("stopped by the host ({kind}): {}", clip(message))
        }
    }
}

/// What the adapter itself logged (not the host), last lines first cut:
/// the clue when `info` fails.
pub fn guest_log(r: &CallReport, lines: usize) -> String {
    let logged: Vec<String> = r
        .log
        .iter()
        .filter(|e| e.source != "host")
        .map(|e| clip(&e.message))
        .collect();
    let skip = logged.len().saturating_sub(lines);
    logged[skip..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn long_messages_are_clipped_on_a_char_boundary() {
        let s = "é".repeat(400);
        let c = clip(&s);
        assert!(c.len() <= super::MESSAGE_MAX + "…".len());
        assert!(c.ends_with('…'));
    }
}
