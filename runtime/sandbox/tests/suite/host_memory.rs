//! Host memory and host CPU a guest causes are bounded by the call's own
//! limits: everything the host holds for the guest counts against the host
//! budget (`memory-limit`, host side), host work costs fuel, the deadline
//! holds to within a few percent, and every output is capped. Each attack
//! is a mode of the `host-hoard` / `output-bomb` fixtures.

use crate::support::fake_panel::FakePanel;
use crate::support::*;
use panel1_sandbox::{EgressPolicy, EgressRule, HostContext, Limits, Operation, Outcome};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

fn ctx(f: impl FnOnce(&mut Limits)) -> HostContext {
    let mut l = Limits {
        memory_bytes: 32 * MIB,
        timeout_ms: 30_000,
        ..Limits::default()
    };
    f(&mut l);
    HostContext {
        limits: l,
        ..HostContext::default()
    }
}

async fn hoard(ctx: HostContext, params: Value) -> panel1_sandbox::CallReport {
    let a = load("host-hoard");
    call(&a, ctx, Operation::Provision, service_with("s1", params)).await
}

fn message(r: &panel1_sandbox::CallReport) -> String {
    match &r.outcome {
        Outcome::SandboxError { message, .. } => message.clone(),
        other => panic!("expected a sandbox error, got {other:?}"),
    }
}

/// A hoarding guest is stopped at its host budget (half of 32 MiB), with a
/// message saying it was the host side, having held at most the budget
/// plus what one host call can add.
fn assert_stopped_at_host_budget(r: &panel1_sandbox::CallReport, slack: u64) {
    assert_eq!(sandbox_kind(r), "memory-limit", "{}", message(r));
    let msg = message(r);
    assert!(msg.contains("host side"), "{msg}");
    let budget = 16 * MIB;
    assert!(
        r.metrics.peak_host_memory_bytes > budget
            && r.metrics.peak_host_memory_bytes <= budget + slack,
        "peak host memory {} against a budget of {budget}",
        r.metrics.peak_host_memory_bytes
    );
    // Nothing close to the budget was spent inside the guest itself.
    assert!(r.metrics.peak_memory_bytes < 8 * MIB);
}

#[tokio::test]
async fn fields_kept_alive_are_stopped_at_the_host_budget() {
    let started = Instant::now();
    let r = hoard(
        ctx(|_| {}),
        json!({"mode": "fields", "value_kb": "60", "count": "1000000"}),
    )
    .await;
    assert_stopped_at_host_budget(&r, MIB);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_healthy().await;
}

#[tokio::test]
async fn unsent_requests_with_long_paths_are_stopped_at_the_host_budget() {
    let r = hoard(ctx(|_| {}), json!({"mode": "requests", "count": "1000000"})).await;
    assert_stopped_at_host_budget(&r, MIB);
    assert_healthy().await;
}

#[tokio::test]
async fn unsent_bodies_are_stopped_at_the_host_budget() {
    let r = hoard(ctx(|_| {}), json!({"mode": "bodies", "count": "1000000"})).await;
    assert_stopped_at_host_budget(&r, MIB);
    assert_healthy().await;
}

#[tokio::test]
async fn the_resource_table_has_a_count_limit_too() {
    // Tiny entries: the count limit, not the bytes, stops them.
    let r = hoard(
        ctx(|l| l.host_table_entries = 500),
        json!({"mode": "fields", "value_kb": "0", "count": "100000"}),
    )
    .await;
    // The guest sees the refusal as a failed call into the host: a trap.
    assert!(
        matches!(r.outcome, Outcome::SandboxError { .. }),
        "{:?}",
        r.outcome
    );
    assert_healthy().await;
}

