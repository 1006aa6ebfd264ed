//! Everyday actions over the REST API (`PANEL1_URL`, `PANEL1_API_KEY`).
use super::{EXIT_ADAPTER_ERROR, EXIT_OK, EXIT_USAGE};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Instant;

#[derive(Args, Clone)]
pub struct Conn {
    /// Base URL of the Panel1 API.
    #[arg(
        long,
        env = "PANEL1_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// API key (`p1_…`).
    #[arg(long, env = "PANEL1_API_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
}

impl Conn {
    pub fn new(url: impl Into<String>, key: impl Into<String>) -> Conn {
        Conn {
            url: url.into(),
            key: Some(key.into()),
        }
    }
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (platform key); prints its admin key once.
    Create { name: String },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key in your tenant (admin key); prints it once.
    Create {
        name: String,
        /// admin, write or read (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Store a secret; the value is read from standard input.
    Set { name: String },
}

#[derive(Subcommand)]
pub enum ServerCommand {
    /// Connect a server.
    Add {
        name: String,
        #[arg(long)]
        adapter_version: String,
        /// Config entry `key=value`; numbers and true/false are sent as JSON
        /// numbers and booleans, `key='"007"'` forces a string (repeatable).
        #[arg(long = "config")]
        config: Vec<String>,
        /// Egress rule, e.g. `https://whm.example.com:2087/json-api/`; append
        /// ` sha256:<hex>` to pin a self-signed certificate (repeatable).
        #[arg(long = "egress")]
        egress: Vec<String>,
        /// Bind a secret: `name@host[:port]` (repeatable).
        #[arg(long = "secret")]
        secrets: Vec<String>,
        #[arg(long, default_value_t = 4)]
        max_concurrency: i32,
        /// Keep each attempt's HTTP exchanges (secrets as placeholders,
        /// bodies capped, 14 days) for shadow runs of candidate versions.
        #[arg(long)]
        record_exchanges: bool,
    },
    /// Change a server (ID): only what is given changes. `--config` entries
    /// are merged into the current config; `--egress` and `--secret` each
    /// replace the whole list. Applies to attempts that start after it.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Another version of the same adapter.
        #[arg(long)]
        adapter_version: Option<String>,
        /// Config entry `key=value` to set (repeatable).
        #[arg(long = "config")]
        config: Vec<String>,
        /// The new egress rules (repeatable; replaces them all).
        #[arg(long = "egress")]
        egress: Vec<String>,
        /// Remove every egress rule: no network at all.
        #[arg(long, conflicts_with = "egress")]
        no_egress: bool,
        /// The new secret bindings `name@host[:port]` (repeatable; replaces them all).
        #[arg(long = "secret")]
        secrets: Vec<String>,
        #[arg(long)]
        max_concurrency: Option<i32>,
        /// Start (true) or stop (false) recording exchanges for shadow runs.
        #[arg(long)]
        record_exchanges: Option<bool>,
    },
}

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Create a service (enqueues provision) and watch it.
    Create {
        #[arg(long)]
        server: String,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        /// Return at once instead of watching the task.
        #[arg(long)]
        no_wait: bool,
    },
    Suspend {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        no_wait: bool,
    },
    Unsuspend {
        id: String,
        #[arg(long)]
        no_wait: bool,
    },
    Terminate {
        id: String,
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Follow a task's events until it ends; exit 0 if it succeeded.
    Watch { id: String },
}

pub struct Client {
    http: reqwest::Client,
    conn: Conn,
}

impl Client {
    pub fn new(conn: Conn) -> Client {
        Client {
            http: reqwest::Client::new(),
            conn,
        }
    }

