//! Shared helpers: a simulator, and a reqwest client that trusts its
//! certificate (real HTTPS over loopback).
#![allow(dead_code)]

use panel1_sims::{spec, SimConfig, WhmSimulator};
use serde_json::Value;

pub const TOKEN: &str = "SIMTOKEN0123456789ABCDEF";

pub struct Harness {
    pub sim: WhmSimulator,
    pub http: reqwest::Client,
}

pub async fn start() -> Harness {
    let sim = WhmSimulator::start(SimConfig::with_token(TOKEN))
        .await
        .expect("simulator starts");
    let http = client_for(&sim, None);
    Harness { sim, http }
}

pub fn client_for(sim: &WhmSimulator, timeout: Option<std::time::Duration>) -> reqwest::Client {
    let cert = reqwest::Certificate::from_der(sim.cert_der()).expect("DER certificate");
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .tls_info(true);
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder.build().expect("client builds")
}

impl Harness {
    pub fn url(&self, function: &str) -> String {
        format!("{}/json-api/{function}", self.sim.base_url())
    }

    /// GET with api.version=1 and the right token; the JSON answer.
    pub async fn get(&self, function: &str, params: &[(&str, &str)]) -> Value {
        let mut query = vec![("api.version", "1")];
        query.extend_from_slice(params);
        let resp = self
            .http
            .get(self.url(function))
            .header("Authorization", self.sim.auth_header())
            .query(&query)
            .send()
            .await
            .expect("request succeeds");
        assert_eq!(resp.status(), 200, "{function}");
        resp.json().await.expect("JSON answer")
    }

    /// POST a form (api.version=1 in the query, as clients do).
    pub async fn post(&self, function: &str, form: &[(&str, &str)]) -> Value {
        let resp = self
            .http
            .post(self.url(function))
            .header("Authorization", self.sim.auth_header())
            .query(&[("api.version", "1")])
            .form(form)
            .send()
            .await
            .expect("request succeeds");
        assert_eq!(resp.status(), 200, "{function}");
        resp.json().await.expect("JSON answer")
    }
}

pub fn result(body: &Value) -> i64 {
    body["metadata"]["result"]
        .as_i64()
        .expect("metadata.result")
}

pub fn reason(body: &Value) -> &str {
    body["metadata"]["reason"]
        .as_str()
        .expect("metadata.reason")
}

/// The answer validates against cPanel's response schema for `function`.
/// One known defect of the official listaccts schema is tolerated: its
/// `suspendreason` is `oneOf [enum "not suspended", string|null]`, which the
/// documented value "not suspended" matches twice.
pub fn assert_spec(function: &str, body: &Value) {
    let errors: Vec<String> = spec::check_response(function, body)
        .into_iter()
        .filter(|e| !(function == "listaccts" && e.contains("/suspendreason: \"not suspended\"")))
        .collect();
    assert!(
        errors.is_empty(),
        "{function} answer breaks the spec: {errors:#?}\n{body:#}"
    );
}
