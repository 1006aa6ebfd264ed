//! Winch, the baseline compiler of development runs (`--compiler winch`),
//! keeps every limit Cranelift keeps: fuel, the wall-clock deadline (epoch
//! checks), memory and stack; and its artifacts never pass for Cranelift's.

use crate::support::*;
use panel1_sandbox::{
    ArtifactKey, ArtifactStore, CodeGen, HostContext, LoadedAdapter, Operation, Sandbox,
    SandboxConfig,
};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

fn winch() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        Sandbox::new(SandboxConfig {
            codegen: CodeGen::Winch,
            ..SandboxConfig::default()
        })
        .expect("winch sandbox")
    })
}

fn load_winch(name: &str) -> Arc<LoadedAdapter> {
    winch()
        .load(&component(name))
        .unwrap_or_else(|e| panic!("loading {name} with winch: {e}"))
}

async fn run(
    a: &LoadedAdapter,
    f: impl FnOnce(&mut panel1_sandbox::Limits),
    op: Operation,
    input: Value,
) -> panel1_sandbox::CallReport {
    let mut ctx = HostContext::default();
    f(&mut ctx.limits);
    winch()
        .call(a, Arc::new(ctx), &request(op, input))
        .await
        .expect("valid input")
}

#[tokio::test]
async fn fuel_runs_out_exactly_at_the_budget() {
    let a = load_winch("spin-loop");
    let r = run(
        &a,
        |l| l.fuel = 50_000_000,
        Operation::Provision,
        service("s1"),
    )
    .await;
    assert_eq!(sandbox_kind(&r), "out-of-fuel");
    assert_eq!(r.metrics.fuel_consumed, 50_000_000);
}

#[tokio::test]
async fn the_deadline_stops_a_loop_with_fuel_to_spare() {
    let a = load_winch("spin-loop");
    let started = Instant::now();
    let r = run(
        &a,
        |l| {
            l.fuel = u64::MAX / 2;
            l.timeout_ms = 300;
        },
        Operation::Provision,
        service("s1"),
    )
    .await;
    assert_eq!(sandbox_kind(&r), "deadline");
    let took = started.elapsed().as_millis();
    assert!((300..3000).contains(&took), "stopped after {took} ms");
}

#[tokio::test]
async fn memory_and_stack_limits_hold() {
    let a = load_winch("mem-bomb");
    let r = run(
        &a,
        |l| l.memory_bytes = 48 << 20,
        Operation::Provision,
        service("s1"),
    )
    .await;
    assert_eq!(sandbox_kind(&r), "memory-limit");
    assert!(r.metrics.peak_memory_bytes <= 48 << 20);

    let a = load_winch("deep-recursion");
    let r = run(&a, |_| {}, Operation::Provision, service("s1")).await;
    assert_eq!(sandbox_kind(&r), "guest-trap", "{:?}", r.outcome);
}

#[tokio::test]
async fn rust_and_js_adapters_run_under_winch() {
    for name in ["reference", "js-reference"] {
        let a = load_winch(name);
        let r = run(&a, |_| {}, Operation::Info, Value::Null).await;
        assert_eq!(ok(&r)["name"], name, "{name}");
    }
}

#[test]
fn winch_artifacts_are_keyed_apart_from_cranelift_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::with_key(dir.path(), [3; 32]).unwrap();
    let bytes = component("reference");
    // A sandbox of its own: the shared one may hold `reference` in memory
    // already and would write no artifact.
    let fresh = Sandbox::new(SandboxConfig {
        codegen: CodeGen::Winch,
        ..SandboxConfig::default()
    })
    .unwrap();
    let w = fresh.load_with_artifacts(&bytes, &store).unwrap();
    let cranelift = Sandbox::new(SandboxConfig::default()).unwrap();
    let wk = ArtifactKey::new(fresh.engine(), fresh.codegen(), &w.report.sha256);
    let ck = ArtifactKey::new(cranelift.engine(), cranelift.codegen(), &w.report.sha256);
    assert_ne!(store.artifact_path(&wk), store.artifact_path(&ck));
    // Cranelift finds nothing of its own and compiles; both stay stored.
    assert!(store
        .load(cranelift.engine(), cranelift.codegen(), &w.report.sha256)
        .unwrap()
        .is_none());
    cranelift.load_with_artifacts(&bytes, &store).unwrap();
    assert!(store.artifact_path(&wk).exists() && store.artifact_path(&ck).exists());
}