    fn key(&self) -> Result<&str> {
        self.conn
            .key
            .as_deref()
            .ok_or_else(|| anyhow!("set PANEL1_API_KEY (or --key) to an API key"))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = req
            .bearer_auth(self.key()?)
            .send()
            .await
            .with_context(|| format!("cannot reach the Panel1 API at {}", self.conn.url))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let detail = body["detail"].as_str().unwrap_or("no detail");
            let mut msg = format!("{status}: {detail}");
            for e in body["errors"].as_array().into_iter().flatten() {
                msg.push_str(&format!("\n  {}: {}", e["field"], e["message"]));
            }
            bail!(msg);
        }
        Ok(body)
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let req = self
            .http
            .post(format!("{}{path}", self.conn.url))
            .json(&body);
        self.send(req).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Result<Value> {
        let req = self
            .http
            .patch(format!("{}{path}", self.conn.url))
            .json(&body);
        self.send(req).await
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.conn.url)))
            .await
    }

    pub async fn push_adapter(
        &self,
        file: &str,
        name: &str,
        version: &str,
        candidate: bool,
    ) -> Result<Value> {
        let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
        let candidate = if candidate { "true" } else { "false" };
        let req = self
            .http
            .post(format!("{}/v1/adapters", self.conn.url))
            .query(&[
                ("name", name),
                ("version", version),
                ("candidate", candidate),
            ])
            .header("content-type", "application/wasm")
            .body(bytes);
        self.send(req).await
    }

    /// Follow a task over SSE, printing each step; returns its final state.
    pub async fn watch(&self, task: &str) -> Result<String> {
        let end = self.follow(task).await?;
        if let Some(a) = end.detail["attempts"].as_array().and_then(|a| a.last()) {
            eprintln!(
                "  sandbox: {} fuel, {} µs, {} bytes peak memory, {} HTTP requests",
                a["fuel"], a["wall_us"], a["peak_memory"], a["http_requests"]
            );
        }
        Ok(end.state)
    }

    /// Follow a task's events until it ends, printing each one; returns its
    /// final state and the task as the API shows it then (with attempts).
    pub async fn follow(&self, task: &str) -> Result<TaskEnd> {
        let started = Instant::now();
        let resp = self
            .http
            .get(format!("{}/v1/events", self.conn.url))
            .query(&[("task_id", task)])
            .bearer_auth(self.key()?)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("watching task {task}: {}", resp.status());
        }
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(chunk) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                    continue;
                };
                let event: Value = serde_json::from_str(data.trim())?;
                let kind = event["kind"].as_str().unwrap_or("");
                eprintln!(
                    "  {:>7.2}s  {kind:<18} {}",
                    started.elapsed().as_secs_f64(),
                    summary(&event["payload"])
                );
                let end = match kind {
                    "task.succeeded" => Some("succeeded"),
                    "task.failed" => Some("failed"),
                    "task.cancelled" => Some("cancelled"),
                    _ => None,
                };
                if let Some(state) = end {
                    let detail = self.get(&format!("/v1/tasks/{task}")).await?;
                    return Ok(TaskEnd {
                        state: state.to_string(),
                        detail,
                    });
                }
            }
        }
        bail!("the event stream ended before the task did")
    }
}

/// How a followed task ended.
pub struct TaskEnd {
    /// `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// `GET /v1/tasks/{id}` at the end: result, error, attempts and metrics.
    pub detail: Value,
}

/// `--config port=2087` is a number, `tls=true` a boolean, `"2087"` (JSON
/// quoted) or anything else a string: config schemas type their settings.
fn config_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::String(_))) => v,
        _ => Value::String(text.to_string()),
    }
}

fn summary(payload: &Value) -> String {
    let mut parts = Vec::new();
    for k in ["state", "attempt", "error_kind", "message", "retry_at"] {
        if let Some(v) = payload.get(k).filter(|v| !v.is_null()) {
            parts.push(format!(
                "{k}={}",
                v.as_str().map_or(v.to_string(), String::from)
            ));
        }
    }
    parts.join(" ")
}

pub(super) fn print(v: &Value) {
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    );
}

