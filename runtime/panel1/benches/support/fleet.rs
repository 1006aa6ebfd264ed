//! What the scale benchmarks share: a fleet of active services on cPanel
//! servers (cap 4 each) all backed by one WHM simulator on 127.0.0.1,
//! seeded directly (simulator accounts + service rows in one statement);
//! the API on loopback with a key; API readers whose latencies are kept;
//! percentiles. Each benchmark uses a part of it.
#![allow(dead_code)]
use crate::common::{install_builtin, secret_box};
use panel1_api::server::ConnectionLimits;
use panel1_api::{ApiConfig, ApiMetrics, AppState, Scope};
use panel1_sandbox::{EgressRule, Sandbox, SandboxConfig};
use panel1_sims::{Account, SimConfig, WhmSimulator};
use panel1_store::secret_box::SecretBox;
use panel1_store::setup::{self, NewServer};
use panel1_store::testing;
use serde_json::json;
use sqlx::PgPool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// One API read: what, milliseconds, status.
pub type Read = (&'static str, f64, u16);

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` percentile of sorted figures (NaN when there are none).
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub struct Fleet {
    pub pool: PgPool,
    pub sim: WhmSimulator,
    pub tenant: Uuid,
    pub servers: Vec<Uuid>,
    pub secret_box: Arc<SecretBox>,
    /// How long seeding the accounts and services took.
    pub seeded: Duration,
}

/// `n_services` active services named `<prefix>00000`…, spread over
/// `n_servers` servers; `account` makes each one's simulator account.
pub async fn fleet(
    n_services: usize,
    n_servers: usize,
    prefix: &str,
    account: impl Fn(usize, &str) -> Account,
) -> Fleet {
    let (pool, _url) = testing::fresh_database().await;
    let sim = WhmSimulator::start(SimConfig::default()).await.unwrap();
    let tenant = setup::create_tenant(&pool, "bench").await.unwrap();
    let version = install_builtin(&pool, "cpanel").await;
    let sb = secret_box();
    let secret = setup::put_secret(&pool, &sb, tenant, "whm-token", sim.token())
        .await
        .unwrap();
    let port = sim.addr().port();
    let rule = EgressRule::parse(&format!(
        "{}/json-api/ sha256:{}",
        sim.base_url(),
        sim.cert_sha256()
    ))
    .unwrap();
    let mut servers = Vec::new();
    for i in 0..n_servers {
        let server = setup::add_server(
            &pool,
            &NewServer {
                tenant_id: tenant,
                name: format!("whm-{i}"),
                adapter_version_id: version,
                config: json!({"host": "127.0.0.1", "port": port, "whm_user": sim.whm_user()}),
                egress: json!({ "rules": [rule] }),
                max_concurrency: 4,
            },
        )
        .await
        .unwrap();
        setup::bind_secret(&pool, server, secret, &[format!("127.0.0.1:{port}")])
            .await
            .unwrap();
        servers.push(server);
    }

    let seeding = Instant::now();
    let users: Vec<String> = (0..n_services).map(|i| format!("{prefix}{i:05}")).collect();
    for (i, u) in users.iter().enumerate() {
        sim.add_account(account(i, u)).unwrap();
    }
    let server_of: Vec<Uuid> = (0..n_services).map(|i| servers[i % n_servers]).collect();
    sqlx::query(
        "INSERT INTO services (id, tenant_id, server_id, remote_id, plan, spec, state)
         SELECT panel1_uuid_v7(), $1, s, u, 'default',
                jsonb_build_object('username', u, 'domain', u || '.example.com'), 'active'
         FROM unnest($2::text[], $3::uuid[]) AS x(u, s)",
    )
    .bind(tenant)
    .bind(&users)
    .bind(&server_of)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    Fleet {
        pool,
        sim,
        tenant,
        servers,
        secret_box: sb,
        seeded: seeding.elapsed(),
    }
}

/// The API on loopback (rate limits out of the way) and a key of `scope`.
pub struct Api {
    pub base: String,
    pub key: String,
    /// Its event streams (a worker in this process wakes them directly).
    pub events: panel1_api::events::EventHub,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Api {
    pub async fn start(fleet: &Fleet, scope: Scope) -> Api {
        let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
        let config = ApiConfig {
            rate_limit_per_second: 100_000,
            rate_limit_burst: 100_000,
            ..ApiConfig::default()
        };
        let metrics = ApiMetrics::new(prometheus_client::registry::Registry::default());
        let state = AppState::new(
            fleet.pool.clone(),
            fleet.secret_box.clone(),
            sandbox,
            None,
            config,
            metrics,
        );
        let (_, key) = panel1_api::create_key(&fleet.pool, Some(fleet.tenant), "bench", &[scope])
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let events = state.events.clone();
        let app = panel1_api::router(state);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = panel1_api::server::serve(listener, app, ConnectionLimits::default(), async {
                let _ = stopped.await;
            })
            .await;
        });
        Api {
            base,
            key,
            events,
            stop,
        }
    }

    pub fn stop(self) {
        let _ = self.stop.send(());
    }
}

/// Readers polling the API until stopped, each pausing `pause` between
/// requests; `pick(i)` names the i-th read and gives its path.
pub struct Readers {
    done: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
    reads: Arc<Mutex<Vec<Read>>>,
}

impl Readers {
    pub fn start<F>(api: &Api, n: usize, pause: Duration, pick: F) -> Readers
    where
        F: Fn(usize) -> (&'static str, String) + Send + Sync + 'static,
    {
        let done = Arc::new(AtomicBool::new(false));
        let reads: Arc<Mutex<Vec<Read>>> = Arc::default();
        let pick = Arc::new(pick);
        let handles = (0..n)
            .map(|r| {
                let (done, reads, pick) = (done.clone(), reads.clone(), pick.clone());
                let (base, key) = (api.base.clone(), api.key.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut i = r;
                    while !done.load(Ordering::Relaxed) {
                        let (name, path) = pick(i);
                        let t = Instant::now();
                        let status = match http
                            .get(format!("{base}{path}"))
                            .bearer_auth(&key)
                            .send()
                            .await
                        {
                            Ok(resp) => {
                                let s = resp.status().as_u16();
                                let _ = resp.bytes().await;
                                s
                            }
                            Err(_) => 0,
                        };
                        let ms = t.elapsed().as_secs_f64() * 1000.0;
                        reads.lock().unwrap().push((name, ms, status));
                        i += n;
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Readers {
            done,
            handles,
            reads,
        }
    }

    /// Stop reading; every read made.
    pub async fn stop(self) -> Vec<Read> {
        self.done.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.await;
        }
        let reads = self.reads.lock().unwrap().clone();
        reads
    }
}

/// The table rows for the readers' latencies (all reads, then each kind
/// of `names`); returns the p99 of all reads in ms.
pub fn print_reads(reads: &[Read], label: &str, names: &[&str]) -> f64 {
    let errors = reads.iter().filter(|(_, _, s)| *s != 200).count();
    let mut all: Vec<f64> = reads.iter().map(|x| x.1).collect();
    all.sort_by(f64::total_cmp);
    println!(
        "| {label}: {} ({} not 200), p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        all.len(),
        errors,
        pct(&all, 0.5),
        pct(&all, 0.99),
        pct(&all, 1.0)
    );
    for name in names {
        let mut v: Vec<f64> = reads.iter().filter(|x| x.0 == *name).map(|x| x.1).collect();
        v.sort_by(f64::total_cmp);
        println!(
            "| … {name}: {} reads, p50 / p99 | {:.1} / {:.1} ms |",
            v.len(),
            pct(&v, 0.5),
            pct(&v, 0.99)
        );
    }
    pct(&all, 0.99)
}

/// Run a benchmark on a two-thread runtime (the machine's two cores).
pub fn block_on(run: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run);
}
