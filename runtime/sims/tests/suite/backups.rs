//! The simulator's WHM API 1 backups over HTTPS: pkgacct sessions (state
//! polls, master log, the archive they leave), `list_cparchive_files`, and
//! cpmove restores through a transfer session; every answer against the
//! hand-written response schemas, every request well formed.

use crate::common;
use crate::common::{assert_spec, reason, result, start};
use panel1_sims::whm::PkgacctState;
use panel1_sims::Account;
use serde_json::Value;

async fn state(h: &common::Harness, session: &str) -> String {
    let body = h
        .get("get_pkgacct_session_state", &[("session_id", session)])
        .await;
    assert_eq!(result(&body), 1, "{body}");
    assert_spec("get_pkgacct_session_state", &body);
    body["data"]["state"].as_str().unwrap().to_string()
}

async fn restore_state(h: &common::Harness, id: &str) -> String {
    let body = h
        .get("get_transfer_session_state", &[("transfer_session_id", id)])
        .await;
    assert_eq!(result(&body), 1, "{body}");
    assert_spec("get_transfer_session_state", &body);
    body["data"]["state_name"].as_str().unwrap().to_string()
}

async fn start_pkgacct(h: &common::Harness, user: &str) -> String {
    let body = h
        .get(
            "start_background_pkgacct",
            &[("user", user), ("tarroot", "/home")],
        )
        .await;
    assert_eq!(result(&body), 1, "{body}");
    assert_spec("start_background_pkgacct", &body);
    body["data"]["session_id"].as_str().unwrap().to_string()
}

