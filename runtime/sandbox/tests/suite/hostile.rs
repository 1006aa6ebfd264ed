//! Each hostile fixture is contained with the right error kind, within its
//! limit, and the process runs a normal operation right after.

use crate::support::*;
use panel1_sandbox::{HostContext, Limits, Operation, Outcome, Sandbox, SandboxConfig};
use serde_json::Value;
use std::time::Instant;

fn limits(f: impl FnOnce(&mut Limits)) -> HostContext {
    let mut l = Limits::default();
    f(&mut l);
    HostContext {
        limits: l,
        ..HostContext::default()
    }
}

#[tokio::test]
async fn infinite_loop_runs_out_of_fuel() {
    let a = load("spin-loop");
    let r = call(
        &a,
        limits(|l| l.fuel = 50_000_000),
        Operation::Provision,
        service("s1"),
    )
    .await;
    assert_eq!(sandbox_kind(&r), "out-of-fuel");
    assert_eq!(r.metrics.fuel_consumed, 50_000_000);
    assert_eq!(r.metrics.trap_kind.as_deref(), Some("out-of-fuel"));
    assert_healthy().await;
}

#[tokio::test]
async fn infinite_loop_hits_the_wall_clock_deadline() {
    let a = load("spin-loop");
    let started = Instant::now();
    let ctx = limits(|l| {
        l.fuel = u64::MAX / 2;
        l.timeout_ms = 300;
    });
    let r = call(&a, ctx, Operation::Provision, service("s1")).await;
    assert_eq!(sandbox_kind(&r), "deadline");
    let took = started.elapsed().as_millis();
    assert!(
        (300..3000).contains(&took),
        "stopped after {took} ms, limit 300 ms"
    );
    assert_healthy().await;
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let a = load("mem-bomb");
    let r = call(
        &a,
        limits(|l| l.memory_bytes = 48 << 20),
        Operation::Provision,
        service("s1"),
    )
    .await;
    assert_eq!(sandbox_kind(&r), "memory-limit");
    assert!(
        r.metrics.peak_memory_bytes <= 48 << 20,
        "peak {}",
        r.metrics.peak_memory_bytes
    );
    assert!(
        r.metrics.peak_memory_bytes > 8 << 20,
        "the bomb did allocate before being stopped"
    );
    assert_healthy().await;
}

#[tokio::test]
async fn deep_recursion_traps() {
    let a = load("deep-recursion");
    let r = call(
        &a,
        HostContext::default(),
        Operation::Provision,
        service("s1"),
    )
    .await;
    assert_eq!(sandbox_kind(&r), "guest-trap");
    assert_healthy().await;
}

