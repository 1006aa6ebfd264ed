//! Secrets: injected at send time for bound destinations only, never seen by
//! the guest, never in logs, results or recorded exchanges.

use crate::support::fake_panel::FakePanel;
use crate::support::listeners::CountingListener;
use crate::support::*;
use panel1_sandbox::{EgressRule, Grants, HostContext, Operation};
use serde_json::json;

const TOKEN: &str = "tok-9f8e7d6c5b4a-SECRET";

#[tokio::test]
async fn token_reaches_the_bound_host_and_nowhere_else() {
    let panel = FakePanel::start(TOKEN).await;
    let a = load("reference");
    let r = call(&a, panel.context(), Operation::TestConnection, json!({})).await;
    assert_eq!(ok(&r)["server_version"], "refpanel 1.4.2");
    // The server got the real value...
    let reqs = panel.requests();
    let auth = reqs[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    assert_eq!(auth.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    // ...and nothing recorded about the call contains it.
    let text = report_text(&r);
    assert!(
        !text.contains(TOKEN),
        "secret leaked into the report: {text}"
    );
}

#[tokio::test]
async fn an_echoed_token_is_scrubbed_before_the_guest_sees_it() {
    let panel = FakePanel::start(TOKEN).await;
    panel.with(|s| s.echo_auth = true);
    let a = load("reference");
    let r = call(&a, panel.context(), Operation::TestConnection, json!({})).await;
    // The guest returned what the server echoed: the placeholder, not the value.
    assert_eq!(ok(&r)["server_version"], "Bearer {{secret:api-token}}");
    assert!(!report_text(&r).contains(TOKEN));
}

#[tokio::test]
async fn placeholder_sent_to_an_unbound_host_is_refused_before_sending() {
    let panel = FakePanel::start(TOKEN).await;
    let thief = CountingListener::start("127.0.0.1:0").await;
    let thief_url = format!("http://127.0.0.1:{}", thief.port);
    let mut ctx = panel.context();
    // Egress to the thief is allowed: the secret binding alone must stop it.
    ctx.egress
        .rules
        .push(EgressRule::parse(&thief_url).unwrap());
    let a = load("exfil");
    let r = call(
        &a,
        ctx,
        Operation::Provision,
        service_with("s1", json!({ "url": format!("{thief_url}/collect") })),
    )
    .await;
    let (kind, msg) = adapter_error(&r);
    assert_eq!(kind, "permanent");
    assert!(msg.contains("exfiltration denied"), "{msg}");
    let denied = r.http[0].denied.clone().unwrap();
    assert!(
        denied.contains("secret `api-token` is not bound to 127.0.0.1"),
        "{denied}"
    );
    assert_eq!(thief.connections(), 0, "nothing may reach the unbound host");
    assert!(!report_text(&r).contains(TOKEN));
}

#[tokio::test]
async fn placeholder_for_an_unknown_secret_is_refused() {
    let panel = FakePanel::start(TOKEN).await;
    let mut ctx = panel.context();
    ctx.secrets.clear();
    let a = load("reference");
    let r = call(&a, ctx, Operation::TestConnection, json!({})).await;
    // The SDK asks for the placeholder first and gets not-found.
    let (kind, msg) = adapter_error(&r);
    assert_eq!(kind, "invalid-input");
    assert!(msg.contains("api-token"), "{msg}");
    assert!(panel.requests().is_empty());
}

#[tokio::test]
async fn reveal_without_grant_is_denied_and_logged() {
    let panel = FakePanel::start(TOKEN).await;
    let a = load("exfil");
    let r = call(&a, panel.context(), Operation::Status, service("s1")).await;
    let (kind, msg) = adapter_error(&r);
    assert_eq!(kind, "permanent");
    assert!(msg.contains("reveal refused"), "{msg}");
    assert!(r
        .log
        .iter()
        .any(|e| e.source == "host" && e.message.contains("secret reveal denied")));
    assert!(!report_text(&r).contains(TOKEN));
    assert!(
        a.report.needs(panel1_sandbox::Capability::SecretsReveal),
        "the import declares the capability"
    );
}

#[tokio::test]
async fn reveal_with_grant_gives_the_guest_the_value_but_the_report_redacts_it() {
    let panel = FakePanel::start(TOKEN).await;
    let ctx = HostContext {
        grants: Grants {
            secrets_reveal: true,
        },
        ..panel.context()
    };
    let a = load("exfil");
    let r = call(&a, ctx, Operation::Status, service("s1")).await;
    // The guest got the plaintext and returned it; the output scan redacted
    // it before the result left the sandbox.
    assert_eq!(ok(&r)["details"]["token"], "[REDACTED:api-token]");
    assert!(r
        .log
        .iter()
        .any(|e| e.message.contains("revealed to the adapter")));
    assert!(!report_text(&r).contains(TOKEN));
}

#[tokio::test]
async fn password_secrets_are_injected_into_json_bodies_with_escaping() {
    let panel = FakePanel::start(TOKEN).await;
    let mut ctx = panel.context();
    let password = r#"p"w\d&x=1"#;
    ctx.secrets.push(panel1_sandbox::SecretBinding {
        name: "new-password".into(),
        value: password.into(),
        destinations: vec![format!("127.0.0.1:{}", panel.port)],
    });
    let a = load("reference");
    let input = json!({"service": {"service_id": "s1", "username": "alice", "domain": "alice.test", "plan": "basic"}, "password_secret": "new-password"});
    let r = call(&a, ctx.clone(), Operation::Provision, input).await;
    ok(&r);
    let stored = panel.with(|s| s.accounts["alice"]["password"].clone());
    assert_eq!(
        stored,
        json!(password),
        "the server decoded the exact password from valid JSON"
    );
    let r2 = call(&a, ctx, Operation::ChangePassword, json!({"service": {"service_id": "s1", "remote_id": "alice"}, "password_secret": "new-password"})).await;
    ok(&r2);
    for rep in [&r, &r2] {
        let text = report_text(rep);
        assert!(!text.contains(password) && !text.contains(TOKEN), "{text}");
    }
}
