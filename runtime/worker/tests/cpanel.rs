//! The orchestrator with the real cPanel adapter: a real Postgres (a fresh
//! database per test), real workers, the real `cpanel.wasm` in the real
//! sandbox, and the WHM simulator over HTTPS on loopback (its self-signed
//! certificate pinned on the egress rule, the token stored encrypted and
//! bound to `127.0.0.1:PORT` as the `whm-token` secret).
//!
//! What is checked: a createacct that took effect but timed out is retried
//! and found, not made twice; each injected fault ends in the error kind the
//! retry policy expects and is (or is not) retried accordingly; and neither
//! the token nor a generated password ends up anywhere in the database or
//! the worker's logs.
mod common;

use common::{component, fast, secret_box, stop};
use panel1_sandbox::{EgressRule, Sandbox, SandboxConfig};
use panel1_store::secret_box::SecretBox;
use panel1_store::setup::{self, NewServer};
use panel1_store::{testing, NewTask};
use panel1_whm_sim::{Account, AuthOutcome, Fault, FaultRule, SimConfig, WhmSimulator};
use panel1_worker::{Worker, WorkerConfig};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Long enough for any single scenario here (a few seconds each).
const WAIT: Duration = Duration::from_secs(60);
/// Length of the password the adapter generates when none is given.
const GENERATED_LEN: usize = 24;

// ---------------------------------------------------------------- logs

/// Everything the worker (and the store, sqlx, hyper ...) logged in this
/// test binary, at debug level and up.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::new(
            "debug,panel1_worker=trace,panel1_store=trace,panel1_sandbox=trace,\
             cranelift_codegen=warn,cranelift_frontend=warn,wasmtime=info,\
             wasmtime_cranelift=warn,regalloc2=warn",
        );
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(|| LogSink)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

// ---------------------------------------------------------------- harness

/// One tenant with one cPanel server pointing at one simulator.
struct Whm {
    pool: PgPool,
    sim: WhmSimulator,
    tenant: Uuid,
    server: Uuid,
    secret_box: Arc<SecretBox>,
    /// Strings that must never be stored or logged (the token, a wrong
    /// token bound instead of it).
    forbidden: Vec<String>,
}

