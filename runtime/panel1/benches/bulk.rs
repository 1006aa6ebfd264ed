//! Bulk suspend at scale (issue 23 part 2, docs/bulk.md): 10 000 active
//! services on 10 cPanel servers (cap 4 each), all backed by one WHM
//! simulator on 127.0.0.1, seeded directly (simulator accounts + service
//! rows), suspended by one `POST /v1/bulk` and run by two in-process
//! workers with the real `cpanel.wasm` in the sandbox, while API readers
//! poll the bulk, the services and the tasks. Printed: the create latency,
//! the time until the bulk completed, and the readers' latency. `just bench`
//! runs it; results in docs/benchmarks.md. `BULK_BENCH_SERVICES` and
//! `BULK_BENCH_SERVERS` change the load.
#[path = "../../worker/tests/common/mod.rs"]
mod common;
#[path = "support/fleet.rs"]
mod fleet;

use common::{spawn_workers, stop};
use fleet::{block_on, env_or, fleet, pct, print_reads, Api, Readers};
use panel1_api::Scope;
use panel1_sims::Account;
use panel1_worker::WorkerConfig;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const READERS: usize = 2;
/// A reader's pause between two requests.
const READ_PAUSE: Duration = Duration::from_millis(50);
const GOAL: Duration = Duration::from_secs(60);

async fn run() {
    let n_services = env_or("BULK_BENCH_SERVICES", 10_000) as usize;
    let n_servers = env_or("BULK_BENCH_SERVERS", 10) as usize;
    let f = fleet(n_services, n_servers, "s", |_, u| {
        Account::new(u, &format!("{u}.example.com"))
    })
    .await;
    let (pool, sim, servers, seeded) = (f.pool.clone(), &f.sim, f.servers.clone(), f.seeded);
    // The API on loopback, with a write key.
    let api = Api::start(&f, Scope::Write).await;
    let (base, key) = (api.base.clone(), api.key.clone());
    let http = reqwest::Client::new();

    // Workers first (idle), then the bulk: the clock starts at the POST.
    let workers = spawn_workers(&pool, &f.secret_box, 2, WorkerConfig::default());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let resp = http
        .post(format!("{base}/v1/bulk"))
        .bearer_auth(&key)
        .json(&json!({"action": "suspend", "selector": {"all": true}, "reason": "bench"}))
        .send()
        .await
        .unwrap();
    let created_in = started.elapsed();
    assert_eq!(resp.status().as_u16(), 202);
    let bulk: Value = resp.json().await.unwrap();
    let id = bulk["id"].as_str().unwrap().to_string();
    assert_eq!(bulk["total"], json!(n_services));

    let bulk_path = format!("/v1/bulk/{id}");
    let readers = Readers::start(&api, READERS, READ_PAUSE, move |i| match i % 4 {
        0 => ("bulk (live counts)", bulk_path.clone()),
        1 => ("bulk list", "/v1/bulk".to_string()),
        2 => (
            "services of a server (50)",
            format!("/v1/services?server_id={}", servers[i % servers.len()]),
        ),
        _ => ("tasks (50)", "/v1/tasks".to_string()),
    });

    // Until the bulk says it is finished.
    let deadline = Duration::from_secs(600);
    let mut progress = Vec::new();
    let mut last_tick = Instant::now();
    let final_bulk = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b: Value = http
            .get(format!("{base}/v1/bulk/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if last_tick.elapsed() >= Duration::from_secs(5) {
            progress.push((
                started.elapsed().as_secs(),
                b["succeeded"].as_i64().unwrap_or(0),
            ));
            last_tick = Instant::now();
        }
        if !b["finished_at"].is_null() || started.elapsed() > deadline {
            break b;
        }
    };
    let all_in = started.elapsed();
    let lat = readers.stop().await;
    stop(workers).await;
    api.stop();

    // Figures and checks.
    let suspended_whm = sim.accounts().iter().filter(|a| a.suspended).count();
    let suspended_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM services WHERE state = 'suspended'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let (first, last): (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT extract(epoch FROM min(finished_at) - min(created_at))::float8,
                extract(epoch FROM max(finished_at) - min(created_at))::float8
         FROM tasks WHERE operation = 'suspend'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let walls: Vec<f64> = sqlx::query_scalar(
        "SELECT (wall_us / 1000.0)::float8 FROM task_attempts a JOIN tasks t ON t.id = a.task_id
         WHERE t.operation = 'suspend' AND wall_us IS NOT NULL ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let progress_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE kind = 'bulk.progress' AND payload->>'bulk_id' = $1",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();

    println!(
        "bulk suspend: {n_services} services on {n_servers} cPanel servers (cap 4 each), one WHM simulator, 2 workers × 16 slots"
    );
    println!(
        "seeding (accounts + service rows): {:.1} s",
        seeded.as_secs_f64()
    );
    println!();
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| POST /v1/bulk ({n_services} children in one statement) | {:.0} ms |",
        created_in.as_secs_f64() * 1000.0
    );
    println!(
        "| bulk finished (POST to `finished_at` seen) | {:.1} s (goal ≤ {} s) |",
        all_in.as_secs_f64(),
        GOAL.as_secs()
    );
    if let (Some(a), Some(b)) = (first, last) {
        println!("| first / last child finished after the POST | {a:.1} / {b:.1} s |");
    }
    println!(
        "| throughput | {:.0} suspensions/s |",
        n_services as f64 / all_in.as_secs_f64()
    );
    println!(
        "| counts: succeeded / failed / cancelled | {} / {} / {} ({}) |",
        final_bulk["succeeded"], final_bulk["failed"], final_bulk["cancelled"], final_bulk["state"]
    );
    println!("| suspended on WHM / in Panel1 | {suspended_whm} / {suspended_rows} |");
    println!(
        "| suspend call wall time (sandbox + WHM): p50 / p99 | {:.1} / {:.1} ms |",
        pct(&walls, 0.5),
        pct(&walls, 0.99)
    );
    println!("| bulk.progress events | {progress_events} |");
    let p99 = print_reads(
        &lat,
        "API reads meanwhile",
        &[
            "bulk (live counts)",
            "bulk list",
            "services of a server (50)",
            "tasks (50)",
        ],
    );
    println!();
    println!(
        "progress (s, succeeded): {}",
        progress
            .iter()
            .map(|(t, n)| format!("{t}:{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let goal = final_bulk["succeeded"] == json!(n_services) && all_in <= GOAL;
    println!(
        "goal ({n_services} suspensions ≤ 60 s, API p99 < 50 ms): {} / {}",
        if goal { "met" } else { "NOT met" },
        if p99 < 50.0 { "met" } else { "NOT met" }
    );
}

fn main() {
    block_on(run());
}
