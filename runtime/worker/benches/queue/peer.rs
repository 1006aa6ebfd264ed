//! The peer: graphile-worker 0.17.3 (`benches/peer/gw_bench.js`, Node), in
//! two rows. `Work::Empty` runs empty jobs (the row the throughput goals
//! were first set against). `Work::Info` is the like-for-like row: each job
//! runs the same reference adapter's `info` as a component (transpiled with
//! jco at bench time into the gitignored `benches/peer/gen`) and stores its
//! result and an event in one statement of its own before graphile-worker
//! completes the job. A peer that cannot run (no Node, no npm packages, a
//! failed transpile) is skipped with a message, as before.
use super::Run;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy, PartialEq)]
pub enum Work {
    Empty,
    Info,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peer")
}

/// The packages of `package-lock.json` (graphile-worker, pg, jco), installed
/// once; false when npm is missing or fails.
fn npm_ci() -> bool {
    let dir = dir();
    // A node_modules from before jco was added lacks it: install again.
    if dir.join("node_modules/@bytecodealliance/jco").exists() {
        return true;
    }
    let ok = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .map(|s| s.success());
    if !matches!(ok, Ok(true)) {
        eprintln!("peer: npm ci failed; skipping graphile-worker");
        return false;
    }
    true
}

/// Transpile the adapter for the like-for-like row; where the output went,
/// or None (with a message) when that row cannot run.
pub fn transpile(wasm: &Path) -> Option<PathBuf> {
    if !npm_ci() {
        return None;
    }
    let out = dir().join("gen/reference");
    let _ = std::fs::remove_dir_all(&out);
    // Sync instantiation with an import object (`component.js`): the
    // adapter's imports are Panel1's interfaces, for which jco has no shim.
    let status = Command::new(dir().join("node_modules/.bin/jco"))
        .arg("transpile")
        .arg(wasm)
        .arg("-o")
        .arg(&out)
        .args(["--name", "reference", "--instantiation", "sync"])
        .args(["--no-wasi-shim", "--no-typescript", "--quiet"])
        .status();
    if !matches!(status.map(|s| s.success()), Ok(true)) {
        eprintln!("peer: jco transpile failed; skipping the like-for-like row");
        return None;
    }
    // jco writes ES modules; gw_bench.js (CommonJS) imports them.
    std::fs::write(out.join("package.json"), "{\"type\":\"module\"}\n").ok()?;
    Some(out)
}

/// One run of the peer; None (with a message) when it could not run.
pub fn run(
    url: &str,
    n: usize,
    conc: usize,
    batched: bool,
    samples: usize,
    work: Work,
    component: Option<&Path>,
) -> Option<Run> {
    if !npm_ci() {
        return None;
    }
    let mut cmd = Command::new("node");
    cmd.arg("gw_bench.js")
        .current_dir(dir())
        .env("DATABASE_URL", url)
        .env("N", n.to_string())
        .env("CONC", conc.to_string())
        .env("BATCHED", if batched { "1" } else { "0" })
        .env("LAT", samples.to_string());
    if work == Work::Info {
        cmd.env("WORK", "info").env("COMPONENT_DIR", component?);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("peer: cannot start node ({e}); skipping graphile-worker");
            return None;
        }
    };
    if !out.status.success() {
        eprintln!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let mut run = Run::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let num = |k: &str| {
            v[k].as_f64()
                .or_else(|| v[k].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0.0)
        };
        match v["bench"].as_str() {
            Some("throughput") => {
                run.jobs_per_s = num("work_jobs_per_s");
                run.commits_per_job = num("commits_per_job");
                run.wal_per_job = num("wal_bytes_per_job");
            }
            Some("latency") => {
                run.p50_ms = num("p50_ms");
                run.p99_ms = num("p99_ms");
            }
            Some("component") => {
                run.fresh_info_us = num("fresh_instance_info_us");
                run.reused_info_us = num("reused_instance_info_us");
            }
            _ => {}
        }
    }
    Some(run)
}

/// Start the peer from clean tables as ours starts from truncated ones: its
/// harness only DELETEs old jobs, and the dead rows of earlier runs (1.8
/// million, 305 MB, never vacuumed, seen on this machine) slowed it down
/// run after run.
pub async fn reset(url: &str) {
    let pool = panel1_store::connect(url, 1).await.unwrap();
    for table in [
        "graphile_worker._private_jobs",
        "peer_results",
        "peer_events",
    ] {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&pool)
            .await
            .unwrap();
        if exists {
            sqlx::query(&format!("TRUNCATE {table}"))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
    pool.close().await;
}