struct Setup {
    /// The `whm-token` secret's value; `None` = the simulator's token.
    token: Option<String>,
    request_timeout_ms: u64,
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
    async fn start(s: Setup) -> Whm {
        capture_logs();
        let (pool, _url) = testing::fresh_database().await;
        let sim = WhmSimulator::start(SimConfig::default())
            .await
            .expect("simulator starts");
        let tenant = setup::create_tenant(&pool, &format!("tenant-{}", Uuid::new_v4()))
            .await
            .unwrap();
        let bytes = component("cpanel");
        let loaded = Sandbox::new(SandboxConfig::default())
            .unwrap()
            .load(&bytes)
            .expect("cpanel.wasm loads");
        let report = serde_json::to_value(&loaded.report).unwrap();
        let version = setup::add_adapter_version(
            &pool,
            &setup::NewAdapterVersion {
                tenant: None,
                name: "cpanel",
                version: "0.1.0",
                sha256: &loaded.report.sha256,
                world_version: "0.1.0",
                component: &bytes,
                report: &report,
            },
        )
        .await
        .unwrap();
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

    fn workers(
        &self,
        n: usize,
    ) -> Vec<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )> {
        let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
        (0..n)
            .map(|i| {
                let w = Worker::new(
                    self.pool.clone(),
                    sandbox.clone(),
                    self.secret_box.clone(),
                    WorkerConfig {
                        id: format!("w{i}"),
                        ..fast()
                    },
                );
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

    /// A service to be provisioned as `user` on `user.example.com`, plan
    /// basic, no password (the adapter generates one).
    async fn service(&self, user: &str) -> Uuid {
        setup::add_service(&self.pool, self.tenant, self.server, &spec(user))
            .await
            .unwrap()
    }

    async fn enqueue(&self, service: Uuid, op: &str, input: Value) -> Uuid {
        let t = NewTask::new(self.tenant, self.server, Some(service), op, input);
        let mut conn = self.pool.acquire().await.unwrap();
        panel1_store::enqueue(&mut conn, &t).await.unwrap().0
    }

    /// Wait until the task is succeeded or failed; returns that state.
    async fn finished(&self, task: Uuid) -> String {
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

    async fn attempts(&self, task: Uuid) -> Vec<Attempt> {
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
    async fn attempt_kinds(&self, task: Uuid) -> Vec<(String, Option<String>)> {
        let attempts = self.attempts(task).await;
        for (i, a) in attempts.iter().enumerate() {
            assert_eq!(a.attempt, i as i32 + 1, "{attempts:#?}");
        }
        attempts
            .into_iter()
            .map(|a| (a.outcome, a.error_kind))
            .collect()
    }

    async fn task_row(&self, task: Uuid) -> (i32, i32, Option<Value>) {
        sqlx::query_as("SELECT attempt, max_attempts, last_error FROM tasks WHERE id = $1")
            .bind(task)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// `(state, remote_id, failure_reason)`
    async fn service_row(&self, svc: Uuid) -> (String, Option<String>, Option<String>) {
        sqlx::query_as("SELECT state::text, remote_id, failure_reason FROM services WHERE id = $1")
            .bind(svc)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn event_kinds(&self, task: Uuid) -> Vec<String> {
        sqlx::query_scalar("SELECT kind FROM events WHERE task_id = $1 ORDER BY id")
            .bind(task)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// Every row of the tables the orchestrator writes, as JSON text.
    async fn dump(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for table in [
            "task_attempts",
            "tasks",
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
    async fn assert_nothing_leaked(&self) {
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
    fn leaks(&self, dump: &[(String, String)], logs: &str) -> Vec<String> {
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
struct Attempt {
    attempt: i32,
    outcome: String,
    error_kind: Option<String>,
    error_message: String,
    wall_us: i64,
    http: Value,
}

impl Attempt {
    /// The WHM functions called, in order (`/json-api/<function>?...`).
    fn functions(&self) -> Vec<String> {
        self.http
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["url"].as_str())
            .filter_map(|u| u.split("/json-api/").nth(1))
            .map(|f| f.split('?').next().unwrap_or_default().to_string())
            .collect()
    }

    fn exchange(&self, function: &str) -> Value {
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
fn password_in(accounts: &[Account], text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    for w in chars.windows(GENERATED_LEN) {
        let w: String = w.iter().collect();
        if let Some(a) = accounts.iter().find(|a| a.password_matches(&w)) {
            return Some(a.user.clone());
        }
    }
    None
}

fn percent_decode(s: &str) -> String {
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

fn spec(user: &str) -> Value {
    json!({
        "service_id": format!("svc-{user}"),
        "username": user,
        "domain": format!("{user}.example.com"),
        "plan": "basic",
    })
}

fn provision(user: &str) -> Value {
    json!({ "service": spec(user) })
}

fn existing(user: &str) -> Value {
    json!({ "service": { "service_id": format!("svc-{user}"), "remote_id": user } })
}

fn kinds(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    list.iter()
        .map(|(o, k)| (o.to_string(), k.map(String::from)))
        .collect()
}

// ---------------------------------------------------------------- tests

/// createacct takes effect on WHM but the answer never comes within the
/// request timeout: the attempt is `transient`, the task is retried, and the
/// retry finds the account instead of creating it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_createacct_is_retried_and_makes_exactly_one_account() {
    let h = Whm::start(Setup::default()).await;
    h.sim.inject(FaultRule::next(
        "createacct",
        Fault::StallAfterApply(Duration::from_secs(10)),
        1,
    ));
    let svc = h.service("erin").await;
    let task = h.enqueue(svc, "provision", provision("erin")).await;
    let workers = h.workers(1);
    assert_eq!(h.finished(task).await, "succeeded");
    stop(workers).await;

    let attempts = h.attempts(task).await;
    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("transient")), ("succeeded", None)]),
        "{attempts:#?}"
    );
    let first = &attempts[0];
    assert!(
        first.error_message.contains("createacct"),
        "{}",
        first.error_message
    );
    assert!(
        first.wall_us < 6_000_000,
        "the 1.5 s request timeout ended the first attempt, not the 10 s stall: {} µs",
        first.wall_us
    );
    assert_eq!(first.functions(), ["accountsummary", "createacct"]);
    // The password went in the POST body, not the URL.
    let create = first.exchange("createacct");
    assert_eq!(create["method"], "POST");
    // The retry looked and adopted the account.
    assert_eq!(attempts[1].functions(), ["accountsummary"]);

    let (attempt, _, last_error) = h.task_row(task).await;
    assert_eq!(attempt, 2);
    assert_eq!(last_error, None, "a success clears the error");
    assert_eq!(
        h.event_kinds(task).await,
        [
            "task.created",
            "task.retrying",
            "service.updated",
            "task.succeeded"
        ]
    );
    let (state, remote, reason) = h.service_row(svc).await;
    assert_eq!(state, "active");
    assert_eq!(remote.as_deref(), Some("erin"));
    assert_eq!(reason, None);

    assert_eq!(h.sim.count_calls("createacct"), 1, "created exactly once");
    let accounts = h.sim.accounts();
    assert_eq!(accounts.len(), 1);
    assert_eq!(
        (
            accounts[0].user.as_str(),
            accounts[0].domain.as_str(),
            accounts[0].plan.as_str()
        ),
        ("erin", "erin.example.com", "basic")
    );
    assert!(h.sim.request_log().iter().all(|r| r.well_formed()));
    h.assert_nothing_leaked().await;
}

/// A 503 from WHM is transient: retried, and the retry creates the account
/// (the refused createacct changed nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_then_succeeds() {
    let h = Whm::start(Setup::default()).await;
    h.sim
        .inject(FaultRule::next("createacct", Fault::ServerError(503), 1));
    let svc = h.service("frank").await;
    let task = h.enqueue(svc, "provision", provision("frank")).await;
    let workers = h.workers(1);
    assert_eq!(h.finished(task).await, "succeeded");
    stop(workers).await;

    let attempts = h.attempts(task).await;
    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("transient")), ("succeeded", None)]),
        "{attempts:#?}"
    );
    assert!(
        attempts[0].error_message.contains("503"),
        "{}",
        attempts[0].error_message
    );
    assert_eq!(attempts[0].exchange("createacct")["status"], 503);
    assert_eq!(
        attempts[1].functions(),
        ["accountsummary", "createacct"],
        "nothing was made the first time, so the retry creates"
    );
    assert_eq!(h.sim.count_calls("createacct"), 2);
    assert_eq!(h.sim.accounts().len(), 1);
    let (state, remote, _) = h.service_row(svc).await;
    assert_eq!(
        (state.as_str(), remote.as_deref()),
        ("active", Some("frank"))
    );
    h.assert_nothing_leaked().await;
}

/// WHM closes the connection without answering: transient, retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_is_retried_then_succeeds() {
    let h = Whm::start(Setup::default()).await;
    h.sim
        .inject(FaultRule::next("createacct", Fault::ResetConnection, 1));
    let svc = h.service("grace").await;
    let task = h.enqueue(svc, "provision", provision("grace")).await;
    let workers = h.workers(1);
    assert_eq!(h.finished(task).await, "succeeded");
    stop(workers).await;

    let attempts = h.attempts(task).await;
    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("transient")), ("succeeded", None)]),
        "{attempts:#?}"
    );
    assert!(
        attempts[0].error_message.contains("createacct"),
        "{}",
        attempts[0].error_message
    );
    assert_eq!(h.sim.count_calls("createacct"), 2);
    assert_eq!(h.sim.accounts().len(), 1);
    assert!(h.sim.faults().is_empty(), "the reset was used");
    let (state, remote, _) = h.service_row(svc).await;
    assert_eq!(
        (state.as_str(), remote.as_deref()),
        ("active", Some("grace"))
    );
    h.assert_nothing_leaked().await;
}

