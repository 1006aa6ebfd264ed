//! Client identities (mutual TLS) as a host capability, end to end: the real
//! plesk adapter in the real sandbox against a Plesk simulator that requires
//! a client certificate from its own CA. Bound to the destination, the
//! identity secret is presented by the host and the call succeeds; missing,
//! wrong or bound elsewhere, the server refuses and the adapter reports
//! `auth-failed`. The guest can neither get a placeholder for the identity
//! nor reveal it, and its key appears in no record.

use crate::guest::{error, ok, report_texts};
use crate::plesk::*;
use panel1_sandbox::{Operation, SecretBinding};
use panel1_sims::plesk::{PleskConfig, PleskSimulator};
use serde_json::json;

async fn mtls() -> Plesk {
    let sim = PleskSimulator::start(PleskConfig {
        mutual_tls: true,
        ..PleskConfig::with_key(KEY)
    })
    .await
    .expect("simulator starts");
    Plesk::with(sim)
}

fn identity(h: &Plesk, name: &str, pem: &str, host: &str) -> SecretBinding {
    SecretBinding {
        name: name.into(),
        value: pem.into(),
        destinations: vec![format!("{host}:{}", h.port())],
    }
}

fn key_lines(pem: &str) -> Vec<String> {
    let start = pem
        .find("-----BEGIN PRIVATE KEY-----")
        .expect("a PKCS#8 key");
    pem[start..]
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_identity_is_presented_and_others_are_refused() {
    let mut h = mtls().await;
    let pem = h.sim.client_identity_pem().expect("mutual TLS").to_string();

    // No identity: the server refuses the handshake; auth-failed, not retried.
    let r = h.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "auth-failed", "{msg}");
    assert!(msg.contains("client certificate refused"), "{msg}");

    // A certificate the server's CA did not sign: refused the same way.
    let c = rcgen::generate_simple_self_signed(vec!["intruder".to_string()]).unwrap();
    let wrong = format!("{}{}", c.cert.pem(), c.signing_key.serialize_pem());
    h.ctx
        .secrets
        .push(identity(&h, "client-identity", &wrong, "127.0.0.1"));
    let r = h.call(Operation::TestConnection, json!({})).await;
    assert_eq!(error(&r).0, "auth-failed");

    // The right identity, bound to another host: not presented here.
    h.ctx.secrets.retain(|s| s.name != "client-identity");
    h.ctx
        .secrets
        .push(identity(&h, "client-identity", &pem, "plesk.example.com"));
    let r = h.call(Operation::TestConnection, json!({})).await;
    assert_eq!(error(&r).0, "auth-failed");

    // Bound to this destination: presented, and the whole call works.
    h.ctx.secrets.retain(|s| s.name != "client-identity");
    h.ctx
        .secrets
        .push(identity(&h, "client-identity", &pem, "127.0.0.1"));
    let r = h.call(Operation::TestConnection, json!({})).await;
    assert_eq!(ok(&r)["server_version"], "Plesk 18.0.70");
    let r = h
        .call(
            Operation::Provision,
            new_service("ivy", "ivy.example", None),
        )
        .await;
    assert_eq!(ok(&r)["state"], "active");
    for line in key_lines(&pem) {
        for t in report_texts(&r) {
            assert!(!t.contains(&line), "the private key is in a record");
        }
    }
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_cannot_place_or_reveal_an_identity() {
    let mut h = mtls().await;
    let pem = h.sim.client_identity_pem().unwrap().to_string();
    h.ctx
        .secrets
        .push(identity(&h, "client-identity", &pem, "127.0.0.1"));
    // The adapter asks for a placeholder when a password secret is named:
    // naming the identity instead is refused before any request.
    let mut input = new_service("jack", "jack.example", None);
    input["password_secret"] = json!("client-identity");
    let r = h.call(Operation::Provision, input).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "invalid-input", "{msg}");
    assert!(msg.contains("client identity"), "{msg}");
    assert!(h.sim.client("jack").is_none());
}
