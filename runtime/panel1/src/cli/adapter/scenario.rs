//! The scenario file of `panel1 adapter test` (TOML): which component, and
//! steps of operation, input, connection, fixture and expected outcome.
//! Parsed strictly (unknown keys refused), every error naming the field
//! path (`step[1].expect.outcome: …`). See docs/adapters.md.
use panel1_sandbox::{
    EgressPolicy, EgressRule, Fixture, FixtureContext, HostContext, Limits, Operation,
    SecretBinding,
};
use panel1_types::{AdapterErrorKind, SandboxErrorKind};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    /// The component, relative to the scenario file.
    #[serde(default)]
    component: Option<String>,
    #[serde(default)]
    defaults: Connection,
    #[serde(rename = "step")]
    steps: Vec<StepFile>,
}

/// Settings a step may give, or inherit from `[defaults]`, or from the
/// fixture's recorded connection.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Connection {
    #[serde(default)]
    config: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    secrets: Option<Vec<SecretEntry>>,
    #[serde(default)]
    allow: Option<Vec<String>>,
    #[serde(default)]
    allow_internal: Option<bool>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct SecretEntry {
    name: String,
    /// Any value will do in a replay (nothing is sent); the default is a
    /// fixed stand-in.
    #[serde(default)]
    value: Option<String>,
    /// Where it is bound; the default is what the fixture recorded.
    #[serde(default)]
    hosts: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    #[serde(default)]
    name: Option<String>,
    operation: String,
    /// The same JSON shape as `adapter run --input`.
    #[serde(default)]
    input: Value,
    /// The recorded exchanges, relative to the scenario file. Without one,
    /// any request the step makes is unmatched.
    #[serde(default)]
    fixture: Option<String>,
    #[serde(default = "default_key")]
    idempotency_key: String,
    #[serde(default = "default_attempt")]
    attempt: u32,
    /// Compare request bodies with the recorded ones (off for adapters whose
    /// bodies vary by run).
    #[serde(default = "default_true")]
    match_body: bool,
    // The step's own connection settings (see `Connection`; not flattened:
    // serde refuses unknown keys only without `flatten`).
    #[serde(default)]
    config: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    secrets: Option<Vec<SecretEntry>>,
    #[serde(default)]
    allow: Option<Vec<String>>,
    #[serde(default)]
    allow_internal: Option<bool>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    expect: ExpectFile,
}

fn default_key() -> String {
    "adapter-test".into()
}

fn default_attempt() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    /// `ok`, an adapter error kind or a sandbox error kind.
    outcome: String,
    /// Fields the result must contain (recursively; arrays and scalars
    /// compare whole).
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
    #[serde(default)]
    message_contains: Option<String>,
}

/// What a step must end with.
#[derive(Debug, Clone, PartialEq)]
pub enum ExpectedOutcome {
    Ok,
    Adapter(AdapterErrorKind),
    Sandbox(SandboxErrorKind),
}

#[derive(Debug, Clone)]
pub struct Expect {
    pub outcome: ExpectedOutcome,
    pub output: Option<Value>,
    pub retry_after_ms: Option<u64>,
    pub message_contains: Option<String>,
}

/// One step, ready to run.
pub struct Step {
    pub name: String,
    pub operation: Operation,
    pub input: Value,
    pub idempotency_key: String,
    pub attempt: u32,
    pub match_body: bool,
    pub context: HostContext,
    pub fixture: Fixture,
    pub expect: Expect,
}

pub struct Scenario {
    pub component: Option<PathBuf>,
    pub steps: Vec<Step>,
}

/// A scenario that cannot be run: the file, and what is wrong where.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ScenarioError {
    pub file: String,
    pub message: String,
}

pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let err = |message: String| ScenarioError {
        file: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| err(format!("not TOML: {e}")))?;
    // Through JSON so every error carries its path.
    let value = serde_json::to_value(table).map_err(|e| err(e.to_string()))?;
    let file: ScenarioFile = serde_path_to_error::deserialize(value)
        .map_err(|e| err(format!("{}: {}", e.path(), e.inner())))?;
    if file.steps.is_empty() {
        return Err(err("step: at least one [[step]] is needed".into()));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut steps = Vec::new();
    for (i, step) in file.steps.into_iter().enumerate() {
        let at = format!("step[{i}]");
        steps.push(resolve(dir, &at, step, &file.defaults).map_err(err)?);
    }
    Ok(Scenario {
        component: file.component.map(|c| dir.join(c)),
        steps,
    })
}

