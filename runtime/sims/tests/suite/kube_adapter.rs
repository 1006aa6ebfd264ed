//! The real kubernetes adapter (`adapters/dist/kubernetes.wasm`) in the real
//! sandbox against the Kubernetes API server simulator on loopback: a
//! service account token sent by placeholder (or a client identity the host
//! presents), the cluster CA pinned on the egress rule. Every operation,
//! convergence on retries, faults, ownership, and every object checked
//! against the official JSON Schemas by the simulator.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::guest::{detail, error, load, ok, report_texts, sandbox};
use panel1_sandbox::{
    CallReport, CallRequest, EgressPolicy, EgressRule, HostContext, LoadedAdapter, Operation,
    SecretBinding,
};
use panel1_sims::kube::{KubeAuth, KubeConfig, KubeSimulator};
use panel1_sims::{Fault, FaultRule};
use serde_json::{json, Value};

const TOKEN: &str = "sa-token-0123456789abcdefKUBE";
const PLANS: &str = r#"{"small":{"image":"nginx:1.27","replicas":2,"cpu":"250m","memory":"256Mi","storage":"1Gi","volume_access":"ReadWriteMany"},"large":{"image":"nginx:1.28","replicas":3,"cpu":"1","memory":"1Gi","storage":"5Gi","port":8080,"volume_access":"ReadWriteMany"},"single":{"image":"nginx:1.28","cpu":"333m","memory":"0.7Gi","storage":"2Gi"}}"#;
const DEPLOY: &str = "PATCH /apis/apps/v1/namespaces/{namespace}/deployments/{name}";
const GET_NS: &str = "GET /api/v1/namespaces/{name}";

fn adapter() -> Arc<LoadedAdapter> {
    static ADAPTER: OnceLock<Arc<LoadedAdapter>> = OnceLock::new();
    ADAPTER.get_or_init(|| load("kubernetes")).clone()
}

struct Kube {
    sim: KubeSimulator,
    ctx: HostContext,
    /// Secret values that must appear in no record.
    forbidden: Vec<String>,
}

impl Kube {
    async fn start() -> Kube {
        Kube::with(KubeConfig {
            auth: KubeAuth::Token(TOKEN.into()),
            terminating_for: Duration::from_millis(400),
            ..KubeConfig::default()
        })
        .await
    }

