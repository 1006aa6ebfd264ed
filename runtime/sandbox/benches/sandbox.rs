//! `just bench`: sandbox figures, printed as a table.
//!
//! - per-call latency (p50/p99) of a fresh store + the no-op `info` operation
//!   with fuel, epoch deadline and the memory limiter on, through the same
//!   `Sandbox::call` the worker uses (Rust reference and JS adapters);
//! - cold compile time of each component;
//! - precompiled-artifact load time (MAC verification + memory-mapped
//!   deserialize);
//! - the secret scanner: building it for a call with 3 secrets, and
//!   scanning a 1 MiB response with it;
//! - one host call from the guest (`config.get`, the cheapest import) with
//!   the checkpoints every host call passes (wasmtime's call hook: fuel
//!   charge, resource-table scan, host budget and deadline checks).
//!
//! The machine is noisy: every figure is the median of several rounds.
use panel1_sandbox::{
    ArtifactStore, CallRequest, CodeGen, HostContext, Marker, Operation, Outcome, Sandbox,
    SandboxConfig, SecretBinding, SecretScanner,
};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The same allocator as the `panel1` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn component(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("PANEL1_ADAPTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `just adapters`)", path.display()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Latency {
    p50_us: f64,
    p99_us: f64,
}

async fn call_latency(sandbox: &Sandbox, name: &str, iters: usize, rounds: usize) -> Latency {
    let adapter = sandbox.load(&component(name)).unwrap();
    let ctx = Arc::new(HostContext::default());
    let req = CallRequest {
        operation: Operation::Info,
        input: Value::Null,
        idempotency_key: "bench".into(),
        attempt: 1,
    };
    // Warm up (page in the pool slots, caches).
    for _ in 0..iters / 10 {
        let r = sandbox.call(&adapter, ctx.clone(), &req).await.unwrap();
        assert!(matches!(r.outcome, Outcome::Ok { .. }), "{:?}", r.outcome);
    }
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut samples = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            let r = sandbox.call(&adapter, ctx.clone(), &req).await.unwrap();
            samples.push(t.elapsed());
            std::hint::black_box(r);
        }
        samples.sort();
        p50s.push(percentile(&samples, 0.50).as_secs_f64() * 1e6);
        p99s.push(percentile(&samples, 0.99).as_secs_f64() * 1e6);
    }
    Latency {
        p50_us: median(p50s),
        p99_us: median(p99s),
    }
}

fn compile_ms(name: &str, rounds: usize, codegen: CodeGen) -> f64 {
    let bytes = component(name);
    let mut v = Vec::new();
    for _ in 0..rounds {
        let s = Sandbox::new(SandboxConfig {
            codegen,
            ..SandboxConfig::default()
        })
        .unwrap();
        let t = Instant::now();
        s.load(&bytes).unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(v)
}

struct ArtifactLoad {
    size_mb: f64,
    load_ms: f64,
    mac_only_ms: f64,
}

fn artifact_load(name: &str, rounds: usize) -> ArtifactLoad {
    let bytes = component(name);
    let dir = std::env::temp_dir().join(format!("panel1-bench-artifacts-{}", std::process::id()));
    let store = ArtifactStore::with_key(&dir, [42; 32]).unwrap();
    let s = Sandbox::new(SandboxConfig::default()).unwrap();
    let hash = s
        .load_with_artifacts(&bytes, &store)
        .unwrap()
        .report
        .sha256
        .clone();
    let path = store.artifact_path(&panel1_sandbox::ArtifactKey::new(
        s.engine(),
        s.codegen(),
        &hash,
    ));
    let size_mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
    let (mut load, mut mac) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let c = store
            .load(s.engine(), s.codegen(), &hash)
            .unwrap()
            .expect("artifact");
        load.push(t.elapsed().as_secs_f64() * 1e3);
        drop(c);
        let t = Instant::now();
        let mut h = blake3::Hasher::new_keyed(&[42; 32]);
        h.update_mmap_rayon(&path).unwrap();
        std::hint::black_box(h.finalize());
        mac.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let _ = std::fs::remove_dir_all(&dir);
    ArtifactLoad {
        size_mb,
        load_ms: median(load),
        mac_only_ms: median(mac),
    }
}

struct ScannerCost {
    patterns: usize,
    build_us: f64,
    scan_ms: f64,
}

/// Three secrets like a real server's (an API token, a password, a WHM
/// token), and a 1 MiB printable response holding none of them.
fn scanner_cost(rounds: usize) -> ScannerCost {
    let secret = |name: &str, value: &str| SecretBinding {
        name: name.into(),
        value: value.into(),
        destinations: vec!["panel.example.com:2087".into()],
    };
    let secrets = [
        secret("api-token", "tok_9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c"),
        secret("password", "p@ss w/rd+&?=2024"),
        secret(
            "whm-token",
            "7Q2XK9M4TB1VZ8C6R3N5W0YHJ7DGF2LPE4SA9UQ1KX6C8VB3M5N0ZT7R2YW4HJ9D",
        ),
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let body: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b' ' + (state % 95) as u8
        })
        .collect();
    let (mut build, mut scan) = (Vec::new(), Vec::new());
    let mut patterns = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut samples = Vec::new();
        while t.elapsed() < Duration::from_millis(100) {
            let s = Instant::now();
            let scanner = SecretScanner::new(&secrets);
            samples.push(s.elapsed().as_secs_f64() * 1e6);
            patterns = scanner.pattern_count();
            std::hint::black_box(scanner);
        }
        build.push(median(samples));
        let scanner = SecretScanner::new(&secrets);
        let t = Instant::now();
        let clean = scanner.redact(&body, Marker::Placeholder);
        scan.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(clean.len(), body.len(), "the bench body holds no secret");
    }
    ScannerCost {
        patterns,
        build_us: median(build),
        scan_ms: median(scan),
    }
}