#[tokio::test]
async fn responses_held_unread_are_stopped_at_the_host_budget() {
    let panel = FakePanel::start("t").await;
    let mut c = ctx(|_| {});
    c.egress = EgressPolicy::new(vec![EgressRule::parse(&panel.base_url()).unwrap()]);
    let url = format!("{}/big/{}", panel.base_url(), 4 * MIB);
    let r = hoard(c, json!({"mode": "responses", "url": url, "count": "64"})).await;
    // Charged as the bytes arrive: at most one frame over the budget.
    assert_stopped_at_host_budget(&r, MIB);
    // Far fewer than 64 responses were buffered.
    assert!(r.metrics.http_bytes_received < 20 * MIB);
    assert_healthy().await;
}

#[tokio::test]
async fn responses_read_and_dropped_release_their_charge() {
    // The same 4 MiB responses, each dropped after use: the budget is not a
    // per-call download quota.
    let panel = FakePanel::start("t").await;
    let mut c = ctx(|_| {});
    c.egress = EgressPolicy::new(vec![EgressRule::parse(&panel.base_url()).unwrap()]);
    let url = format!("{}/big/{}", panel.base_url(), 4 * MIB);
    let r = hoard(
        c,
        json!({"mode": "responses", "url": url, "count": "8", "drop": "true"}),
    )
    .await;
    ok(&r);
    assert_eq!(r.metrics.http_bytes_received, 32 * MIB);
    assert!(r.metrics.peak_host_memory_bytes < 16 * MIB);
}

#[tokio::test]
async fn denied_requests_count_and_their_records_are_capped() {
    let mut c = ctx(|l| l.http_max_requests = 10_000);
    c.egress = EgressPolicy::new(vec![EgressRule::parse("http://127.0.0.1:9/api/").unwrap()]);
    let r = hoard(
        c,
        json!({"mode": "denied", "url": "http://127.0.0.1:9/nope/", "count": "5000"}),
    )
    .await;
    assert_eq!(r.metrics.http_requests, 5000, "{:?}", r.outcome);
    assert_eq!(r.metrics.http_denied, 5000);
    let cap = Limits::default().log_max_bytes;
    let text = report_text(&r);
    // Log entries and exchange records share the log cap: the report stays
    // near the cap instead of 5000 x 60 KB.
    assert!(
        (text.len() as u64) < 2 * cap,
        "report is {} bytes",
        text.len()
    );
    assert!(r.metrics.log_bytes_dropped > 0);
    assert!(r.http.iter().all(|x| x.url.len() < 2048));
}

#[tokio::test]
async fn the_request_budget_counts_denied_requests() {
    let mut c = ctx(|l| l.http_max_requests = 20);
    c.egress = EgressPolicy::new(vec![EgressRule::parse("http://127.0.0.1:9/api/").unwrap()]);
    let r = hoard(
        c,
        json!({"mode": "denied", "url": "http://127.0.0.1:9/nope/", "count": "100"}),
    )
    .await;
    assert_eq!(r.metrics.http_requests, 100);
    assert!(r
        .log
        .iter()
        .any(|e| e.message.contains("request limit of 20 per call reached")));
}

