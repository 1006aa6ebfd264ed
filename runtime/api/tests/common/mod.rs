//! The API over real HTTP on loopback, a real Postgres database, an
//! in-process worker with the real sandbox, and a fake provider panel.
#![allow(dead_code)]
#[path = "../../../sandbox/tests/support/fake_panel.rs"]
pub mod fake_panel;

use fake_panel::FakePanel;
use panel1_api::server::ConnectionLimits;
use panel1_api::{ApiConfig, ApiMetrics, AppState};
use panel1_sandbox::{Sandbox, SandboxConfig};
use panel1_store::secret_box::SecretBox;
use panel1_worker::{Worker, WorkerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub const TOKEN: &str = "api-test-token-8c1f27";

pub fn component_path(name: &str) -> PathBuf {
    std::env::var_os("PANEL1_ADAPTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist"))
        .join(format!("{name}.wasm"))
}

pub fn component(name: &str) -> Vec<u8> {
    let path = component_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `just adapters`)", path.display()))
}

pub struct Api {
    pub base: String,
    pub pool: PgPool,
    pub db_url: String,
    pub http: reqwest::Client,
    pub platform_key: String,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    worker_stop: Option<oneshot::Sender<()>>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The problem `type` slug (`not-found`, ...) of an error answer.
    pub fn problem(&self) -> &str {
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "{:?}",
            self.body
        );
        self.body["type"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("/problems/")
    }
}

pub fn config() -> ApiConfig {
    ApiConfig {
        max_body_bytes: 32 << 20,
        rate_limit_per_second: 1000,
        rate_limit_burst: 1000,
        // Tests probing 401s send many bad keys from one address.
        auth_failure_limit: 100_000,
        ..ApiConfig::default()
    }
}

impl Api {
    pub async fn start() -> Api {
        Api::start_with(config(), true).await
    }

    pub async fn start_with(config: ApiConfig, with_worker: bool) -> Api {
        Api::start_limited(config, with_worker, ConnectionLimits::default()).await
    }

    /// With the server's connection timeouts and cap set to `limits`.
    pub async fn start_limited(
        config: ApiConfig,
        with_worker: bool,
        limits: ConnectionLimits,
    ) -> Api {
        let (pool, db_url) = panel1_store::testing::fresh_database().await;
        Api::start_on(pool, db_url, config, with_worker, limits).await
    }

    /// On a database of the caller's (a throwaway cluster, say).
    pub async fn start_on(
        pool: sqlx::PgPool,
        db_url: String,
        config: ApiConfig,
        with_worker: bool,
        limits: ConnectionLimits,
    ) -> Api {
        let secrets = Arc::new(SecretBox::new([7; 32], "test"));
        let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
        let mut registry = prometheus_client::registry::Registry::default();
        let worker_metrics = panel1_worker::WorkerMetrics::register(&mut registry);
        let metrics = ApiMetrics::new(registry);
        let state = AppState::new(
            pool.clone(),
            secrets.clone(),
            sandbox.clone(),
            None,
            config,
            metrics,
        );
        let platform_key = panel1_api::bootstrap_platform_key(&pool)
            .await
            .unwrap()
            .expect("a new database has no platform key");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = panel1_api::router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let hub = state.events.clone();
        tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.await;
                hub.shutdown();
            };
            panel1_api::server::serve(listener, app, limits, stop)
                .await
                .unwrap();
        });
        let (worker_stop, worker) = if with_worker {
            let w = Worker::with_metrics(
                pool.clone(),
                sandbox,
                secrets,
                WorkerConfig {
                    id: "api-test-worker".into(),
                    slots: 8,
                    lease_ttl: Duration::from_secs(5),
                    poll_interval: Duration::from_millis(200),
                    shutdown_grace: Duration::from_secs(5),
                    ..WorkerConfig::default()
                },
                Some(worker_metrics),
            );
            let (tx, rx) = oneshot::channel::<()>();
            let h = tokio::spawn(async move {
                w.run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
            (Some(tx), Some(h))
        } else {
            (None, None)
        };
        Api {
            base,
            pool,
            db_url,
            http: reqwest::Client::new(),
            platform_key,
            state,
            stop: Some(stop),
            worker_stop,
            worker,
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(s) = self.worker_stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.worker.take() {
            h.await.unwrap();
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, key: &str, path: &str) -> Reply {
        self.call(Method::GET, path, Some(key), None, &[]).await
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(key), Some(body), &[])
            .await
    }

    pub async fn delete(&self, key: &str, path: &str) -> Reply {
        self.call(Method::DELETE, path, Some(key), None, &[]).await
    }

    /// Upload a component from adapters/dist as `application/wasm`.
    pub async fn upload(&self, key: &str, name: &str, version: &str, bytes: Vec<u8>) -> Reply {
        let resp = self
            .http
            .post(format!(
                "{}/v1/adapters?name={name}&version={version}",
                self.base
            ))
            .bearer_auth(key)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A new tenant: (id, admin key).
    pub async fn tenant(&self, name: &str) -> (String, String) {
        let r = self
            .post(&self.platform_key, "/v1/tenants", json!({"name": name}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        (
            r.body["tenant"]["id"].as_str().unwrap().to_string(),
            r.body["admin_key"]["key"].as_str().unwrap().to_string(),
        )
    }

    /// The reference adapter as a built-in, inspected and ready: its version id.
    pub async fn reference_adapter(&self) -> String {
        let r = self
            .upload(
                &self.platform_key,
                "reference",
                "0.1.0",
                component("reference"),
            )
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
        let id = r.body["id"].as_str().unwrap().to_string();
        self.wait_for(&self.platform_key, &format!("/v1/adapters/{id}"), |v| {
            v["status"] != "inspecting"
        })
        .await;
        id
    }

    /// Poll `path` until `done` holds for its body (30 s at most).
    pub async fn wait_for(&self, key: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let r = self.get(key, path).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
            if done(&r.body) {
                return r.body;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting on {path}: last {:?}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A tenant with a server on the reference adapter pointing at a fake panel
/// (token bound to it as a secret).
pub struct Setup {
    pub tenant: String,
    pub key: String,
    pub version: String,
    pub server: String,
    pub panel: FakePanel,
}

pub async fn setup(api: &Api, tenant_name: &str, version: Option<String>) -> Setup {
    let panel = FakePanel::start(TOKEN).await;
    let (tenant, key) = api.tenant(tenant_name).await;
    let version = match version {
        Some(v) => v,
        None => api.reference_adapter().await,
    };
    let r = api
        .post(
            &key,
            "/v1/secrets",
            json!({"name": "api-token", "value": TOKEN}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api
        .post(
            &key,
            "/v1/servers",
            json!({
                "name": "panel-1",
                "adapter_version_id": version,
                "config": {"base_url": panel.base_url(), "owner": "reseller1"},
                "egress": [panel.base_url()],
                "max_concurrency": 4,
                "secrets": [{"name": "api-token", "destinations": [format!("127.0.0.1:{}", panel.port)]}],
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let server = r.body["id"].as_str().unwrap().to_string();
    Setup {
        tenant,
        key,
        version,
        server,
        panel,
    }
}
