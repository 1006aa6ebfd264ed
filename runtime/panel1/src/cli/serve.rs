//! `panel1 serve`: the API, workers and event streams in one process. With no
//! DATABASE_URL it runs its own Postgres from the local binaries in the data
//! directory (kept between runs, stopped on exit).
use super::worker::shutdown_signal;
use super::{EXIT_OK, EXIT_USAGE};
use crate::serve_config::{ensure_master_key, ServeConfig};
use anyhow::{Context, Result};
use clap::Args;
use panel1_api::{ApiConfig, ApiMetrics, AppState};
use panel1_sandbox::{ArtifactStore, CodeGen, Sandbox};
use panel1_store::embedded::EmbeddedPostgres;
use panel1_store::secret_box::SecretBox;
use panel1_worker::{Worker, WorkerConfig};
use sqlx::PgPool;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Args)]
pub struct ServeArgs {
    /// TOML configuration file (environment variables override it).
    #[arg(long)]
    config: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> u8 {
    match serve(args).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("panel1: {e:#}");
            EXIT_USAGE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let cfg = ServeConfig::load(args.config.as_deref())?;
    let db = Database::open(&cfg).await?;
    let result = async {
        let builtins = match &cfg.builtin_adapters_dir {
            Some(dir) => components_in(dir)?,
            None => Vec::new(),
        };
        let running = start(&cfg, db.url(), &builtins).await?;
        shutdown_signal().await;
        eprintln!("panel1: shutting down (finishing running tasks)");
        running.stop().await
    }
    .await;
    db.close().await;
    result
}

/// The database Panel1 runs on: DATABASE_URL, or the embedded cluster in the
/// data directory (started here, stopped by `close`).
pub struct Database {
    url: String,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    pub async fn open(cfg: &ServeConfig) -> Result<Database> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;
        if let Some(url) = &cfg.database_url {
            return Ok(Database {
                url: url.clone(),
                embedded: None,
            });
        }
        let dir = cfg.data_dir.clone();
        let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&dir))
            .await?
            .context("starting the embedded Postgres (or set DATABASE_URL)")?;
        eprintln!(
            "panel1: embedded Postgres {} on 127.0.0.1:{} (data in {})",
            if pg.reused() { "adopted" } else { "running" },
            pg.port(),
            cfg.data_dir.display()
        );
        Ok(Database {
            url: pg.url(),
            embedded: Some(pg),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn close(self) {
        if let Some(pg) = self.embedded {
            let stopped = tokio::task::spawn_blocking(move || pg.stop()).await;
            if let Ok(Err(e)) = stopped {
                eprintln!("panel1: stopping the embedded Postgres: {e}");
            }
        }
    }
}

/// Panel1 running in this process: the API (listening), workers, streams.
pub struct Running {
    pub addr: SocketAddr,
    pub pool: PgPool,
    stop_tx: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    worker: Option<JoinHandle<Result<(), panel1_worker::WorkerError>>>,
}

impl Running {
    /// Graceful stop: event streams end, running tasks finish or are released.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop_tx.send(true);
        self.server.await??;
        if let Some(w) = self.worker {
            w.await??;
        }
        self.pool.close().await;
        eprintln!("panel1: stopped");
        Ok(())
    }
}