/// WHM answers with its login page: `auth-failed`, failed after one attempt
/// (a retry cannot fix a refused token), the service shows why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_page_fails_at_once_as_auth_failed() {
    let h = Whm::start(Setup::default()).await;
    h.sim
        .inject(FaultRule::next("accountsummary", Fault::LoginPage, 1));
    let svc = h.service("heidi").await;
    let task = h.enqueue(svc, "provision", provision("heidi")).await;
    let workers = h.workers(1);
    assert_eq!(h.finished(task).await, "failed");
    // A retry would come ~1 s later; give it the chance to (wrongly) happen.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop(workers).await;

    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("auth-failed"))])
    );
    let (attempt, max_attempts, last_error) = h.task_row(task).await;
    assert_eq!(attempt, 1);
    assert!(max_attempts > 1, "failed by policy, not by running out");
    let last_error = last_error.expect("the error is kept");
    assert_eq!(last_error["kind"], "auth-failed");
    assert!(
        last_error["message"]
            .as_str()
            .unwrap()
            .contains("login page"),
        "{last_error}"
    );
    assert_eq!(
        h.event_kinds(task).await,
        ["task.created", "service.updated", "task.failed"]
    );
    let (state, remote, reason) = h.service_row(svc).await;
    assert_eq!(state, "failed");
    assert_eq!(remote, None);
    let reason = reason.expect("a failure reason");
    assert!(
        reason.starts_with("provision failed:") && reason.contains("login page"),
        "{reason}"
    );
    assert_eq!(h.sim.count_calls("accountsummary"), 1, "not retried");
    assert_eq!(h.sim.count_calls("createacct"), 0);
    assert!(h.sim.accounts().is_empty());
    h.assert_nothing_leaked().await;
}

