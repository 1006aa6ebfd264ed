//! `panel1 migrate` and `panel1 worker`.
use super::{EXIT_OK, EXIT_USAGE};
use clap::Args;
use panel1_sandbox::Sandbox;
use panel1_store::secret_box::SecretBox;
use panel1_worker::{Worker, WorkerConfig};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct WorkerArgs {
    /// Postgres URL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Operations run at once.
    #[arg(long, default_value_t = 16)]
    slots: usize,
    /// Lease length in seconds (a crashed worker's tasks are rescued after it).
    #[arg(long, default_value_t = 30)]
    lease_ttl_secs: u64,
    /// Claimed tasks held beyond the slots, waiting for one (a local queue:
    /// more work per claim when operations are short). Keep 0 when
    /// operations are slow and other workers could run them sooner.
    #[arg(long, default_value_t = 0)]
    queue: usize,
    /// Each slot commits its own completion, and that commit takes the
    /// slot's next task on the same server (one commit per task, no claim
    /// round trip between tasks). Default: a batch completer commits what
    /// finished together, and claims take up to 64 tasks at once.
    #[arg(long, conflicts_with = "queue")]
    commit_per_task: bool,
    /// Worker name shown on tasks and attempts.
    #[arg(long)]
    id: Option<String>,
    #[command(flatten)]
    compile: super::compile::CompileArgs,
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("panel1: {msg}");
    EXIT_USAGE
}

pub async fn migrate() -> u8 {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        return fail("DATABASE_URL is not set");
    };
    let pool = match panel1_store::connect(&url, 2).await {
        Ok(p) => p,
        Err(e) => return fail(format!("cannot connect to the database: {e}")),
    };
    match panel1_store::migrate(&pool).await {
        Ok(()) => {
            eprintln!("panel1: migrations applied");
            EXIT_OK
        }
        Err(e) => fail(e),
    }
}

pub(super) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn run(args: WorkerArgs) -> u8 {
    let secrets = match SecretBox::from_env() {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(format!("{e}: the worker decrypts server secrets with it")),
    };
    // A connection per slot, plus the ones the worker keeps (its claim
    // connection and two listeners) and room for heartbeats and upkeep.
    let pool =
        match panel1_store::connect(&args.database_url, (args.slots as u32 + 5).min(64)).await {
            Ok(p) => p,
            Err(e) => return fail(format!("cannot connect to the database: {e}")),
        };
    if let Err(e) = panel1_store::migrate(&pool).await {
        return fail(e);
    }
    let sandbox = match Sandbox::new(super::compile::sandbox_config(args.compile.budget())) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(e),
    };
    let mut config = WorkerConfig {
        slots: args.slots.max(1),
        lease_ttl: Duration::from_secs(args.lease_ttl_secs.max(1)),
        queue: args.queue,
        ..WorkerConfig::default()
    };
    if args.commit_per_task {
        config.claim_batch = 1;
    }
    if let Some(id) = args.id {
        config.id = id;
    }
    tracing::info!(worker = %config.id, slots = config.slots, "worker started");
    eprintln!(
        "panel1: worker {} running ({} slots)",
        config.id, config.slots
    );
    let worker = Worker::new(pool, sandbox, secrets, config);
    match worker.run(shutdown_signal()).await {
        Ok(()) => EXIT_OK,
        Err(e) => fail(e),
    }
}
