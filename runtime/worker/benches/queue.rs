//! `just bench` (orchestrator part): Panel1's queue side by side with
//! graphile-worker 0.17.3 on the same Postgres, alternating runs.
//!
//! Mirrors `benches/peer/gw_bench.js`: N tasks inserted in one statement and
//! burned down by one worker with CONC slots (throughput), then serial
//! enqueue → start samples (pickup latency). Each of our tasks runs the Rust
//! reference adapter's no-op `info` operation in the sandbox with the
//! default limits on. Modes: batched claims vs one claim per task. Each
//! round also runs the floors (`queue/floor.rs`): the writes every job needs
//! with nothing else, an upper bound for this machine; and the same on
//! Panel1's tables with each job's sandbox call, a bound on a worker of
//! this design that runs the sandbox. The peer runs twice a round
//! (`queue/peer.rs`): empty jobs, and the like-for-like row whose jobs run
//! the same adapter's `info` (jco, in Node) and store a result and an event.
//! PANEL1_BENCH_QUICK=1 makes the defaults small (N, LAT) for a quick look.
use panel1_sandbox::{HostContext, Sandbox, SandboxConfig};
use panel1_store::secret_box::SecretBox;
use panel1_store::setup::{self, NewServer};
use panel1_worker::{Worker, WorkerConfig};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[path = "queue/floor.rs"]
mod floor;
#[path = "queue/peer.rs"]
mod peer;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A size knob: its full default, or a smaller one in quick mode (the
/// rounds stay, so the medians still alternate).
fn sized(name: &str, full: usize, quick: usize) -> usize {
    let is_quick = std::env::var_os("PANEL1_BENCH_QUICK").is_some();
    env_num(name, if is_quick { quick } else { full })
}

struct Setup {
    pool: PgPool,
    url: String,
    tenant: Uuid,
    server: Uuid,
    /// The server's adapter version (compiled before the clock starts).
    version: Uuid,
    /// reference.wasm, which the like-for-like peer transpiles.
    wasm: PathBuf,
    /// The sandbox call of the floor with the sandbox.
    floor_call: floor::Call,
}

async fn setup() -> Setup {
    let (pool, url) = panel1_store::testing::fresh_database().await;
    let dir = std::env::var_os("PANEL1_ADAPTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist"));
    let wasm = dir.join("reference.wasm");
    let bytes = std::fs::read(&wasm).expect("adapters/dist/reference.wasm (run `just adapters`)");
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let loaded = sandbox.load(&bytes).unwrap();
    let tenant = setup::create_tenant(&pool, "bench").await.unwrap();
    let report = serde_json::to_value(&loaded.report).unwrap();
    let version = setup::add_adapter_version(
        &pool,
        &setup::NewAdapterVersion {
            tenant: None,
            name: "reference",
            version: "0.1.0",
            sha256: &loaded.report.sha256,
            world_version: "0.1.0",
            component: &bytes,
            report: &report,
        },
    )
    .await
    .unwrap();
    let server = setup::add_server(
        &pool,
        &NewServer {
            tenant_id: tenant,
            name: "bench".into(),
            adapter_version_id: version,
            config: json!({}),
            egress: json!({"rules": []}),
            max_concurrency: 10_000,
        },
    )
    .await
    .unwrap();
    Setup {
        pool,
        url,
        tenant,
        server,
        version,
        wasm,
        floor_call: floor::Call {
            sandbox: Arc::new(sandbox),
            adapter: loaded,
            context: Arc::new(HostContext::default()),
        },
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[derive(Default)]
struct Run {
    jobs_per_s: f64,
    commits_per_job: f64,
    /// WAL written per job during the burn-down, in bytes.
    wal_per_job: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The like-for-like peer's `info` in Node: a fresh jco instance, and
    /// the one instance its jobs reuse (µs per call; 0 elsewhere).
    fresh_info_us: f64,
    reused_info_us: f64,
}

async fn ours(s: &Setup, n: usize, conc: usize, batched: bool, samples: usize) -> Run {
    sqlx::query(
        "TRUNCATE task_records, task_queue, task_attempts, events, task_dependencies, task_waits",
    )
    .execute(&s.pool)
    .await
    .unwrap();
    // Records and their queue rows, as `enqueue` writes them.
    panel1_store::testing::insert_available_tasks(&s.pool, s.tenant, s.server, n as i64).await;
    let commits_before = count(
        &s.pool,
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .await;
    let wal_before = wal_lsn(&s.pool).await;
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    let config = WorkerConfig {
        slots: conc,
        // Batched mirrors the peer's BATCHED=1: a local queue of 500.
        claim_batch: if batched { 500 } else { 1 },
        queue: if batched { 500 } else { 0 },
        poll_interval: Duration::from_secs(2),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(
        s.pool.clone(),
        sandbox,
        Arc::new(SecretBox::new([1; 32], "bench")),
        config,
    );
    // The component is compiled before the clock starts, as the peer's is
    // transpiled and instantiated before its clock (a worker compiles each
    // version once for its life; in quick mode that one compile was a
    // tenth of the per-task run).
    worker.preload(s.version).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let t0 = Instant::now();
    let handle = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    // Done when the queue is empty: every task committed, not just ran (a
    // count over the whole table every 50 ms cost Postgres a visible share
    // of the run).
    loop {
        let busy: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM task_queue)")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        if !busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    // Before the checks below, whose scans may write WAL of their own.
    let wal_after = wal_lsn(&s.pool).await;
    let succeeded = count(
        &s.pool,
        "SELECT count(*) FROM tasks WHERE state = 'succeeded'",
    )
    .await;
    assert_eq!(succeeded, n as i64, "every task succeeded");
    let commits_after = count(
        &s.pool,
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .await;
    // Latency: serial enqueue → the worker starting the task.
    let mut lat = Vec::new();
    let mut conn = s.pool.acquire().await.unwrap();
    for _ in 0..samples {
        let t = panel1_store::NewTask::new(s.tenant, s.server, None, "info", Value::Null);
        // In one transaction, as the API enqueues (task, event and wake-up
        // in one commit, like the peer's add_job).
        let mut tx = s.pool.begin().await.unwrap();
        let (id, _) = panel1_store::enqueue(&mut tx, &t).await.unwrap();
        tx.commit().await.unwrap();
        loop {
            let ms: Option<f64> = sqlx::query_scalar(
                "SELECT extract(epoch FROM a.started_at - t.created_at)::float8 * 1000
                 FROM task_attempts a JOIN tasks t ON t.id = a.task_id WHERE a.task_id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .unwrap();
            if let Some(ms) = ms {
                lat.push(ms);
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    Run {
        jobs_per_s: n as f64 / secs,
        // The measurement's own polling adds a few commits; they are counted.
        commits_per_job: (commits_after - commits_before) as f64 / n as f64,
        wal_per_job: (wal_after - wal_before) as f64 / n as f64,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        ..Run::default()
    }
}

/// The server's current WAL write position, in bytes (both sides measure WAL
/// this way: the peer's harness reports it per job).
async fn wal_lsn(pool: &PgPool) -> i64 {
    count(
        pool,
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8",
    )
    .await
}

/// Every run starts from a checkpoint, so none pays for writing out the
/// previous run's dirty pages (or the full-page images after a checkpoint
/// that one of them happened to trigger).
async fn settle(pool: &PgPool) {
    sqlx::query("CHECKPOINT").execute(pool).await.unwrap();
}

/// The median of one measurement over runs (NaN for no runs).
fn median_of(runs: &[Run], field: fn(&Run) -> f64) -> f64 {
    median(runs.iter().map(field).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn peer_db_url() -> String {
    let admin = panel1_store::testing::admin_url();
    let pool = panel1_store::connect(&admin, 1).await.unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT exists(SELECT 1 FROM pg_database WHERE datname = 'gw_perf')")
            .fetch_one(&pool)
            .await
            .unwrap();
    if !exists {
        sqlx::query("CREATE DATABASE gw_perf")
            .execute(&pool)
            .await
            .unwrap();
    }
    let mut url = url_without_db(&admin);
    url.push_str("/gw_perf");
    url
}

fn url_without_db(url: &str) -> String {
    match url.rfind('/') {
        Some(i) if i > "postgres://".len() => url[..i].to_string(),
        _ => url.to_string(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds = env_num("ROUNDS", 3);
    let conc = env_num("CONC", 24);
    let samples = sized("LAT", 300, 100);
    let s = setup().await;
    let peer_url = peer_db_url().await;
    // PEER=0 runs ours alone (for profiling); PEER_INFO=0 leaves out the
    // like-for-like row.
    let with_peer = env_num("PEER", 1) != 0;
    let component = if with_peer && env_num("PEER_INFO", 1) != 0 {
        peer::transpile(&s.wasm)
    } else {
        None
    };
    // Panel1's own pool settings (generic plans, no JIT); the floor's
    // connections also defer the outbox NOTIFY, as completions do.
    let floor_pool = panel1_store::connect(&s.url, 24).await.unwrap();
    let panel1_tables = floor::Tables::Panel1 {
        tenant: s.tenant,
        server: s.server,
    };
    let floor_kinds = [
        (floor::Tables::Minimal, None),
        (panel1_tables, None),
        (panel1_tables, Some(&s.floor_call)),
    ];
    println!("| mode | N | Panel1 jobs/s | graphile-worker, empty jobs | ratio | **graphile-worker + `info`, result and event** | **ratio** | floor, minimal tables | ÷ peer | floor, Panel1's tables | ÷ peer | floor + sandbox | ÷ peer | commits/job: Panel1 / peer / peer + info | WAL B/job: Panel1 / peer / peer + info |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    // Each mode's rounds: ours, the empty peer's, the like-for-like peer's.
    let mut modes: Vec<(bool, [Vec<Run>; 3])> = Vec::new();
    for (batched, n) in [
        (true, sized("N_BATCHED", 50_000, 10_000)),
        (false, sized("N_UNBATCHED", 20_000, 4_000)),
    ] {
        let (mut o, mut p, mut l) = (vec![], vec![], vec![]);
        let (mut ratios, mut lratios) = (vec![], vec![]);
        let mut f = [vec![], vec![], vec![]];
        let mut fratios = [vec![], vec![], vec![]];
        for _ in 0..rounds {
            settle(&s.pool).await;
            let a = ours(&s, n, conc, batched, samples).await;
            let peer_run = |work| {
                let component = component.as_deref();
                let url = peer_url.clone();
                let pool = s.pool.clone();
                async move {
                    if !with_peer || (work == peer::Work::Info && component.is_none()) {
                        return None;
                    }
                    peer::reset(&url).await;
                    settle(&pool).await;
                    peer::run(&url, n, conc, batched, samples, work, component)
                }
            };
            let b = peer_run(peer::Work::Empty).await;
            let c = peer_run(peer::Work::Info).await;
            if let Some(b) = &b {
                ratios.push(a.jobs_per_s / b.jobs_per_s.max(1.0));
            }
            if let Some(c) = &c {
                lratios.push(a.jobs_per_s / c.jobs_per_s.max(1.0));
            }
            // The floors at their best concurrency (more connections than
            // that only queue for the two cores).
            // FLOOR=0 leaves the floors out (for profiling).
            let floors = if env_num("FLOOR", 1) == 0 {
                &floor_kinds[..0]
            } else {
                &floor_kinds[..]
            };
            for (i, (tables, call)) in floors.iter().enumerate() {
                settle(&s.pool).await;
                // With the sandbox, more connections keep both cores busy
                // while some of them run their batch's calls.
                let fl = if batched && call.is_some() {
                    floor::floor(&floor_pool, *tables, *call, n, 500, &[2, 4, 8]).await
                } else if batched {
                    floor::floor(&floor_pool, *tables, *call, n, 500, &[1, 2, 4]).await
                } else {
                    floor::floor(&floor_pool, *tables, *call, n, 1, &[8, 16, 24]).await
                };
                if let Some(b) = &b {
                    fratios[i].push(fl / b.jobs_per_s.max(1.0));
                }
                f[i].push(fl);
            }
            o.push(a);
            p.extend(b);
            l.extend(c);
        }
        let mode = if batched {
            "batched"
        } else {
            "one commit per task"
        };
        // Medians (NaN where there was no peer or floor).
        let [fr0, fr1, fr2] = fratios.map(median);
        let [f0, f1, f2] = f.map(median);
        let jobs = |r: &[Run]| median_of(r, |r| r.jobs_per_s);
        let commits = |r: &[Run]| median_of(r, |r| r.commits_per_job);
        let wal = |r: &[Run]| median_of(r, |r| r.wal_per_job);
        println!(
            "| {mode} | {n} | {:.0} | {:.0} | {:.2}× | **{:.0}** | **{:.2}×** | {f0:.0} | {fr0:.2}× | {f1:.0} | {fr1:.2}× | {f2:.0} | {fr2:.2}× | {:.2} / {:.2} / {:.2} | {:.0} / {:.0} / {:.0} |",
            jobs(&o),
            jobs(&p),
            median(ratios),
            jobs(&l),
            median(lratios),
            commits(&o),
            commits(&p),
            commits(&l),
            wal(&o),
            wal(&p),
            wal(&l),
        );
        modes.push((batched, [o, p, l]));
    }
    println!();
    println!("| pickup latency (serial enqueue → start) | Panel1 p50 | Panel1 p99 | peer p50 | peer p99 | peer + info p50 | peer + info p99 |");
    println!("|---|---|---|---|---|---|---|");
    for (batched, [o, p, l]) in &modes {
        let mode = if *batched {
            "batched"
        } else {
            "one commit per task"
        };
        let ms = |r: &[Run]| {
            format!(
                "{:.2} ms | {:.2} ms",
                median_of(r, |r| r.p50_ms),
                median_of(r, |r| r.p99_ms)
            )
        };
        println!("| {mode} | {} | {} | {} |", ms(o), ms(p), ms(l));
    }
    let like: Vec<&Run> = modes.iter().flat_map(|(_, [_, _, l])| l).collect();
    println!();
    println!(
        "medians of {rounds} alternated rounds (ours, the peer with empty jobs, the peer with `info`, then the floors), CONC={conc}, same Postgres"
    );
    println!(
        "peer + info: each job runs reference.wasm's `info` (jco, one instance reused: {:.1} µs a call; a fresh instance + call {:.0} µs) and stores result + event in one statement; graphile-worker completes the job in its own commit",
        median(like.iter().map(|r| r.reused_info_us).collect()),
        median(like.iter().map(|r| r.fresh_info_us).collect()),
    );
    println!(
        "floor: the writes every job needs, claims on a narrow queue table, no worker (benches/queue/floor.rs); best of 1/2/4 connections batched, 8/16/24 per task; floor + sandbox: Panel1's tables, and each job runs `info` in the sandbox and stores its result (best of 2/4/8 connections batched)"
    );
}
