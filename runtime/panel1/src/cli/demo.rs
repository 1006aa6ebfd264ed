//! `panel1 demo`: Panel1 (as `serve` runs it, embedded Postgres by default)
//! and simulated provider servers in one process, driven over the REST API
//! like a billing system would: tenant, secret, server with a pinned
//! certificate, then provision → suspend → unsuspend → terminate of one
//! service, each followed live, timed, and shown with its sandbox metrics;
//! on cPanel/WHM, Plesk, Docker and Kubernetes (`--provider` picks one); on
//! WHM also a bulk suspend of ten services with its live progress bar. Each run ends by
//! checking the simulator's request log against the provider's official
//! description.
use super::client::{Client, Conn, TaskEnd};
use super::demo_sims::{DemoProvider, DemoSim};
use super::demo_webhooks::Receiver;
use super::serve::{self, Database};
use super::{EXIT_ADAPTER_ERROR, EXIT_OK, EXIT_USAGE};
use crate::serve_config::ServeConfig;
use anyhow::{bail, Context, Result};
use clap::Args;
use panel1_api::Scope;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DemoArgs {
    /// TOML configuration file, as for `serve` (environment variables override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the built adapter components are (`<name>.wasm`).
    #[arg(long, default_value = "adapters/dist")]
    adapters_dir: PathBuf,
    /// Which provider to run the lifecycle on.
    #[arg(long, value_enum, default_value = "all")]
    provider: DemoProvider,
}

/// One watched step of the demo.
struct Step {
    name: &'static str,
    end: TaskEnd,
    took: Duration,
}

pub async fn run(args: DemoArgs) -> u8 {
    match demo(args).await {
        Ok(true) => EXIT_OK,
        Ok(false) => EXIT_ADAPTER_ERROR,
        Err(e) => {
            eprintln!("panel1 demo: {e:#}");
            EXIT_USAGE
        }
    }
}

