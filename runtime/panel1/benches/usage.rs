//! Usage collection at scale (issue 22 part 3): 10 000 active services on
//! 10 cPanel servers (cap 4 each), all backed by one WHM simulator on
//! 127.0.0.1, seeded directly (simulator accounts + service rows), sampled
//! once in a 300 s interval by two in-process workers running the real
//! `cpanel.wasm` in the sandbox, while API readers poll the usage
//! endpoints. Printed: when the services were sampled against when they
//! were due, task figures, and the readers' latency. `just bench` runs it;
//! results in docs/benchmarks.md. `USAGE_BENCH_SERVICES` and
//! `USAGE_BENCH_INTERVAL` (seconds) change the load.
#[path = "../../worker/tests/common/mod.rs"]
mod common;
#[path = "support/fleet.rs"]
mod fleet;

use common::{spawn_workers, stop};
use fleet::{block_on, env_or, fleet, pct, print_reads, Api, Readers};
use panel1_api::Scope;
use panel1_sims::Account;
use panel1_store::usage;
use panel1_worker::WorkerConfig;
use std::time::{Duration, Instant};
use uuid::Uuid;

const SERVERS: usize = 10;
const READERS: usize = 2;
/// A reader's pause between two requests.
const READ_PAUSE: Duration = Duration::from_millis(50);

async fn run() {
    let n_services = env_or("USAGE_BENCH_SERVICES", 10_000) as usize;
    let interval = env_or("USAGE_BENCH_INTERVAL", 300) as i32;
    let f = fleet(n_services, SERVERS, "u", |i, u| {
        Account::new(u, &format!("{u}.example.com"))
            .with_usage(10 + (i as u64 % 900), 1000 * i as u64)
    })
    .await;
    let (pool, servers, seeded) = (f.pool.clone(), f.servers.clone(), f.seeded);
    // The API, on loopback, with a read key.
    let api = Api::start(&f, Scope::Read).await;

    // Start: schedules, workers, readers.
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM services")
        .fetch_all(&pool)
        .await
        .unwrap();
    for s in &servers {
        usage::set_schedule(&pool, f.tenant, *s, interval, true)
            .await
            .unwrap();
    }
    let month_ago: String = sqlx::query_scalar(
        "SELECT to_char((now() - interval '30 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let started = Instant::now();
    let workers = spawn_workers(&pool, &f.secret_box, 2, WorkerConfig::default());
    let readers = Readers::start(&api, READERS, READ_PAUSE, move |i| match i % 4 {
        0 | 1 => (
            "service raw (24 h)",
            format!(
                "/v1/services/{}/usage?step=raw",
                ids[(i * 7919) % ids.len()]
            ),
        ),
        2 => (
            "server hourly (24 h)",
            format!("/v1/servers/{}/usage", servers[i % servers.len()]),
        ),
        _ => (
            "tenant daily (30 d)",
            format!("/v1/usage?step=day&from={month_ago}"),
        ),
    });

    // Wait until every service has a sample (or two intervals passed).
    let deadline = Duration::from_secs(2 * interval as u64 + 60);
    let mut progress = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let sampled: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT service_id) FROM usage_samples WHERE metric = 'disk_used'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        progress.push((started.elapsed().as_secs(), sampled));
        if sampled as usize >= n_services || started.elapsed() > deadline {
            break;
        }
    }
    let all_in = started.elapsed();
    let lat = readers.stop().await;
    stop(workers).await;
    api.stop();

    // Figures.
    let (sampled, first_at, last_at): (i64, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(DISTINCT service_id), extract(epoch FROM min(at))::float8,
                extract(epoch FROM max(at))::float8
         FROM usage_samples WHERE metric = 'disk_used'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // Lag: when a task's sample was committed against its occurrence (the
    // key's instant).
    let lags: Vec<f64> = sqlx::query_scalar(
        "SELECT ((extract(epoch FROM finished_at) * 1000 - split_part(idempotency_key, ':', 4)::numeric) / 1000)::float8
         FROM tasks WHERE operation = 'usage' AND state = 'succeeded' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let (ok, failed, walls): (i64, i64, Vec<f64>) = {
        let (ok, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'failed')
             FROM tasks WHERE operation = 'usage'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let walls: Vec<f64> = sqlx::query_scalar(
            "SELECT (wall_us / 1000.0)::float8 FROM task_attempts a JOIN tasks t ON t.id = a.task_id
             WHERE t.operation = 'usage' AND wall_us IS NOT NULL ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        (ok, failed, walls)
    };
    let spread: Vec<(f64, i64)> = sqlx::query_as(
        "SELECT (floor((extract(epoch FROM at)::float8 - $1) / 30) * 30)::float8, count(*)
         FROM usage_samples WHERE metric = 'disk_used' GROUP BY 1 ORDER BY 1",
    )
    .bind(first_at.unwrap_or(0.0))
    .fetch_all(&pool)
    .await
    .unwrap();

    println!(
        "usage collection: {n_services} services on {SERVERS} cPanel servers (cap 4 each), one WHM simulator, interval {interval} s, 2 workers × 16 slots"
    );
    println!(
        "seeding (accounts + service rows): {:.1} s",
        seeded.as_secs_f64()
    );
    println!();
    println!("| measurement | value |");
    println!("|---|---|");
    println!("| services sampled | {sampled} of {n_services} |");
    println!(
        "| all sampled after (from the schedule's start) | {:.0} s (interval {interval} s) |",
        all_in.as_secs_f64()
    );
    if let (Some(a), Some(b)) = (first_at, last_at) {
        println!("| first to last sample | {:.0} s |", b - a);
    }
    println!("| usage tasks succeeded / failed | {ok} / {failed} |");
    println!(
        "| lag, sample after its due time: p50 / p99 / max | {:.2} / {:.2} / {:.2} s |",
        pct(&lags, 0.5),
        pct(&lags, 0.99),
        pct(&lags, 1.0)
    );
    println!(
        "| usage call wall time (sandbox + 2 WHM requests): p50 / p99 | {:.1} / {:.1} ms |",
        pct(&walls, 0.5),
        pct(&walls, 0.99)
    );
    let p99 = print_reads(
        &lat,
        "API reads",
        &[
            "service raw (24 h)",
            "server hourly (24 h)",
            "tenant daily (30 d)",
        ],
    );
    println!();
    println!("samples per 30 s of the interval (spread):");
    println!(
        "{}",
        spread
            .iter()
            .map(|(t, n)| format!("{t:.0}s:{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "progress (s, services sampled): {}",
        progress
            .iter()
            .map(|(t, n)| format!("{t}:{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let goal = sampled as usize == n_services && all_in.as_secs() <= interval as u64 + 10;
    println!(
        "goal (all within one interval, API p99 < 50 ms): {} / {}",
        if goal { "met" } else { "NOT met" },
        if p99 < 50.0 { "met" } else { "NOT met" }
    );
}

fn main() {
    block_on(run());
}
