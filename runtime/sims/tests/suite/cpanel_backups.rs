//! World 0.2.0 backups of the real cpanel adapter (`adapters/dist/cpanel.wasm`)
//! in the real sandbox against the WHM simulator over pinned HTTPS:
//! create-backup (pkgacct) pending → complete through backup-status,
//! list-backups, restore-backup (cpmove restore) by either id, failures,
//! input checks and auth errors. Secrecy is checked on every call by the
//! harness.

use crate::cpanel::*;
use panel1_sandbox::Operation;
use panel1_sims::Account;
use serde_json::{json, Value};

const ARCHIVE: &str = "/home/cpmove-bob.tar.gz";

async fn with_bob() -> Whm {
    let h = Whm::start().await;
    h.sim
        .add_account(Account::new("bob", "bob.example").with_usage(6, 0))
        .unwrap();
    h
}

fn by_ref(user: &str, backup_id: &str) -> Value {
    let mut input = service(user);
    input["backup_id"] = json!(backup_id);
    input
}

/// create-backup, then backup-status until it is no longer pending.
async fn backup(h: &Whm, user: &str) -> Value {
    let r = h.call(Operation::CreateBackup, service(user)).await;
    let id = ok(&r)["backup_id"].as_str().unwrap().to_string();
    for _ in 0..10 {
        let r = h.call(Operation::BackupStatus, by_ref(user, &id)).await;
        if ok(&r)["state"] != "pending" {
            return ok(&r).clone();
        }
    }
    panic!("backup {id} stayed pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_follow_list_and_restore() {
    let h = with_bob().await;
    h.sim.set_backup_polls(1);

    // info lists the backup functions the adapter implements.
    let r = h.call(Operation::Info, json!({})).await;
    let ops: Vec<&str> = ok(&r)["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for op in [
        "create-backup",
        "backup-status",
        "list-backups",
        "restore-backup",
    ] {
        assert!(ops.contains(&op), "{op} in {ops:?}");
    }
    assert!(!ops.contains(&"delete-backup"), "{ops:?}");

    let before = chrono::Utc::now().timestamp_millis() as u64;
    let r = h.call(Operation::CreateBackup, service("bob")).await;
    let res = ok(&r);
    assert_eq!(res["state"], "pending");
    let id = res["backup_id"].as_str().unwrap().to_string();
    assert_eq!(h.sim.pkgacct_sessions()[0].session_id, id);
    assert_eq!(res["details"]["archive"], ARCHIVE);
    assert!(res["created_at_ms"].as_u64().unwrap() >= before);
    assert_eq!(whm_calls(&r), ["start_background_pkgacct"]);

    // Pending while pkgacct runs (one poll), then complete with its size.
    let r = h.call(Operation::BackupStatus, by_ref("bob", &id)).await;
    assert_eq!(ok(&r)["state"], "pending");
    assert_eq!(ok(&r)["size_bytes"], Value::Null);
    assert_eq!(
        whm_calls(&r),
        ["get_pkgacct_session_state", "fetch_pkgacct_master_log"]
    );
    let r = h.call(Operation::BackupStatus, by_ref("bob", &id)).await;
    let res = ok(&r);
    let archive = h.sim.archives().pop().expect("pkgacct wrote the archive");
    assert_eq!(res["state"], "complete");
    assert_eq!(res["backup_id"], id.as_str());
    assert_eq!(res["size_bytes"], archive.size_bytes);
    assert_eq!(res["details"]["archive"], ARCHIVE);
    let started = res["created_at_ms"].as_u64().unwrap();
    assert!(started / 1000 >= before / 1000 && started / 1000 <= archive.created as u64);

    // list-backups: the account's archive (another account's is not listed).
    h.sim
        .add_account(Account::new("carol", "carol.example"))
        .unwrap();
    h.sim.set_backup_polls(0);
    backup(&h, "carol").await;
    let r = h.call(Operation::ListBackups, service("bob")).await;
    let items = ok(&r)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["backup_id"], ARCHIVE);
    assert_eq!(items[0]["state"], "complete");
    assert_eq!(whm_calls(&r), ["list_cparchive_files"]);
    // The archive id follows too.
    let r = h
        .call(Operation::BackupStatus, by_ref("bob", ARCHIVE))
        .await;
    assert_eq!(ok(&r)["state"], "complete");

    // restore-backup by session id puts the archived plan back, through a
    // restore session the adapter follows (one in-progress poll).
    let mut change = service("bob");
    change["plan"] = json!("pro");
    ok(&h.call(Operation::ChangePackage, change).await);
    assert_eq!(h.account("bob").plan, "pro");
    h.sim.set_backup_polls(1);
    let r = h.call(Operation::RestoreBackup, by_ref("bob", &id)).await;
    let res = ok(&r);
    assert_eq!(
        (
            res["remote_id"].as_str(),
            res["state"].as_str(),
            res["plan"].as_str()
        ),
        (Some("bob"), Some("active"), Some("default"))
    );
    assert_eq!(res["details"]["restored_from"], ARCHIVE);
    assert_eq!(h.account("bob").plan, "default");
    let restores = h.sim.restores();
    assert_eq!(restores.len(), 1);
    assert_eq!(
        (restores[0].cpmovepath.as_str(), restores[0].state.as_str()),
        (ARCHIVE, "COMPLETED")
    );
    let calls = whm_calls(&r);
    assert_eq!(
        calls
            .iter()
            .filter(|c| *c == "get_transfer_session_state")
            .count(),
        2,
        "{calls:?}"
    );

    // By archive path, after the account was removed: it comes back.
    h.sim.set_backup_polls(0);
    h.call(Operation::Terminate, service("bob")).await;
    assert!(h.sim.account("bob").is_none());
    let r = h
        .call(Operation::RestoreBackup, by_ref("bob", ARCHIVE))
        .await;
    assert_eq!(ok(&r)["state"], "active");
    assert_eq!(h.account("bob").domain, "bob.example");
    assert_eq!(h.sim.restores().len(), 2);
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_map_to_typed_errors() {
    let h = with_bob().await;

    // A failing pkgacct: failed, with WHM's reason; nothing to restore.
    h.sim.fail_next_pkgacct("Disk quota exceeded for /home");
    let failed = backup(&h, "bob").await;
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["details"]["reason"], "Disk quota exceeded for /home");
    assert_eq!(failed["size_bytes"], Value::Null);
    let id = failed["backup_id"].as_str().unwrap();
    let r = h.call(Operation::RestoreBackup, by_ref("bob", id)).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "conflict", "{msg}");

    // A failing restore is permanent and names the transfer session.
    let done = backup(&h, "bob").await;
    assert_eq!(done["state"], "complete");
    h.sim.fail_next_restore("Restore failed");
    let id = done["backup_id"].as_str().unwrap();
    let r = h.call(Operation::RestoreBackup, by_ref("bob", id)).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "permanent", "{msg}");
    assert!(msg.contains("FAILED"), "{msg}");

    // WHM does not know the session, or the account.
    let r = h
        .call(
            Operation::BackupStatus,
            by_ref("bob", "bob20990101000000abcdef"),
        )
        .await;
    assert_eq!(error(&r).0, "not-found");
    let r = h.call(Operation::CreateBackup, service("nobody1")).await;
    assert_eq!(error(&r).0, "not-found");
    // An archive no longer on the server.
    assert!(h.sim.remove_archive(ARCHIVE));
    let r = h
        .call(Operation::RestoreBackup, by_ref("bob", ARCHIVE))
        .await;
    assert_eq!(error(&r).0, "not-found");
    let r = h.call(Operation::ListBackups, service("bob")).await;
    assert_eq!(ok(&r)["items"], json!([]));

    // Checked before any call: another account's archive, a made-up id, a
    // destination; delete-backup is not offered.
    let mut with_destination = service("bob");
    with_destination["destination"] = json!({"kind": "s3"});
    for (op, input) in [
        (
            Operation::RestoreBackup,
            by_ref("bob", "/home/cpmove-carol.tar.gz"),
        ),
        (Operation::BackupStatus, by_ref("bob", "../../etc/passwd")),
        (Operation::CreateBackup, with_destination),
    ] {
        let r = h.call(op, input).await;
        let (kind, msg) = error(&r);
        assert_eq!(kind, "invalid-input", "{op:?}: {msg}");
        assert!(r.http.is_empty(), "{op:?}: no request was made");
    }
    let r = h
        .call(Operation::DeleteBackup, by_ref("bob", ARCHIVE))
        .await;
    assert_eq!(error(&r).0, "unsupported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_auth_failed() {
    let mut h = with_bob().await;
    h.bind_token("WRONGTOKEN0000000000000000");
    for (op, input) in [
        (Operation::CreateBackup, service("bob")),
        (Operation::ListBackups, service("bob")),
        (
            Operation::BackupStatus,
            by_ref("bob", "bob20990101000000abcdef"),
        ),
        (Operation::RestoreBackup, by_ref("bob", ARCHIVE)),
    ] {
        let r = h.call(op, input).await;
        let (kind, msg) = error(&r);
        assert_eq!(kind, "auth-failed", "{op:?}: {msg}");
    }
    assert!(h.sim.pkgacct_sessions().is_empty());
}
