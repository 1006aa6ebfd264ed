//! The orchestrator with the real Docker adapter: a real Postgres, real
//! workers, the real `docker.wasm` in the real sandbox, and the Docker
//! Engine simulator over mutual TLS on loopback. The client identity (a PEM
//! certificate and key) is stored encrypted like any secret and presented
//! by the host; it appears in no row and no log line.

use crate::common::provider::{attempts, Connection, ProviderServer};
use panel1_sims::docker::{DockerConfig, DockerSimulator};
use panel1_sims::{Fault, FaultRule};
use serde_json::json;
use std::time::Duration;

async fn start(identity: bool) -> (DockerSimulator, ProviderServer) {
    let sim = DockerSimulator::start(DockerConfig::default())
        .await
        .expect("simulator");
    let port = sim.addr().port();
    let mut secrets = Vec::new();
    if identity {
        let pem = sim.client_identity_pem().unwrap().to_string();
        secrets.push(("docker-client-identity", pem));
    }
    let h = ProviderServer::start(Connection {
        adapter: "docker",
        config: json!({
            "host": "127.0.0.1", "port": port, "request_timeout_ms": 1500,
            "plans": {"small": {"image": "nginx:1.27", "memory_mb": 256, "cpus": 0.5}},
        }),
        rule: format!("{}/ sha256:{}", sim.base_url(), sim.cert_sha256()),
        secrets,
        port,
    })
    .await;
    (sim, h)
}

fn spec(name: &str) -> serde_json::Value {
    json!({ "service_id": format!("svc-{name}"), "username": name, "plan": "small" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_converges_to_one_container_and_the_lifecycle_runs_as_tasks() {
    let (sim, h) = start(true).await;
    sim.inject(FaultRule::next(
        "POST /containers/create",
        Fault::StallAfterApply(Duration::from_secs(10)),
        1,
    ));
    let svc = h.service(spec("web7")).await;
    let (state, tries) = h
        .run(svc, "provision", json!({ "service": spec("web7") }))
        .await;
    assert_eq!(state, "succeeded");
    assert_eq!(
        tries,
        attempts(&[("adapter-error", Some("transient")), ("succeeded", None)])
    );
    assert_eq!(sim.containers().len(), 1, "one container");
    assert_eq!(sim.count_calls("POST /containers/create"), 1);
    assert_eq!(
        h.service_state(svc).await,
        ("active".into(), Some("web7".into()))
    );

    let existing =
        json!({ "service": { "service_id": "svc-web7", "remote_id": "web7" }, "reason": "" });
    for (op, service_state, container) in [
        ("suspend", "suspended", Some("exited")),
        ("unsuspend", "active", Some("running")),
        ("terminate", "terminated", None),
    ] {
        let (state, _) = h.run(svc, op, existing.clone()).await;
        assert_eq!(state, "succeeded", "{op}");
        assert_eq!(h.service_state(svc).await.0, service_state, "{op}");
        assert_eq!(
            sim.container("web7").map(|c| c.state).as_deref(),
            container,
            "{op}"
        );
    }
    assert!(sim.volumes().is_empty());
    assert!(sim.request_log().iter().all(|r| r.well_formed()));
    h.assert_nothing_leaked("docker call", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_client_identity_a_task_fails_at_once() {
    let (sim, h) = start(false).await;
    let svc = h.service(spec("web8")).await;
    let (state, tries) = h
        .run(svc, "provision", json!({ "service": spec("web8") }))
        .await;
    assert_eq!(state, "failed");
    assert_eq!(
        tries,
        attempts(&[("adapter-error", Some("auth-failed"))]),
        "not retried"
    );
    assert!(sim.containers().is_empty());
    h.assert_nothing_leaked("docker call", &[sim.client_identity_pem().unwrap()])
        .await;
}
