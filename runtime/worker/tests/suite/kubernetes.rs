//! The orchestrator with the real Kubernetes adapter: a real Postgres, real
//! workers, the real `kubernetes.wasm` in the real sandbox, and the
//! Kubernetes API server simulator on loopback with its cluster CA pinned.
//! The service account token is stored encrypted, sent by placeholder, and
//! appears in no row and no log line.

use crate::common::provider::{attempts, Connection, ProviderServer};
use panel1_sims::kube::{KubeAuth, KubeConfig, KubeSimulator};
use panel1_sims::{Fault, FaultRule};
use serde_json::json;
use std::time::Duration;

const TOKEN: &str = "sa-token-0123456789abcdefWORKER";

async fn start() -> (KubeSimulator, ProviderServer) {
    let sim = KubeSimulator::start(KubeConfig {
        auth: KubeAuth::Token(TOKEN.into()),
        terminating_for: Duration::from_millis(400),
        ..KubeConfig::default()
    })
    .await
    .expect("simulator");
    let port = sim.addr().port();
    let h = ProviderServer::start(Connection {
        adapter: "kubernetes",
        config: json!({
            "host": "127.0.0.1", "port": port, "request_timeout_ms": 1500,
            "plans": {"small": {"image": "nginx:1.27", "replicas": 2, "cpu": "250m", "memory": "256Mi", "volume_access": "ReadWriteMany"}},
        }),
        rule: format!("{}/ sha256:{}", sim.base_url(), sim.ca_sha256()),
        secrets: vec![("kubernetes-token", TOKEN.to_string())],
        port,
    })
    .await;
    (sim, h)
}

fn spec(name: &str) -> serde_json::Value {
    json!({ "service_id": format!("svc-{name}"), "username": name, "plan": "small", "domain": format!("{name}.example.com") })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_apply_converges_to_one_namespace_and_the_lifecycle_runs_as_tasks() {
    let (sim, h) = start().await;
    sim.inject(FaultRule::next(
        "PATCH /apis/apps/v1/namespaces/{namespace}/deployments/{name}",
        Fault::StallAfterApply(Duration::from_secs(10)),
        1,
    ));
    let svc = h.service(spec("shop")).await;
    let (state, tries) = h
        .run(svc, "provision", json!({ "service": spec("shop") }))
        .await;
    assert_eq!(state, "succeeded");
    assert_eq!(
        tries,
        attempts(&[("adapter-error", Some("transient")), ("succeeded", None)])
    );
    let ours = |sim: &KubeSimulator| {
        sim.namespaces()
            .into_iter()
            .filter(|n| {
                n.pointer("/metadata/labels/panel1.io~1service-id")
                    .is_some()
            })
            .count()
    };
    assert_eq!(ours(&sim), 1, "one namespace");
    assert_eq!(
        sim.objects("deployments", "shop").len(),
        1,
        "one deployment"
    );
    assert_eq!(
        h.service_state(svc).await,
        ("active".into(), Some("shop".into()))
    );

    let existing =
        json!({ "service": { "service_id": "svc-shop", "remote_id": "shop" }, "reason": "" });
    for (op, service_state, replicas) in [
        ("suspend", "suspended", Some(0)),
        ("unsuspend", "active", Some(2)),
        ("terminate", "terminated", None),
    ] {
        let (state, _) = h.run(svc, op, existing.clone()).await;
        assert_eq!(state, "succeeded", "{op}");
        assert_eq!(h.service_state(svc).await.0, service_state, "{op}");
        let got = sim
            .object("deployments", "shop", "web")
            .and_then(|d| d.pointer("/spec/replicas").and_then(|r| r.as_u64()));
        assert_eq!(got, replicas, "{op}");
    }
    assert_eq!(ours(&sim), 0, "the namespace is gone");
    assert!(sim.request_log().iter().all(|r| r.well_formed()));
    h.assert_nothing_leaked("kubernetes call", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_fails_the_task_at_once() {
    let (sim, h) = start().await;
    sim.expire_token();
    let svc = h.service(spec("late")).await;
    let (state, tries) = h
        .run(svc, "provision", json!({ "service": spec("late") }))
        .await;
    assert_eq!(state, "failed");
    assert_eq!(
        tries,
        attempts(&[("adapter-error", Some("auth-failed"))]),
        "not retried"
    );
    assert!(sim.objects("deployments", "late").is_empty());
    h.assert_nothing_leaked("kubernetes call", &[TOKEN]).await;
}
