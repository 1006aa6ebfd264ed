//! The Kubernetes API server simulator's authentication over real HTTPS on
//! loopback, with reqwest trusting only the simulator's cluster CA: bearer
//! tokens (and their expiry), client certificates, the certificate chain
//! the handshake sends.

use crate::kube_http::*;
use std::sync::{Arc, Mutex};

use panel1_sims::kube::{KubeAuth, KubeConfig, DEFAULT_TOKEN};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

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
