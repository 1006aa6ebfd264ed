//! Worlds 0.1.0 and 0.2.0 side by side in one sandbox: `check` reports each
//! component's version, a 0.2.0 component's `backups` functions run with
//! typed inputs and results, and a 0.1.0 component answers `unsupported`
//! for them without the host calling into it.

use crate::support::*;
use panel1_sandbox::{HostContext, Operation};
use serde_json::json;
use std::sync::Arc;

fn alice() -> serde_json::Value {
    json!({"service": {"service_id": "svc-1", "username": "alice"}})
}

#[test]
fn check_reports_each_components_world_version() {
    let v2 = load("backups-v2").report.clone();
    assert_eq!(v2.world_version, "0.2.0");
    assert!(
        v2.exports
            .iter()
            .any(|e| e == "panel1:provisioning/backups@0.2.0"),
        "{:?}",
        v2.exports
    );
    // 0.2.0 keeps 0.1.0's `adapter` interface and host capabilities.
    assert!(v2
        .exports
        .iter()
        .any(|e| e == "panel1:provisioning/adapter@0.1.0"));
    for name in ["acme", "reference", "plesk"] {
        let v1 = load(name).report.clone();
        assert_eq!(v1.world_version, "0.1.0", "{name}");
    }
}

#[tokio::test]
async fn a_v2_adapter_runs_its_backup_functions() {
    let a = load("backups-v2");
    let ctx = HostContext::default();

    let r = call(&a, ctx.clone(), Operation::Info, json!(null)).await;
    let ops = ok(&r)["operations"].clone();
    assert_eq!(
        ops,
        json!([
            "status",
            "terminate",
            "create-backup",
            "backup-status",
            "list-backups",
            "delete-backup",
            "restore-backup",
            "export-service",
            "import-service"
        ])
    );

    let mut input = alice();
    input["destination"] = json!({"kind": "s3", "settings": {"bucket": "b1"}});
    let r = call(&a, ctx.clone(), Operation::CreateBackup, input).await;
    let b = ok(&r);
    // The idempotency key reached the guest (the task id on retries).
    assert_eq!(b["backup_id"], "alice-task-1");
    assert_eq!(b["state"], "pending");
    assert_eq!(b["created_at_ms"], 1_700_000_000_000u64);
    assert_eq!(b["size_bytes"], json!(null));
    assert_eq!(b["details"]["destination"], "s3");

    let mut by_ref = alice();
    by_ref["backup_id"] = json!("alice-task-1");
    let r = call(&a, ctx.clone(), Operation::BackupStatus, by_ref.clone()).await;
    assert_eq!(ok(&r)["state"], "complete");
    assert_eq!(ok(&r)["size_bytes"], 4096);

    let r = call(&a, ctx.clone(), Operation::ListBackups, alice()).await;
    let ids: Vec<_> = ok(&r)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backup_id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("alice-2"), json!("alice-1")]);

    let r = call(&a, ctx.clone(), Operation::RestoreBackup, by_ref.clone()).await;
    assert_eq!(ok(&r)["state"], "active");
    assert_eq!(ok(&r)["details"]["restored_from"], "alice-task-1");

    let r = call(&a, ctx.clone(), Operation::DeleteBackup, by_ref).await;
    assert_eq!(ok(&r), &json!({"deleted": "alice-task-1"}));

    // Moves (docs/migration.md): the package names the account; the
    // import of a `fail-import…` user fails for good.
    let r = call(&a, ctx.clone(), Operation::ExportService, alice()).await;
    let package = ok(&r).clone();
    assert_eq!(package["reference"], "alice.tar");
    let mut import = alice();
    import["transfer"] = package;
    import["source_address"] = json!("https://a.example");
    let r = call(&a, ctx.clone(), Operation::ImportService, import.clone()).await;
    assert_eq!(ok(&r)["state"], "active");
    assert_eq!(ok(&r)["details"]["imported_from"], "alice.tar");
    import["service"]["username"] = json!("fail-import-bob");
    let r = call(&a, ctx.clone(), Operation::ImportService, import).await;
    assert_eq!(adapter_error(&r).0, "permanent");

    // What the adapter leaves out is the SDK's `unsupported`.
    let r = call(&a, ctx, Operation::Provision, alice()).await;
    assert_eq!(adapter_error(&r).0, "unsupported");
}

#[tokio::test]
async fn a_v1_adapter_answers_unsupported_for_backups() {
    let a = load("acme");
    let r = call(&a, HostContext::default(), Operation::CreateBackup, alice()).await;
    let (kind, message) = adapter_error(&r);
    assert_eq!(kind, "unsupported");
    assert!(message.contains("0.1.0"), "{message}");
    // The host answered: no guest code ran for it.
    assert_eq!(r.metrics.fuel_consumed, 0, "{:?}", r.metrics);
    // Its own operations still run in the same sandbox.
    let r = call(&a, HostContext::default(), Operation::Info, json!(null)).await;
    assert_eq!(ok(&r)["name"], "acme");
}

#[tokio::test]
async fn backup_inputs_are_checked_with_the_field_named() {
    let a = load("backups-v2");
    let bad = [
        (
            Operation::CreateBackup,
            json!({"service": {"service_id": "s"}, "bogus": 1}),
            "bogus",
        ),
        (Operation::BackupStatus, alice(), "backup_id"),
        (
            Operation::ImportService,
            json!({"service": {"service_id": "s"}, "transfer": {"kind": "archive"}, "source_address": "https://a"}),
            "reference",
        ),
        (
            Operation::CreateBackup,
            json!({"service": {"service_id": "s"}, "destination": {"settings": {}}}),
            "kind",
        ),
    ];
    for (op, input, field) in bad {
        let err = sandbox()
            .call(&a, Arc::new(HostContext::default()), &request(op, input))
            .await
            .expect_err("malformed input runs nothing");
        assert!(err.to_string().contains(field), "{op}: {err}");
    }
}