/// Wall time per host call: the `host-hoard` fixture calls `config.get`
/// with an empty key until its fuel runs out; each call costs
/// `HOST_CALL_FUEL` (the guest's own loop is a few dozen instructions), so
/// calls ≈ fuel ÷ HOST_CALL_FUEL and the time per call is wall ÷ calls.
async fn host_call_ns(sandbox: &Sandbox, rounds: usize) -> f64 {
    let adapter = sandbox.load(&component("host-hoard")).unwrap();
    let mut ctx = HostContext::default();
    ctx.limits.fuel = 40_000_000;
    let ctx = Arc::new(ctx);
    let req = CallRequest {
        operation: Operation::Provision,
        input: serde_json::json!({"service": {"service_id": "bench",
            "params": {"mode": "config-loop", "key_kb": "0"}}}),
        idempotency_key: "bench".into(),
        attempt: 1,
    };
    let mut per_call = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let r = sandbox.call(&adapter, ctx.clone(), &req).await.unwrap();
        let wall = t.elapsed().as_secs_f64() * 1e9;
        assert_eq!(
            r.metrics.trap_kind.as_deref(),
            Some("out-of-fuel"),
            "{:?}",
            r.outcome
        );
        let calls = r.metrics.fuel_consumed as f64 / panel1_types::HOST_CALL_FUEL as f64;
        per_call.push(wall / calls);
    }
    median(per_call)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cpu}, {cores} cores")
}

fn main() {
    let quick = std::env::var("PANEL1_BENCH_QUICK").is_ok();
    let rounds = if quick { 3 } else { 7 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();

    if let Ok(name) = std::env::var("PANEL1_BENCH_PROFILE") {
        // Only the latency loop of one adapter, for `perf record`.
        let l = rt.block_on(call_latency(&sandbox, &name, 50_000, 3));
        println!("{name}: p50 {:.1} µs p99 {:.1} µs", l.p50_us, l.p99_us);
        return;
    }
    println!("machine: {}", machine());
    println!();
    println!("| measurement | Rust reference | JS (componentize-js) | goal |");
    println!("|---|---|---|---|");
    let rust = rt.block_on(call_latency(
        &sandbox,
        "reference",
        if quick { 5_000 } else { 20_000 },
        rounds,
    ));
    let js = rt.block_on(call_latency(
        &sandbox,
        "js-reference",
        if quick { 300 } else { 2_000 },
        rounds,
    ));
    println!(
        "| fresh store + `info`, p50 | {:.1} µs | {:.0} µs | Rust ≤ 10 µs, JS ≤ 500 µs |",
        rust.p50_us, js.p50_us
    );
    println!(
        "| fresh store + `info`, p99 | {:.1} µs | {:.0} µs | |",
        rust.p99_us, js.p99_us
    );
    let compile_rounds = if quick { 1 } else { 3 };
    println!(
        "| cold compile (Cranelift) | {:.0} ms | {:.0} ms | |",
        compile_ms("reference", compile_rounds, CodeGen::Cranelift),
        compile_ms("js-reference", compile_rounds, CodeGen::Cranelift)
    );
    // Winch, the `--compiler winch` of development runs: compile time
    // against the speed of the code it makes.
    println!(
        "| cold compile (Winch) | {:.0} ms | {:.0} ms | |",
        compile_ms("reference", compile_rounds, CodeGen::Winch),
        compile_ms("js-reference", compile_rounds, CodeGen::Winch)
    );
    let winch = Sandbox::new(SandboxConfig {
        codegen: CodeGen::Winch,
        ..SandboxConfig::default()
    })
    .unwrap();
    let wr = rt.block_on(call_latency(
        &winch,
        "reference",
        if quick { 2_000 } else { 10_000 },
        rounds,
    ));
    let wj = rt.block_on(call_latency(
        &winch,
        "js-reference",
        if quick { 100 } else { 500 },
        rounds,
    ));
    println!(
        "| fresh store + `info`, p50 (Winch) | {:.1} µs | {:.0} µs | |",
        wr.p50_us, wj.p50_us
    );
    drop(winch);
    let ra = artifact_load("reference", rounds);
    let ja = artifact_load("js-reference", rounds);
    println!(
        "| artifact size | {:.1} MB | {:.1} MB | |",
        ra.size_mb, ja.size_mb
    );
    println!(
        "| artifact load (MAC verify + mmap deserialize) | {:.2} ms | {:.2} ms | JS ≤ 5 ms |",
        ra.load_ms, ja.load_ms
    );
    println!(
        "| of which MAC verification (keyed BLAKE3) | {:.2} ms | {:.2} ms | |",
        ra.mac_only_ms, ja.mac_only_ms
    );
    let sc = scanner_cost(rounds);
    println!(
        "| secret scanner: build per call, 3 secrets ({} patterns) | {:.0} µs | (same) | |",
        sc.patterns, sc.build_us
    );
    println!(
        "| secret scanner: scan a 1 MiB response | {:.2} ms ({:.0} MB/s) | (same) | |",
        sc.scan_ms,
        1.048_576 / (sc.scan_ms / 1e3)
    );
    println!(
        "| one host call (`config.get`) with its checkpoints | {:.0} ns | (same) | |",
        rt.block_on(host_call_ns(&sandbox, rounds))
    );
    println!();
    println!("medians of {rounds} rounds; per-call figures include Store creation, instantiation from a cached InstancePre, the call and result conversion");
}
