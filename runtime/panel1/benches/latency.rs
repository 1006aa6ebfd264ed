//! Latency a user sees (issue 25, docs/benchmarks.md): from
//! `POST /v1/services/{id}/suspend` (or unsuspend) to that task's final
//! event on an SSE stream opened beforehand (as the console keeps one
//! open), against the WHM simulator on 127.0.0.1 with the real
//! `cpanel.wasm`, the API and one worker in this process configured as
//! `panel1 serve` configures them. Serially (one service, suspend and
//! unsuspend in turn) and with 50 services in flight.
//!
//! Each operation is split into stages from the client's clock and the
//! database's (one machine, one wall clock):
//! - api: the request until the enqueue statement ran (`created_at`),
//! - commit + 202: from there to the 202 at the client,
//! - pickup: enqueue until the worker started the attempt,
//! - sandbox: the adapter call (the attempt's `wall_us`),
//! - to completion: the call's end until the completion transaction began,
//! - to event: the completion until the final event reached the client.
//!
//! The `floor` row is one durable commit alone; the path has three (the
//! enqueue, the claim, the completion), so on a machine whose commits are
//! slow that is where the time goes.
//!
//! `LATENCY_BENCH_ROUNDS` (serial operations, default 400) and
//! `LATENCY_BENCH_INFLIGHT` (default 50) change the load;
//! `LATENCY_BENCH_TRACE=mark=info,sqlx::query=debug` prints a timeline on
//! stderr: the client's marks beside every statement and how long it took.
#[path = "../../worker/tests/common/mod.rs"]
mod common;
#[path = "support/fleet.rs"]
mod fleet;

use chrono::{DateTime, Utc};
use common::stop;
use fleet::{block_on, env_or, fleet, pct, Api};
use futures::StreamExt;
use panel1_api::Scope;
use panel1_sandbox::{Sandbox, SandboxConfig};
use panel1_sims::Account;
use panel1_worker::{Worker, WorkerConfig};
use serde_json::Value;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Final events by task id: the waiting operation is told when its arrives.
#[derive(Default)]
struct Waiters {
    waiting: HashMap<Uuid, oneshot::Sender<DateTime<Utc>>>,
    /// Final events that came before their waiter registered.
    early: HashMap<Uuid, DateTime<Utc>>,
}

/// One operation's clock readings.
struct Timing {
    task: Uuid,
    sent: DateTime<Utc>,
    replied: DateTime<Utc>,
    ended: DateTime<Utc>,
}

/// The stages of one operation, in milliseconds.
struct Stages {
    total: f64,
    api: f64,
    reply: f64,
    pickup: f64,
    sandbox: f64,
    to_completion: f64,
    to_event: f64,
}

fn ms(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

/// One SSE stream of `task.` events for the whole run, routing final
/// events to whoever waits for that task.
async fn open_stream(base: &str, key: &str, waiters: Arc<Mutex<Waiters>>) {
    let resp = reqwest::Client::new()
        .get(format!("{base}/v1/events?kind=task."))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    tokio::spawn(async move {
        let mut body = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let at = Utc::now();
                tracing::info!(target: "mark", "SSE BLOCK");
                let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                    continue;
                };
                let e: Value = serde_json::from_str(data.trim()).unwrap();
                let kind = e["kind"].as_str().unwrap_or("");
                if !matches!(kind, "task.succeeded" | "task.failed" | "task.cancelled") {
                    continue;
                }
                assert_eq!(kind, "task.succeeded", "{e}");
                let task: Uuid = e["task_id"].as_str().unwrap().parse().unwrap();
                let mut w = waiters.lock().unwrap();
                match w.waiting.remove(&task) {
                    Some(tx) => {
                        let _ = tx.send(at);
                    }
                    None => {
                        w.early.insert(task, at);
                    }
                }
            }
        }
    });
}

/// POST one operation on `service` and wait for its final event.
async fn operate(
    http: &reqwest::Client,
    api: &(String, String),
    waiters: &Arc<Mutex<Waiters>>,
    service: Uuid,
    op: &str,
) -> Timing {
    let sent = Utc::now();
    tracing::info!(target: "mark", "SEND {op}");
    let resp = http
        .post(format!("{}/v1/services/{service}/{op}", api.0))
        .bearer_auth(&api.1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "{op} {service}");
    let body: Value = resp.json().await.unwrap();
    let replied = Utc::now();
    tracing::info!(target: "mark", "REPLIED");
    let task: Uuid = body["task"]["id"].as_str().unwrap().parse().unwrap();
    let rx = {
        let mut w = waiters.lock().unwrap();
        if let Some(at) = w.early.remove(&task) {
            return Timing {
                task,
                sent,
                replied,
                ended: at,
            };
        }
        let (tx, rx) = oneshot::channel();
        w.waiting.insert(task, tx);
        rx
    };
    let ended = tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .expect("the final event within 30 s")
        .unwrap();
    Timing {
        task,
        sent,
        replied,
        ended,
    }
}

/// A task's id, created_at, and its first attempt's started_at,
/// finished_at and wall_us.
type AttemptTimes = (Uuid, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>, i64);