fn resolve(dir: &Path, at: &str, step: StepFile, defaults: &Connection) -> Result<Step, String> {
    let operation: Operation = step
        .operation
        .parse()
        .map_err(|e| format!("{at}.operation: {e}"))?;
    let fixture = match &step.fixture {
        None => Fixture::new(Vec::new()),
        Some(f) => {
            let file = dir.join(f);
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("{at}.fixture: cannot read {}: {e}", file.display()))?;
            Fixture::parse(&text).map_err(|e| format!("{at}.fixture ({f}): {e}"))?
        }
    };
    let recorded = fixture.context.clone().unwrap_or_default();
    let own = Connection {
        config: step.config,
        secrets: step.secrets,
        allow: step.allow,
        allow_internal: step.allow_internal,
        timeout_ms: step.timeout_ms,
    };
    let context = connection(at, &own, defaults, &recorded)?;
    let expect = expectation(at, step.expect)?;
    Ok(Step {
        name: step.name.unwrap_or_else(|| operation.to_string()),
        operation,
        input: step.input,
        idempotency_key: step.idempotency_key,
        attempt: step.attempt,
        match_body: step.match_body,
        context,
        fixture,
        expect,
    })
}

/// The step's connection: the step's own settings, else `[defaults]`, else
/// what the fixture recorded (config keys merge in that order).
fn connection(
    at: &str,
    step: &Connection,
    defaults: &Connection,
    recorded: &FixtureContext,
) -> Result<HostContext, String> {
    let mut config = recorded.config.clone();
    for (place, map) in [("defaults", &defaults.config), (at, &step.config)] {
        for (k, v) in map.iter().flatten() {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                _ => {
                    return Err(format!(
                        "{place}.config.{k}: must be a string, number or boolean"
                    ))
                }
            };
            config.insert(k.clone(), text);
        }
    }
    let (secrets_at, entries) = match (&step.secrets, &defaults.secrets) {
        (Some(s), _) => (format!("{at}.secrets"), s.clone()),
        (None, Some(s)) => ("defaults.secrets".to_string(), s.clone()),
        (None, None) => (
            String::new(),
            recorded
                .secrets
                .iter()
                .map(|s| SecretEntry {
                    name: s.name.clone(),
                    value: None,
                    hosts: None,
                })
                .collect(),
        ),
    };
    let mut secrets = Vec::new();
    for (j, e) in entries.into_iter().enumerate() {
        let bound = recorded.secrets.iter().find(|s| s.name == e.name);
        let destinations = match (e.hosts, bound) {
            (Some(h), _) => h,
            (None, Some(s)) => s.destinations.clone(),
            (None, None) => {
                return Err(format!(
                    "{secrets_at}[{j}].hosts: needed (the fixture records no binding for `{}`)",
                    e.name
                ))
            }
        };
        secrets.push(SecretBinding {
            value: e
                .value
                .unwrap_or_else(|| format!("replayed-{}-stand-in", e.name)),
            name: e.name,
            destinations,
        });
    }
    let (allow_at, allow) = match (&step.allow, &defaults.allow) {
        (Some(a), _) => (format!("{at}.allow"), a.clone()),
        (None, Some(a)) => ("defaults.allow".to_string(), a.clone()),
        (None, None) => (
            "the fixture's context.allow".to_string(),
            recorded.allow.clone(),
        ),
    };
    let allow_internal = step
        .allow_internal
        .or(defaults.allow_internal)
        .unwrap_or(recorded.allow_internal);
    let mut rules = Vec::new();
    for (j, text) in allow.iter().enumerate() {
        let mut rule = EgressRule::parse(text).map_err(|e| format!("{allow_at}[{j}]: {e}"))?;
        rule.allow_internal = allow_internal;
        rules.push(rule);
    }
    let mut limits = Limits::default();
    if let Some(t) = step.timeout_ms.or(defaults.timeout_ms) {
        limits.timeout_ms = t;
    }
    Ok(HostContext {
        config,
        secrets,
        egress: EgressPolicy::new(rules),
        limits,
        ..HostContext::default()
    })
}

