//! What the tests that run `panel1` as child processes share: starting
//! `serve` and `worker` processes on one database, waiting for them, killing
//! them, and the API calls that set the stage (a tenant, the cPanel adapter,
//! a WHM server on the in-process simulator).
#![allow(dead_code)] // each test binary uses its own part

use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn adapters_dir() -> PathBuf {
    std::env::var_os("PANEL1_ADAPTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist"))
}

/// A seeded generator of numbers below `n` (xorshift: the same run every
/// time, so a failure can be replayed).
pub fn random_below(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

/// What every process of one installation shares: the database, the data
/// directory (the platform key is written there), the built-ins and the
/// master key.
pub struct Env {
    pub db_url: String,
    pub dir: PathBuf,
    pub builtins: PathBuf,
    pub master_key: String,
}

impl Env {
    /// A fresh data directory with only the cPanel component as a built-in.
    pub fn new(db_url: String, name: &str) -> Env {
        let dir = std::env::temp_dir().join(format!("panel1-{name}-{}", uuid::Uuid::new_v4()));
        let builtins = dir.join("builtin");
        std::fs::create_dir_all(&builtins).unwrap();
        std::fs::copy(
            adapters_dir().join("cpanel.wasm"),
            builtins.join("cpanel.wasm"),
        )
        .expect("adapters/dist/cpanel.wasm (run adapters/build.sh)");
        Env {
            db_url,
            dir,
            builtins,
            master_key: hex::encode(rand::random::<[u8; 32]>()),
        }
    }

    /// `panel1 serve` on `port`, API and workers unless `extra` says
    /// otherwise (environment pairs, applied last).
    pub fn serve(&self, port: u16, extra: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_panel1"));
        cmd.arg("serve")
            .env("DATABASE_URL", &self.db_url)
            .env("PANEL1_MASTER_KEY", &self.master_key)
            .env("PANEL1_DATA_DIR", &self.dir)
            .env("PANEL1_LISTEN", format!("127.0.0.1:{port}"))
            .env("PANEL1_BUILTIN_ADAPTERS", &self.builtins)
            .env("PANEL1_RATE_LIMIT_PER_SECOND", "10000")
            .env("PANEL1_RATE_LIMIT_BURST", "10000")
            .env("PANEL1_WORKER_SLOTS", "4")
            .env("PANEL1_LOG", "info")
            .env_remove("PANEL1_TEST_FAULTS");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Proc::spawn(cmd, Some(port))
    }

    /// `panel1 worker` named `id`.
    pub fn worker(&self, id: &str, slots: u32) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_panel1"));
        cmd.args(["worker", "--slots", &slots.to_string(), "--id", id])
            .env("DATABASE_URL", &self.db_url)
            .env("PANEL1_MASTER_KEY", &self.master_key)
            .env("PANEL1_LOG", "info");
        Proc::spawn(cmd, None)
    }

    pub fn platform_key(&self) -> String {
        std::fs::read_to_string(self.dir.join("platform.key"))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process and everything it wrote to stderr.
pub struct Proc {
    pub child: Child,
    pub port: Option<u16>,
    pub log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    fn spawn(mut cmd: Command, port: Option<u16>) -> Proc {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn panel1");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc {
            child,
            port,
            log,
            reader: Some(reader),
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until a `serve` process answers /readyz (60 s at most).
    pub async fn ready(&mut self) {
        let port = self.port.expect("a serve process");
        let start = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("serve exited with {status}: {}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "serve not ready in 60 s: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL and reap, keeping the value (to be replaced).
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL (if still alive); the log of this life.
    pub fn kill(mut self) -> String {
        self.sigkill();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.log()
    }

    /// Wait (bounded) for the process to end by itself; whether it did,
    /// and its log.
    pub async fn wait_exit(mut self, within: Duration) -> (bool, String) {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return (true, self.kill());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (false, self.kill())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// JSON calls that must succeed (stage setting, not the thing under test).
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn on(port: u16) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    pub async fn get(&self, key: &str, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The id of the built-in cPanel adapter once it is ready.
    pub async fn cpanel_version(&self, key: &str) -> String {
        let start = Instant::now();
        loop {
            let list = self.get(key, "/v1/adapters?name=cpanel").await;
            if list["items"][0]["status"] == "ready" {
                return list["items"][0]["id"].as_str().unwrap().to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "cpanel never ready: {list}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A tenant with a cPanel server on `sim`: (its admin key, the server id).
    pub async fn stage(
        &self,
        platform_key: &str,
        sim: &panel1_sims::WhmSimulator,
    ) -> (String, String) {
        let tenant = self
            .post(platform_key, "/v1/tenants", json!({"name": "billing-co"}))
            .await;
        let key = tenant["admin_key"]["key"].as_str().unwrap().to_string();
        let version = self.cpanel_version(&key).await;
        self.post(
            &key,
            "/v1/secrets",
            json!({"name": "whm-token", "value": sim.token()}),
        )
        .await;
        let port = sim.addr().port();
        let server = self
            .post(
                &key,
                "/v1/servers",
                json!({
                    "name": "whm",
                    "adapter_version_id": version,
                    "config": {"host": "127.0.0.1", "port": port, "whm_user": sim.whm_user()},
                    "egress": [format!("https://127.0.0.1:{port}/json-api/ sha256:{}", sim.cert_sha256())],
                    "secrets": [{"name": "whm-token", "destinations": [format!("127.0.0.1:{port}")]}],
                }),
            )
            .await;
        (key, server["id"].as_str().unwrap().to_string())
    }
}

/// The body of an order for `user` on `server`.
pub fn order_body(server: &str, user: &str) -> Value {
    json!({
        "server_id": server, "username": user,
        "domain": format!("{user}.example.test"), "plan": "basic",
    })
}

/// What one attempt at an order got.
pub enum Outcome {
    Answered {
        service: String,
        replayed: bool,
    },
    InProgress,
    /// The connection died with the server.
    Lost,
}

pub async fn place(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    server: &str,
    o: (&str, &str),
) -> Outcome {
    let (idem, user) = o;
    let sent = http
        .post(format!("{base}/v1/services"))
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(&order_body(server, user))
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    let Ok(r) = sent else { return Outcome::Lost };
    let status = r.status();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    let Ok(body) = r.json::<Value>().await else {
        return Outcome::Lost;
    };
    match status.as_u16() {
        202 => Outcome::Answered {
            service: body["service"]["id"].as_str().unwrap().to_string(),
            replayed,
        },
        409 if body["type"] == "/problems/idempotency-in-progress" => Outcome::InProgress,
        _ => panic!("order {idem}: {status} {body}"),
    }
}

/// Wait (within `limit`) until `n` services are active; their number.
pub async fn wait_all_active(
    pool: &sqlx::PgPool,
    n: usize,
    limit: Duration,
    logs: &dyn Fn() -> String,
) -> usize {
    let start = Instant::now();
    loop {
        let (active, states): (i64, Value) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'active'),
                    COALESCE(jsonb_object_agg(spec->>'username', state::text || ' ' || COALESCE(failure_reason, ''))
                             FILTER (WHERE state <> 'active'), '{}')
             FROM services",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if active as usize >= n {
            return active as usize;
        }
        assert!(
            start.elapsed() < limit,
            "not all active: {states}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
