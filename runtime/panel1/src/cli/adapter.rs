//! `panel1 adapter new|sdk|check|run|test|conformance|push|shadow|shadow-runs|promote`.
mod record;
mod scaffold;
mod scenario;
mod shadow;
mod test_cmd;

use super::dev_sandbox::{with_script, DevArgs, ScriptArgs};
use super::{EXIT_ADAPTER_ERROR, EXIT_OK, EXIT_SANDBOX, EXIT_USAGE};
use clap::{Args, Subcommand};
use panel1_sandbox::{
    CallRequest, Capability, ComponentReport, EgressPolicy, EgressRule, Grants, HostContext,
    HttpTape, Limits, LoadedAdapter, Operation, Outcome, Recording, Sandbox, SecretBinding,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Subcommand)]
pub enum AdapterCommand {
    /// Create a standalone adapter project (Rust, JavaScript, TypeScript,
    /// Python or C): the released WIT, a narrowed world without
    /// `secrets-reveal`, a WHM starter that passes `adapter conformance
    /// --provider whm`, a README and `./build.sh` (→ NAME.wasm). Needs no
    /// Panel1 checkout.
    New(scaffold::NewArgs),
    /// Write the source tree of an SDK package (the `panel1-sdk` crate, the
    /// `@panel1/sdk` npm package, the `panel1_sdk` wheel or the C helpers)
    /// from the files `new` uses; `sdk/package.sh` builds the packages.
    Sdk(scaffold::sdk::SdkArgs),
    /// Validate a component and print a JSON report (world version,
    /// operations, imports, capabilities, size, sha256). Exits 3 if the
    /// component is invalid.
    Check {
        /// The component (.wasm).
        file: PathBuf,
        #[command(flatten)]
        dev: DevArgs,
        #[command(flatten)]
        script: ScriptArgs,
    },
    /// Run one operation in the sandbox and print the outcome, metrics, log
    /// and HTTP exchanges as JSON.
    #[command(
        after_help = "Exit codes:\n  0  the adapter succeeded\n  1  the adapter returned a typed error (invalid-input, auth-failed, not-found, conflict, transient, permanent, unsupported)\n  2  the sandbox stopped the call (out-of-fuel, deadline, memory-limit, guest-trap, invalid-output)\n  3  invalid component, invalid input or usage"
    )]
    Run(Box<RunArgs>),
    /// Run scenarios offline: each step calls the component in the sandbox
    /// with its HTTP answered from a recorded fixture (`adapter run
    /// --record`), and compares the outcome with the expected one. Prints a
    /// table (or --json); exits 1 if a step fails, 3 if a scenario, fixture
    /// or component cannot be read.
    Test(test_cmd::TestArgs),
    /// Run the contract suite every adapter must meet against the
    /// simulator of its provider (WHM, Plesk, Docker Engine, Kubernetes):
    /// info and its config schema, test-connection, idempotent provision,
    /// a lost answer, ensure semantics, auth, 5xx, 429, egress denial,
    /// secrecy and the deadline. Prints a table per component (or --json).
    Conformance(super::conformance::ConformanceArgs),
    /// Print the JSON Schema (2020-12) of every operation's input (what
    /// `run --input` and scenario steps take) and result:
    /// `$defs/<operation>.input` and `$defs/<operation>.output`.
    Schema,
    /// Upload a component to a running Panel1 (PANEL1_URL, PANEL1_API_KEY);
    /// prints the new adapter version.
    Push {
        /// The component (.wasm).
        file: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        /// Upload as a candidate: no server uses it until `adapter promote`.
        #[arg(long)]
        candidate: bool,
    },
    /// Shadow-run a candidate version (ID): replay recorded attempts of the
    /// adapter's current version against it; waits and prints the report.
    /// Exits 0 when clean, 1 when something differs or the run failed.
    Shadow(shadow::ShadowArgs),
    /// List a candidate version's (ID) shadow runs, newest first.
    ShadowRuns(shadow::ShadowRunsArgs),
    /// Promote a candidate version (ID): its latest shadow run must be
    /// clean, or accepted with --accept.
    Promote(shadow::PromoteArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// The component (.wasm).
    file: PathBuf,
    /// Operation: info, test-connection, provision, suspend, unsuspend,
    /// terminate, status, change-package, change-password, list-services,
    /// usage, login-url.
    #[arg(long)]
    op: String,
    /// Operation input as JSON, or @FILE to read it from a file.
    #[arg(long)]
    input: Option<String>,
    /// Server setting KEY=VALUE (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Secret NAME=VALUE@HOST[:PORT][,HOST…] bound to the listed
    /// destinations (repeatable). VALUE may be env:VAR to read it from the
    /// environment instead of the command line.
    #[arg(long = "secret", value_name = "NAME=VALUE@HOSTS")]
    secrets: Vec<String>,
    /// Allowed destination `[METHODS ]scheme://host[:port][/path-prefix]`
    /// (repeatable). Nothing is allowed by default.
    #[arg(long = "allow", value_name = "RULE")]
    allow: Vec<String>,
    /// Let --allow rules with host names reach internal addresses (loopback,
    /// private, link-local). Rules naming an IP literal always may.
    #[arg(long)]
    allow_internal: bool,
    /// Grant the secrets-reveal capability (plaintext secrets in the guest).
    #[arg(long)]
    grant_reveal: bool,
    /// Fuel budget (CPU).
    #[arg(long)]
    fuel: Option<u64>,
    /// Memory limit for the sum of the instance's memories, in MiB.
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Wall-clock limit in milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Idempotency key passed to the adapter.
    #[arg(long, default_value = "cli-run")]
    idempotency_key: String,
    /// Attempt number passed to the adapter.
    #[arg(long, default_value_t = 1)]
    attempt: u32,
    /// Record every HTTP exchange of the call into FILE, a JSON fixture
    /// `adapter test` replays (secrets are written as placeholders, never
    /// values; bodies are capped).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Print each HTTP exchange's request and response headers and bodies
    /// to stderr (secrets as placeholders, bodies capped).
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    dev: DevArgs,
    #[command(flatten)]
    script: ScriptArgs,
}

