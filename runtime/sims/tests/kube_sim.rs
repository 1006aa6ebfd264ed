//! The Kubernetes API server simulator over real HTTPS on loopback, with
//! reqwest trusting only the simulator's cluster CA: authentication (bearer
//! token, client certificates), the certificate chain, server-side apply,
//! validation, optimistic concurrency, list chunking, namespace
//! termination, the scale subresource, quota figures, faults and the log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use panel1_sims::kube::{KubeAuth, KubeConfig, KubeSimulator, DEFAULT_TOKEN};
use panel1_sims::{Fault, FaultRule};
use reqwest::{Certificate, Client, Method};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const APPLY: &str = "application/apply-patch+yaml";
const MERGE: &str = "application/merge-patch+json";
const JSON: &str = "application/json";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/t1/deployments";
const WEB: &str = "/apis/apps/v1/namespaces/t1/deployments/web";

/// Status code and body (JSON, or the text as a string).
type R = (u16, Value);

struct Kube {
    sim: KubeSimulator,
    client: Client,
    token: Option<String>,
}

fn trusting_ca(sim: &KubeSimulator) -> reqwest::ClientBuilder {
    let ca = Certificate::from_der(sim.ca_der().expect("a cluster CA")).unwrap();
    Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
}

impl Kube {
    async fn start() -> Kube {
        Kube::with(KubeConfig::default()).await
    }

    async fn with(config: KubeConfig) -> Kube {
        let token = match &config.auth {
            KubeAuth::Token(t) => Some(t.clone()),
            KubeAuth::ClientCertificate => None,
        };
        let sim = KubeSimulator::start(config).await.expect("simulator");
        let client = trusting_ca(&sim).build().unwrap();
        Kube { sim, client, token }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        ct: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        req
    }

    async fn send(&self, method: Method, path: &str, ct: Option<&str>, body: Option<&Value>) -> R {
        let r = self
            .request(method, path, ct, body)
            .send()
            .await
            .expect("an answer");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> R {
        self.send(Method::GET, path, None, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> R {
        self.send(Method::POST, path, Some(JSON), Some(body)).await
    }

    async fn put(&self, path: &str, body: &Value) -> R {
        self.send(Method::PUT, path, Some(JSON), Some(body)).await
    }

    async fn merge(&self, path: &str, body: &Value) -> R {
        self.send(Method::PATCH, path, Some(MERGE), Some(body))
            .await
    }

    async fn delete(&self, path: &str) -> R {
        self.send(Method::DELETE, path, None, None).await
    }

    async fn apply(&self, path: &str, manager: &str, body: &Value) -> R {
        let sep = if path.contains('?') { '&' } else { '?' };
        let path = format!("{path}{sep}fieldManager={manager}");
        self.send(Method::PATCH, &path, Some(APPLY), Some(body))
            .await
    }

    async fn namespace(&self, name: &str) {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let r = self
            .apply(&format!("/api/v1/namespaces/{name}"), "panel1", &ns)
            .await;
        assert_eq!(r.0, 201, "{}", r.1);
    }
}

/// Status code and `reason` of an answer.
fn reason(r: &R) -> (u16, &str) {
    (r.0, r.1["reason"].as_str().unwrap_or(""))
}

/// The field the first cause of a 422 names.
fn cause(r: &R) -> &str {
    r.1["details"]["causes"][0]["field"].as_str().unwrap_or("")
}

fn message(r: &R) -> &str {
    r.1["message"].as_str().unwrap_or("")
}

fn rv(v: &Value) -> u64 {
    let s = v["metadata"]["resourceVersion"]
        .as_str()
        .expect("a resourceVersion");
    s.parse().unwrap()
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                    "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}}]}
            }
        }
    })
}

#[tokio::test]
async fn bearer_tokens_are_checked_and_can_expire() {
    let mut h = Kube::start().await;
    let unauthorized = (
        401,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}),
    );
    let right = h.token.take();
    assert_eq!(right.as_deref(), Some(DEFAULT_TOKEN));
    assert_eq!(h.get("/version").await, unauthorized);
    h.token = Some("wrong".into());
    assert_eq!(h.get("/api/v1/namespaces").await, unauthorized);
    h.token = right;
    let (s, v) = h.get("/version").await;
    assert_eq!(s, 200);
    assert!(
        v["gitVersion"].as_str().unwrap().starts_with("v1.31."),
        "{v}"
    );

    h.sim.expire_token();
    assert_eq!(h.get("/version").await, unauthorized);
    h.sim.set_token("renewed");
    h.token = Some("renewed".into());
    assert_eq!(h.get("/api").await.0, 200);

    let log = h.sim.request_log();
    let outcomes: Vec<String> = log.iter().map(|r| format!("{:?}", r.auth)).collect();
    assert_eq!(outcomes, ["Missing", "Wrong", "Ok", "Wrong", "Ok"]);
    assert_eq!(log[0].function, "GET /version");
    assert_eq!(log[1].function, "GET /api/v1/namespaces");
    let dump = serde_json::to_string(&log).unwrap();
    assert!(
        !dump.contains(DEFAULT_TOKEN) && !dump.contains("renewed"),
        "a token in the log"
    );
    assert!(log[2].params.contains_key("header:authorization"));
    h.sim.shutdown().await;
}