/// Read the database's side of each operation and split it into stages.
async fn stages(pool: &PgPool, timings: &[Timing]) -> Vec<Stages> {
    let ids: Vec<Uuid> = timings.iter().map(|t| t.task).collect();
    let rows: Vec<AttemptTimes> = sqlx::query_as(
        "SELECT t.id, t.created_at, a.started_at, a.finished_at, a.wall_us
         FROM task_records t JOIN task_attempts a ON a.task_id = t.id
         WHERE t.id = ANY($1) AND a.attempt = 1",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .unwrap();
    let by_id: HashMap<Uuid, _> = rows.into_iter().map(|r| (r.0, r)).collect();
    timings
        .iter()
        .map(|t| {
            let (_, created, started, finished, wall_us) = by_id[&t.task];
            let sandbox = wall_us as f64 / 1000.0;
            Stages {
                total: ms(t.sent, t.ended),
                api: ms(t.sent, created),
                reply: ms(created, t.replied),
                pickup: ms(created, started),
                sandbox,
                to_completion: ms(started, finished) - sandbox,
                to_event: ms(finished, t.ended),
            }
        })
        .collect()
}

/// The path has three durable commits (the enqueue, the claim, the
/// completion): what one costs on this machine now, beside the stages.
async fn commit_floor(pool: &PgPool) {
    sqlx::query("CREATE TABLE latency_floor (x int)")
        .execute(pool)
        .await
        .unwrap();
    let mut v = Vec::new();
    for i in 0..200 {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO latency_floor VALUES ($1)")
            .bind(i)
            .execute(&mut *tx)
            .await
            .unwrap();
        let t = Instant::now();
        tx.commit().await.unwrap();
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    v.sort_by(f64::total_cmp);
    println!(
        "| floor | one durable commit (WAL flush) | {:.2} | {:.2} | {:.2} |",
        pct(&v, 0.5),
        pct(&v, 0.99),
        pct(&v, 1.0)
    );
}

fn print_stages(label: &str, s: &[Stages]) {
    let row = |name: &str, f: &dyn Fn(&Stages) -> f64| {
        let mut v: Vec<f64> = s.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        println!(
            "| {label} | {name} | {:.2} | {:.2} | {:.2} |",
            pct(&v, 0.5),
            pct(&v, 0.99),
            pct(&v, 1.0)
        );
    };
    row("**request → final event**", &|x| x.total);
    row("api (request → enqueue statement)", &|x| x.api);
    row("commit + 202 at the client", &|x| x.reply);
    row("pickup (enqueue → attempt started)", &|x| x.pickup);
    row("sandbox call", &|x| x.sandbox);
    row("call end → completion began", &|x| x.to_completion);
    row("completion → event at the client", &|x| x.to_event);
}

async fn run() {
    let rounds = env_or("LATENCY_BENCH_ROUNDS", 400) as usize;
    let inflight = env_or("LATENCY_BENCH_INFLIGHT", 50) as usize;
    // Enough servers that 50 in flight are not held by the per-server cap
    // (4 each): this measures latency, not the cap.
    let n_servers = inflight.div_ceil(4).max(1);
    let f = fleet(inflight.max(1), n_servers, "l", |_, u| {
        Account::new(u, &format!("{u}.example.com"))
    })
    .await;
    let pool = f.pool.clone();
    let services: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM services WHERE tenant_id = $1 ORDER BY remote_id")
            .bind(f.tenant)
            .fetch_all(&pool)
            .await
            .unwrap();
    let api = Api::start(&f, Scope::Write).await;
    let creds = (api.base.clone(), api.key.clone());
    // As `panel1 serve` runs its worker: 8 slots, batched claims, and the
    // API's event streams woken directly after its completions commit.
    let worker = Worker::new(
        pool.clone(),
        Arc::new(Sandbox::new(SandboxConfig::default()).unwrap()),
        f.secret_box.clone(),
        WorkerConfig {
            slots: 8,
            ..WorkerConfig::default()
        },
    );
    worker.wake_local_streams_with(api.events.waker());
    let (stop_worker, stopped) = oneshot::channel::<()>();
    let workers = vec![(
        stop_worker,
        tokio::spawn(async move {
            worker
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        }),
    )];
    let waiters: Arc<Mutex<Waiters>> = Arc::default();
    open_stream(&creds.0, &creds.1, waiters.clone()).await;
    let http = reqwest::Client::new();

    println!("| mode | stage | p50 ms | p99 ms | max ms |");
    println!("|---|---|---:|---:|---:|");
    commit_floor(&pool).await;

    // Serial: one service, suspend and unsuspend in turn (warm-up first:
    // the component's first instantiation and the connections).
    let one = services[0];
    for i in 0..10 {
        let op = if i % 2 == 0 { "suspend" } else { "unsuspend" };
        operate(&http, &creds, &waiters, one, op).await;
    }
    let mut timings = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let op = if i % 2 == 0 { "suspend" } else { "unsuspend" };
        timings.push(operate(&http, &creds, &waiters, one, op).await);
    }
    print_stages("serial", &stages(&pool, &timings).await);

    // In flight: each service suspends and unsuspends in turn, all at once.
    let per_service = (rounds / inflight).max(10);
    let started = Instant::now();
    let handles: Vec<_> = services
        .iter()
        .map(|&s| {
            let (http, creds, waiters) = (http.clone(), creds.clone(), waiters.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..per_service {
                    let op = if i % 2 == 0 { "suspend" } else { "unsuspend" };
                    out.push(operate(&http, &creds, &waiters, s, op).await);
                }
                out
            })
        })
        .collect();
    let mut timings = Vec::new();
    for h in handles {
        timings.extend(h.await.unwrap());
    }
    let took = started.elapsed();
    print_stages(
        &format!("{} in flight", services.len()),
        &stages(&pool, &timings).await,
    );
    println!(
        "\n{} serial operations; {} in flight × {per_service} in {:.1} s ({:.0} operations/s)",
        rounds,
        services.len(),
        took.as_secs_f64(),
        timings.len() as f64 / took.as_secs_f64()
    );
    api.stop();
    stop(workers).await;
}

fn main() {
    if let Ok(filter) = std::env::var("LATENCY_BENCH_TRACE") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    block_on(run());
}