fn expectation(at: &str, e: ExpectFile) -> Result<Expect, String> {
    let kind = Value::String(e.outcome.clone());
    let outcome = if e.outcome == "ok" {
        ExpectedOutcome::Ok
    } else if let Ok(k) = serde_json::from_value::<AdapterErrorKind>(kind.clone()) {
        ExpectedOutcome::Adapter(k)
    } else if let Ok(k) = serde_json::from_value::<SandboxErrorKind>(kind) {
        ExpectedOutcome::Sandbox(k)
    } else {
        return Err(format!(
            "{at}.expect.outcome: `{}` is not `ok`, an adapter error kind (invalid-input, \
             auth-failed, not-found, conflict, transient, permanent, unsupported) or a sandbox \
             error kind (out-of-fuel, deadline, memory-limit, guest-trap, invalid-output, …)",
            e.outcome
        ));
    };
    if e.output.is_some() && outcome != ExpectedOutcome::Ok {
        return Err(format!(
            "{at}.expect.output: only an `ok` outcome has an output"
        ));
    }
    if e.retry_after_ms.is_some() && matches!(outcome, ExpectedOutcome::Ok) {
        return Err(format!(
            "{at}.expect.retry_after_ms: only an error has a retry delay"
        ));
    }
    Ok(Expect {
        outcome,
        output: e.output,
        retry_after_ms: e.retry_after_ms,
        message_contains: e.message_contains,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Scenario, String> {
        let dir = std::env::temp_dir().join(format!("p1-scenario-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.toml");
        std::fs::write(&path, text).unwrap();
        let r = load(&path).map_err(|e| e.message);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = load_text("[[step]]\noperation = \"provision\"\n[step.expect]\noutcom = \"ok\"\n")
            .err()
            .unwrap();
        assert!(e.starts_with("step[0].expect"), "{e}");
        assert!(e.contains("outcom"), "{e}");
        let e = load_text("[[step]]\noperation = \"provision\"\nexpect = { outcome = \"fine\" }\n")
            .err()
            .unwrap();
        assert!(e.starts_with("step[0].expect.outcome: `fine`"), "{e}");
        let e = load_text(
            "[[step]]\noperation = \"info\"\nexpect = { outcome = \"ok\" }\n\
             [[step]]\noperation = \"provisio\"\nexpect = { outcome = \"ok\" }\n",
        )
        .err()
        .unwrap();
        assert!(e.starts_with("step[1].operation: unknown operation"), "{e}");
        let e = load_text(
            "[[step]]\noperation = \"info\"\nattempt = \"x\"\nexpect = { outcome = \"ok\" }\n",
        )
        .err()
        .unwrap();
        assert!(
            e.starts_with("step[0].attempt") || e.contains("attempt"),
            "{e}"
        );
        let e = load_text(
            "[[step]]\noperation = \"info\"\nsecrets = [{ name = \"t\" }]\nexpect = { outcome = \"ok\" }\n",
        )
        .err()
        .unwrap();
        assert!(e.starts_with("step[0].secrets[0].hosts: needed"), "{e}");
    }

    #[test]
    fn a_step_inherits_defaults_and_the_fixture_context() {
        let s = load_text(
            "component = \"a.wasm\"\n[defaults]\nconfig = { port = 2087 }\n\
             allow = [\"https://h.test/\"]\n\
             [[step]]\noperation = \"terminate\"\nconfig = { host = \"h.test\" }\n\
             expect = { outcome = \"transient\", retry_after_ms = 7000 }\n",
        )
        .unwrap();
        let step = &s.steps[0];
        assert_eq!(step.name, "terminate");
        assert_eq!(step.context.config["port"], "2087");
        assert_eq!(step.context.config["host"], "h.test");
        assert_eq!(
            step.expect.outcome,
            ExpectedOutcome::Adapter(AdapterErrorKind::Transient)
        );
        assert!(s.component.unwrap().ends_with("a.wasm"));
    }
}
