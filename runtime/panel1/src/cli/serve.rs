//! `panel1 serve`: the API, workers and event streams in one process. With no
//! DATABASE_URL it runs its own Postgres from the local binaries in the data
//! directory (kept between runs, stopped on exit).
use super::worker::shutdown_signal;
use super::{EXIT_OK, EXIT_USAGE};
use crate::serve_config::{ensure_master_key, ServeConfig};
use anyhow::{Context, Result};
use clap::Args;
use panel1_api::{ApiConfig, ApiMetrics, AppState};
use panel1_sandbox::{ArtifactStore, Sandbox, SandboxConfig};
use panel1_store::embedded::EmbeddedPostgres;
use panel1_store::secret_box::SecretBox;
use panel1_worker::{Worker, WorkerConfig};
use sqlx::PgPool;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

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
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;
    let (url, embedded) = match &cfg.database_url {
        Some(url) => (url.clone(), None),
        None => {
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
            (pg.url(), Some(pg))
        }
    };
    let result = run_with_database(&cfg, &url).await;
    if let Some(pg) = embedded {
        let stopped = tokio::task::spawn_blocking(move || pg.stop()).await;
        if let Ok(Err(e)) = stopped {
            eprintln!("panel1: stopping the embedded Postgres: {e}");
        }
    }
    result
}

async fn run_with_database(cfg: &ServeConfig, url: &str) -> Result<()> {
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
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default())?);
    let artifacts = Arc::new(ArtifactStore::open(cfg.data_dir.join("artifacts"))?);
    if let Some(dir) = &cfg.builtin_adapters_dir {
        install_builtins(&pool, &sandbox, dir).await?;
    }
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
        },
        metrics,
    );
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    eprintln!(
        "panel1: API on http://{} (OpenAPI at /v1/openapi.json)",
        listener.local_addr()?
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = if cfg.workers {
        let w = Worker::with_metrics(
            pool.clone(),
            sandbox,
            secrets,
            WorkerConfig {
                slots: cfg.worker_slots.max(1),
                ..WorkerConfig::default()
            },
            Some(worker_metrics),
        );
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
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = http_stop.wait_for(|s| *s).await;
        // Open event streams end, so the server can finish.
        hub.shutdown();
    });
    let server = tokio::spawn(async move { server.await });
    shutdown_signal().await;
    eprintln!("panel1: shutting down (finishing running tasks)");
    let _ = stop_tx.send(true);
    server.await??;
    if let Some(w) = worker {
        w.await??;
    }
    eprintln!("panel1: stopped");
    Ok(())
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

/// Every valid `*.wasm` in `dir` becomes a built-in adapter named after its file;
/// the version label is the content hash, so a rebuilt component is a new
/// immutable version and an unchanged one is found again.
async fn install_builtins(pool: &PgPool, sandbox: &Sandbox, dir: &Path) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading built-in adapters from {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let bytes = std::fs::read(&path)?;
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