#[tokio::test]
async fn client_certificates_replace_the_token() {
    let config = KubeConfig {
        auth: KubeAuth::ClientCertificate,
        ..KubeConfig::default()
    };
    let h = Kube::with(config).await;
    // No certificate: the handshake fails, nothing is answered.
    assert!(h.client.get(h.url("/version")).send().await.is_err());
    let pem = h.sim.client_identity_pem().expect("mutual TLS");
    let identity = reqwest::Identity::from_pem(pem.as_bytes()).unwrap();
    let client = trusting_ca(&h.sim).identity(identity).build().unwrap();
    let r = client
        .get(h.url("/api/v1/namespaces"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["kind"], "NamespaceList");
    h.sim.shutdown().await;
}

/// Records the certificates the server presents and accepts them (the test
/// checks them itself).
#[derive(Debug, Default)]
struct Recording(Mutex<Vec<Vec<u8>>>);

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut seen = self.0.lock().unwrap();
        seen.push(leaf.to_vec());
        seen.extend(intermediates.iter().map(|c| c.to_vec()));
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        let provider = rustls::crypto::ring::default_provider();
        provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[tokio::test]
async fn the_handshake_sends_the_leaf_then_the_cluster_ca() {
    let h = Kube::start().await;
    let recording = Arc::new(Recording::default());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(recording.clone())
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(h.sim.addr()).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    connector.connect(name, tcp).await.expect("handshake");
    let chain = recording.0.lock().unwrap().clone();
    let ca = h.sim.ca_der().unwrap().to_vec();
    assert_eq!(chain, vec![h.sim.cert_der().to_vec(), ca.clone()]);
    assert_eq!(h.sim.ca_sha256(), hex::encode(Sha256::digest(&ca)));
    assert_eq!(
        h.sim.cert_sha256(),
        hex::encode(Sha256::digest(h.sim.cert_der()))
    );
    assert_ne!(h.sim.ca_sha256(), h.sim.cert_sha256());
    assert!(h
        .sim
        .ca_pem()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    // Trusting only the CA is enough, for `localhost` as for 127.0.0.1.
    let client = trusting_ca(&h.sim).build().unwrap();
    let url = format!("https://localhost:{}/version", h.sim.addr().port());
    let r = client
        .get(url)
        .bearer_auth(DEFAULT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_creates_merges_and_detects_conflicts() {
    let h = Kube::start().await;
    h.namespace("t1").await;
    let (s, created) = h.apply(WEB, "panel1", &deployment("web", 2)).await;
    assert_eq!(s, 201, "{created}");
    let meta = &created["metadata"];
    assert_eq!(
        (meta["generation"].as_i64(), meta["namespace"].as_str()),
        (Some(1), Some("t1"))
    );
    let owner = &meta["managedFields"][0];
    assert_eq!(
        (owner["manager"].as_str(), owner["operation"].as_str()),
        (Some("panel1"), Some("Apply"))
    );
    assert_eq!(created["status"]["readyReplicas"], 2);
    assert_eq!(created["status"]["observedGeneration"], 1);

    // The same body again changes nothing: the same resourceVersion.
    let again = h.apply(WEB, "panel1", &deployment("web", 2)).await;
    assert_eq!(again, (200, created.clone()));

    // A change bumps resourceVersion and generation.
    let (s, changed) = h.apply(WEB, "panel1", &deployment("web", 3)).await;
    assert_eq!(s, 200);
    assert!(rv(&changed) > rv(&created));
    assert_eq!(changed["metadata"]["generation"], 2);
    assert_eq!(changed["status"]["availableReplicas"], 3);

    // Apply needs a field manager.
    let r = h
        .send(Method::PATCH, WEB, Some(APPLY), Some(&deployment("web", 3)))
        .await;
    assert_eq!(reason(&r), (400, "BadRequest"));
    assert!(message(&r).contains("fieldManager is required"), "{}", r.1);

    // Another manager setting replicas differently conflicts, unless forced.
    let r = h.apply(WEB, "ops", &deployment("web", 5)).await;
    assert_eq!(reason(&r), (409, "Conflict"), "{}", r.1);
    assert!(
        message(&r).contains(".spec.replicas") && message(&r).contains("\"panel1\""),
        "{}",
        r.1
    );
    let (s, v) = h
        .apply(&format!("{WEB}?force=true"), "ops", &deployment("web", 5))
        .await;
    assert_eq!((s, v["spec"]["replicas"].as_i64()), (200, Some(5)), "{v}");
    let fields = v["metadata"]["managedFields"].as_array().unwrap();
    let managers: Vec<&str> = fields
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["panel1", "ops"]);
    assert!(
        fields[0]["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "taken over"
    );

    // A merge patch is an update; labels do not bump the generation.
    let patch = json!({"metadata": {"labels": {"extra": "yes"}}});
    let (s, v) = h
        .merge(&format!("{WEB}?fieldManager=kubectl"), &patch)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["metadata"]["labels"],
        json!({"app": "web", "extra": "yes"})
    );
    assert_eq!(v["metadata"]["generation"], 3);
    let r = h
        .send(
            Method::PATCH,
            WEB,
            Some("application/json-patch+json"),
            Some(&json!([])),
        )
        .await;
    assert_eq!(r.0, 415);
    let r = h
        .send(Method::PATCH, WEB, Some("text/plain"), Some(&json!({})))
        .await;
    assert_eq!(reason(&r), (415, "UnsupportedMediaType"));
    assert!(h.sim.object("deployments", "t1", "web").is_some());
    h.sim.shutdown().await;
}

#[tokio::test]
async fn invalid_objects_are_refused_naming_the_field() {
    let h = Kube::start().await;
    h.namespace("t1").await;
    let mut d = deployment("web", 1);
    d["spec"]["replicas"] = json!("two");
    let r = h.apply(WEB, "panel1", &d).await;
    assert_eq!(reason(&r), (422, "Invalid"), "{}", r.1);
    assert_eq!(
        (r.1["code"].as_i64(), cause(&r)),
        (Some(422), "spec.replicas")
    );
    assert_eq!(r.1["details"]["kind"], "Deployment");
    assert!(
        message(&r).starts_with("Deployment.apps \"web\" is invalid: spec.replicas"),
        "{}",
        r.1
    );

    // An unknown field (strict schemas): refused, or dropped when asked.
    let mut d = deployment("web", 1);
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy2"] = json!("Always");
    let r = h.post(DEPLOYMENTS, &d).await;
    assert_eq!(
        (r.0, cause(&r)),
        (422, "spec.template.spec.containers[0].imagePullPolicy2")
    );
    let (s, v) = h
        .post(&format!("{DEPLOYMENTS}?fieldValidation=Ignore"), &d)
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["spec"]["template"]["spec"]["containers"][0]
        .get("imagePullPolicy2")
        .is_none());

    // kube-apiserver's own rules: names, selectors, quantities.
    let r = h
        .apply("/api/v1/namespaces/Bad_Name", "panel1", &json!({}))
        .await;
    assert_eq!((r.0, cause(&r)), (422, "metadata.name"));
    let mut d = deployment("db", 1);
    d["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
    let r = h.apply(&format!("{DEPLOYMENTS}/db"), "panel1", &d).await;
    assert_eq!((r.0, cause(&r)), (422, "spec.template.metadata.labels"));
    let mut d = deployment("db", 1);
    d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] =
        json!("512MB");
    let r = h.apply(&format!("{DEPLOYMENTS}/db"), "panel1", &d).await;
    assert_eq!(r.0, 422, "{}", r.1);
    assert!(message(&r).contains("limits[memory]"), "{}", r.1);

    // Identity against the URL, and bodies that are no object: 400.
    let r = h
        .apply(
            &format!("{DEPLOYMENTS}/other"),
            "panel1",
            &deployment("web", 1),
        )
        .await;
    assert_eq!(reason(&r), (400, "BadRequest"));
    let mut d = deployment("web", 1);
    d["metadata"]["namespace"] = json!("t2");
    assert_eq!(h.apply(WEB, "panel1", &d).await.0, 400);
    assert_eq!(
        h.send(Method::POST, DEPLOYMENTS, Some(JSON), None).await.0,
        400
    );
    let refused = h
        .sim
        .request_log()
        .into_iter()
        .filter(|r| !r.well_formed())
        .count();
    assert_eq!(refused, 8, "refused requests are marked in the log");
    h.sim.shutdown().await;
}

#[tokio::test]
async fn creates_conflict_and_updates_need_the_latest_version() {
    let h = Kube::start().await;
    let r = h.post(DEPLOYMENTS, &deployment("web", 1)).await;
    assert_eq!((r.0, message(&r)), (404, "namespaces \"t1\" not found"));
    h.namespace("t1").await;
    let (s, created) = h.post(DEPLOYMENTS, &deployment("web", 1)).await;
    assert_eq!(s, 201);
    let r = h.post(DEPLOYMENTS, &deployment("web", 1)).await;
    assert_eq!(reason(&r), (409, "AlreadyExists"));
    assert_eq!(message(&r), "deployments.apps \"web\" already exists");
    assert_eq!(
        r.1["details"],
        json!({"name": "web", "group": "apps", "kind": "deployments"})
    );

    let mut update = deployment("web", 4);
    update["metadata"]["resourceVersion"] = json!(rv(&created).to_string());
    let (s, v) = h.put(WEB, &update).await;
    assert_eq!((s, v["spec"]["replicas"].as_i64()), (200, Some(4)), "{v}");
    assert_eq!(v["metadata"]["uid"], created["metadata"]["uid"]);
    // The same resourceVersion again is stale now.
    let r = h.put(WEB, &update).await;
    assert_eq!(reason(&r), (409, "Conflict"));
    assert_eq!(message(&r), "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again");

    let r = h.get(&format!("{DEPLOYMENTS}/nope")).await;
    assert_eq!(
        (r.0, message(&r)),
        (404, "deployments.apps \"nope\" not found")
    );
    assert_eq!(r.1["details"]["kind"], "deployments");
    let (s, v) = h.delete(WEB).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("Success")));
    assert!(h.sim.object("deployments", "t1", "web").is_none());
    assert_eq!(reason(&h.delete(WEB).await), (404, "NotFound"));
    let r = h
        .send(Method::POST, "/api/v1/namespaces/t1", None, None)
        .await;
    assert_eq!(reason(&r), (405, "MethodNotAllowed"));
    assert_eq!(h.get("/apis/apps/v1/namespaces/t1/widgets").await.0, 404);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn lists_select_by_label_and_page_through_everything_once() {
    let h = Kube::start().await;
    for i in 0..25 {
        let labels = json!({"panel1.io/managed": "true", "shard": (i % 2).to_string()});
        let ns = json!({"metadata": {"name": format!("tenant-{i:02}"), "labels": labels}});
        assert_eq!(h.post("/api/v1/namespaces", &ns).await.0, 201);
    }
    h.namespace("other").await;
    let (mut seen, mut next, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let mut path =
            "/api/v1/namespaces?labelSelector=panel1.io%2Fmanaged%3Dtrue&limit=10".to_string();
        if let Some(c) = &next {
            path.push_str(&format!("&continue={c}"));
        }
        let (s, v) = h.get(&path).await;
        assert_eq!(s, 200, "{v}");
        pages += 1;
        let items = v["items"].as_array().unwrap();
        seen.extend(
            items
                .iter()
                .map(|n| n["metadata"]["name"].as_str().unwrap().to_owned()),
        );
        match v["metadata"]["continue"].as_str() {
            Some(c) => next = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("tenant-{i:02}")).collect();
    assert_eq!((seen, pages), (expected, 3));

    // Without a selector the remaining count is given; items carry no kind.
    let (_, v) = h.get("/api/v1/namespaces?limit=20").await;
    assert_eq!(v["metadata"]["remainingItemCount"], 6);
    assert!(v["items"][0].get("kind").is_none());
    let count = |v: &Value| v["items"].as_array().unwrap().len();
    let (_, v) = h
        .get("/api/v1/namespaces?labelSelector=shard%20in%20(1),panel1.io/managed")
        .await;
    assert_eq!(count(&v), 12);
    let (_, v) = h
        .get("/api/v1/namespaces?labelSelector=shard!%3D0,panel1.io/managed%3D%3Dtrue")
        .await;
    assert_eq!(count(&v), 12);
    let (_, v) = h
        .get("/api/v1/namespaces?labelSelector=!panel1.io/managed")
        .await;
    assert_eq!(v["items"][0]["metadata"]["name"], "other");

    let r = h
        .get("/api/v1/namespaces?limit=5&continue=bm90LWEtdG9rZW4")
        .await;
    assert_eq!(reason(&r), (410, "Expired"));
    let r = h
        .get("/api/v1/namespaces?labelSelector=shard%20in%20(1")
        .await;
    assert_eq!(reason(&r), (400, "BadRequest"));
    h.sim.shutdown().await;
}

#[tokio::test]
async fn a_deleted_namespace_terminates_then_takes_its_content() {
    let config = KubeConfig {
        terminating_for: Duration::from_millis(400),
        ..KubeConfig::default()
    };
    let h = Kube::with(config).await;
    h.namespace("t1").await;
    assert_eq!(h.apply(WEB, "panel1", &deployment("web", 1)).await.0, 201);
    let (s, v) = h
        .delete("/api/v1/namespaces/t1?propagationPolicy=Background")
        .await;
    assert_eq!(
        (s, v["status"]["phase"].as_str()),
        (200, Some("Terminating")),
        "{v}"
    );
    assert!(v["metadata"]["deletionTimestamp"].is_string());

    let (s, v) = h.get("/api/v1/namespaces/t1").await;
    assert_eq!(
        (s, v["status"]["phase"].as_str()),
        (200, Some("Terminating"))
    );
    assert_eq!(h.sim.namespaces()[0]["status"]["phase"], "Terminating");
    let (_, list) = h.get("/api/v1/namespaces").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // New content is refused while it terminates.
    let r = h
        .apply(&format!("{DEPLOYMENTS}/db"), "panel1", &deployment("db", 1))
        .await;
    assert_eq!(reason(&r), (403, "Forbidden"), "{}", r.1);
    assert!(message(&r)
        .ends_with("unable to create new content in namespace t1 because it is being terminated"));
    // Deleting again: kube-apiserver's 409 while the namespace controller works.
    let r = h.delete("/api/v1/namespaces/t1").await;
    assert_eq!(reason(&r), (409, "Conflict"), "{}", r.1);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = h.get("/api/v1/namespaces/t1").await;
    assert_eq!((r.0, message(&r)), (404, "namespaces \"t1\" not found"));
    assert_eq!(h.get(WEB).await.0, 404);
    assert!(h.sim.object("deployments", "t1", "web").is_none());
    assert!(h.sim.namespaces().is_empty());
    h.sim.shutdown().await;
}

#[tokio::test]
async fn the_scale_subresource_reads_and_sets_replicas() {
    let h = Kube::start().await;
    h.namespace("t1").await;
    h.apply(WEB, "panel1", &deployment("web", 2)).await;
    let scale = format!("{WEB}/scale");
    let (s, v) = h.get(&scale).await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["kind"].as_str(), v["apiVersion"].as_str()),
        (Some("Scale"), Some("autoscaling/v1"))
    );
    assert_eq!(
        (
            v["spec"]["replicas"].as_i64(),
            v["status"]["selector"].as_str()
        ),
        (Some(2), Some("app=web"))
    );
    let (s, v) = h.merge(&scale, &json!({"spec": {"replicas": 0}})).await;
    assert_eq!((s, v["spec"]["replicas"].as_i64()), (200, Some(0)), "{v}");
    let d = h.sim.object("deployments", "t1", "web").unwrap();
    assert_eq!(
        (
            d["spec"]["replicas"].as_i64(),
            d["metadata"]["generation"].as_i64()
        ),
        (Some(0), Some(2))
    );
    assert!(
        d["status"].get("readyReplicas").is_none()
            && d["status"].get("availableReplicas").is_none()
    );
    assert_eq!(d["metadata"]["managedFields"][1]["subresource"], "scale");
    assert_eq!(
        h.merge(&scale, &json!({"spec": {"replicas": -1}})).await.0,
        422
    );
    assert_eq!(h.get(&format!("{DEPLOYMENTS}/nope/scale")).await.0, 404);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn quotas_report_what_is_used_and_other_kinds_their_status() {
    let h = Kube::start().await;
    h.namespace("t1").await;
    let hard = json!({"requests.cpu": "2", "requests.memory": "4Gi", "pods": "10"});
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "plan"}, "spec": {"hard": hard}});
    let (s, v) = h
        .apply(
            "/api/v1/namespaces/t1/resourcequotas/plan",
            "panel1",
            &quota,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v["status"]["used"],
        json!({"pods": "0", "requests.cpu": "0", "requests.memory": "0"})
    );
    let used = [("requests.cpu", "500m"), ("pods", "2")];
    let used: BTreeMap<String, String> = used
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.sim.set_quota_used("t1", "plan", used).unwrap();
    let (_, v) = h.get("/api/v1/namespaces/t1/resourcequotas/plan").await;
    assert_eq!(
        v["status"]["used"],
        json!({"pods": "2", "requests.cpu": "500m", "requests.memory": "0"})
    );
    assert_eq!(v["status"]["hard"], hard);
    assert!(h.sim.set_quota_used("t1", "nope", BTreeMap::new()).is_err());

    let limit =
        json!({"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}});
    let limits = json!({"metadata": {"name": "defaults"}, "spec": {"limits": [limit]}});
    assert_eq!(
        h.apply(
            "/api/v1/namespaces/t1/limitranges/defaults",
            "panel1",
            &limits
        )
        .await
        .0,
        201
    );
    let ports = json!([{"name": "http", "port": 80, "targetPort": 8080}]);
    let svc =
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": ports}});
    let (s, v) = h
        .apply("/api/v1/namespaces/t1/services/web", "panel1", &svc)
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .starts_with("10.96."));
    // Re-applying without a cluster IP keeps the allocated one; nothing changes.
    let (s, again) = h
        .apply("/api/v1/namespaces/t1/services/web", "panel1", &svc)
        .await;
    assert_eq!((s, rv(&again)), (200, rv(&v)));
    let storage = json!({"requests": {"storage": "1Gi"}});
    let pvc = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": storage}});
    let (s, v) = h
        .apply(
            "/api/v1/namespaces/t1/persistentvolumeclaims/data",
            "panel1",
            &pvc,
        )
        .await;
    assert_eq!(
        (s, v["status"]["phase"].as_str()),
        (201, Some("Bound")),
        "{v}"
    );
    let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
    let rule = json!({"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}});
    let ing = json!({"metadata": {"name": "web"}, "spec": {"rules": [rule]}});
    let (s, v) = h
        .apply(
            "/apis/networking.k8s.io/v1/namespaces/t1/ingresses/web",
            "panel1",
            &ing,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(h.sim.objects("ingresses", "t1").len(), 1);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn faults_shape_answers_and_a_stalled_change_still_lands() {
    let h = Kube::start().await;
    h.namespace("t1").await;
    let key = "PATCH /apis/apps/v1/namespaces/{namespace}/deployments/{name}";
    let path = format!("{WEB}?fieldManager=panel1");
    let body = deployment("web", 1);
    let apply = || h.request(Method::PATCH, &path, Some(APPLY), Some(&body));

    h.sim
        .inject(FaultRule::next(key, Fault::ServerError(503), 1));
    let r = apply().send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("<html>"));
    assert!(h.sim.object("deployments", "t1", "web").is_none());

    h.sim
        .inject(FaultRule::next(key, Fault::ResetConnection, 1));
    assert!(apply().send().await.is_err());
    assert!(h.sim.object("deployments", "t1", "web").is_none());

    h.sim.inject(FaultRule::next(
        key,
        Fault::StallAfterApply(Duration::from_secs(3)),
        1,
    ));
    let r = apply().timeout(Duration::from_millis(400)).send().await;
    assert!(r.unwrap_err().is_timeout());
    assert!(
        h.sim.object("deployments", "t1", "web").is_some(),
        "the change landed"
    );

    let get_one = "GET /apis/apps/v1/namespaces/{namespace}/deployments/{name}";
    h.sim.inject(FaultRule::next(get_one, Fault::WrongBody, 1));
    assert_eq!(h.get(WEB).await, (200, json!([])));
    let list = "GET /apis/apps/v1/namespaces/{namespace}/deployments";
    h.sim.inject(FaultRule::next(list, Fault::WrongBody, 1));
    let (s, v) = h.get(DEPLOYMENTS).await;
    assert_eq!(
        (s, v["kind"].as_str(), v.get("code")),
        (200, Some("Status"), None)
    );
    assert_eq!(h.get(WEB).await.0, 200, "faults used up");

    assert_eq!(h.sim.count_calls(key), 3);
    let calls: Vec<(Option<String>, u16)> = h
        .sim
        .request_log()
        .into_iter()
        .filter(|r| r.function == key)
        .map(|r| (r.fault, r.status))
        .collect();
    assert!(calls.iter().all(|(fault, _)| fault.is_some()), "{calls:?}");
    assert_eq!(
        calls.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [503, 0, 201]
    );
    h.sim.shutdown().await;
}
