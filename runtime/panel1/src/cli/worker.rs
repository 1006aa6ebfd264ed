//! `panel1 migrate` and `panel1 worker`.
use super::{EXIT_OK, EXIT_USAGE};
use clap::Args;
use panel1_sandbox::{CodeGen, Sandbox};
use panel1_store::secret_box::SecretBox;
use panel1_worker::{WebhookConfig, Worker, WorkerConfig};
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
    /// Run no server health checks from this worker (other workers still
    /// check; with none checking, servers stay as last seen).
    #[arg(long)]
    no_health_checks: bool,
    #[command(flatten)]
    webhooks: WebhookArgs,
    #[command(flatten)]
    compile: super::compile::CompileArgs,
}

/// Webhook delivery from this worker.
#[derive(Args)]
pub struct WebhookArgs {
    /// Let webhook URLs reach internal addresses (loopback, private ranges):
    /// for development and tests only.
    #[arg(long, env = "PANEL1_WEBHOOK_ALLOW_INTERNAL")]
    webhook_allow_internal: bool,
    /// Let webhook URLs use plain http://.
    #[arg(long, env = "PANEL1_WEBHOOK_ALLOW_HTTP")]
    webhook_allow_http: bool,
    /// The wait after each failed attempt, in seconds (`5,30,120`); default
    /// about three days in 12 steps.
    #[arg(long, env = "PANEL1_WEBHOOK_RETRY_SCHEDULE")]
    webhook_retry_schedule: Option<String>,
    /// How long a delivery belongs to this worker once taken (a killed
    /// worker's deliveries are sent again after it).
    #[arg(long, default_value_t = 60)]
    webhook_lease_secs: u64,
    /// Deliver no webhooks from this worker.
    #[arg(long)]
    no_webhooks: bool,
}

impl WebhookArgs {
    fn config(&self) -> Result<WebhookConfig, String> {
        let mut c = WebhookConfig {
            enabled: !self.no_webhooks,
            lease: Duration::from_secs(self.webhook_lease_secs.max(1)),
            ..WebhookConfig::default()
        };
        c.reach.allow_internal = self.webhook_allow_internal;
        c.reach.allow_http = self.webhook_allow_http;
        if let Some(text) = &self.webhook_retry_schedule {
            c.retry_schedule = panel1_worker::webhooks::parse_schedule(text)
                .map_err(|e| format!("--webhook-retry-schedule: {e}"))?;
        }
        Ok(c)
    }
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
    let sandbox = match Sandbox::new(super::compile::sandbox_config(
        args.compile.budget(),
        CodeGen::Cranelift,
    )) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(e),
    };
    let webhooks = match args.webhooks.config() {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut config = WorkerConfig {
        webhooks,
        slots: args.slots.max(1),
        lease_ttl: Duration::from_secs(args.lease_ttl_secs.max(1)),
        queue: args.queue,
        ..WorkerConfig::default()
    };
    if args.commit_per_task {
        config.claim_batch = 1;
    }
    config.health.enabled = !args.no_health_checks;
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
