//! The `panel1` binary.
mod cli;
mod serve_config;

use clap::Parser;
use std::process::ExitCode;

// Every operation creates and drops a wasmtime Store: allocation-heavy work
// where mimalloc measured ~8% faster than glibc malloc (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PANEL1_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = cli::Cli::parse();
    // The compiler child needs no async runtime (nor its threads).
    if let cli::Command::Internal(cmd) = &args.command {
        return ExitCode::from(cli::compile::run_internal(cmd));
    }
    // Guests run on this runtime's threads and yield every epoch tick: look
    // for I/O and timers often enough that a runtime busy with guests still
    // answers (see RUNTIME_EVENT_INTERVAL).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .event_interval(panel1_sandbox::RUNTIME_EVENT_INTERVAL)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("panel1: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    runtime.block_on(cli::run(args))
}
