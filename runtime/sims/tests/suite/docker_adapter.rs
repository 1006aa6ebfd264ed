//! The real docker adapter (`adapters/dist/docker.wasm`) in the real sandbox
//! against the Docker Engine simulator over mutual TLS on loopback: the
//! host presents the client identity bound to the Engine's address (the
//! guest never sees it), the Engine's certificate is pinned. Every
//! operation, ensure semantics on retries, faults, and every request checked
//! against the official Engine API description.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::guest::{error, load, ok, report_texts, sandbox};
use panel1_sandbox::{
    CallReport, CallRequest, EgressPolicy, EgressRule, HostContext, LoadedAdapter, Operation,
    SecretBinding,
};
use panel1_sims::docker::{DockerConfig, DockerSimulator, Usage};
use panel1_sims::{Fault, FaultRule};
use serde_json::{json, Value};

const PLANS: &str = r#"{"small":{"image":"nginx:1.27","memory_mb":256,"cpus":0.5},"large":{"image":"nginx:1.27","memory_mb":1024,"cpus":2},"php":{"image":"php:8.3-apache","memory_mb":512,"cpus":1,"volume_path":"/var/www/html"}}"#;

fn adapter() -> Arc<LoadedAdapter> {
    static ADAPTER: OnceLock<Arc<LoadedAdapter>> = OnceLock::new();
    ADAPTER.get_or_init(|| load("docker")).clone()
}

struct Docker {
    sim: DockerSimulator,
    ctx: HostContext,
}

impl Docker {
    async fn start() -> Docker {
        Docker::with(DockerConfig::default()).await
    }