/// Migrate, install the built-in adapters (component files), bind the API
/// and start the workers.
pub async fn start(cfg: &ServeConfig, url: &str, builtins: &[PathBuf]) -> Result<Running> {
    let pool = panel1_store::connect(url, (cfg.worker_slots as u32 + 16).min(96))
        .await
        .context("connecting to the database")?;
    panel1_store::migrate(&pool).await?;
    let key = ensure_master_key(cfg)?;
    let secrets = Arc::new(SecretBox::from_key(key));
    if let Some(platform_key) = panel1_api::bootstrap_platform_key(&pool).await? {
        let file = cfg.data_dir.join("platform.key");
        write_private(&file, &platform_key)?;
        eprintln!(
            "panel1: created the platform API key (shown once, also saved to {}):\n  {platform_key}",
            file.display()
        );
    }
    let budget = super::compile::budget(Some(cfg.compile_timeout_ms), Some(cfg.compile_memory_mb));
    let sandbox = Arc::new(Sandbox::new(super::compile::sandbox_config(
        budget,
        CodeGen::Cranelift,
    ))?);
    let artifacts = Arc::new(ArtifactStore::open(cfg.data_dir.join("artifacts"))?);
    install_builtins(&pool, &sandbox, builtins).await?;
    let mut registry = prometheus_client::registry::Registry::default();
    let worker_metrics = panel1_worker::WorkerMetrics::register(&mut registry);
    let metrics = ApiMetrics::new(registry);
    let state = AppState::new(
        pool.clone(),
        secrets.clone(),
        sandbox.clone(),
        Some(artifacts),
        ApiConfig {
            max_body_bytes: cfg.max_body_bytes,
            rate_limit_per_second: cfg.rate_limit_per_second,
            rate_limit_burst: cfg.rate_limit_burst,
            auth_failure_limit: cfg.auth_failure_limit,
            auth_failure_window: std::time::Duration::from_secs(cfg.auth_failure_window_secs),
            console_secure_cookie: cfg.console_secure_cookie,
            max_event_streams_per_tenant: cfg.max_event_streams_per_tenant,
            max_compiles_per_tenant: cfg.max_compiles_per_tenant,
            ..ApiConfig::default()
        },
        metrics,
    );
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("panel1: API on http://{addr} (OpenAPI at /v1/openapi.json, console at /)");

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = if cfg.workers {
        let w = Worker::with_metrics(
            pool.clone(),
            sandbox,
            secrets,
            WorkerConfig {
                slots: cfg.worker_slots.max(1),
                webhooks: cfg.webhooks(),
                ..WorkerConfig::default()
            },
            Some(worker_metrics),
        );
        w.wake_local_streams_with(state.events.waker());
        let mut rx = stop_rx.clone();
        Some(tokio::spawn(async move {
            w.run(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
        }))
    } else {
        None
    };
    let hub = state.events.clone();
    let app = panel1_api::router(state);
    let mut http_stop = stop_rx.clone();
    let stop = async move {
        let _ = http_stop.wait_for(|s| *s).await;
        // Open event streams end, so the server can finish.
        hub.shutdown();
    };
    let server = panel1_api::server::serve(listener, app, cfg.connection_limits(), stop);
    let server = tokio::spawn(server);
    Ok(Running {
        addr,
        pool,
        stop_tx,
        server,
        worker,
    })
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{text}")?;
    Ok(())
}

/// The `*.wasm` files in `dir`, sorted.
pub fn components_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading built-in adapters from {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    entries.sort();
    Ok(entries)
}

/// Every valid component becomes a built-in adapter named after its file;
/// the version label is the content hash, so a rebuilt component is a new
/// immutable version and an unchanged one is found again.
async fn install_builtins(pool: &PgPool, sandbox: &Sandbox, files: &[PathBuf]) -> Result<()> {
    for path in files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let bytes = std::fs::read(path)?;
        // One bad file must not keep the rest (or the server) from starting.
        let loaded = match sandbox.load(&bytes) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("panel1: skipping built-in adapter {}: {e}", path.display());
                continue;
            }
        };
        let report = serde_json::to_value(&loaded.report)?;
        let version = loaded.report.sha256[..12].to_string();
        let id = panel1_store::setup::add_adapter_version(
            pool,
            &panel1_store::setup::NewAdapterVersion {
                tenant: None,
                name: &name,
                version: &version,
                sha256: &loaded.report.sha256,
                world_version: &loaded.report.world_version,
                component: &bytes,
                report: &report,
            },
        )
        .await?;
        eprintln!("panel1: built-in adapter {name} {version} ({id})");
    }
    Ok(())
}
