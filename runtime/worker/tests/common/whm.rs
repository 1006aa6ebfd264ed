//! The cPanel orchestrator tests' harness: one tenant with one cPanel server
//! pointing at one WHM simulator, in-process workers, the rows and logs the
//! tests read, and the leak checker.
use crate::common::logs::{capture_logs, logs};
use crate::common::{fast, install_builtin, secret_box, spawn_workers, stop, Running};
use panel1_sandbox::EgressRule;
use panel1_sims::{Account, SimConfig, WhmSimulator};
use panel1_store::secret_box::SecretBox;
use panel1_store::setup::{self, NewServer};
use panel1_store::{testing, NewTask};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Long enough for any single scenario here (a few seconds each).
pub const WAIT: Duration = Duration::from_secs(60);
/// Length of the password the adapter generates when none is given.
pub const GENERATED_LEN: usize = 24;

// ---------------------------------------------------------------- harness

/// One tenant with one cPanel server pointing at one simulator.
pub struct Whm {
    pub pool: PgPool,
    pub sim: WhmSimulator,
    pub tenant: Uuid,
    pub server: Uuid,
    pub secret_box: Arc<SecretBox>,
    /// Strings that must never be stored or logged (the token, a wrong
    /// token bound instead of it).
    pub forbidden: Vec<String>,
}

pub struct Setup {
    /// The `whm-token` secret's value; `None` = the simulator's token.
    pub token: Option<String>,
    pub request_timeout_ms: u64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            token: None,
            request_timeout_ms: 1500,
        }
    }
}

impl Whm {
    pub async fn start(s: Setup) -> Whm {
        capture_logs();
        let (pool, _url) = testing::fresh_database().await;
        let sim = WhmSimulator::start(SimConfig::default())
            .await
            .expect("simulator starts");
        let tenant = setup::create_tenant(&pool, &format!("tenant-{}", Uuid::new_v4()))
            .await
            .unwrap();
        let version = install_builtin(&pool, "cpanel").await;
        let sb = secret_box();
        let token = s.token.clone().unwrap_or_else(|| sim.token().to_string());
        let secret = setup::put_secret(&pool, &sb, tenant, "whm-token", &token)
            .await
            .unwrap();
        let port = sim.addr().port();
        let rule = EgressRule::parse(&format!(
            "{}/json-api/ sha256:{}",
            sim.base_url(),
            sim.cert_sha256()
        ))
        .unwrap();
        let server = setup::add_server(
            &pool,
            &NewServer {
                tenant_id: tenant,
                name: "whm".into(),
                adapter_version_id: version,
                config: json!({
                    "host": "127.0.0.1",
                    "port": port,
                    "whm_user": sim.whm_user(),
                    "request_timeout_ms": s.request_timeout_ms,
                }),
                egress: json!({ "rules": [rule] }),
                max_concurrency: 4,
            },
        )
        .await
        .unwrap();
        setup::bind_secret(&pool, server, secret, &[format!("127.0.0.1:{port}")])
            .await
            .unwrap();
        let mut forbidden = vec![sim.token().to_string()];
        if let Some(t) = s.token {
            forbidden.push(t);
        }
        Whm {
            pool,
            sim,
            tenant,
            server,
            secret_box: sb,
            forbidden,
        }
    }

    pub fn workers(&self, n: usize) -> Vec<Running> {
        spawn_workers(&self.pool, &self.secret_box, n, fast())
    }