#[tokio::test]
async fn deep_recursion_on_the_wasm_stack_is_a_stack_overflow() {
    // With a larger shadow stack budget the native wasm stack limit is what
    // trips; a smaller max_wasm_stack makes that certain.
    let sandbox = Sandbox::new(SandboxConfig {
        max_wasm_stack: 64 << 10,
        ..SandboxConfig::default()
    })
    .unwrap();
    let a = sandbox.load(&component("deep-recursion")).unwrap();
    let r = sandbox
        .call(
            &a,
            std::sync::Arc::new(HostContext::default()),
            &request(Operation::Provision, service("s1")),
        )
        .await
        .unwrap();
    match &r.outcome {
        Outcome::SandboxError { kind, message } => {
            assert_eq!(kind.as_str(), "guest-trap");
            assert!(
                message.contains("stack") || message.contains("out of bounds"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn huge_output_is_refused() {
    let a = load("huge-output");
    let r = call(
        &a,
        HostContext::default(),
        Operation::Provision,
        service("s1"),
    )
    .await;
    assert_eq!(sandbox_kind(&r), "invalid-output");
    assert_healthy().await;
}

#[tokio::test]
async fn log_spam_is_capped_and_counted() {
    let a = load("log-spam");
    let cap = 64 << 10;
    let r = call(
        &a,
        limits(|l| l.log_max_bytes = cap),
        Operation::Provision,
        service("s1"),
    )
    .await;
    assert_eq!(ok(&r)["remote_id"], "spammer");
    let kept: usize = r
        .log
        .iter()
        .filter(|e| e.source != "host")
        .map(|e| e.message.len())
        .sum();
    assert!(kept as u64 <= cap, "kept {kept} bytes of log, cap {cap}");
    assert!(
        r.metrics.log_bytes_dropped > 1_000_000,
        "dropped {}",
        r.metrics.log_bytes_dropped
    );
    assert_healthy().await;
}

#[tokio::test]
async fn panic_in_the_middle_of_an_operation_is_a_guest_trap_with_the_message() {
    let a = load("mid-trap");
    let r = call(
        &a,
        HostContext::default(),
        Operation::Provision,
        service("s1"),
    )
    .await;
    assert_eq!(sandbox_kind(&r), "guest-trap");
    let text = report_text(&r);
    assert!(text.contains("index out of bounds"), "{text}");
    // The work done before the panic is still in the log.
    assert!(r.log.iter().any(|e| e.message == "starting provision"));
    assert_healthy().await;
}

#[tokio::test]
async fn unsupported_operations_are_typed_errors() {
    let a = load("spin-loop");
    let r = call(&a, HostContext::default(), Operation::Usage, service("s1")).await;
    let (kind, _) = adapter_error(&r);
    assert_eq!(kind, "unsupported");
}

#[tokio::test]
async fn invalid_components_are_rejected_with_a_reason() {
    let s = sandbox();
    let e = s.load(b"definitely not wasm").unwrap_err();
    assert_eq!(e.kind().as_str(), "invalid-component");
    let e = s.load(b"\0asm\x01\0\0\0").unwrap_err();
    assert!(e.to_string().contains("core WebAssembly module"), "{e}");
    let mut truncated = component("reference");
    truncated.truncate(truncated.len() / 2);
    assert_eq!(
        s.load(&truncated).unwrap_err().kind().as_str(),
        "invalid-component"
    );
    let e = s.load(&component("bad-import")).unwrap_err();
    assert!(
        e.to_string().contains("evil:extras/raw-sockets@0.1.0"),
        "{e}"
    );
    assert_healthy().await;
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_runs() {
    let a = load("reference");
    let req = request(
        Operation::Provision,
        serde_json::json!({"service": {"service_id": 7}}),
    );
    let e = sandbox()
        .call(&a, std::sync::Arc::new(HostContext::default()), &req)
        .await
        .unwrap_err();
    // The message names the field's path.
    let text = e.to_string();
    assert!(
        text.contains("invalid type") && text.contains("service.service_id"),
        "{text}"
    );
    let req = request(
        Operation::Provision,
        serde_json::json!({"service": {"service_id": "s", "params": {"plan": 3}}}),
    );
    let e = sandbox()
        .call(&a, std::sync::Arc::new(HostContext::default()), &req)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("service.params.plan"), "{e}");
    let req = request(Operation::Suspend, Value::Null);
    assert!(sandbox()
        .call(&a, std::sync::Arc::new(HostContext::default()), &req)
        .await
        .is_err());
}

#[tokio::test]
async fn many_concurrent_calls_each_get_a_fresh_store() {
    let a = load("reference");
    let mut handles = Vec::new();
    for _ in 0..64 {
        let a = a.clone();
        handles.push(tokio::spawn(async move {
            call(&a, HostContext::default(), Operation::Info, Value::Null).await
        }));
    }
    for h in handles {
        let r = h.await.unwrap();
        assert_eq!(ok(&r)["name"], "reference");
    }
}

/// Calls run as futures on the async runtime's threads. Four guests
/// spinning at once on a two-thread runtime (configured as `panel1`'s) must
/// still leave those threads to other tasks: each yields once per epoch
/// tick. Without the yield, they would hold both threads until their 1.5 s
/// deadline.
#[test]
fn spinning_guests_leave_the_runtime_threads_to_other_tasks() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .event_interval(panel1_sandbox::RUNTIME_EVENT_INTERVAL)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let a = load("spin-loop");
        let mut spinners = Vec::new();
        for _ in 0..4 {
            let a = a.clone();
            spinners.push(tokio::spawn(async move {
                let ctx = limits(|l| {
                    l.fuel = u64::MAX / 2;
                    l.timeout_ms = 1500;
                });
                call(&a, ctx, Operation::Provision, service("s1")).await
            }));
        }
        // A task beside them that wants to run every 10 ms.
        let ticker = tokio::spawn(async {
            let mut worst = std::time::Duration::ZERO;
            let start = Instant::now();
            while start.elapsed() < std::time::Duration::from_millis(1200) {
                let asked = Instant::now();
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                worst = worst.max(asked.elapsed());
            }
            worst
        });
        let worst = ticker.await.unwrap();
        for s in spinners {
            assert_eq!(sandbox_kind(&s.await.unwrap()), "deadline");
        }
        assert!(
            worst < std::time::Duration::from_millis(150),
            "a 10 ms sleep took {worst:?} beside four spinning guests"
        );
    });
}