/// The `whm-token` secret holds a wrong token: WHM refuses it (401 with its
/// login page); `auth-failed` at once; neither token is stored anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_fails_at_once_as_auth_failed() {
    let h = Whm::start(Setup {
        token: Some("WRONGTOKEN4F7A2C9E1B8D3".into()),
        ..Setup::default()
    })
    .await;
    let svc = h.service("ivan").await;
    let task = h.enqueue(svc, "provision", provision("ivan")).await;
    let workers = h.workers(1);
    assert_eq!(h.finished(task).await, "failed");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop(workers).await;

    let attempts = h.attempts(task).await;
    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("auth-failed"))])
    );
    assert_eq!(attempts[0].exchange("accountsummary")["status"], 401);
    let (attempt, _, _) = h.task_row(task).await;
    assert_eq!(attempt, 1);
    let (state, _, reason) = h.service_row(svc).await;
    assert_eq!(state, "failed");
    let reason = reason.unwrap();
    assert!(reason.contains("whm-token"), "names the secret: {reason}");
    let log = h.sim.request_log();
    assert_eq!(log.len(), 1, "one request, not retried: {log:#?}");
    assert_eq!(log[0].auth, AuthOutcome::Wrong, "the wrong token was sent");
    assert!(h.sim.accounts().is_empty());
    h.assert_nothing_leaked().await;
}

/// WHM answers in API 0's format: `permanent`, failed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api0_answer_fails_at_once_as_permanent() {
    let h = Whm::start(Setup::default()).await;
    h.sim.inject(FaultRule::next("createacct", Fault::Api0, 1));
    let svc = h.service("judy").await;
    let task = h.enqueue(svc, "provision", provision("judy")).await;
    let workers = h.workers(1);
    assert_eq!(h.finished(task).await, "failed");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop(workers).await;

    let attempts = h.attempts(task).await;
    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("permanent"))])
    );
    assert!(
        attempts[0].error_message.contains("API 0"),
        "{}",
        attempts[0].error_message
    );
    let (attempt, max_attempts, _) = h.task_row(task).await;
    assert_eq!((attempt, max_attempts), (1, 5));
    let (state, _, reason) = h.service_row(svc).await;
    assert_eq!(state, "failed");
    assert!(reason.unwrap().contains("API 0"));
    assert_eq!(h.sim.count_calls("createacct"), 1, "not retried");
    assert!(h.sim.accounts().is_empty());
    h.assert_nothing_leaked().await;
}

/// The other kinds the policy must not retry: `invalid-input` (a reserved
/// username, refused before any call), `conflict` (the account exists with
/// another plan), `not-found` (suspending an account WHM does not have).
/// And a transient error on a later operation is retried like on provision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_conflict_and_not_found_are_not_retried() {
    let h = Whm::start(Setup::default()).await;
    h.sim
        .add_account(Account::new("karl", "karl.example.com").with_plan("pro"))
        .unwrap();
    h.sim
        .add_account(Account::new("lena", "lena.example.com").with_plan("basic"))
        .unwrap();

    let root = h.service("root").await;
    let karl = h.service("karl").await;
    let nobody = h.service("nemo").await;
    let lena = h.service("lena").await;
    let t_invalid = h.enqueue(root, "provision", provision("root")).await;
    let t_conflict = h.enqueue(karl, "provision", provision("karl")).await;
    let t_missing = h
        .enqueue(
            nobody,
            "suspend",
            json!({ "service": { "service_id": "svc-nemo", "remote_id": "nemo" }, "reason": "unpaid" }),
        )
        .await;

    let workers = h.workers(1);
    for (task, want, kind) in [
        (t_invalid, "failed", "invalid-input"),
        (t_conflict, "failed", "conflict"),
        (t_missing, "failed", "not-found"),
    ] {
        assert_eq!(h.finished(task).await, want, "{kind}");
        assert_eq!(
            h.attempt_kinds(task).await,
            kinds(&[("adapter-error", Some(kind))]),
            "{kind}: one attempt, not retried"
        );
    }
    // Only now (so that nemo's suspend cannot meet it): a 502 on the next
    // suspendacct.
    h.sim
        .inject(FaultRule::next("suspendacct", Fault::ServerError(502), 1));
    let mut suspend = existing("lena");
    suspend["reason"] = json!("unpaid");
    let t_suspend = h.enqueue(lena, "suspend", suspend).await;
    assert_eq!(h.finished(t_suspend).await, "succeeded");
    stop(workers).await;
    assert_eq!(
        h.attempt_kinds(t_suspend).await,
        kinds(&[("adapter-error", Some("transient")), ("succeeded", None)])
    );
    assert_eq!(h.sim.count_calls("suspendacct"), 3, "nemo once, lena twice");
    assert!(h.sim.account("lena").unwrap().suspended);

    let (state, _, reason) = h.service_row(root).await;
    assert_eq!(state, "failed");
    assert!(reason.unwrap().contains("root"));
    let (state, _, reason) = h.service_row(karl).await;
    assert_eq!(state, "failed");
    assert!(reason.unwrap().contains("plan"));
    assert_eq!(h.sim.count_calls("createacct"), 0);
    assert_eq!(h.sim.account("karl").unwrap().plan, "pro", "untouched");
    h.assert_nothing_leaked().await;
}

