//! Orphan recovery after SIGKILL, measured: a `panel1 worker` process is
//! stuck in a provision (the panel answers after a minute), another worker
//! process is up beside it, and the first is SIGKILLed. Printed: the time
//! from the kill to the task's abandoned attempt (the dead session seen and
//! the task handed back) and to its success on the other worker, at the
//! default 30 s lease. `just bench` runs it; results in docs/benchmarks.md.
#[path = "../../worker/tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 7;

fn spawn_worker(url: &str, id: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_panel1"))
        .args(["worker", "--slots", "8", "--id", id])
        .env("DATABASE_URL", url)
        .env("PANEL1_MASTER_KEY", "0b".repeat(32))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn panel1 worker")
}

async fn until(e: &Env, sql: &str) {
    e.wait_until(sql, Duration::from_secs(60)).await;
}

/// One run: (kill → abandoned, kill → succeeded).
async fn once(run: usize) -> (Duration, Duration) {
    let e = env(1, 4).await;
    e.panel.with(|p| p.response_delay_ms = 60_000);
    let s = e.servers[0];
    let user = format!("orphan{run}");
    let svc = e.service(s, &user).await;
    let (t, _) = e
        .enqueue(
            s,
            Some(svc),
            "provision",
            json!({"service": spec(&user)}),
            None,
        )
        .await;
    let mut victim = spawn_worker(&e.url, &format!("victim-{run}"));
    while e.panel.with(|p| p.creates) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut rescuer = spawn_worker(&e.url, &format!("rescuer-{run}"));
    until(&e, "SELECT count(*) = 2 FROM worker_sessions").await;
    e.panel.with(|p| p.response_delay_ms = 0);
    victim.kill().unwrap();
    victim.wait().unwrap();
    let killed = Instant::now();
    until(
        &e,
        &format!("SELECT count(*) = 1 FROM task_attempts WHERE task_id = '{t}' AND outcome = 'abandoned'"),
    )
    .await;
    let abandoned = killed.elapsed();
    until(
        &e,
        &format!("SELECT state = 'succeeded' FROM tasks WHERE id = '{t}'"),
    )
    .await;
    let succeeded = killed.elapsed();
    rescuer.kill().unwrap();
    rescuer.wait().unwrap();
    assert_eq!(e.panel.with(|p| p.creates), 1, "one remote account");
    (abandoned, succeeded)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runs: Vec<(Duration, Duration)> = (0..RUNS).map(|i| rt.block_on(once(i))).collect();
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1000.0);
    let (a, s): (Vec<_>, Vec<_>) = runs.iter().copied().unzip();
    println!("orphan recovery after SIGKILL ({RUNS} runs, lease 30 s)");
    println!("| from the kill to            | median ms | min ms | max ms |");
    println!("|------------------------------|-----------|--------|--------|");
    for (name, v) in [("the task handed back", a), ("its success elsewhere", s)] {
        let (lo, hi) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
        println!(
            "| {name:<28} | {:>9} | {:>6} | {:>6} |",
            ms(median(v)),
            ms(lo),
            ms(hi)
        );
    }
}