async fn demo(args: DemoArgs) -> Result<bool> {
    let mut cfg = ServeConfig::load(args.config.as_deref())?;
    // Beside a `panel1 serve` that may hold 8080: any free port.
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    // The demo's billing system receives its webhooks on loopback, over
    // plain HTTP: allowed for this run only.
    cfg.webhook_allow_internal = true;
    cfg.webhook_allow_http = true;
    // The providers' adapters, plus whatever the configuration names.
    let mut builtins = match &cfg.builtin_adapters_dir {
        Some(dir) => serve::components_in(dir)?,
        None => Vec::new(),
    };
    let mut versions = Vec::new();
    for provider in args.provider.each() {
        let path = args
            .adapters_dir
            .join(format!("{}.wasm", provider.adapter()));
        let component = std::fs::read(&path).with_context(|| {
            format!(
                "reading {} (build the adapters first: `just adapters`)",
                path.display()
            )
        })?;
        versions.push((
            provider,
            hex::encode(Sha256::digest(&component))[..12].to_string(),
        ));
        if !builtins.iter().any(|b| b.file_name() == path.file_name()) {
            builtins.push(path);
        }
    }

    let db = Database::open(&cfg).await?;
    let outcome = async {
        let running = serve::start(&cfg, db.url(), &builtins).await?;
        // A platform key for this run only, revoked at the end.
        let (key_id, key) =
            panel1_api::create_key(&running.pool, None, "demo", &[Scope::Platform]).await?;
        let url = format!("http://{}", running.addr);
        let mut all_ok = Ok(true);
        for (provider, version) in &versions {
            let sim = DemoSim::start(*provider).await?;
            println!();
            println!(
                "{} simulator on {} (self-signed certificate sha256:{})",
                sim.label(),
                sim.base_url(),
                sim.cert_sha256()
            );
            let result = drive(&url, &key, &sim, provider.adapter(), version, &cfg.data_dir).await;
            sim.shutdown().await;
            all_ok = match (all_ok, result) {
                (Ok(a), Ok(b)) => Ok(a && b),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            if all_ok.is_err() {
                break;
            }
        }
        sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1")
            .bind(key_id)
            .execute(&running.pool)
            .await?;
        running.stop().await?;
        all_ok
    }
    .await;
    db.close().await;
    outcome
}

/// The demo proper, over the REST API only.
async fn drive(
    url: &str,
    platform_key: &str,
    sim: &DemoSim,
    adapter: &str,
    adapter_version: &str,
    data_dir: &Path,
) -> Result<bool> {
    let platform = Client::new(Conn::new(url, platform_key));
    // Unique per run: a data directory keeps earlier runs' tenants.
    let run_id: u32 = rand::random_range(100_000..1_000_000);
    let tenant = platform
        .post("/v1/tenants", json!({ "name": format!("demo-{run_id}") }))
        .await?;
    let api = Client::new(Conn::new(
        url,
        tenant["admin_key"]["key"].as_str().unwrap_or_default(),
    ));
    println!(
        "tenant {} ({})",
        tenant["tenant"]["name"].as_str().unwrap_or(""),
        tenant["tenant"]["id"].as_str().unwrap_or("")
    );

    let version_id = wait_until_ready(&api, adapter, adapter_version).await?;
    println!("built-in adapter {adapter} {adapter_version} is ready ({version_id})");

    // The credential goes in once, write-only; the adapter only ever holds a placeholder.
    let (secret_name, secret_value) = sim.secret();
    api.post(
        "/v1/secrets",
        json!({ "name": secret_name, "value": secret_value }),
    )
    .await?;
    let port = sim.port();
    let server = api.post("/v1/servers", sim.server(&version_id)).await?;
    let server_id = server["id"].as_str().unwrap_or_default().to_string();
    println!(
        "server {} ({server_id}): certificate pinned, {secret_name} bound to 127.0.0.1:{port}",
        server["name"].as_str().unwrap_or("")
    );

    // A billing system's endpoint: every service change, signed.
    let receiver = Receiver::start().await?;
    let hook = api
        .post(
            "/v1/webhooks",
            json!({"url": receiver.url(), "event_types": ["service.updated", "server.*"]}),
        )
        .await?;
    let hook_id = hook["id"].as_str().unwrap_or_default().to_string();
    let secret = api.get(&format!("/v1/webhooks/{hook_id}/secret")).await?;
    receiver.set_secret(secret["secret"].as_str().unwrap_or_default());

    let user = format!("demo{run_id}");
    let mut steps = Vec::new();
    let test = api
        .post(
            &format!("/v1/servers/{server_id}/test-connection"),
            json!({}),
        )
        .await?;
    steps.push(step(&api, "test-connection", &test["id"]).await?);
    let created = api
        .post("/v1/services", sim.service_body(&server_id, &user))
        .await?;
    let service = created["service"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    steps.push(step(&api, "provision", &created["task"]["id"]).await?);
    for (name, body) in [
        ("suspend", json!({ "reason": "Demo: invoice overdue" })),
        ("unsuspend", json!({})),
        ("terminate", json!({})),
    ] {
        if steps.iter().any(|s| s.end.state != "succeeded") {
            break;
        }
        let r = api
            .post(&format!("/v1/services/{service}/{name}"), body)
            .await?;
        steps.push(step(&api, name, &r["task"]["id"]).await?);
    }
    let final_service = api.get(&format!("/v1/services/{service}")).await?;

    print_table(&steps);
    println!(
        "service {service}: {} (the {} now has {} account(s))",
        final_service["state"].as_str().unwrap_or("?"),
        sim.label(),
        sim.accounts()
    );
    let all_ok = steps.iter().all(|s| s.end.state == "succeeded") && steps.len() == 5;
    // What the API showed (tasks with attempts, their logs and HTTP records,
    // the server) must not hold the credential anywhere.
    let server_now = api.get(&format!("/v1/servers/{server_id}")).await?;
    let mut shown = server_now.to_string() + &final_service.to_string();
    for s in &steps {
        shown.push_str(&s.end.detail.to_string());
    }
    let token_hidden = !appears(&shown, secret_value);
    let webhooks_ok = report_webhooks(receiver, 4).await;
    let drift_ok = show_drift(&api, sim, &server_id, run_id).await?;
    let healthy = show_health(&api, &server_id).await?;
    // The bulk step runs where the simulator shows suspensions (WHM).
    let bulk_ok = if sim.suspended_accounts().is_some() && all_ok {
        super::demo_bulk::show_bulk(&api, sim, &server_id, run_id).await?
    } else {
        true
    };
    println!(
        "the {} {} in the API's answers (tasks, attempts, logs, HTTP records, server)",
        match secret_name {
            "whm-token" => "WHM token",
            "plesk-api-key" => "Plesk API key",
            "kubernetes-token" => "Kubernetes service account token",
            _ => "Docker client identity",
        },
        if token_hidden {
            "appears nowhere"
        } else {
            "LEAKED"
        }
    );
    Ok(check_request_log(sim, data_dir)?
        && all_ok
        && token_hidden
        && webhooks_ok
        && drift_ok
        && healthy
        && bulk_ok)
}

/// The server's health as the workers' recurring check sees it (10 s at
/// most for the first check).
async fn show_health(api: &Client, server_id: &str) -> Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let h = loop {
        let h = api.get(&format!("/v1/servers/{server_id}/health")).await?;
        if h["state"] != "unknown" || Instant::now() > deadline {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "server health: {} (a worker's recurring test-connection, {} ms; next check {})",
        h["state"].as_str().unwrap_or("?"),
        h["last_latency_ms"],
        h["next_check_at"].as_str().unwrap_or("?")
    );
    Ok(h["state"] == "healthy")
}

/// An account created on the provider behind Panel1's back, then a sync of
/// the server: the drift report names it (on WHM; other providers skip).
async fn show_drift(api: &Client, sim: &DemoSim, server_id: &str, run_id: u32) -> Result<bool> {
    let outsider = format!("out{run_id}");
    if !sim.add_outside_account(&outsider)? {
        return Ok(true);
    }
    println!(
        "▶ sync (account {outsider} created on the {} behind Panel1's back)",
        sim.label()
    );
    let run = api
        .post(&format!("/v1/servers/{server_id}/sync"), json!({}))
        .await?;
    let run_id = run["id"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        let r = api.get(&format!("/v1/sync-runs/{run_id}")).await?;
        if r["state"] != "running" || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let drift = api.get(&format!("/v1/sync-runs/{run_id}/drift")).await?;
    println!(
        "sync {}: {} remote account(s), drift: {}",
        run["state"].as_str().unwrap_or("?"),
        run["remote_accounts"],
        drift["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| format!(
                "{} {}",
                d["kind"].as_str().unwrap_or("?"),
                d["remote_id"].as_str().unwrap_or("")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(run["state"] == "completed"
        && drift["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["kind"] == "unknown_remotely" && d["remote_id"] == outsider.as_str()))
}

/// Wait (10 s at most) for the lifecycle's `service.updated` deliveries and
/// show what the receiver verified.
async fn report_webhooks(receiver: Receiver, want: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = receiver.received();
    while got.iter().filter(|r| r.kind == "service.updated").count() < want
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = receiver.received();
    }
    receiver.stop();
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for r in &got {
        match kinds.iter_mut().find(|(k, _)| *k == r.kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((r.kind.clone(), 1)),
        }
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    let verified = got.iter().all(|r| r.verified);
    let enough = got.iter().filter(|r| r.kind == "service.updated").count() >= want;
    println!(
        "webhooks: {} deliveries ({}), {}",
        got.len(),
        kinds.join(", "),
        if verified {
            "every signature verified by the receiver (Standard Webhooks, HMAC-SHA256)"
        } else {
            "a signature FAILED verification"
        }
    );
    if let Some(first) = got.first() {
        println!("  e.g. webhook-id {} ({})", first.id, first.kind);
    }
    verified && enough
}

/// Whether a secret shows in `text`: the value, or for a PEM any line of
/// its body (the key material).
fn appears(text: &str, secret: &str) -> bool {
    if secret.contains('\n') {
        secret
            .lines()
            .filter(|l| l.len() > 20 && !l.starts_with("-----"))
            .any(|l| text.contains(l))
    } else {
        text.contains(secret)
    }
}

/// Wait for the workers to inspect the built-in version (`info` in the sandbox).
async fn wait_until_ready(api: &Client, adapter: &str, version: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = api
            .get(&format!("/v1/adapters?name={adapter}&limit=100"))
            .await?;
        let found = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["version"] == version && v["builtin"] == true);
        match found {
            Some(v) if v["status"] == "ready" => {
                return Ok(v["id"].as_str().unwrap_or_default().to_string())
            }
            Some(v) if v["status"] == "rejected" => {
                bail!("the {adapter} adapter was rejected: {}", v["rejection"])
            }
            None => bail!("the built-in {adapter} adapter {version} is not installed"),
            _ if Instant::now() > deadline => {
                bail!("the {adapter} adapter was not inspected within 60 s (are workers running?)")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn step(api: &Client, name: &'static str, task: &Value) -> Result<Step> {
    let task = task
        .as_str()
        .context("the API answered without a task id")?;
    println!("▶ {name}");
    let started = Instant::now();
    let end = api.follow(task).await?;
    Ok(Step {
        name,
        end,
        took: started.elapsed(),
    })
}

fn print_table(steps: &[Step]) {
    println!();
    println!(
        "{:<16} {:<10} {:>9} {:>8} {:>12} {:>10} {:>11} {:>5}",
        "step", "result", "took", "attempts", "fuel", "sandbox", "peak mem", "http"
    );
    for s in steps {
        let last = s.end.detail["attempts"]
            .as_array()
            .and_then(|a| a.last())
            .cloned()
            .unwrap_or(Value::Null);
        println!(
            "{:<16} {:<10} {:>7.0}ms {:>8} {:>12} {:>8.1}ms {:>9}KiB {:>5}",
            s.name,
            s.end.state,
            s.took.as_secs_f64() * 1e3,
            s.end.detail["attempt"],
            last["fuel"].as_i64().unwrap_or(0),
            last["wall_us"].as_i64().unwrap_or(0) as f64 / 1e3,
            last["peak_memory"].as_i64().unwrap_or(0) / 1024,
            last["http_requests"].as_i64().unwrap_or(0),
        );
        if s.end.state != "succeeded" {
            println!("    error: {}", s.end.detail["last_error"]);
        }
    }
    println!(
        "(took: request to final event; sandbox: the last attempt's wall time in the sandbox)"
    );
}

/// Every request the simulated server received, written next to the data
/// and judged against the provider's official description.
fn check_request_log(sim: &DemoSim, data_dir: &Path) -> Result<bool> {
    let log = sim.request_log();
    let file = sim.log_file(data_dir);
    sim.write_log(&file)?;
    println!();
    println!("{} request log ({}):", sim.label(), file.display());
    for r in &log {
        let mark = if r.well_formed() { "✓" } else { "✗" };
        println!("  {mark} {}", sim.describe(r));
    }
    let bad = log.iter().filter(|r| !r.well_formed()).count();
    if bad == 0 {
        println!("{} calls, all {}", log.len(), sim.well_formed_means());
    } else {
        println!("{bad} of {} calls were not well-formed", log.len());
    }
    Ok(bad == 0 && !log.is_empty())
}
