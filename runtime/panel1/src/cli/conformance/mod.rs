//! `panel1 adapter conformance FILE…`: one contract suite every adapter
//! must meet, whatever language it was written in, run in the real sandbox
//! against the simulator of its provider (see docs/adapters.md).
//!
//! One concern per file: `provider` (which simulator), `profile` (the
//! simulator started, with the config, credential and egress rule an
//! operator would give), `harness` (calls, every report kept), the checks
//! (`info_check`, `lifecycle`, `failures`, `secrecy`), `suite` (their
//! order for one component) and `report` (rows, table, JSON).
mod failures;
mod harness;
mod info_check;
mod lifecycle;
mod profile;
mod provider;
mod report;
mod secrecy;
mod suite;

use super::dev_sandbox::DevArgs;
use super::{EXIT_ADAPTER_ERROR, EXIT_OK, EXIT_USAGE};
use clap::Args;
use provider::Provider;
use report::Counts;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Args)]
#[command(
    after_help = "Exit codes:\n  0  every check passed or was skipped\n  1  a check failed\n  3  a component is unreadable or invalid (as `adapter check`), or usage"
)]
pub struct ConformanceArgs {
    /// The components (.wasm).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The provider simulator to run against; by default the one matching
    /// the adapter's `info().name` (cpanel → whm, plesk, docker,
    /// kubernetes). Adapters without a profile get check 1 only.
    #[arg(long, value_enum)]
    provider: Option<Provider>,
    /// Print a machine-readable report instead of the tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dev: DevArgs,
}

pub async fn run(args: ConformanceArgs) -> u8 {
    let sandbox = match args.dev.sandbox() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("panel1: {e}");
            return EXIT_USAGE;
        }
    };
    let mut components: Vec<Value> = Vec::new();
    let mut total = Counts::default();
    let mut invalid = 0usize;
    for file in &args.files {
        let adapter = match args.dev.load(&sandbox, file) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("panel1: {e}");
                invalid += 1;
                components.push(json!({
                    "file": file.display().to_string(),
                    "error": e.to_string(),
                }));
                continue;
            }
        };
        let result = suite::run(&sandbox, adapter, file.display().to_string(), args.provider).await;
        total.add(result.counts());
        if args.json {
            components.push(result.json());
        } else {
            out(&result.table());
        }
    }
    let code = if invalid > 0 {
        EXIT_USAGE
    } else if total.failed > 0 {
        EXIT_ADAPTER_ERROR
    } else {
        EXIT_OK
    };
    if args.json {
        let report = json!({
            "components": components,
            "summary": {
                "components": args.files.len(),
                "invalid": invalid,
                "passed": total.passed,
                "failed": total.failed,
                "skipped": total.skipped,
            },
            "exit_code": code,
        });
        out(&serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        out(&format!(
            "conformance: {} component(s), {} invalid; {} checks passed, {} failed, {} skipped",
            args.files.len(),
            invalid,
            total.passed,
            total.failed,
            total.skipped
        ));
    }
    code
}

/// A line to stdout; a reader that went away (`| head`) is not an error.
fn out(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}
