//! Server health through real workers: the real cPanel adapter's
//! `test-connection` against the WHM simulator, run by the workers' check
//! loop on each server's schedule.
//!
//! What is checked: a reachable server becomes `healthy`; one that stops
//! answering goes `degraded`, then `down` after `down_after` failed checks,
//! with each change kept as history and written as an event; while it is
//! down its circuit breaker holds its tasks (they wait, no attempt spent,
//! and read as waiting for the server); when it answers again it is
//! `healthy`, the breaker releases, and the held task runs once and
//! succeeds. A refused credential makes the server `degraded` at once
//! without holding its tasks (they fail fast with `auth-failed`); turning
//! checks off makes it `unknown`.
// The cPanel harness; not every helper of it is used here.
#[allow(dead_code)]
use crate::common::stop;
use crate::whm::{existing, provision, Setup, Whm};
use panel1_sims::{Fault, FaultRule};
use panel1_store::health::{set_health_settings, HealthSettings};
use panel1_store::testing;
use serde_json::json;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// Checks every second (two while healthy), down after two failures.
async fn quick_checks(h: &Whm) {
    let s = HealthSettings {
        interval_secs: Some(2),
        recheck_secs: Some(1),
        down_after: Some(2),
        ..HealthSettings::default()
    };
    assert!(set_health_settings(&h.pool, h.tenant, h.server, &s)
        .await
        .unwrap());
}

async fn health(h: &Whm) -> (String, Option<String>, i32) {
    sqlx::query_as("SELECT state, reason, failures FROM server_health WHERE server_id = $1")
        .bind(h.server)
        .fetch_one(&h.pool)
        .await
        .unwrap()
}

async fn wait_for_state(h: &Whm, want: &str) {
    let start = Instant::now();
    loop {
        let (state, reason, _) = health(h).await;
        if state == want {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "server still {state} ({reason:?}), waiting for {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn transitions(h: &Whm) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT from_state, to_state FROM server_health_transitions
         WHERE server_id = $1 ORDER BY id",
    )
    .bind(h.server)
    .fetch_all(&h.pool)
    .await
    .unwrap()
}

async fn health_events(h: &Whm) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT payload->>'from', payload->>'to' FROM events
         WHERE kind = 'server.health_changed' AND payload->>'server_id' = $1::text
           AND tenant_id = $2 ORDER BY id",
    )
    .bind(h.server)
    .bind(h.tenant)
    .fetch_all(&h.pool)
    .await
    .unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn breaker_hold(h: &Whm) -> Option<i32> {
    sqlx::query_scalar("SELECT running FROM server_load WHERE server_id = $1 AND shard = -1")
        .bind(h.server)
        .fetch_optional(&h.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_holds_its_tasks_until_it_recovers() {
    let h = Whm::start(Setup::default()).await;
    quick_checks(&h).await;
    let workers = h.workers(2);
    wait_for_state(&h, "healthy").await;
    let version_calls = h.sim.count_calls("version");
    assert!(
        version_calls >= 1,
        "the check is the adapter's test-connection (WHM `version`)"
    );

    let svc = h.service("holda").await;
    let provisioned = h.enqueue(svc, "provision", provision("holda")).await;
    assert_eq!(h.finished(provisioned).await, "succeeded");

    // The server stops answering: every request is a 503.
    h.sim.inject(FaultRule::always(Fault::ServerError(503)));
    wait_for_state(&h, "down").await;
    let (_, reason, failures) = health(&h).await;
    assert!(failures >= 2, "{failures}");
    assert!(
        reason.as_deref().unwrap_or("").starts_with("transient:"),
        "{reason:?}"
    );
    assert!(breaker_hold(&h).await.is_some(), "the breaker is open");

    // A task for the server now waits: no attempt is spent on it.
    let mut input = existing("holda");
    input["reason"] = json!("held");
    let suspend = h.enqueue(svc, "suspend", input).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (state, attempt, waiting): (String, i32, bool) = sqlx::query_as(
        "SELECT state::text, attempt, panel1_server_down(server_id) FROM tasks WHERE id = $1",
    )
    .bind(suspend)
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), attempt, waiting), ("available", 0, true));
    assert!(h.attempts(suspend).await.is_empty());
    assert_eq!(
        h.sim.count_calls("suspendacct"),
        0,
        "nothing was sent for it"
    );

    // The server answers again: healthy, breaker closed, the task runs once.
    h.sim.clear_faults();
    wait_for_state(&h, "healthy").await;
    assert_eq!(h.finished(suspend).await, "succeeded");
    let (attempt, _, _) = h.task_row(suspend).await;
    assert_eq!(attempt, 1, "the wait spent no attempt");
    assert_eq!(h.service_row(svc).await.0, "suspended");
    assert_eq!(
        breaker_hold(&h).await,
        None,
        "the breaker released the server"
    );

    let history = pairs(&[
        ("unknown", "healthy"),
        ("healthy", "degraded"),
        ("degraded", "down"),
        ("down", "healthy"),
    ]);
    assert_eq!(transitions(&h).await, history);
    assert_eq!(health_events(&h).await, history, "each change is an event");
    stop(workers).await;
    testing::assert_server_load_matches(&h.pool).await;
    h.assert_nothing_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_degrades_the_server_without_holding_its_tasks() {
    let h = Whm::start(Setup {
        token: Some("WRONGTOKEN0123456789ABCDEFGHIJKL".into()),
        ..Setup::default()
    })
    .await;
    quick_checks(&h).await;
    let workers = h.workers(1);
    wait_for_state(&h, "degraded").await;
    let (_, reason, _) = health(&h).await;
    assert!(
        reason.as_deref().unwrap_or("").starts_with("auth-failed:"),
        "{reason:?}"
    );
    // Still degraded after more checks than `down_after`: not unreachable.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(health(&h).await.0, "degraded");
    assert_eq!(breaker_hold(&h).await, None);

    // Its tasks fail fast with the credential's error, as before.
    let svc = h.service("refused").await;
    let task = h.enqueue(svc, "provision", provision("refused")).await;
    assert_eq!(h.finished(task).await, "failed");
    let attempts = h.attempts(task).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].error_kind.as_deref(), Some("auth-failed"));

    // Checks off: unknown, and no worker checks it any more.
    let off = HealthSettings {
        enabled: Some(false),
        ..HealthSettings::default()
    };
    assert!(set_health_settings(&h.pool, h.tenant, h.server, &off)
        .await
        .unwrap());
    assert_eq!(health(&h).await.0, "unknown");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let calls = h.sim.count_calls("version");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.sim.count_calls("version"),
        calls,
        "no checks while disabled"
    );
    stop(workers).await;
    h.assert_nothing_leaked().await;
}
