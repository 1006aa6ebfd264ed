//! The raw-HTTPS harness of the Kubernetes simulator tests: a reqwest
//! client trusting only the simulator's cluster CA, with the token when
//! there is one, and small readers of the API server's answers.
#![allow(dead_code)]

use panel1_sims::kube::{KubeAuth, KubeConfig, KubeSimulator};
use reqwest::{Certificate, Client, Method};
use serde_json::{json, Value};
use std::time::Duration;

pub const APPLY: &str = "application/apply-patch+yaml";
pub const MERGE: &str = "application/merge-patch+json";
pub const JSON: &str = "application/json";
pub const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/t1/deployments";
pub const WEB: &str = "/apis/apps/v1/namespaces/t1/deployments/web";

/// Status code and body (JSON, or the text as a string).
pub type R = (u16, Value);

pub struct Kube {
    pub sim: KubeSimulator,
    pub client: Client,
    pub token: Option<String>,
}

pub fn trusting_ca(sim: &KubeSimulator) -> reqwest::ClientBuilder {
    let ca = Certificate::from_der(sim.ca_der().expect("a cluster CA")).unwrap();
    Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
}

impl Kube {
    pub async fn start() -> Kube {
        Kube::with(KubeConfig::default()).await
    }

    pub async fn with(config: KubeConfig) -> Kube {
        let token = match &config.auth {
            KubeAuth::Token(t) => Some(t.clone()),
            KubeAuth::ClientCertificate => None,
        };
        let sim = KubeSimulator::start(config).await.expect("simulator");
        let client = trusting_ca(&sim).build().unwrap();
        Kube { sim, client, token }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub fn request(
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

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        ct: Option<&str>,
        body: Option<&Value>,
    ) -> R {
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

    pub async fn get(&self, path: &str) -> R {
        self.send(Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> R {
        self.send(Method::POST, path, Some(JSON), Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> R {
        self.send(Method::PUT, path, Some(JSON), Some(body)).await
    }

    pub async fn merge(&self, path: &str, body: &Value) -> R {
        self.send(Method::PATCH, path, Some(MERGE), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> R {
        self.send(Method::DELETE, path, None, None).await
    }

    pub async fn apply(&self, path: &str, manager: &str, body: &Value) -> R {
        let sep = if path.contains('?') { '&' } else { '?' };
        let path = format!("{path}{sep}fieldManager={manager}");
        self.send(Method::PATCH, &path, Some(APPLY), Some(body))
            .await
    }

    pub async fn namespace(&self, name: &str) {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let r = self
            .apply(&format!("/api/v1/namespaces/{name}"), "panel1", &ns)
            .await;
        assert_eq!(r.0, 201, "{}", r.1);
    }
}

/// Status code and `reason` of an answer.
pub fn reason(r: &R) -> (u16, &str) {
    (r.0, r.1["reason"].as_str().unwrap_or(""))
}

/// The field the first cause of a 422 names.
pub fn cause(r: &R) -> &str {
    r.1["details"]["causes"][0]["field"].as_str().unwrap_or("")
}

pub fn message(r: &R) -> &str {
    r.1["message"].as_str().unwrap_or("")
}

pub fn rv(v: &Value) -> u64 {
    let s = v["metadata"]["resourceVersion"]
        .as_str()
        .expect("a resourceVersion");
    s.parse().unwrap()
}

pub fn deployment(name: &str, replicas: i64) -> Value {
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
