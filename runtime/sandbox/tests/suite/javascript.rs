//! A non-Rust component (JavaScript, componentize-js) links and runs in the
//! same sandbox, with the same capabilities and limits.

use crate::support::fake_panel::FakePanel;
use crate::support::*;
use panel1_sandbox::{HostContext, Limits, Operation};
use serde_json::json;

const TOKEN: &str = "js-token-5150";

fn js_context(panel: &FakePanel) -> HostContext {
    let mut ctx = panel.context();
    // The JS adapter appends `/version`, `/accounts` to base_url.
    ctx.config
        .insert("base_url".into(), format!("{}/v1", panel.base_url()));
    ctx
}

#[tokio::test]
async fn javascript_adapter_links_and_runs_every_operation() {
    let a = load("js-reference");
    assert!(a.report.needs(panel1_sandbox::Capability::Http));
    let r = call(&a, HostContext::default(), Operation::Info, json!(null)).await;
    assert_eq!(ok(&r)["name"], "js-reference");

    let panel = FakePanel::start(TOKEN).await;
    let ctx = js_context(&panel);
    let r = call(&a, ctx.clone(), Operation::TestConnection, json!({})).await;
    assert_eq!(ok(&r)["server_version"], "refpanel 1.4.2");
    assert!(!report_text(&r).contains(TOKEN));
    let auth = panel.requests()[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    assert_eq!(
        auth,
        Some(format!("Bearer {TOKEN}")),
        "the host injected the secret for the JS guest too"
    );

    let alice = json!({"service": {"service_id": "s1", "username": "alice", "domain": "alice.test", "plan": "basic"}});
    let r = call(&a, ctx.clone(), Operation::Provision, alice).await;
    assert_eq!(ok(&r)["remote_id"], "alice");
    let existing =
        json!({"service": {"service_id": "s1", "remote_id": "alice"}, "reason": "abuse"});
    let r = call(&a, ctx.clone(), Operation::Suspend, existing.clone()).await;
    assert_eq!(ok(&r)["state"], "suspended");
    let r = call(&a, ctx.clone(), Operation::Terminate, existing.clone()).await;
    assert_eq!(ok(&r)["state"], "terminated");
    let r = call(&a, ctx.clone(), Operation::Terminate, existing).await;
    assert_eq!(
        ok(&r)["state"],
        "terminated",
        "terminate of a missing account succeeds"
    );
    let r = call(&a, ctx, Operation::Usage, service("s1")).await;
    assert_eq!(adapter_error(&r).0, "unsupported");
}

#[tokio::test]
async fn javascript_adapter_is_held_to_the_same_limits_and_policy() {
    let a = load("js-reference");
    let panel = FakePanel::start(TOKEN).await;
    // Egress not allowed: the JS guest sees a network error; the host says why.
    let mut ctx = js_context(&panel);
    ctx.egress.rules.clear();
    let r = call(&a, ctx, Operation::TestConnection, json!({})).await;
    adapter_error(&r);
    assert!(r.http[0].denied.is_some());
    assert!(panel.requests().is_empty());
    // A fuel budget too small for the JS engine stops it.
    let tiny = HostContext {
        limits: Limits {
            fuel: 200_000,
            ..Limits::default()
        },
        ..HostContext::default()
    };
    let r = call(&a, tiny, Operation::Info, json!(null)).await;
    assert_eq!(sandbox_kind(&r), "out-of-fuel");
}