/// A whole lifecycle with faults along the way, then the secrecy checks:
/// the token is in no table (attempt logs, http records, errors, task
/// input/result/last_error, events, services ...), in no log line the
/// worker wrote, and the generated password is in no URL and nowhere
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_and_the_generated_password_never_leak() {
    let h = Whm::start(Setup::default()).await;
    h.sim.inject(FaultRule::next(
        "createacct",
        Fault::StallAfterApply(Duration::from_secs(10)),
        1,
    ));
    h.sim
        .inject(FaultRule::next("unsuspendacct", Fault::ResetConnection, 1));
    h.sim
        .inject(FaultRule::next("removeacct", Fault::ServerError(503), 1));
    let svc = h.service("mallory").await;
    let workers = h.workers(2);
    let mut tasks = vec![h.enqueue(svc, "provision", provision("mallory")).await];
    for (op, input) in [
        ("suspend", {
            let mut i = existing("mallory");
            i["reason"] = json!("unpaid");
            i
        }),
        ("unsuspend", existing("mallory")),
        ("status", existing("mallory")),
        ("usage", existing("mallory")),
        ("login-url", existing("mallory")),
        ("test-connection", json!({})),
    ] {
        tasks.push(h.enqueue(svc, op, input).await);
    }
    for &t in &tasks {
        assert_eq!(
            h.finished(t).await,
            "succeeded",
            "{:#?}",
            h.attempts(t).await
        );
    }
    // The account holds the generated password now: look for it (and the
    // token) everywhere.
    assert_eq!(h.sim.accounts().len(), 1);
    let create = h.attempts(tasks[0]).await[0].exchange("createacct");
    assert_eq!(create["method"], "POST");
    assert!(
        create["bytes_sent"].as_u64().unwrap() > 0,
        "createacct had a body (where the password goes): {create}"
    );
    h.assert_nothing_leaked().await;

    let t = h.enqueue(svc, "terminate", existing("mallory")).await;
    assert_eq!(h.finished(t).await, "succeeded");
    stop(workers).await;
    let retried: i64 =
        sqlx::query_scalar("SELECT count(*) FROM task_attempts WHERE error_kind = 'transient'")
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(retried, 3, "the three faults were met and retried");
    assert_eq!(h.sim.count_calls("createacct"), 1);
    assert!(h.sim.accounts().is_empty(), "terminated");
    assert_eq!(h.service_row(svc).await.0, "terminated");
    h.assert_nothing_leaked().await;

    // The checks do catch a leak: a known password on an account, then it
    // and the token planted in an event and a recorded URL.
    let planted = "Planted-Pw-2345678901234";
    assert_eq!(planted.len(), GENERATED_LEN);
    h.sim
        .add_account(Account::new("oscar", "oscar.example.com").with_password(planted))
        .unwrap();
    sqlx::query("INSERT INTO events (tenant_id, kind, payload) VALUES ($1, 'test.planted', $2)")
        .bind(h.tenant)
        .bind(json!({ "note": format!("x{}y", h.sim.token()) }))
        .execute(&h.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE task_attempts SET http = jsonb_build_array(jsonb_build_object('url', $1::text))
         WHERE task_id = $2 AND attempt = 1",
    )
    .bind(format!(
        "{}/json-api/passwd?api.version=1&user=oscar&password={}",
        h.sim.base_url(),
        planted.replace('-', "%2D")
    ))
    .bind(t)
    .execute(&h.pool)
    .await
    .unwrap();
    let found = h.leaks(&h.dump().await, "");
    assert!(
        found.iter().any(|f| f.contains("token is in events")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("a password parameter in a URL")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("password of `oscar` is in an attempt's http URL")),
        "{found:#?}"
    );
}