    /// A service to be provisioned as `user` on `user.example.com`, plan
    /// basic, no password (the adapter generates one).
    /// Provision `user` with one worker until its task ends in `expect`; a
    /// failure is given the ~1 s a (wrong) retry would take to show up.
    /// Returns the service, the task and its attempts.
    pub async fn provision_once(&self, user: &str, expect: &str) -> (Uuid, Uuid, Vec<Attempt>) {
        let svc = self.service(user).await;
        let task = self.enqueue(svc, "provision", provision(user)).await;
        let workers = self.workers(1);
        assert_eq!(self.finished(task).await, expect);
        if expect == "failed" {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        stop(workers).await;
        (svc, task, self.attempts(task).await)
    }

    /// The service is active on WHM account `user`.
    pub async fn assert_active(&self, svc: Uuid, user: &str) {
        let (state, remote, _) = self.service_row(svc).await;
        assert_eq!((state.as_str(), remote.as_deref()), ("active", Some(user)));
    }

    pub async fn service(&self, user: &str) -> Uuid {
        setup::add_service(&self.pool, self.tenant, self.server, &spec(user))
            .await
            .unwrap()
    }

    pub async fn enqueue(&self, service: Uuid, op: &str, input: Value) -> Uuid {
        let t = NewTask::new(self.tenant, self.server, Some(service), op, input);
        let mut conn = self.pool.acquire().await.unwrap();
        panel1_store::enqueue(&mut conn, &t).await.unwrap().0
    }

    /// Wait until the task is succeeded or failed; returns that state.
    pub async fn finished(&self, task: Uuid) -> String {
        let start = Instant::now();
        loop {
            let state: String = sqlx::query_scalar("SELECT state::text FROM tasks WHERE id = $1")
                .bind(task)
                .fetch_one(&self.pool)
                .await
                .unwrap();
            if state == "succeeded" || state == "failed" {
                return state;
            }
            assert!(
                start.elapsed() < WAIT,
                "task {task} still {state} after {WAIT:?}; attempts: {:#?}",
                self.attempts(task).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn attempts(&self, task: Uuid) -> Vec<Attempt> {
        sqlx::query_as(
            "SELECT attempt, outcome, error_kind, COALESCE(error_message, '') AS error_message,
                    wall_us, COALESCE(http, '[]') AS http
             FROM task_attempts WHERE task_id = $1 ORDER BY attempt",
        )
        .bind(task)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// `(outcome, error_kind)` of each attempt, in order.
    /// (Attempts are numbered 1, 2, ... with none missing.)
    pub async fn attempt_kinds(&self, task: Uuid) -> Vec<(String, Option<String>)> {
        let attempts = self.attempts(task).await;
        for (i, a) in attempts.iter().enumerate() {
            assert_eq!(a.attempt, i as i32 + 1, "{attempts:#?}");
        }
        attempts
            .into_iter()
            .map(|a| (a.outcome, a.error_kind))
            .collect()
    }

    pub async fn task_row(&self, task: Uuid) -> (i32, i32, Option<Value>) {
        sqlx::query_as("SELECT attempt, max_attempts, last_error FROM tasks WHERE id = $1")
            .bind(task)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// `(state, remote_id, failure_reason)`
    pub async fn service_row(&self, svc: Uuid) -> (String, Option<String>, Option<String>) {
        sqlx::query_as("SELECT state::text, remote_id, failure_reason FROM services WHERE id = $1")
            .bind(svc)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn event_kinds(&self, task: Uuid) -> Vec<String> {
        sqlx::query_scalar("SELECT kind FROM events WHERE task_id = $1 ORDER BY id")
            .bind(task)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// Every row of the tables the orchestrator writes, as JSON text.
    pub async fn dump(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for table in [
            "task_attempts",
            "tasks",
            "task_queue",
            "tasks_archive",
            "events",
            "services",
            "servers",
            "server_secrets",
            "secrets",
        ] {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                    .fetch_all(&self.pool)
                    .await
                    .unwrap();
            out.extend(rows.into_iter().map(|r| (table.to_string(), r)));
        }
        out
    }

    /// The token (and any wrong token used) is nowhere in the database nor
    /// in the captured logs; no account's password is in any stored text or
    /// any recorded URL; passwords never travel in a URL.
    pub async fn assert_nothing_leaked(&self) {
        // The token did reach the simulator, so its absence means something.
        assert!(!self.sim.request_log().is_empty());
        let dump = self.dump().await;
        assert!(
            dump.iter()
                .any(|(t, r)| t == "task_attempts" && r.contains("\"http\":[{")),
            "attempts with http exchanges were dumped"
        );
        let logs = logs();
        assert!(
            logs.contains("sqlx::query"),
            "the log capture works (sqlx statements are in it)"
        );
        let found = self.leaks(&dump, &logs);
        assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    }

    /// Where the token or an account's password shows up in `dump` and
    /// `logs`, and URLs that carry a password parameter.
    pub fn leaks(&self, dump: &[(String, String)], logs: &str) -> Vec<String> {
        let mut found = Vec::new();
        let accounts = self.sim.accounts();
        let mut texts: Vec<(String, String)> = dump.to_vec();
        for (table, row) in dump {
            if table != "task_attempts" {
                continue;
            }
            let row: Value = serde_json::from_str(row).unwrap();
            for x in row["http"].as_array().into_iter().flatten() {
                let url = x["url"].as_str().unwrap_or_default();
                let decoded = percent_decode(url);
                if decoded.to_ascii_lowercase().contains("pass") {
                    found.push(format!("a password parameter in a URL: {url}"));
                }
                texts.push(("an attempt's http URL (decoded)".into(), decoded));
            }
        }
        texts.push(("the worker's logs".into(), logs.to_string()));
        for (place, text) in &texts {
            for secret in &self.forbidden {
                if text.contains(secret.as_str()) {
                    found.push(format!("the token is in {place}: {text:.300}"));
                }
            }
            if let Some(user) = password_in(&accounts, text) {
                found.push(format!("the password of `{user}` is in {place}"));
            }
        }
        found
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct Attempt {
    pub attempt: i32,
    pub outcome: String,
    pub error_kind: Option<String>,
    pub error_message: String,
    pub wall_us: i64,
    pub http: Value,
}

impl Attempt {
    /// The WHM functions called, in order (`/json-api/<function>?...`).
    pub fn functions(&self) -> Vec<String> {
        self.http
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["url"].as_str())
            .filter_map(|u| u.split("/json-api/").nth(1))
            .map(|f| f.split('?').next().unwrap_or_default().to_string())
            .collect()
    }

    pub fn exchange(&self, function: &str) -> Value {
        self.http
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| {
                x["url"]
                    .as_str()
                    .is_some_and(|u| u.contains(&format!("/json-api/{function}?")))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {function} exchange in {:#}", self.http))
    }
}

/// The account whose current password is some 24-character window of
/// `text` (how a generated password would show up).
pub fn password_in(accounts: &[Account], text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    for w in chars.windows(GENERATED_LEN) {
        let w: String = w.iter().collect();
        if let Some(a) = accounts.iter().find(|a| a.password_matches(&w)) {
            return Some(a.user.clone());
        }
    }
    None
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn spec(user: &str) -> Value {
    json!({
        "service_id": format!("svc-{user}"),
        "username": user,
        "domain": format!("{user}.example.com"),
        "plan": "basic",
    })
}

pub fn provision(user: &str) -> Value {
    json!({ "service": spec(user) })
}

pub fn existing(user: &str) -> Value {
    json!({ "service": { "service_id": format!("svc-{user}"), "remote_id": user } })
}

pub fn kinds(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    list.iter()
        .map(|(o, k)| (o.to_string(), k.map(String::from)))
        .collect()
}
