//! Command-line interface.
mod adapter;
mod worker;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The adapter succeeded.
pub const EXIT_OK: u8 = 0;
/// The adapter returned a typed error.
pub const EXIT_ADAPTER_ERROR: u8 = 1;
/// The sandbox stopped the call (limit or trap).
pub const EXIT_SANDBOX: u8 = 2;
/// Invalid component, invalid input or usage.
pub const EXIT_USAGE: u8 = 3;

#[derive(Parser)]
#[command(
    name = "panel1",
    version,
    about = "Panel1: provisioning for hosting platforms, with sandboxed WebAssembly adapters"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Inspect and run adapter components.
    #[command(subcommand)]
    Adapter(adapter::AdapterCommand),
    /// Apply the database migrations (DATABASE_URL).
    Migrate,
    /// Run workers only: claim tasks from Postgres and run them in the
    /// sandbox until SIGTERM/SIGINT (then finish or release what is held).
    Worker(worker::WorkerArgs),
}

pub async fn run(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Command::Adapter(cmd) => adapter::run(cmd).await,
        Command::Migrate => worker::migrate().await,
        Command::Worker(args) => worker::run(args).await,
    };
    ExitCode::from(code)
}
