//! The simulator's remote transfer sessions over HTTPS: a target simulator
//! pulls an account from a source simulator on loopback. The credential is
//! tried on the source when the session is created (a wrong one fails as
//! WHM does), the session moves through its states, the account arrives
//! with its domain, package and suspension, an unknown user fails the
//! session, an account is not enqueued twice while it is transferred, and a
//! session can be aborted. Every answer against the hand-written schemas.

use crate::common::{assert_spec, reason, result, start, Harness};
use panel1_sims::{Account, AuthOutcome, Package, REDACTED};
use std::time::Duration;

/// Source and target, the target able to reach the source as 127.0.0.1.
async fn pair() -> (Harness, Harness) {
    let source = start().await;
    let target = start().await;
    target.sim.add_remote("127.0.0.1", &source.sim.base_url());
    target.sim.set_transfer_step(Duration::from_millis(100));
    (source, target)
}

async fn create(target: &Harness, password: &str) -> serde_json::Value {
    let body = target
        .post(
            "create_remote_root_transfer_session",
            &[
                ("remote_server_type", "cpanel"),
                ("host", "127.0.0.1"),
                ("user", "root"),
                ("password", password),
                ("unrestricted_restore", "1"),
            ],
        )
        .await;
    assert_spec("create_remote_root_transfer_session", &body);
    body
}

async fn session(source: &Harness, target: &Harness) -> String {
    let body = create(target, source.sim.root_password()).await;
    assert_eq!(result(&body), 1, "{body}");
    body["data"]["transfer_session_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn enqueue(target: &Harness, id: &str, user: &str) -> serde_json::Value {
    let body = target
        .get(
            "enqueue_transfer_item",
            &[
                ("transfer_session_id", id),
                ("module", "AccountRemoteRoot"),
                ("user", user),
                ("localuser", user),
            ],
        )
        .await;
    assert_spec("enqueue_transfer_item", &body);
    body
}

async fn state(target: &Harness, id: &str) -> String {
    let body = target
        .get("get_transfer_session_state", &[("transfer_session_id", id)])
        .await;
    assert_eq!(result(&body), 1, "{body}");
    assert_spec("get_transfer_session_state", &body);
    body["data"]["state_name"].as_str().unwrap().to_string()
}

/// Poll until the session ends; the states seen on the way.
async fn follow(target: &Harness, id: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..100 {
        let s = state(target, id).await;
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if ["COMPLETED", "FAILED", "ABORTED"].contains(&s.as_str()) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("session {id} never ended: {seen:?}");
}

#[tokio::test]
async fn an_account_is_pulled_with_its_domain_package_and_suspension() {
    let (source, target) = pair().await;
    source
        .sim
        .add_package(Package::new("gold", Some(2048), Some(4096)));
    source
        .sim
        .add_account(
            Account::new("carol", "carol.example")
                .with_plan("gold")
                .with_contact_email("c@example.net")
                .suspended_for("unpaid"),
        )
        .unwrap();
    let id = session(&source, &target).await;
    assert_eq!(state(&target, &id).await, "PENDING");
    assert_eq!(result(&enqueue(&target, &id, "carol").await), 1);
    let body = target
        .get("start_transfer_session", &[("transfer_session_id", &id)])
        .await;
    assert_eq!(result(&body), 1, "{body}");
    assert_spec("start_transfer_session", &body);
    // A second session may not take the account while this one runs.
    let other = session(&source, &target).await;
    let refused = enqueue(&target, &other, "carol").await;
    assert_eq!(result(&refused), 0);
    assert!(
        reason(&refused).contains("already being transferred"),
        "{refused}"
    );

    let seen = follow(&target, &id).await;
    assert_eq!(
        seen.first().map(String::as_str),
        Some("TRANSFER_INPROGRESS")
    );
    assert!(seen.contains(&"RESTORE_INPROGRESS".to_string()), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("COMPLETED"));
    let carol = target.sim.account("carol").expect("pulled");
    assert_eq!(
        (
            carol.domain.as_str(),
            carol.plan.as_str(),
            carol.contact_email.as_str()
        ),
        ("carol.example", "gold", "c@example.net")
    );
    assert!(carol.suspended);
    assert_eq!(carol.suspend_reason.as_deref(), Some("unpaid"));
    assert_eq!(carol.disk_limit_mb, Some(2048));
    // The source still has it (a transfer copies); it was read with
    // root's password over Basic auth, which neither log shows.
    assert!(source.sim.account("carol").is_some());
    let reads: Vec<_> = source
        .sim
        .request_log()
        .into_iter()
        .filter(|r| r.function == "accountsummary")
        .collect();
    assert!(!reads.is_empty() && reads.iter().all(|r| r.auth == AuthOutcome::Ok));
    let created = target
        .sim
        .request_log()
        .into_iter()
        .find(|r| r.function == "create_remote_root_transfer_session")
        .unwrap();
    assert_eq!(created.params["password"], REDACTED);
    assert!(created.problems.is_empty(), "{:?}", created.problems);
}

#[tokio::test]
async fn a_wrong_password_an_unknown_user_and_an_abort_fail_as_whm_does() {
    let (source, target) = pair().await;
    // The login is tried on the source at once.
    let body = create(&target, "not-the-password").await;
    assert_eq!(result(&body), 0, "{body}");
    assert!(reason(&body).contains("authenticate"), "{body}");
    assert!(target.sim.transfer_sessions().is_empty());
    assert!(source
        .sim
        .request_log()
        .iter()
        .any(|r| r.auth == AuthOutcome::Wrong));
    // An unknown remote host.
    let body = target
        .post(
            "create_remote_root_transfer_session",
            &[("host", "whm.invalid"), ("user", "root"), ("password", "x")],
        )
        .await;
    assert_eq!(result(&body), 0, "{body}");

    // A user the source does not have: the session fails.
    let id = session(&source, &target).await;
    assert_eq!(result(&enqueue(&target, &id, "ghost").await), 1);
    target
        .get("start_transfer_session", &[("transfer_session_id", &id)])
        .await;
    assert_eq!(follow(&target, &id).await.last().unwrap(), "FAILED");
    let failed = &target.sim.transfer_sessions()[0];
    assert!(
        failed.error.as_deref().unwrap().contains("does not exist"),
        "{failed:?}"
    );
    assert!(target.sim.account("ghost").is_none());

    // Aborted before it ends: nothing arrives, and it stays aborted.
    source
        .sim
        .add_account(Account::new("dan", "dan.example"))
        .unwrap();
    target.sim.set_transfer_step(Duration::from_millis(400));
    let id = session(&source, &target).await;
    enqueue(&target, &id, "dan").await;
    target
        .get("start_transfer_session", &[("transfer_session_id", &id)])
        .await;
    let body = target
        .get("abort_transfer_session", &[("transfer_session_id", &id)])
        .await;
    assert_eq!(result(&body), 1, "{body}");
    assert_spec("abort_transfer_session", &body);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(state(&target, &id).await, "ABORTED");
    assert!(target.sim.account("dan").is_none());
    let again = target
        .get("abort_transfer_session", &[("transfer_session_id", &id)])
        .await;
    assert_eq!(result(&again), 0);
    // Unknown sessions.
    let body = target
        .get("start_transfer_session", &[("transfer_session_id", "nope")])
        .await;
    assert_eq!(result(&body), 0);
}