fn log_lines(body: &Value) -> Vec<Value> {
    body["data"]["log"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each log line is JSON"))
        .collect()
}

#[tokio::test]
async fn pkgacct_runs_for_the_configured_polls_and_leaves_an_archive() {
    let h = start().await;
    h.sim
        .add_account(Account::new("bob", "bob.example").with_usage(8, 0))
        .unwrap();
    h.sim.set_backup_polls(2);
    let id = start_pkgacct(&h, "bob").await;
    assert!(id.starts_with("bob2"), "{id}");
    assert_eq!(state(&h, &id).await, "RUNNING");
    assert_eq!(state(&h, &id).await, "RUNNING");
    assert!(h.sim.archives().is_empty(), "nothing written while running");
    assert_eq!(state(&h, &id).await, "COMPLETED");
    assert_eq!(state(&h, &id).await, "COMPLETED", "done stays done");

    let archives = h.sim.archives();
    assert_eq!(archives.len(), 1);
    let a = &archives[0];
    assert_eq!(
        (a.path.as_str(), a.file.as_str()),
        ("/home", "cpmove-bob.tar.gz")
    );
    assert_eq!(a.size_bytes, 48 * 1024 + 4 * 1024 * 1024);

    let log = h
        .get("fetch_pkgacct_master_log", &[("session_id", &id)])
        .await;
    assert_spec("fetch_pkgacct_master_log", &log);
    let contents: Vec<String> = log_lines(&log)
        .iter()
        .map(|l| l["contents"].as_str().unwrap().trim().to_string())
        .collect();
    assert_eq!(contents[0], "pkgacct started.");
    assert!(contents.contains(&"pkgacctfile is: /home/cpmove-bob.tar.gz".to_string()));
    assert!(contents.contains(&format!("size is: {}", a.size_bytes)));

    let list = h.get("list_cparchive_files", &[]).await;
    assert_spec("list_cparchive_files", &list);
    assert_eq!(
        list["data"]["quickrestore_files"],
        serde_json::json!([{"file": "cpmove-bob.tar.gz", "path": "/home", "user": "bob"}])
    );

    // A second pkgacct replaces the archive of the same name.
    h.sim.set_backup_polls(0);
    let again = start_pkgacct(&h, "bob").await;
    assert_ne!(again, id);
    assert_eq!(state(&h, &again).await, "COMPLETED");
    assert_eq!(h.sim.archives().len(), 1);
    assert_eq!(h.sim.pkgacct_sessions().len(), 2);
    assert!(h.sim.request_log().iter().all(|r| r.well_formed()));
}

#[tokio::test]
async fn pkgacct_failures_and_unknown_sessions() {
    let h = start().await;
    h.sim
        .add_account(Account::new("carol", "carol.example"))
        .unwrap();
    let missing = h
        .get("start_background_pkgacct", &[("user", "nobody1")])
        .await;
    assert_eq!(reason(&missing), "The user “nobody1” does not exist.");
    let no_user = h.get("start_background_pkgacct", &[]).await;
    assert_eq!(reason(&no_user), "The parameter “user” is required.");

    h.sim.fail_next_pkgacct("Disk quota exceeded");
    let id = start_pkgacct(&h, "carol").await;
    assert_eq!(state(&h, &id).await, "FAILED");
    assert!(h.sim.archives().is_empty());
    assert_eq!(h.sim.pkgacct_sessions()[0].state, PkgacctState::Failed);
    let log = h
        .get("fetch_pkgacct_master_log", &[("session_id", &id)])
        .await;
    let errors: Vec<Value> = log_lines(&log)
        .into_iter()
        .filter(|l| l["type"] == "err")
        .collect();
    assert_eq!(errors[0]["contents"], "Disk quota exceeded\n");
    // Only the next session fails.
    let ok = start_pkgacct(&h, "carol").await;
    assert_eq!(state(&h, &ok).await, "COMPLETED");

    for function in ["get_pkgacct_session_state", "fetch_pkgacct_master_log"] {
        let body = h.get(function, &[("session_id", "carol2099zz")]).await;
        assert_eq!(reason(&body), "The session “carol2099zz” does not exist.");
    }
}

#[tokio::test]
async fn cpmove_restores_put_the_archived_account_back() {
    let h = start().await;
    h.sim
        .add_account(Account::new("dave", "dave.example").with_plan("basic"))
        .unwrap();
    let id = start_pkgacct(&h, "dave").await;
    assert_eq!(state(&h, &id).await, "COMPLETED");
    h.get("changepackage", &[("user", "dave"), ("pkg", "pro")])
        .await;
    assert_eq!(h.sim.account("dave").unwrap().plan, "pro");
    let uid = h.sim.account("dave").unwrap().uid;

    // Over an existing account only with overwrite=1.
    let path = "/home/cpmove-dave.tar.gz";
    let refused = h
        .get("start_local_cpmove_restore", &[("cpmovepath", path)])
        .await;
    assert_eq!(reason(&refused), "An account named “dave” already exists.");
    let nothing = h
        .get(
            "start_local_cpmove_restore",
            &[("cpmovepath", "/home/cpmove-x.tar.gz")],
        )
        .await;
    assert_eq!(
        reason(&nothing),
        "The file “/home/cpmove-x.tar.gz” does not exist."
    );

    h.sim.set_backup_polls(1);
    let body = h
        .get(
            "start_local_cpmove_restore",
            &[("cpmovepath", path), ("overwrite", "1")],
        )
        .await;
    assert_spec("start_local_cpmove_restore", &body);
    let transfer = body["data"]["transfer_session_id"].as_str().unwrap();
    assert_eq!(restore_state(&h, transfer).await, "RESTORE_INPROGRESS");
    assert_eq!(h.sim.account("dave").unwrap().plan, "pro", "not yet");
    assert_eq!(restore_state(&h, transfer).await, "COMPLETED");
    let dave = h.sim.account("dave").unwrap();
    assert_eq!((dave.plan.as_str(), dave.uid), ("basic", uid));
    assert_eq!(h.sim.restores()[0].state, "COMPLETED");

    // A removed account comes back; a failing restore changes nothing.
    h.sim.set_backup_polls(0);
    h.get("removeacct", &[("username", "dave")]).await;
    let body = h
        .get("start_local_cpmove_restore", &[("cpmovepath", path)])
        .await;
    let transfer = body["data"]["transfer_session_id"].as_str().unwrap();
    assert_eq!(restore_state(&h, transfer).await, "COMPLETED");
    assert_eq!(h.sim.account("dave").unwrap().domain, "dave.example");

    h.get("changepackage", &[("user", "dave"), ("pkg", "pro")])
        .await;
    h.sim
        .fail_next_restore("Restore failed: the archive is damaged");
    let body = h
        .get(
            "start_local_cpmove_restore",
            &[("cpmovepath", path), ("overwrite", "1")],
        )
        .await;
    let transfer = body["data"]["transfer_session_id"].as_str().unwrap();
    assert_eq!(restore_state(&h, transfer).await, "FAILED");
    assert_eq!(h.sim.account("dave").unwrap().plan, "pro");
    assert!(h.sim.request_log().iter().all(|r| r.well_formed()));
}