pub async fn run(cmd: AdapterCommand, conn: super::client::Conn) -> u8 {
    match cmd {
        AdapterCommand::Check { file, dev, script } => check(file, dev, script).await,
        AdapterCommand::Run(args) => run_op(*args).await,
        AdapterCommand::Test(args) => test_cmd::run(args).await,
        AdapterCommand::New(args) => scaffold::run(args),
        AdapterCommand::Schema => {
            print!("{}", panel1_sandbox::OPERATIONS_SCHEMA);
            EXIT_OK
        }
        AdapterCommand::Sdk(args) => scaffold::sdk::run(args),
        AdapterCommand::Conformance(args) => super::conformance::run(args).await,
        AdapterCommand::Push {
            file,
            name,
            version,
            candidate,
        } => super::client::push(conn, file, name, version, candidate).await,
        AdapterCommand::Shadow(args) => shadow::shadow(conn, args).await,
        AdapterCommand::ShadowRuns(args) => shadow::list(conn, args).await,
        AdapterCommand::Promote(args) => shadow::promote(conn, args).await,
    }
}

fn usage(msg: impl std::fmt::Display) -> u8 {
    eprintln!("panel1: {msg}");
    EXIT_USAGE
}

fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn load(sandbox: &Sandbox, file: &Path, dev: &DevArgs) -> Result<Arc<LoadedAdapter>, u8> {
    dev.load(sandbox, file).map_err(usage)
}

async fn check(file: PathBuf, dev: DevArgs, script: ScriptArgs) -> u8 {
    let script = match script.read() {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let mut context = HostContext::default();
    with_script(&mut context, script.as_deref());
    let sandbox = match dev.sandbox() {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let adapter = match load(&sandbox, &file, &dev) {
        Ok(a) => a,
        Err(code) => return code,
    };
    // `info` is static and network-free: run it to list the operations.
    let req = CallRequest {
        operation: Operation::Info,
        input: Value::Null,
        idempotency_key: "check".into(),
        attempt: 1,
    };
    let info = match sandbox.call(&adapter, Arc::new(context), &req).await {
        Ok(r) => match r.outcome {
            Outcome::Ok { result } => result,
            other => {
                // What the adapter logged before it failed is the best clue.
                if !r.log.is_empty() {
                    eprintln!("captured log of `info`:");
                    for entry in &r.log {
                        eprintln!("  {}", json!(entry));
                    }
                }
                return usage(format!(
                    "{}: `info` failed: {}",
                    file.display(),
                    json!(other)
                ));
            }
        },
        Err(e) => return usage(e),
    };
    let mut report = serde_json::to_value(&adapter.report).unwrap_or_default();
    report["file"] = json!(file.display().to_string());
    report["adapter"] = info;
    let warnings = capability_warnings(&adapter.report);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    report["warnings"] = json!(warnings);
    // Show the config schema as JSON when it is JSON.
    if let Some(schema) = report["adapter"]["config_schema"].as_str() {
        if let Ok(parsed) = serde_json::from_str::<Value>(schema) {
            report["adapter"]["config_schema"] = parsed;
        }
    }
    print(&report);
    EXIT_OK
}

/// Capabilities an adapter author should know they asked for.
fn capability_warnings(report: &ComponentReport) -> Vec<String> {
    let mut warnings = Vec::new();
    if report.needs(Capability::SecretsReveal) {
        warnings.push(
            "the component imports `secrets-reveal`: every call is denied plaintext unless the \
             operator grants it; if the adapter only puts secrets in requests, build against a \
             world without it and use placeholders"
                .to_string(),
        );
    }
    warnings
}

fn parse_kv(s: &str, what: &str) -> Result<(String, String), u8> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| usage(format!("{what} `{s}` must be KEY=VALUE")))
}

