//! The reference adapter's full operation set through the real sandbox
//! against the fake panel, including ensure semantics on retries.

use crate::support::fake_panel::FakePanel;
use crate::support::*;
use panel1_sandbox::Operation;
use serde_json::json;

fn alice() -> serde_json::Value {
    json!({"service": {"service_id": "svc-1", "username": "alice", "domain": "alice.test", "plan": "basic"}})
}

fn existing() -> serde_json::Value {
    json!({"service": {"service_id": "svc-1", "remote_id": "alice"}, "reason": "unpaid invoice"})
}

#[tokio::test]
async fn full_lifecycle() {
    let panel = FakePanel::start("tok").await;
    let a = load("reference");
    let ctx = panel.context();

    let r = call(&a, ctx.clone(), Operation::TestConnection, json!({})).await;
    assert_eq!(ok(&r)["server_version"], "refpanel 1.4.2");

    let r = call(&a, ctx.clone(), Operation::Provision, alice()).await;
    let res = ok(&r);
    assert_eq!(res["remote_id"], "alice");
    assert_eq!(res["state"], "active");
    assert_eq!(res["details"]["owner"], "reseller1");
    assert!(
        r.metrics.http_requests >= 1
            && r.metrics.fuel_consumed > 0
            && r.metrics.peak_memory_bytes > 0
    );

    let r = call(&a, ctx.clone(), Operation::Suspend, existing()).await;
    assert_eq!(ok(&r)["state"], "suspended");
    assert_eq!(
        panel.with(|s| s.accounts["alice"]["suspend_reason"].clone()),
        "unpaid invoice"
    );
    // Suspend again: still success (ensure semantics).
    let r = call(&a, ctx.clone(), Operation::Suspend, existing()).await;
    assert_eq!(ok(&r)["state"], "suspended");

    let r = call(&a, ctx.clone(), Operation::Unsuspend, existing()).await;
    assert_eq!(ok(&r)["state"], "active");

    let r = call(
        &a,
        ctx.clone(),
        Operation::ChangePackage,
        json!({"service": {"service_id": "svc-1", "remote_id": "alice"}, "plan": "pro"}),
    )
    .await;
    assert_eq!(ok(&r)["plan"], "pro");

    let r = call(&a, ctx.clone(), Operation::Status, existing()).await;
    assert_eq!(ok(&r)["plan"], "pro");

    let r = call(
        &a,
        ctx.clone(),
        Operation::ListServices,
        json!({"limit": 10}),
    )
    .await;
    assert_eq!(ok(&r)["items"].as_array().unwrap().len(), 1);

    let r = call(&a, ctx.clone(), Operation::Usage, existing()).await;
    assert_eq!(ok(&r)["metrics"][0]["name"], "disk_used");

    let r = call(&a, ctx.clone(), Operation::LoginUrl, existing()).await;
    assert!(ok(&r)["url"].as_str().unwrap().contains("/sso/alice"));

    let r = call(&a, ctx.clone(), Operation::Terminate, existing()).await;
    assert_eq!(ok(&r)["state"], "terminated");
    // Terminate of a missing account: success.
    let r = call(&a, ctx.clone(), Operation::Terminate, existing()).await;
    assert_eq!(ok(&r)["state"], "terminated");
    let r = call(&a, ctx, Operation::Status, existing()).await;
    assert_eq!(ok(&r)["state"], "terminated");
}

#[tokio::test]
async fn provision_retry_after_timeout_creates_exactly_one_account() {
    let panel = FakePanel::start("tok").await;
    let a = load("reference");
    // Attempt 1 created the account (its answer was lost).
    ok(&call(&a, panel.context(), Operation::Provision, alice()).await);
    // Attempt 2 finds it and succeeds without creating another.
    let mut req = request(Operation::Provision, alice());
    req.attempt = 2;
    let r = sandbox()
        .call(&a, std::sync::Arc::new(panel.context()), &req)
        .await
        .unwrap();
    assert_eq!(ok(&r)["remote_id"], "alice");
    assert_eq!(panel.with(|s| s.creates), 1);
    // A different owner/plan under the same name is a conflict, not success.
    let other = json!({"service": {"service_id": "svc-2", "username": "alice", "domain": "other.test", "plan": "basic"}});
    let r = call(&a, panel.context(), Operation::Provision, other).await;
    assert_eq!(adapter_error(&r).0, "conflict");
    assert_eq!(panel.with(|s| s.creates), 1);
}

#[tokio::test]
async fn errors_are_typed() {
    let panel = FakePanel::start("tok").await;
    let a = load("reference");
    let bad_user = json!({"service": {"service_id": "s", "username": "Bad User!"}});
    let r = call(&a, panel.context(), Operation::Provision, bad_user).await;
    assert_eq!(adapter_error(&r).0, "invalid-input");
    assert!(panel.requests().is_empty(), "validated before any call");

    let mut wrong = panel.context();
    wrong.secrets[0].value = "wrong".into();
    let r = call(&a, wrong, Operation::TestConnection, json!({})).await;
    assert_eq!(adapter_error(&r).0, "auth-failed");

    panel.with(|s| s.force_status = 503);
    let r = call(&a, panel.context(), Operation::TestConnection, json!({})).await;
    assert_eq!(adapter_error(&r).0, "transient");
}
