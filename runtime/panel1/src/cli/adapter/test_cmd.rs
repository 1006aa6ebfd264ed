//! `panel1 adapter test SCENARIO…`: every step runs in the real sandbox
//! with its HTTP answered from its fixture (nothing touches the network),
//! and passes when the outcome is the expected one and every request
//! matched a recorded exchange.
use super::scenario::{self, Expect, ExpectedOutcome, Step};
use super::{load, usage};
use crate::cli::dev_sandbox::{with_script, DevArgs, ScriptArgs};
use crate::cli::{EXIT_ADAPTER_ERROR, EXIT_OK};
use clap::Args;
use panel1_sandbox::{CallRequest, HttpTape, Outcome, ReplaySet, Sandbox};
use serde::Serialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub struct TestArgs {
    /// Scenario files (TOML; see docs/adapters.md).
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// The component to test, instead of the scenario's `component`.
    #[arg(long)]
    component: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dev: DevArgs,
    #[command(flatten)]
    script: ScriptArgs,
}

#[derive(Serialize)]
struct StepResult {
    name: String,
    operation: String,
    passed: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// What the call ended with.
    outcome: Value,
    /// Requests no recorded exchange answered.
    unmatched: Vec<String>,
    /// Recorded exchanges the step never asked for.
    unused: Vec<String>,
    replayed: usize,
    wall_ms: u64,
}

#[derive(Serialize)]
struct ScenarioResult {
    file: String,
    component: String,
    steps: Vec<StepResult>,
}

