//! Command-line interface.
mod adapter;
mod bulk;
mod client;
pub mod compile;
mod conformance;
mod demo;
mod demo_bulk;
mod demo_sims;
mod demo_webhooks;
pub mod dev_sandbox;
mod secrets;
mod serve;
mod sim;
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
    #[command(flatten)]
    pub conn: client::Conn,
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
    /// Run Panel1: the REST API, workers and live event streams in one
    /// process. Without DATABASE_URL it starts (and on exit stops) its own
    /// Postgres from the local binaries in the data directory (.panel1/).
    Serve(serve::ServeArgs),
    /// The end-to-end demo: Panel1 (as `serve`) and simulated provider
    /// servers (WHM, then Plesk); provisions, suspends, unsuspends and
    /// terminates one service on each over the REST API, live, then checks
    /// every call against the provider's official description.
    Demo(demo::DemoArgs),
    /// A provider simulator (WHM, Plesk, Docker or Kubernetes) on 127.0.0.1, to develop and
    /// demo adapters against; prints its URL, certificate pin and credential.
    Sim(sim::SimArgs),
    /// Stored secrets (DATABASE_URL).
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Talk to a running Panel1 over its REST API.
    #[command(flatten)]
    Client(ClientCommand),
    /// Helper processes the binary starts itself.
    #[command(subcommand, hide = true)]
    Internal(compile::InternalCommand),
}

/// Client subcommands: the REST API at PANEL1_URL with PANEL1_API_KEY.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Tenants (platform key).
    #[command(subcommand)]
    Tenant(client::TenantCommand),
    /// API keys of your tenant (admin key).
    #[command(subcommand)]
    Key(client::KeyCommand),
    /// Secrets (write-only).
    #[command(subcommand)]
    Secret(client::SecretCommand),
    /// Server connections.
    #[command(subcommand)]
    Server(client::ServerCommand),
    /// Services: create, suspend, unsuspend, terminate (each watched until done).
    #[command(subcommand)]
    Service(client::ServiceCommand),
    /// Tasks.
    #[command(subcommand)]
    Task(client::TaskCommand),
    /// One action on many services (by ids, server, plan, state or all),
    /// with a live progress bar; pause, resume, cancel.
    #[command(subcommand)]
    Bulk(bulk::BulkCommand),
}

pub async fn run(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Command::Adapter(cmd) => adapter::run(cmd, cli.conn).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Secrets(cmd) => secrets::run(cmd).await,
        Command::Sim(args) => sim::run(args).await,
        Command::Client(c) => {
            let conn = cli.conn;
            match c {
                ClientCommand::Tenant(cmd) => client::tenant(conn, cmd).await,
                ClientCommand::Key(cmd) => client::key(conn, cmd).await,
                ClientCommand::Secret(cmd) => client::secret(conn, cmd).await,
                ClientCommand::Server(cmd) => client::server(conn, cmd).await,
                ClientCommand::Service(cmd) => client::service(conn, cmd).await,
                ClientCommand::Task(cmd) => client::task(conn, cmd).await,
                ClientCommand::Bulk(cmd) => bulk::run(conn, cmd).await,
            }
        }
        Command::Migrate => worker::migrate().await,
        Command::Worker(args) => worker::run(args).await,
        Command::Internal(cmd) => compile::run_internal(&cmd),
    };
    ExitCode::from(code)
}