    async fn with(config: KubeConfig) -> Kube {
        let by_certificate = matches!(config.auth, KubeAuth::ClientCertificate);
        let sim = KubeSimulator::start(config).await.expect("simulator");
        let port = sim.addr().port();
        let config: BTreeMap<String, String> = [
            ("host", "127.0.0.1".to_string()),
            ("port", port.to_string()),
            ("ingress_class", "public".into()),
            ("plans", PLANS.into()),
            ("request_timeout_ms", "1000".into()),
            ("terminate_wait_ms", "5000".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        // The cluster CA is pinned: the leaf it signed is verified against it.
        let rule = format!("{}/ sha256:{}", sim.base_url(), sim.ca_sha256());
        let (name, value) = if by_certificate {
            let pem = sim.client_identity_pem().expect("mutual TLS").to_string();
            ("kubernetes-client-identity", pem)
        } else {
            ("kubernetes-token", TOKEN.to_string())
        };
        let forbidden = vec![match value.find("-----BEGIN PRIVATE KEY-----") {
            Some(at) => value[at..].lines().nth(1).unwrap_or_default().to_string(),
            None => value.clone(),
        }];
        let ctx = HostContext {
            config,
            secrets: vec![SecretBinding {
                name: name.into(),
                value,
                destinations: vec![format!("127.0.0.1:{port}")],
            }],
            egress: EgressPolicy::new(vec![EgressRule::parse(&rule).unwrap()]),
            ..HostContext::default()
        };
        Kube {
            sim,
            ctx,
            forbidden,
        }
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
        for secret in &self.forbidden {
            for t in report_texts(&report) {
                assert!(!t.contains(secret.as_str()), "a credential is in a record");
            }
        }
        report
    }

    async fn call(&self, op: Operation, input: Value) -> CallReport {
        self.call_attempt(op, input, 1).await
    }

    fn ours(&self) -> Vec<Value> {
        self.sim
            .namespaces()
            .into_iter()
            .filter(|n| {
                n.pointer("/metadata/labels/panel1.io~1service-id")
                    .is_some()
            })
            .collect()
    }

    fn assert_well_formed(&self) {
        for r in self.sim.request_log() {
            assert!(r.well_formed(), "malformed request: {r:#?}");
            assert!(!format!("{r:?}").contains(TOKEN), "the token is in the log");
        }
    }
}

fn new_service(name: &str, plan: &str) -> Value {
    json!({"service": {"service_id": format!("svc-{name}"), "username": name, "plan": plan,
        "domain": format!("{name}.example.com")}})
}

fn service(name: &str) -> Value {
    json!({"service": {"service_id": format!("svc-{name}"), "remote_id": name}})
}

fn replicas(h: &Kube, ns: &str) -> Option<u64> {
    h.sim
        .object("deployments", ns, "web")
        .and_then(|d| d.pointer("/spec/replicas").and_then(Value::as_u64))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_of_a_namespace() {
    let h = Kube::start().await;
    let r = h.call(Operation::TestConnection, json!({})).await;
    let res = ok(&r);
    assert!(res["server_version"]
        .as_str()
        .unwrap()
        .starts_with("Kubernetes v1."));
    assert_eq!(detail(res, "auth"), Some("bearer token"));

    let r = h
        .call(Operation::Provision, new_service("shop", "small"))
        .await;
    let res = ok(&r);
    assert_eq!(
        (res["remote_id"].as_str(), res["plan"].as_str()),
        (Some("shop"), Some("small"))
    );
    assert_eq!(res["state"], "active", "{res}");
    let ns = h.sim.namespaces();
    let ns = ns
        .iter()
        .find(|n| n["metadata"]["name"] == "shop")
        .expect("namespace");
    assert_eq!(ns["metadata"]["labels"]["panel1.io/service-id"], "svc-shop");
    let quota = h.sim.object("resourcequotas", "shop", "panel1").unwrap();
    assert_eq!(
        quota["spec"]["hard"],
        json!({"pods": "2", "requests.cpu": "500m", "limits.cpu": "500m",
            "requests.memory": "512Mi", "limits.memory": "512Mi",
            "requests.storage": "1Gi", "persistentvolumeclaims": "1"})
    );
    assert!(h.sim.object("limitranges", "shop", "panel1").is_some());
    assert!(h
        .sim
        .object("persistentvolumeclaims", "shop", "data")
        .is_some());
    assert!(h.sim.object("services", "shop", "web").is_some());
    let ingress = h.sim.object("ingresses", "shop", "web").unwrap();
    assert_eq!(
        (
            ingress["spec"]["ingressClassName"].as_str(),
            ingress["spec"]["rules"][0]["host"].as_str()
        ),
        (Some("public"), Some("shop.example.com"))
    );
    assert_eq!(replicas(&h, "shop"), Some(2));
    let version =
        h.sim.object("deployments", "shop", "web").unwrap()["metadata"]["resourceVersion"].clone();

    // A retry applies the same objects again: nothing new, nothing changed.
    let r = h
        .call_attempt(Operation::Provision, new_service("shop", "small"), 2)
        .await;
    assert_eq!(ok(&r)["state"], "active");
    assert_eq!(h.ours().len(), 1);
    assert_eq!(
        h.sim.object("deployments", "shop", "web").unwrap()["metadata"]["resourceVersion"],
        version,
        "a converged apply changes nothing"
    );
    assert!(h
        .sim
        .request_log()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/deployments/"))
        .all(|r| r.params.get("fieldManager").map(String::as_str) == Some("panel1")));

    for _ in 0..2 {
        let r = h.call(Operation::Suspend, service("shop")).await;
        assert_eq!(ok(&r)["state"], "suspended");
    }
    assert_eq!(replicas(&h, "shop"), Some(0));
    for _ in 0..2 {
        let r = h.call(Operation::Unsuspend, service("shop")).await;
        assert_eq!(ok(&r)["state"], "active");
    }
    assert_eq!(replicas(&h, "shop"), Some(2));
    let r = h.call(Operation::Status, service("shop")).await;
    assert_eq!(
        (ok(&r)["state"].as_str(), ok(&r)["plan"].as_str()),
        (Some("active"), Some("small"))
    );

    let r = h
        .call(
            Operation::ChangePackage,
            json!({"service": new_service("shop", "small")["service"], "plan": "large"}),
        )
        .await;
    assert_eq!(ok(&r)["plan"], "large");
    let d = h.sim.object("deployments", "shop", "web").unwrap();
    assert_eq!(
        (
            d["spec"]["replicas"].as_u64(),
            d["spec"]["template"]["spec"]["containers"][0]["image"].as_str()
        ),
        (Some(3), Some("nginx:1.28"))
    );
    let quota = h.sim.object("resourcequotas", "shop", "panel1").unwrap();
    assert_eq!(quota["spec"]["hard"]["limits.memory"], "3Gi");
    let claim = h
        .sim
        .object("persistentvolumeclaims", "shop", "data")
        .unwrap();
    assert_eq!(
        claim["spec"]["resources"]["requests"]["storage"], "5Gi",
        "grown"
    );
    // A smaller plan: the claim keeps its size (claims never shrink); the
    // quota is each replica's rounded share times the replicas.
    let r = h
        .call(
            Operation::ChangePackage,
            json!({"service": new_service("shop", "small")["service"], "plan": "single"}),
        )
        .await;
    assert_eq!(ok(&r)["plan"], "single");
    let claim = h
        .sim
        .object("persistentvolumeclaims", "shop", "data")
        .unwrap();
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "5Gi");
    let quota = h.sim.object("resourcequotas", "shop", "panel1").unwrap();
    let d = h.sim.object("deployments", "shop", "web").unwrap();
    let each = d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].clone();
    assert_eq!(quota["spec"]["hard"]["limits.memory"], each["memory"]);
    assert_eq!(quota["spec"]["hard"]["limits.cpu"], "333m");
    let r = h
        .call(
            Operation::ChangePackage,
            json!({"service": service("shop")["service"], "plan": "gold"}),
        )
        .await;
    assert_eq!(error(&r).0, "invalid-input");

    h.sim
        .set_quota_used(
            "shop",
            "panel1",
            [
                ("pods".to_string(), "3".to_string()),
                ("limits.memory".to_string(), "1536Mi".to_string()),
                ("limits.cpu".to_string(), "1500m".to_string()),
            ]
            .into(),
        )
        .unwrap();
    let r = h.call(Operation::Usage, service("shop")).await;
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
    assert_eq!(
        (
            metrics["pods"],
            metrics["limits_cpu"],
            metrics["limits_memory"]
        ),
        (3.0, 1.5, 1536.0 * 1048576.0)
    );
    // The hard figures of the plan now applied ("single": 0.7Gi, rounded).
    assert_eq!(metrics["limits_memory_limit"], 751_619_277.0);
    assert_eq!(metrics["limits_cpu_limit"], 0.333);

    // Terminate waits out the Terminating phase.
    let r = h.call(Operation::Terminate, service("shop")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    assert!(h.ours().is_empty(), "gone, not Terminating");
    assert!(h.sim.count_calls(GET_NS) >= 3, "polled until it went");
    let r = h.call(Operation::Terminate, service("shop")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    let r = h.call(Operation::Status, service("shop")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_converges_and_faults_are_typed() {
    let h = Kube::start().await;
    h.sim.inject(FaultRule::next(
        DEPLOY,
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
    assert_eq!(h.ours().len(), 1, "one namespace");
    assert_eq!(h.sim.objects("deployments", "lost").len(), 1);

    for (fault, kind) in [
        (Fault::ServerError(503), "transient"),
        (Fault::ResetConnection, "transient"),
        (Fault::ProblemJson(502), "transient"),
        (Fault::LoginPage, "auth-failed"),
        (Fault::WrongBody, "permanent"),
    ] {
        h.sim.inject(FaultRule::next(GET_NS, fault.clone(), 1));
        let r = h.call(Operation::Status, service("lost")).await;
        assert_eq!(error(&r).0, kind, "{fault:?}");
    }
    h.assert_well_formed();
    h.sim.expire_token();
    let r = h.call(Operation::Status, service("lost")).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "auth-failed", "{msg}");
    assert!(msg.contains("bearer token"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_of_others_are_never_touched() {
    let h = Kube::start().await;
    let r = h
        .call(Operation::Provision, new_service("mine", "small"))
        .await;
    ok(&r);
    let mut other = new_service("mine", "small");
    other["service"]["service_id"] = json!("svc-someone-else");
    let r = h.call(Operation::Provision, other.clone()).await;
    assert_eq!(error(&r).0, "conflict");
    other["service"]["remote_id"] = json!("mine");
    let r = h.call(Operation::Terminate, other).await;
    assert_eq!(error(&r).0, "conflict");
    assert_eq!(h.ours().len(), 1, "still there");
    for name in ["kube-system", "default", "Upper", "bad_name"] {
        let r = h.call(Operation::Terminate, service(name)).await;
        assert_eq!(error(&r).0, "invalid-input", "{name}");
    }
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_with_continue_and_terminating_is_waited_for() {
    let mut h = Kube::with(KubeConfig {
        auth: KubeAuth::Token(TOKEN.into()),
        terminating_for: Duration::from_millis(1500),
        ..KubeConfig::default()
    })
    .await;
    for name in ["b2", "a1", "c3", "e5", "d4"] {
        let r = h
            .call(Operation::Provision, new_service(name, "small"))
            .await;
        ok(&r);
    }
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let r = h
            .call(
                Operation::ListServices,
                json!({"cursor": cursor, "limit": 2}),
            )
            .await;
        let page = ok(&r).clone();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|i| i["remote_id"].as_str().unwrap().to_string()),
        );
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, ["a1", "b2", "c3", "d4", "e5"]);
    let r = h
        .call(
            Operation::ListServices,
            json!({"cursor": "not-a-token", "limit": 2}),
        )
        .await;
    assert_eq!(error(&r).0, "invalid-input");

    // Not waiting: the namespace is still Terminating, a transient error;
    // provisioning it again waits for it to go.
    h.ctx.config.insert("terminate_wait_ms".into(), "0".into());
    let r = h.call(Operation::Terminate, service("a1")).await;
    assert_eq!(error(&r).0, "transient");
    let r = h
        .call(Operation::Provision, new_service("a1", "small"))
        .await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "transient");
    assert!(msg.contains("terminating"), "{msg}");
    h.ctx
        .config
        .insert("terminate_wait_ms".into(), "5000".into());
    let r = h.call(Operation::Terminate, service("a1")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    assert_eq!(h.ours().len(), 4);
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_and_the_pinned_cluster_ca() {
    let h = Kube::with(KubeConfig {
        auth: KubeAuth::ClientCertificate,
        ..KubeConfig::default()
    })
    .await;
    let r = h.call(Operation::TestConnection, json!({})).await;
    assert_eq!(detail(ok(&r), "auth"), Some("client certificate"));
    let r = h
        .call(Operation::Provision, new_service("certy", "small"))
        .await;
    assert_eq!(ok(&r)["state"], "active");

    // Without the identity the handshake is refused.
    let mut bare = Kube {
        sim: KubeSimulator::start(KubeConfig {
            auth: KubeAuth::ClientCertificate,
            ..KubeConfig::default()
        })
        .await
        .unwrap(),
        ctx: h.ctx.clone(),
        forbidden: vec![],
    };
    let port = bare.sim.addr().port();
    bare.ctx.secrets.clear();
    bare.ctx.config.insert("port".into(), port.to_string());
    let rule = format!("{}/ sha256:{}", bare.sim.base_url(), bare.sim.ca_sha256());
    bare.ctx.egress = EgressPolicy::new(vec![EgressRule::parse(&rule).unwrap()]);
    let r = bare.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "auth-failed", "{msg}");
    assert!(msg.contains("kubernetes-client-identity"), "{msg}");

    // Another cluster's CA pinned: its server is not trusted.
    let wrong = format!("{}/ sha256:{}", bare.sim.base_url(), h.sim.ca_sha256());
    bare.ctx.egress = EgressPolicy::new(vec![EgressRule::parse(&wrong).unwrap()]);
    let r = bare.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "permanent", "{msg}");
    assert!(msg.contains("pin"), "{msg}");
    assert!(bare.sim.request_log().is_empty(), "nothing got through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_sending_only_its_leaf_is_verified_against_the_ca_given() {
    // kubeadm's API server sends its serving certificate alone.
    let mut h = Kube::with(KubeConfig {
        auth: KubeAuth::Token(TOKEN.into()),
        leaf_only: true,
        ..KubeConfig::default()
    })
    .await;
    let port = h.sim.addr().port();
    let unpinned = EgressPolicy::new(vec![
        EgressRule::parse(&format!("{}/", h.sim.base_url())).unwrap()
    ]);

    // A pin on the CA finds no CA in the chain: refused, nothing sent.
    let r = h.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "permanent", "{msg}");
    assert!(
        msg.contains("kubernetes-ca"),
        "the hint names the secret: {msg}"
    );

    // The CA given as a trust anchor (a certificate secret bound here).
    let anchor = |pem: &str| SecretBinding {
        name: "kubernetes-ca".into(),
        value: pem.into(),
        destinations: vec![format!("127.0.0.1:{port}")],
    };
    h.ctx.egress = unpinned.clone();
    h.ctx.secrets.push(anchor(h.sim.ca_pem().unwrap()));
    let r = h.call(Operation::TestConnection, json!({})).await;
    assert!(ok(&r)["server_version"]
        .as_str()
        .unwrap()
        .starts_with("Kubernetes"));
    let r = h
        .call(Operation::Provision, new_service("leafy", "small"))
        .await;
    assert_eq!(ok(&r)["state"], "active");

    // Another cluster's CA, or none (the public roots): refused.
    let other = KubeSimulator::start(KubeConfig::default()).await.unwrap();
    h.ctx.secrets.pop();
    h.ctx.secrets.push(anchor(other.ca_pem().unwrap()));
    let before = h.sim.request_log().len();
    let r = h.call(Operation::TestConnection, json!({})).await;
    assert_eq!(error(&r).0, "permanent");
    h.ctx.secrets.pop();
    let r = h.call(Operation::TestConnection, json!({})).await;
    assert_eq!(error(&r).0, "permanent");
    assert_eq!(h.sim.request_log().len(), before, "nothing got through");
}