fn parse_secret(s: &str) -> Result<SecretBinding, u8> {
    let (name, rest) = parse_kv(s, "--secret")?;
    let (value, hosts) = rest.rsplit_once('@').ok_or_else(|| {
        usage(format!(
            "--secret `{name}=…` needs @HOST: the destinations it may be sent to"
        ))
    })?;
    let value = match value.strip_prefix("env:") {
        Some(var) => std::env::var(var).map_err(|_| {
            usage(format!(
                "--secret {name}: environment variable {var} is not set"
            ))
        })?,
        None => value.to_string(),
    };
    let destinations = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(String::from)
        .collect();
    Ok(SecretBinding {
        name,
        value,
        destinations,
    })
}

fn build_context(args: &RunArgs) -> Result<HostContext, u8> {
    let mut config = BTreeMap::new();
    for kv in &args.config {
        let (k, v) = parse_kv(kv, "--config")?;
        config.insert(k, v);
    }
    let secrets = args
        .secrets
        .iter()
        .map(|s| parse_secret(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rules = Vec::new();
    for text in &args.allow {
        let mut rule = EgressRule::parse(text).map_err(usage)?;
        rule.allow_internal = args.allow_internal;
        rules.push(rule);
    }
    let mut limits = Limits::default();
    if let Some(f) = args.fuel {
        limits.fuel = f;
    }
    if let Some(m) = args.memory_mb {
        limits.memory_bytes = m << 20;
    }
    if let Some(t) = args.timeout_ms {
        limits.timeout_ms = t;
    }
    let mut context = HostContext {
        config,
        secrets,
        egress: EgressPolicy::new(rules),
        grants: Grants {
            secrets_reveal: args.grant_reveal,
        },
        limits,
    };
    with_script(&mut context, args.script.read().map_err(usage)?.as_deref());
    Ok(context)
}

async fn run_op(args: RunArgs) -> u8 {
    let operation: Operation = match args.op.parse() {
        Ok(op) => op,
        Err(e) => return usage(e),
    };
    let input: Value = match &args.input {
        None => Value::Null,
        Some(text) => {
            let text = match text.strip_prefix('@') {
                Some(path) => match std::fs::read_to_string(path) {
                    Ok(t) => t,
                    Err(e) => return usage(format!("cannot read input file {path}: {e}")),
                },
                None => text.clone(),
            };
            match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => return usage(format!("--input is not valid JSON: {e}")),
            }
        }
    };
    let context = match build_context(&args) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    let sandbox = match args.dev.sandbox() {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let adapter = match load(&sandbox, &args.file, &args.dev) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let req = CallRequest {
        operation,
        input,
        idempotency_key: args.idempotency_key.clone(),
        attempt: args.attempt,
    };
    let recording = (args.record.is_some() || args.verbose).then(Recording::new);
    let tape = recording.clone().map(HttpTape::Record);
    let report = match sandbox
        .call_with_tape(&adapter, context.clone(), &req, tape)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return usage(format!(
                "{e} (each operation's input shape: `panel1 adapter schema`)"
            ))
        }
    };
    print(&serde_json::to_value(&report).unwrap_or_default());
    if let Some(recording) = recording {
        if args.verbose {
            record::print_verbose(&recording.exchanges());
        }
        if let Some(path) = &args.record {
            if let Err(code) = record::write(path, &args, &context, operation, &recording) {
                return code;
            }
        }
    }
    match report.outcome {
        Outcome::Ok { .. } => EXIT_OK,
        Outcome::AdapterError { .. } => EXIT_ADAPTER_ERROR,
        Outcome::SandboxError { .. } => EXIT_SANDBOX,
    }
}