    async fn with(config: DockerConfig) -> Docker {
        let sim = DockerSimulator::start(config).await.expect("simulator");
        sim.add_network("tenant-net");
        let port = sim.addr().port();
        let config: BTreeMap<String, String> = [
            ("host", "127.0.0.1".to_string()),
            ("port", port.to_string()),
            ("network", "tenant-net".into()),
            ("plans", PLANS.into()),
            ("request_timeout_ms", "1000".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let rule = format!("{}/ sha256:{}", sim.base_url(), sim.cert_sha256());
        let ctx = HostContext {
            config,
            secrets: vec![SecretBinding {
                name: "docker-client-identity".into(),
                value: sim.client_identity_pem().expect("mutual TLS").into(),
                destinations: vec![format!("127.0.0.1:{port}")],
            }],
            egress: EgressPolicy::new(vec![EgressRule::parse(&rule).unwrap()]),
            ..HostContext::default()
        };
        Docker { sim, ctx }
    }

    async fn call_attempt(&self, op: Operation, input: Value, attempt: u32) -> CallReport {
        let request = CallRequest {
            operation: op,
            input,
            idempotency_key: format!("task-{op:?}"),
            attempt,
        };
        let report = sandbox()
            .call(&adapter(), Arc::new(self.ctx.clone()), &request)
            .await
            .expect("the input matches the operation");
        // The private key of the identity is in no record.
        let pem = self.sim.client_identity_pem().unwrap();
        let key = &pem[pem.find("-----BEGIN PRIVATE KEY-----").unwrap()..];
        for line in key
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
        {
            for t in report_texts(&report) {
                assert!(!t.contains(line), "the client key is in a record");
            }
        }
        report
    }

    async fn call(&self, op: Operation, input: Value) -> CallReport {
        self.call_attempt(op, input, 1).await
    }

    fn assert_well_formed(&self) {
        for r in self.sim.request_log() {
            assert!(r.well_formed(), "malformed request: {r:#?}");
        }
    }
}

fn new_service(name: &str, plan: &str) -> Value {
    json!({"service": {"service_id": format!("svc-{name}"), "username": name, "plan": plan}})
}

fn service(name: &str) -> Value {
    json!({"service": {"service_id": format!("svc-{name}"), "remote_id": name}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_of_a_container() {
    let h = Docker::start().await;
    let r = h.call(Operation::TestConnection, json!({})).await;
    let res = ok(&r);
    assert!(res["server_version"]
        .as_str()
        .unwrap()
        .starts_with("Docker Engine"));

    let r = h
        .call(Operation::Provision, new_service("web1", "small"))
        .await;
    let res = ok(&r);
    assert_eq!(
        (
            res["remote_id"].as_str(),
            res["state"].as_str(),
            res["plan"].as_str()
        ),
        (Some("web1"), Some("active"), Some("small"))
    );
    let c = h.sim.container("web1").expect("created");
    assert_eq!(
        (
            c.state.as_str(),
            c.image.as_str(),
            c.memory,
            c.nano_cpus,
            c.network.as_str()
        ),
        (
            "running",
            "nginx:1.27",
            256 << 20,
            500_000_000,
            "tenant-net"
        )
    );
    assert_eq!(c.labels["panel1.service"], "svc-web1");
    assert_eq!(
        c.volumes,
        vec![("web1-data".to_string(), "/data".to_string())]
    );

    // A retry adopts; nothing is created twice.
    let r = h
        .call_attempt(Operation::Provision, new_service("web1", "small"), 2)
        .await;
    assert_eq!(ok(&r)["state"], "active");
    assert_eq!(h.sim.count_calls("POST /containers/create"), 1);

    for _ in 0..2 {
        let r = h.call(Operation::Suspend, service("web1")).await;
        assert_eq!(ok(&r)["state"], "suspended");
    }
    assert_eq!(h.sim.container("web1").unwrap().state, "exited");
    assert_eq!(
        h.sim.count_calls("POST /containers/{id}/stop"),
        1,
        "the second suspend changed nothing"
    );
    for _ in 0..2 {
        let r = h.call(Operation::Unsuspend, service("web1")).await;
        assert_eq!(ok(&r)["state"], "active");
    }
    let mut status_in = service("web1");
    status_in["service"]["plan"] = json!("small");
    let r = h.call(Operation::Status, status_in).await;
    assert_eq!(
        (ok(&r)["state"].as_str(), ok(&r)["plan"].as_str()),
        (Some("active"), Some("small"))
    );

    // Same image: resources updated in place.
    let id = h.sim.container("web1").unwrap().id;
    let r = h
        .call(
            Operation::ChangePackage,
            json!({"service": service("web1")["service"], "plan": "large"}),
        )
        .await;
    assert_eq!(ok(&r)["plan"], "large");
    let c = h.sim.container("web1").unwrap();
    assert_eq!(
        (c.id.as_str(), c.memory, c.nano_cpus),
        (id.as_str(), 1 << 30, 2_000_000_000)
    );
    // A new image: recreated, same volume, running again.
    let r = h
        .call(
            Operation::ChangePackage,
            json!({"service": service("web1")["service"], "plan": "php"}),
        )
        .await;
    assert_eq!(ok(&r)["state"], "active");
    let c = h.sim.container("web1").unwrap();
    assert_ne!(c.id, id);
    assert_eq!(
        (c.image.as_str(), c.state.as_str()),
        ("php:8.3-apache", "running")
    );
    assert_eq!(c.volumes[0].0, "web1-data");
    let r = h
        .call(
            Operation::ChangePackage,
            json!({"service": service("web1")["service"], "plan": "gold"}),
        )
        .await;
    assert_eq!(error(&r).0, "invalid-input");

    h.sim
        .set_usage(
            "web1",
            Usage {
                cpu_total_ns: 3_000_000_000,
                memory_bytes: 64 << 20,
                rx_bytes: 1000,
                tx_bytes: 2000,
                read_bytes: 3000,
                write_bytes: 4000,
            },
        )
        .unwrap();
    let r = h.call(Operation::Usage, service("web1")).await;
    let metrics: BTreeMap<String, f64> = ok(&r)["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(metrics["cpu_seconds"], 3.0);
    assert_eq!(
        (
            metrics["memory_used"],
            metrics["network_rx"],
            metrics["network_tx"]
        ),
        ((64 << 20) as f64, 1000.0, 2000.0)
    );
    assert_eq!(
        (metrics["block_read"], metrics["block_write"]),
        (3000.0, 4000.0)
    );

    for _ in 0..2 {
        let r = h.call(Operation::Terminate, service("web1")).await;
        assert_eq!(ok(&r)["state"], "terminated");
    }
    assert!(h.sim.containers().is_empty() && h.sim.volumes().is_empty());
    let r = h.call(Operation::Status, service("web1")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_mode_retention_listing_and_conflicts() {
    let mut h = Docker::start().await;
    h.ctx.config.insert("suspend_mode".into(), "pause".into());
    h.ctx.config.insert("keep_volumes".into(), "true".into());
    for name in ["b2", "a1", "c3"] {
        let r = h
            .call(Operation::Provision, new_service(name, "small"))
            .await;
        assert_eq!(ok(&r)["state"], "active");
    }
    let r = h.call(Operation::Suspend, service("a1")).await;
    assert_eq!(ok(&r)["state"], "suspended");
    assert_eq!(h.sim.container("a1").unwrap().state, "paused");
    let r = h.call(Operation::Unsuspend, service("a1")).await;
    assert_eq!(ok(&r)["state"], "active");

    let r = h
        .call(Operation::ListServices, json!({"cursor": null, "limit": 2}))
        .await;
    let page = ok(&r);
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["remote_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a1", "b2"]);
    let r = h
        .call(
            Operation::ListServices,
            json!({"cursor": page["next_cursor"], "limit": 2}),
        )
        .await;
    assert_eq!(ok(&r)["items"][0]["remote_id"], "c3");
    assert!(ok(&r)["next_cursor"].is_null());

    // Another service's container with the name: a conflict, untouched.
    let mut other = new_service("b2", "small");
    other["service"]["service_id"] = json!("svc-someone-else");
    let r = h.call(Operation::Provision, other).await;
    assert_eq!(error(&r).0, "conflict");

    let r = h.call(Operation::Terminate, service("c3")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    assert!(h.sim.container("c3").is_none());
    assert!(
        h.sim.volumes().iter().any(|v| v.name == "c3-data"),
        "kept (retention)"
    );
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_a_lost_answer_converge_to_one_container() {
    let h = Docker::start().await;
    h.sim.inject(FaultRule::next(
        "POST /containers/create",
        Fault::StallAfterApply(Duration::from_secs(5)),
        1,
    ));
    let r = h
        .call(Operation::Provision, new_service("lost", "small"))
        .await;
    assert_eq!(error(&r).0, "transient");
    let r = h
        .call_attempt(Operation::Provision, new_service("lost", "small"), 2)
        .await;
    assert_eq!(ok(&r)["state"], "active");
    assert_eq!(h.sim.containers().len(), 1);
    assert_eq!(
        h.sim.count_calls("POST /containers/create"),
        1,
        "created once, adopted and started by the retry"
    );

    for (fault, kind) in [
        (Fault::ServerError(503), "transient"),
        (Fault::ResetConnection, "transient"),
        (Fault::ProblemJson(502), "transient"),
        (Fault::ProblemJson(405), "permanent"),
        (Fault::LoginPage, "auth-failed"),
    ] {
        h.sim.inject(FaultRule::next(
            "GET /containers/{id}/json",
            fault.clone(),
            1,
        ));
        let r = h.call(Operation::Status, service("lost")).await;
        assert_eq!(error(&r).0, kind, "{fault:?}");
    }
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_client_identity_the_engine_refuses() {
    let mut h = Docker::start().await;
    h.ctx.secrets.clear();
    let r = h.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "auth-failed", "{msg}");
    assert!(msg.contains("docker-client-identity"), "{msg}");
    assert!(
        h.sim.request_log().is_empty(),
        "nothing got past the handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_engine_is_spoken_to_in_its_own_version() {
    let h = Docker::with(DockerConfig {
        max_api_version: (1, 43),
        ..DockerConfig::default()
    })
    .await;
    let r = h.call(Operation::TestConnection, json!({})).await;
    let details = &ok(&r)["details"];
    assert_eq!(
        (
            details["api_version"].as_str(),
            details["server_api_version"].as_str()
        ),
        (Some("1.43"), Some("1.43"))
    );
    let r = h
        .call(Operation::Provision, new_service("old1", "small"))
        .await;
    assert_eq!(ok(&r)["state"], "active");
    let paths: Vec<String> = h.sim.request_log().iter().map(|l| l.path.clone()).collect();
    assert!(
        paths.iter().any(|p| p.starts_with("/v1.45/")),
        "asked for 1.45 first: {paths:?}"
    );
    assert!(
        paths.iter().filter(|p| p.starts_with("/v1.43/")).count() >= 3,
        "then spoke 1.43: {paths:?}"
    );
    // An Engine older than the adapter's oldest is refused clearly.
    let old = Docker::with(DockerConfig {
        max_api_version: (1, 30),
        ..DockerConfig::default()
    })
    .await;
    let r = old.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "invalid-input", "{msg}");
    assert!(
        msg.contains("Maximum supported API version is 1.30"),
        "{msg}"
    );
}
