//! The orchestrator with the real Plesk adapter: a real Postgres (a fresh
//! database), real workers, the real `plesk.wasm` in the real sandbox, and
//! the Plesk simulator over HTTPS on loopback (its certificate pinned, the
//! API key stored encrypted and bound to `127.0.0.1:PORT`).
//!
//! What is checked: a subscription Plesk created whose answer was lost is
//! retried and adopted, never made twice; the whole lifecycle runs as tasks;
//! a refused key fails at once; the key and the password appear nowhere in
//! the database or the worker's logs.

use crate::common::provider::{attempts, Connection, ProviderServer};
use panel1_sims::plesk::{PleskConfig, PleskSimulator};
use panel1_sims::{Fault, FaultRule};
use serde_json::json;
use std::time::Duration;

const PASSWORD: &str = "Plesk#Pass-4417";

/// One tenant, one Plesk server; `key`: the secret's value (`None`: the
/// simulator's key).
async fn start(key: Option<&str>) -> (PleskSimulator, ProviderServer) {
    let sim = PleskSimulator::start(PleskConfig::default())
        .await
        .expect("simulator");
    let port = sim.addr().port();
    let h = ProviderServer::start(Connection {
        adapter: "plesk",
        config: json!({"host": "127.0.0.1", "port": port, "request_timeout_ms": 1500}),
        rule: format!("{}/ sha256:{}", sim.api_url(), sim.cert_sha256()),
        secrets: vec![
            ("plesk-api-key", key.unwrap_or(sim.api_key()).to_string()),
            ("svc-password", PASSWORD.to_string()),
        ],
        port,
    })
    .await;
    (sim, h)
}

fn spec(login: &str) -> serde_json::Value {
    json!({
        "service_id": format!("svc-{login}"), "username": login,
        "domain": format!("{login}.example.com"), "plan": "Default Domain",
        "contact_email": format!("{login}@example.net"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_retried_and_the_lifecycle_runs_as_tasks() {
    let (sim, h) = start(None).await;
    sim.inject(FaultRule::next(
        "POST /domains",
        Fault::StallAfterApply(Duration::from_secs(10)),
        1,
    ));
    let svc = h.service(spec("nina")).await;
    let input = json!({ "service": spec("nina"), "password_secret": "svc-password" });
    let (state, tries) = h.run(svc, "provision", input).await;
    assert_eq!(state, "succeeded");
    assert_eq!(
        tries,
        attempts(&[("adapter-error", Some("transient")), ("succeeded", None)])
    );
    assert_eq!(sim.count_calls("POST /domains"), 1, "created exactly once");
    assert_eq!(
        h.service_state(svc).await,
        ("active".into(), Some("nina.example.com".into()))
    );
    assert!(sim.client("nina").unwrap().password_is(PASSWORD));

    let existing = json!({ "service": { "service_id": "svc-nina", "remote_id": "nina.example.com" }, "reason": "" });
    for (op, service_state, sub_state) in [
        ("suspend", "suspended", Some("suspended")),
        ("unsuspend", "active", Some("active")),
        ("terminate", "terminated", None),
    ] {
        let (state, _) = h.run(svc, op, existing.clone()).await;
        assert_eq!(state, "succeeded", "{op}");
        assert_eq!(h.service_state(svc).await.0, service_state, "{op}");
        assert_eq!(
            sim.domain("nina.example.com").map(|d| d.status).as_deref(),
            sub_state,
            "{op}"
        );
    }
    assert!(
        sim.clients().is_empty(),
        "the customer went with its only subscription"
    );
    assert!(sim.request_log().iter().all(|r| r.well_formed()));
    h.assert_nothing_leaked("plesk call", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_at_once() {
    let (sim, h) = start(Some("not-the-key-0000-1111")).await;
    let svc = h.service(spec("oscar")).await;
    let (state, tries) = h
        .run(svc, "provision", json!({ "service": spec("oscar") }))
        .await;
    assert_eq!(state, "failed");
    assert_eq!(
        tries,
        attempts(&[("adapter-error", Some("auth-failed"))]),
        "not retried"
    );
    assert!(sim.clients().is_empty());
    h.assert_nothing_leaked("plesk call", &[sim.api_key()])
        .await;
}