pub async fn run(args: TestArgs) -> u8 {
    let script = match args.script.read() {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let sandbox = match args.dev.sandbox() {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let mut results = Vec::new();
    for file in &args.scenarios {
        let scenario = match scenario::load(file) {
            Ok(s) => s,
            Err(e) => return usage(e),
        };
        let Some(component) = args.component.clone().or(scenario.component) else {
            return usage(format!(
                "{}: no component: give --component FILE or `component = \"…\"` in the scenario",
                file.display()
            ));
        };
        let adapter = match load(&sandbox, &component, &args.dev) {
            Ok(a) => a,
            Err(code) => return code,
        };
        let mut steps = Vec::new();
        for mut step in scenario.steps {
            with_script(&mut step.context, script.as_deref());
            match run_step(&sandbox, &adapter, step).await {
                Ok(r) => steps.push(r),
                Err(message) => return usage(format!("{}: {message}", file.display())),
            }
        }
        results.push(ScenarioResult {
            file: file.display().to_string(),
            component: component.display().to_string(),
            steps,
        });
    }
    let failed = results
        .iter()
        .flat_map(|s| &s.steps)
        .filter(|s| !s.passed)
        .count();
    let passed = results.iter().map(|s| s.steps.len()).sum::<usize>() - failed;
    let code = if failed == 0 {
        EXIT_OK
    } else {
        EXIT_ADAPTER_ERROR
    };
    if args.json {
        let doc = json!({
            "scenarios": results,
            "summary": {"passed": passed, "failed": failed},
            "exit_code": code,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        print!("{}", table(&results));
        println!("summary: {passed} passed, {failed} failed");
    }
    code
}

/// One step, replayed. `Err` when its input does not fit the operation
/// (the scenario is wrong, not the adapter).
async fn run_step(
    sandbox: &Sandbox,
    adapter: &panel1_sandbox::LoadedAdapter,
    step: Step,
) -> Result<StepResult, String> {
    let mut set = ReplaySet::from_fixture(&step.fixture);
    if !step.match_body {
        set = set.ignoring_bodies();
    }
    let set = Arc::new(set);
    let recorded = step.fixture.exchanges.len();
    let req = CallRequest {
        operation: step.operation,
        input: step.input,
        idempotency_key: step.idempotency_key,
        attempt: step.attempt,
    };
    let started = Instant::now();
    let report = sandbox
        .call_with_tape(
            adapter,
            Arc::new(step.context),
            &req,
            Some(HttpTape::Replay(set.clone())),
        )
        .await
        .map_err(|e| format!("step `{}` input: {e}", step.name))?;
    let unmatched: Vec<String> = set.misses().into_iter().map(|m| m.message).collect();
    let unused = set.unused();
    let reason = judge(&step.expect, &report.outcome, &unmatched, &unused);
    Ok(StepResult {
        name: step.name,
        operation: step.operation.to_string(),
        passed: reason.is_none(),
        reason,
        outcome: serde_json::to_value(&report.outcome).unwrap_or_default(),
        replayed: recorded - unused.len(),
        unmatched,
        unused,
        wall_ms: started.elapsed().as_millis() as u64,
    })
}

/// `None` when the step passed, else the first reason it did not.
fn judge(
    expect: &Expect,
    outcome: &Outcome,
    unmatched: &[String],
    unused: &[String],
) -> Option<String> {
    if let Some(first) = unmatched.first() {
        return Some(first.clone());
    }
    let got = describe(outcome);
    let message = match outcome {
        Outcome::Ok { .. } => None,
        Outcome::AdapterError { message, .. } | Outcome::SandboxError { message, .. } => {
            Some(message.as_str())
        }
    };
    let kind_ok = match (&expect.outcome, outcome) {
        (ExpectedOutcome::Ok, Outcome::Ok { .. }) => true,
        (ExpectedOutcome::Adapter(k), Outcome::AdapterError { kind, .. }) => k == kind,
        (ExpectedOutcome::Sandbox(k), Outcome::SandboxError { kind, .. }) => k == kind,
        _ => false,
    };
    if !kind_ok {
        let want = match &expect.outcome {
            ExpectedOutcome::Ok => "ok".to_string(),
            ExpectedOutcome::Adapter(k) => k.to_string(),
            ExpectedOutcome::Sandbox(k) => k.to_string(),
        };
        return Some(format!("expected {want}, got {got}"));
    }
    if let (Some(want), Outcome::Ok { result }) = (&expect.output, outcome) {
        if let Some(diff) = subset("output", want, result) {
            return Some(diff);
        }
    }
    if let Some(want) = expect.retry_after_ms {
        let have = match outcome {
            Outcome::AdapterError { retry_after_ms, .. } => *retry_after_ms,
            _ => None,
        };
        if have != Some(want) {
            let have = have.map_or("none".to_string(), |h| format!("{h} ms"));
            return Some(format!("expected retry after {want} ms, got {have}"));
        }
    }
    if let Some(part) = &expect.message_contains {
        if !message.is_some_and(|m| m.contains(part.as_str())) {
            return Some(format!("expected a message containing {part:?}, got {got}"));
        }
    }
    if !unused.is_empty() {
        return Some(format!(
            "{} recorded exchange(s) never requested, first: {}",
            unused.len(),
            unused[0]
        ));
    }
    None
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Ok { .. } => "ok".into(),
        Outcome::AdapterError {
            kind,
            message,
            retry_after_ms,
        } => match retry_after_ms {
            Some(ms) => format!("{kind} (retry after {ms} ms): {message}"),
            None => format!("{kind}: {message}"),
        },
        Outcome::SandboxError { kind, message } => format!("{kind} (sandbox): {message}"),
    }
}

/// Every field of `want` is in `have` with the same value (objects
/// recursively; arrays and scalars whole). The first difference, by path.
fn subset(path: &str, want: &Value, have: &Value) -> Option<String> {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().find_map(|(k, v)| match h.get(k) {
            None => Some(format!("{path}.{k}: missing (expected {v})")),
            Some(hv) => subset(&format!("{path}.{k}"), v, hv),
        }),
        _ if want == have => None,
        _ => Some(format!("{path}: expected {want}, got {have}")),
    }
}

fn table(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    for s in results {
        out.push_str(&format!(
            "scenario {} (component {})\n",
            s.file, s.component
        ));
        let width = s
            .steps
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        out.push_str(&format!(
            "  {:>2}  {:width$}  result  detail\n",
            "#", "step"
        ));
        for (i, r) in s.steps.iter().enumerate() {
            let (mark, detail) = match &r.reason {
                None => (
                    "pass",
                    format!(
                        "{}, {} exchange(s) replayed, {} ms",
                        short(&r.outcome),
                        r.replayed,
                        r.wall_ms
                    ),
                ),
                Some(why) => ("FAIL", why.clone()),
            };
            out.push_str(&format!(
                "  {:>2}  {:width$}  {mark:6}  {detail}\n",
                i + 1,
                r.name
            ));
        }
    }
    out
}

fn short(outcome: &Value) -> String {
    match outcome["status"].as_str() {
        Some("ok") => "ok".into(),
        _ => outcome["kind"].as_str().unwrap_or("?").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use panel1_types::AdapterErrorKind;

    fn expect(outcome: ExpectedOutcome) -> Expect {
        Expect {
            outcome,
            output: None,
            retry_after_ms: None,
            message_contains: None,
        }
    }

    #[test]
    fn judging_names_the_first_difference() {
        let ok = Outcome::Ok {
            result: json!({"remote_id": "alice", "extra": {"a": 1, "b": 2}}),
        };
        assert_eq!(judge(&expect(ExpectedOutcome::Ok), &ok, &[], &[]), None);
        let mut e = expect(ExpectedOutcome::Ok);
        e.output = Some(json!({"extra": {"a": 2}}));
        assert_eq!(
            judge(&e, &ok, &[], &[]).unwrap(),
            "output.extra.a: expected 2, got 1"
        );
        let why = judge(
            &expect(ExpectedOutcome::Adapter(AdapterErrorKind::AuthFailed)),
            &ok,
            &[],
            &[],
        );
        assert_eq!(why.unwrap(), "expected auth-failed, got ok");
        let transient = Outcome::AdapterError {
            kind: AdapterErrorKind::Transient,
            message: "busy".into(),
            retry_after_ms: Some(5000),
        };
        let mut e = expect(ExpectedOutcome::Adapter(AdapterErrorKind::Transient));
        e.retry_after_ms = Some(7000);
        assert_eq!(
            judge(&e, &transient, &[], &[]).unwrap(),
            "expected retry after 7000 ms, got 5000 ms"
        );
        let miss = vec!["no recorded exchange for GET https://h/x; next expected: …".to_string()];
        assert_eq!(
            judge(&expect(ExpectedOutcome::Ok), &ok, &miss, &[]),
            Some(miss[0].clone())
        );
        let unused = vec!["GET https://h/y".to_string()];
        assert!(judge(&expect(ExpectedOutcome::Ok), &ok, &[], &unused)
            .unwrap()
            .contains("never requested, first: GET https://h/y"));
    }
}