/// Print `result`, then watch its task unless told not to.
async fn task_result(c: &Client, result: Value, no_wait: bool) -> Result<u8> {
    print(&result);
    let task = result["task"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if no_wait || task.is_empty() {
        return Ok(EXIT_OK);
    }
    Ok(match c.watch(&task).await?.as_str() {
        "succeeded" => EXIT_OK,
        _ => EXIT_ADAPTER_ERROR,
    })
}

pub(super) fn exit(r: Result<u8>) -> u8 {
    r.unwrap_or_else(|e| {
        eprintln!("panel1: {e:#}");
        EXIT_USAGE
    })
}

pub async fn tenant(conn: Conn, cmd: TenantCommand) -> u8 {
    let c = Client::new(conn);
    exit(
        async {
            let TenantCommand::Create { name } = cmd;
            print(&c.post("/v1/tenants", json!({ "name": name })).await?);
            Ok(EXIT_OK)
        }
        .await,
    )
}

pub async fn key(conn: Conn, cmd: KeyCommand) -> u8 {
    let c = Client::new(conn);
    exit(
        async {
            let KeyCommand::Create { name, scopes } = cmd;
            print(
                &c.post("/v1/keys", json!({ "name": name, "scopes": scopes }))
                    .await?,
            );
            Ok(EXIT_OK)
        }
        .await,
    )
}

pub async fn secret(conn: Conn, cmd: SecretCommand) -> u8 {
    let c = Client::new(conn);
    exit(
        async {
            let SecretCommand::Set { name } = cmd;
            let mut value = String::new();
            std::io::stdin().read_line(&mut value)?;
            let value = value.trim_end_matches(['\n', '\r']);
            print(
                &c.post("/v1/secrets", json!({ "name": name, "value": value }))
                    .await?,
            );
            Ok(EXIT_OK)
        }
        .await,
    )
}

pub async fn server(conn: Conn, cmd: ServerCommand) -> u8 {
    let c = Client::new(conn);
    exit(
        async {
            match cmd {
                ServerCommand::Add {
                    name,
                    adapter_version,
                    config,
                    egress,
                    secrets,
                    max_concurrency,
                    record_exchanges,
                } => {
                    let body = json!({
                        "name": name, "adapter_version_id": adapter_version,
                        "config": config_entries(serde_json::Map::new(), config)?,
                        "egress": egress, "secrets": secret_bindings(secrets)?,
                        "max_concurrency": max_concurrency, "record_exchanges": record_exchanges,
                    });
                    print(&c.post("/v1/servers", body).await?);
                }
                ServerCommand::Update {
                    id,
                    name,
                    adapter_version,
                    config,
                    egress,
                    no_egress,
                    secrets,
                    max_concurrency,
                    record_exchanges,
                } => {
                    let path = format!("/v1/servers/{id}");
                    let mut body = serde_json::Map::new();
                    if !config.is_empty() {
                        let current = c.get(&path).await?;
                        let current = current["config"].as_object().cloned().unwrap_or_default();
                        body.insert("config".into(), config_entries(current, config)?);
                    }
                    if !egress.is_empty() || no_egress {
                        body.insert("egress".into(), json!(egress));
                    }
                    if !secrets.is_empty() {
                        body.insert("secrets".into(), secret_bindings(secrets)?);
                    }
                    let given = [
                        ("name", name.map(Value::from)),
                        ("adapter_version_id", adapter_version.map(Value::from)),
                        ("max_concurrency", max_concurrency.map(Value::from)),
                        ("record_exchanges", record_exchanges.map(Value::from)),
                    ];
                    for (k, v) in given {
                        if let Some(v) = v {
                            body.insert(k.into(), v);
                        }
                    }
                    if body.is_empty() {
                        bail!("nothing to change: give at least one option (see --help)");
                    }
                    print(&c.patch(&path, Value::Object(body)).await?);
                }
            }
            Ok(EXIT_OK)
        }
        .await,
    )
}

/// `key=value` entries set into `cfg`.
fn config_entries(mut cfg: serde_json::Map<String, Value>, entries: Vec<String>) -> Result<Value> {
    for kv in entries {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--config wants key=value, got {kv:?}"))?;
        cfg.insert(k.to_string(), config_value(v));
    }
    Ok(Value::Object(cfg))
}

/// `name@host[:port]` bindings.
fn secret_bindings(secrets: Vec<String>) -> Result<Value> {
    let mut bound = Vec::new();
    for s in secrets {
        let (n, d) = s
            .split_once('@')
            .ok_or_else(|| anyhow!("--secret wants name@host[:port], got {s:?}"))?;
        bound.push(json!({ "name": n, "destinations": [d] }));
    }
    Ok(Value::Array(bound))
}

pub async fn service(conn: Conn, cmd: ServiceCommand) -> u8 {
    let c = Client::new(conn);
    exit(async {
        match cmd {
            ServiceCommand::Create { server, username, domain, plan, no_wait } => {
                let body = json!({ "server_id": server, "username": username, "domain": domain, "plan": plan });
                let r = c.post("/v1/services", body).await?;
                task_result(&c, r, no_wait).await
            }
            ServiceCommand::Suspend { id, reason, no_wait } => {
                let r = c.post(&format!("/v1/services/{id}/suspend"), json!({ "reason": reason.unwrap_or_default() })).await?;
                task_result(&c, r, no_wait).await
            }
            ServiceCommand::Unsuspend { id, no_wait } => {
                let r = c.post(&format!("/v1/services/{id}/unsuspend"), json!({})).await?;
                task_result(&c, r, no_wait).await
            }
            ServiceCommand::Terminate { id, no_wait } => {
                let r = c.post(&format!("/v1/services/{id}/terminate"), json!({})).await?;
                task_result(&c, r, no_wait).await
            }
        }
    }
    .await)
}

pub async fn task(conn: Conn, cmd: TaskCommand) -> u8 {
    let c = Client::new(conn);
    exit(
        async {
            let TaskCommand::Watch { id } = cmd;
            Ok(match c.watch(&id).await?.as_str() {
                "succeeded" => EXIT_OK,
                _ => EXIT_ADAPTER_ERROR,
            })
        }
        .await,
    )
}

pub async fn push(conn: Conn, file: String, name: String, version: String, candidate: bool) -> u8 {
    let c = Client::new(conn);
    exit(
        async {
            print(&c.push_adapter(&file, &name, &version, candidate).await?);
            Ok(EXIT_OK)
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::config_value;
    use serde_json::json;

    #[test]
    fn config_values_are_typed() {
        assert_eq!(config_value("2087"), json!(2087));
        assert_eq!(config_value("true"), json!(true));
        assert_eq!(config_value("whm.example.com"), json!("whm.example.com"));
        assert_eq!(config_value("\"2087\""), json!("2087"));
        assert_eq!(config_value("[1]"), json!("[1]"));
        assert_eq!(config_value(""), json!(""));
    }
}
