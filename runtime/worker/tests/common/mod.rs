//! A real Postgres database, the real reference adapter, a fake provider on
//! loopback, and in-process workers.
#![allow(dead_code)]
#[path = "../../../sandbox/tests/support/fake_panel.rs"]
pub mod fake_panel;
pub mod logs;
pub mod provider;

use fake_panel::FakePanel;
use panel1_sandbox::{EgressRule, Sandbox, SandboxConfig};
use panel1_store::secret_box::SecretBox;
use panel1_store::setup::{self, NewServer};
use panel1_store::{testing, NewTask};
use panel1_worker::{Worker, WorkerConfig};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub const TOKEN: &str = "orch-token-31337";

pub fn component(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("PANEL1_ADAPTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `just adapters`)", path.display()))
}

pub struct Env {
    pub pool: PgPool,
    pub url: String,
    pub panel: FakePanel,
    pub tenant: Uuid,
    pub servers: Vec<Uuid>,
    pub secret_box: Arc<SecretBox>,
}

/// `adapters/dist/<name>.wasm` as a built-in adapter version (id).
pub async fn install_builtin(pool: &PgPool, name: &str) -> Uuid {
    let bytes = component(name);
    let loaded = Sandbox::new(SandboxConfig::default())
        .unwrap()
        .load(&bytes)
        .unwrap_or_else(|e| panic!("{name}.wasm loads: {e}"));
    let report = serde_json::to_value(&loaded.report).unwrap();
    setup::add_adapter_version(
        pool,
        &setup::NewAdapterVersion {
            tenant: None,
            name,
            version: "0.1.0",
            sha256: &loaded.report.sha256,
            world_version: &loaded.report.world_version,
            component: &bytes,
            report: &report,
        },
    )
    .await
    .unwrap()
}

pub fn secret_box() -> Arc<SecretBox> {
    Arc::new(SecretBox::new([11; 32], "test"))
}

/// A database with one tenant, the reference adapter, and `servers` servers
/// (each capped at `cap`) pointing at one fake panel.
pub async fn env(servers: usize, cap: i32) -> Env {
    let (pool, url) = testing::fresh_database().await;
    env_on(pool, url, servers, cap).await
}

pub async fn env_on(pool: PgPool, url: String, servers: usize, cap: i32) -> Env {
    let panel = FakePanel::start(TOKEN).await;
    let tenant = setup::create_tenant(&pool, &format!("tenant-{}", Uuid::new_v4()))
        .await
        .unwrap();
    let version = install_builtin(&pool, "reference").await;
    let sb = secret_box();
    let secret = setup::put_secret(&pool, &sb, tenant, "api-token", TOKEN)
        .await
        .unwrap();
    let rule = EgressRule::parse(&panel.base_url()).unwrap();
    let mut ids = Vec::new();
    for i in 0..servers {
        let server = setup::add_server(
            &pool,
            &NewServer {
                tenant_id: tenant,
                name: format!("panel-{i}"),
                adapter_version_id: version,
                config: json!({"base_url": panel.base_url(), "owner": "reseller1"}),
                egress: json!({"rules": [rule]}),
                max_concurrency: cap,
            },
        )
        .await
        .unwrap();
        setup::bind_secret(
            &pool,
            server,
            secret,
            &[format!("127.0.0.1:{}", panel.port)],
        )
        .await
        .unwrap();
        ids.push(server);
    }
    Env {
        pool,
        url,
        panel,
        tenant,
        servers: ids,
        secret_box: sb,
    }
}

pub fn spec(username: &str) -> Value {
    json!({"service_id": username, "username": username, "domain": format!("{username}.test"), "plan": "basic"})
}

impl Env {
    pub async fn service(&self, server: Uuid, username: &str) -> Uuid {
        setup::add_service(&self.pool, self.tenant, server, &spec(username))
            .await
            .unwrap()
    }

    pub async fn enqueue(
        &self,
        server: Uuid,
        service: Option<Uuid>,
        op: &str,
        input: Value,
        key: Option<&str>,
    ) -> (Uuid, bool) {
        let mut t = NewTask::new(self.tenant, server, service, op, input);
        t.idempotency_key = key.map(String::from);
        let mut conn = self.pool.acquire().await.unwrap();
        panel1_store::enqueue(&mut conn, &t).await.unwrap()
    }

    /// Start `n` in-process workers; returns their stop handles.
    pub fn workers(&self, n: usize, config: WorkerConfig) -> Vec<Running> {
        spawn_workers(&self.pool, &self.secret_box, n, config)
    }

    /// Wait until every task succeeded.
    pub async fn wait_all_succeeded(&self, timeout: Duration) {
        self.wait_until(
            "SELECT count(*) = 0 FROM tasks WHERE state <> 'succeeded'",
            timeout,
        )
        .await;
    }

    pub async fn task_state(&self, id: Uuid) -> String {
        sqlx::query_scalar("SELECT state::text FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn service_state(&self, id: Uuid) -> String {
        sqlx::query_scalar("SELECT state::text FROM services WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Wait until `sql` (a boolean query) is true.
    pub async fn wait_until(&self, sql: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let ok: bool = sqlx::query_scalar(sql)
                .fetch_one(&self.pool)
                .await
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for: {sql}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An in-process worker: its stop signal and its task.
pub type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

/// `n` in-process workers (ids w0, w1, ...) sharing one sandbox.
pub fn spawn_workers(
    pool: &PgPool,
    secret_box: &Arc<SecretBox>,
    n: usize,
    config: WorkerConfig,
) -> Vec<Running> {
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    (0..n)
        .map(|i| {
            let cfg = WorkerConfig {
                id: format!("w{i}"),
                ..config.clone()
            };
            let w = Worker::new(pool.clone(), sandbox.clone(), secret_box.clone(), cfg);
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let h = tokio::spawn(async move {
                w.run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
            (tx, h)
        })
        .collect()
}

pub async fn stop(workers: Vec<Running>) {
    for (tx, _) in &workers {
        let _ = tx;
    }
    for (tx, h) in workers {
        let _ = tx.send(());
        h.await.unwrap();
    }
}

pub fn fast() -> WorkerConfig {
    WorkerConfig {
        slots: 16,
        lease_ttl: Duration::from_secs(5),
        poll_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(5),
        ..WorkerConfig::default()
    }
}