/// A loop of cheap-for-the-guest, costly-for-the-host calls runs out of
/// fuel, because host work is charged: without it, it would run until the
/// deadline (the fixture loops forever).
async fn host_loop_runs_out_of_fuel(mode: &str) {
    let started = Instant::now();
    let mut c = ctx(|l| {
        l.fuel = 200_000_000;
        l.timeout_ms = 20_000;
    });
    c.config = BTreeMap::from([("k".to_string(), "v".to_string())]);
    let r = hoard(c, json!({"mode": mode, "key_kb": "64"})).await;
    assert_eq!(sandbox_kind(&r), "out-of-fuel", "{mode}: {}", message(&r));
    assert_eq!(r.metrics.fuel_consumed, 200_000_000);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{mode}: took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_config_loop_pays_fuel_for_host_work() {
    host_loop_runs_out_of_fuel("config-loop").await;
}

#[tokio::test]
async fn a_log_loop_pays_fuel_for_host_work() {
    host_loop_runs_out_of_fuel("log-loop").await;
}

#[tokio::test]
async fn a_stdout_loop_pays_fuel_for_host_work() {
    host_loop_runs_out_of_fuel("stdout").await;
}

#[tokio::test]
async fn the_deadline_holds_within_a_few_percent_under_host_calls() {
    for mode in ["config-loop", "log-loop"] {
        let started = Instant::now();
        let r = hoard(
            ctx(|l| {
                l.fuel = u64::MAX / 4;
                l.timeout_ms = 2_000;
            }),
            json!({"mode": mode, "key_kb": "64"}),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(sandbox_kind(&r), "deadline", "{mode}");
        assert!(
            took >= Duration::from_millis(2_000) && took < Duration::from_millis(2_150),
            "{mode}: stopped after {took:?}, deadline 2 s"
        );
    }
}

async fn bomb(mode: &str, op: Operation, mb: u32) -> panel1_sandbox::CallReport {
    let a = load("output-bomb");
    let c = HostContext {
        config: BTreeMap::from([("mode".to_string(), mode.to_string())]),
        ..HostContext::default()
    };
    let input = match op {
        Operation::Info => Value::Null,
        Operation::ListServices => json!({}),
        _ => service_with("s1", json!({"mode": mode, "mb": mb.to_string()})),
    };
    call(&a, c, op, input).await
}

#[tokio::test]
async fn every_kind_of_output_is_capped() {
    let cap = Limits::default().max_output_bytes;
    for (mode, op) in [
        ("error", Operation::Provision),
        ("result", Operation::Provision),
        ("list", Operation::ListServices),
        ("info", Operation::Info),
    ] {
        let r = bomb(mode, op, 100).await;
        assert_eq!(sandbox_kind(&r), "invalid-output", "{mode}");
        let text = report_text(&r);
        assert!(
            (text.len() as u64) < cap / 4,
            "{mode}: the report is {} bytes",
            text.len()
        );
    }
    // A 40 MB log field (the SDK copies it once, within the guest's 128 MiB)
    // is dropped whole and counted.
    let r = bomb("log-field", Operation::Provision, 40).await;
    ok(&r);
    assert!(
        r.metrics.log_bytes_dropped >= 40_000_000,
        "dropped {}",
        r.metrics.log_bytes_dropped
    );
    assert!((report_text(&r).len() as u64) < cap / 4);
    assert_healthy().await;
}

#[tokio::test]
async fn unsent_requests_with_long_methods_are_stopped_at_the_host_budget() {
    // `set-method(other(..))` takes a token of any length: 60 KB each here.
    let r = hoard(ctx(|_| {}), json!({"mode": "methods", "count": "1000000"})).await;
    assert_stopped_at_host_budget(&r, MIB);
    assert_healthy().await;
}

#[tokio::test]
async fn a_body_of_placeholders_is_capped_after_substitution() {
    // A 1 MiB body of ~50 000 placeholders for a 4 KiB secret would be a
    // 200 MiB request: refused before the host builds it, within the
    // request cap, and nothing reaches the panel.
    let panel = FakePanel::start("t").await;
    let mut c = ctx(|_| {});
    c.egress = EgressPolicy::new(vec![EgressRule::parse(&panel.base_url()).unwrap()]);
    c.secrets = vec![panel1_sandbox::SecretBinding {
        name: "token".into(),
        value: "s".repeat(4096),
        destinations: vec![panel.base_url().trim_start_matches("http://").to_string()],
    }];
    let url = format!("{}/echo", panel.base_url());
    let r = hoard(
        c,
        json!({"mode": "substitution", "url": url, "secret": "token"}),
    )
    .await;
    let Outcome::AdapterError { message, .. } = &r.outcome else {
        panic!(
            "expected the adapter to report the refusal, got {:?}",
            r.outcome
        );
    };
    assert!(message.contains("HttpRequestBodySize"), "{message}");
    let why = r.http[0].error.clone().unwrap_or_default();
    assert!(
        why.contains("once its secrets are substituted"),
        "{:?}",
        r.http
    );
    assert!(panel.requests().is_empty(), "the request was sent");
    assert!(
        r.metrics.peak_host_memory_bytes < 8 * MIB,
        "peak host memory {}",
        r.metrics.peak_host_memory_bytes
    );
}
