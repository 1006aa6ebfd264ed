//! The real cpanel adapter in the real sandbox against a misbehaving WHM
//! simulator: a createacct that took effect but timed out is found (not
//! created twice) on the next attempt, existing accounts that differ are
//! conflicts, and every injected fault (and a wrong token) becomes the error
//! kind the worker's retry logic expects. The harness checks secrecy on
//! every call.

use std::time::Duration;

use crate::cpanel::*;
use panel1_sandbox::Operation;
use panel1_sims::{Account, AuthOutcome, Fault, FaultRule};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_createacct_is_found_on_the_next_attempt_not_repeated() {
    let mut h = Whm::start().await;
    h.set_request_timeout_ms(1500);
    h.forbid("Retry-Pw-1!");
    h.sim.inject(FaultRule::next(
        "createacct",
        Fault::StallAfterApply(Duration::from_secs(8)),
        1,
    ));
    let mut input = new_service("erin", "erin.example.com", Some("basic"));
    input["service"]["params"] = json!({ "password": "Retry-Pw-1!" });

    let r = h.call_attempt(Operation::Provision, input.clone(), 1).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "transient", "{msg}");
    assert!(msg.contains("createacct"), "{msg}");
    assert!(
        r.metrics.wall_us < 6_000_000,
        "the request timeout (1.5 s) ended the wait, not the 8 s stall: {} µs",
        r.metrics.wall_us
    );
    // WHM made the account although the client never heard.
    let e = h.account("erin");
    assert_eq!(
        (e.plan.as_str(), e.domain.as_str()),
        ("basic", "erin.example.com")
    );
    assert_eq!(h.sim.count_calls("createacct"), 1);

    // The retry looks first and adopts it.
    let r = h.call_attempt(Operation::Provision, input, 2).await;
    let res = ok(&r);
    assert_eq!(res["remote_id"], "erin");
    assert_eq!(res["state"], "active");
    assert_eq!(res["plan"], "basic");
    assert_eq!(whm_calls(&r), ["accountsummary"]);
    assert!(r
        .log
        .iter()
        .any(|l| l.message.contains("not created again")));
    assert_eq!(h.sim.count_calls("createacct"), 1, "created exactly once");
    assert_eq!(h.sim.accounts().len(), 1);
    assert!(h.account("erin").password_matches("Retry-Pw-1!"));
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_account_that_differs_is_a_conflict() {
    let h = Whm::start().await;
    h.sim
        .add_account(Account::new("frank", "frank.example.com").with_plan("basic"))
        .unwrap();
    h.sim
        .add_account(Account::new("grace", "grace.example.com").with_owner("reseller1"))
        .unwrap();

    let r = h
        .call(
            Operation::Provision,
            new_service("frank", "frank.example.com", Some("pro")),
        )
        .await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "conflict", "{msg}");
    assert!(msg.contains("plan is `basic`, not pro"), "{msg}");

    let r = h
        .call(
            Operation::Provision,
            new_service("frank", "other.example.com", Some("basic")),
        )
        .await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "conflict", "{msg}");
    assert!(msg.contains("domain is `frank.example.com`"), "{msg}");

    let r = h
        .call(
            Operation::Provision,
            new_service("grace", "grace.example.com", None),
        )
        .await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "conflict", "{msg}");
    assert!(msg.contains("owner is `reseller1`, not root"), "{msg}");

    // Same domain and plan, ours: adopted without creating.
    let r = h
        .call(
            Operation::Provision,
            new_service("frank", "FRANK.example.com", Some("basic")),
        )
        .await;
    assert_eq!(ok(&r)["remote_id"], "frank");

    assert_eq!(h.sim.count_calls("createacct"), 0);
    assert_eq!(h.account("frank").plan, "basic", "untouched");
    assert_eq!(h.sim.accounts().len(), 2);
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_become_the_right_error_kinds() {
    let mut h = Whm::start().await;
    h.set_request_timeout_ms(1500);
    let cases: [(Fault, Option<&str>, &str); 6] = [
        (Fault::ServerError(503), Some("transient"), "HTTP 503"),
        (Fault::ServerError(500), Some("transient"), "HTTP 500"),
        (Fault::ResetConnection, Some("transient"), "network error"),
        (Fault::LoginPage, Some("auth-failed"), "login page"),
        (Fault::WrongBody, Some("permanent"), "API 0"),
        (Fault::Slow(Duration::from_millis(400)), None, ""),
    ];
    for (fault, want, fragment) in cases {
        let label = format!("{fault:?}");
        h.sim.inject(FaultRule::next("version", fault, 1));
        let r = h.call(Operation::TestConnection, json!({})).await;
        match want {
            Some(want) => {
                let (kind, msg) = error(&r);
                assert_eq!(kind, want, "{label}: {msg}");
                assert!(msg.contains(fragment), "{label}: {msg}");
            }
            None => assert_eq!(ok(&r)["server_version"], "WHM 11.126.0.5", "{label}"),
        }
        assert!(h.sim.faults().is_empty(), "{label} was used");
        let last = h.sim.request_log().pop().unwrap();
        assert_eq!(last.fault.as_deref(), Some(label.as_str()));
    }

    // Slower than the request timeout: transient, not a hang.
    h.sim.inject(FaultRule::next(
        "version",
        Fault::Slow(Duration::from_secs(5)),
        1,
    ));
    let r = h.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "transient", "{msg}");
    assert!(r.metrics.wall_us < 4_500_000, "{} µs", r.metrics.wall_us);

    // A fault in the middle of an operation changes nothing and is retried.
    h.sim
        .add_account(Account::new("heidi", "heidi.example.com"))
        .unwrap();
    h.sim
        .inject(FaultRule::next("suspendacct", Fault::ServerError(503), 1));
    let r = h.call(Operation::Suspend, service("heidi")).await;
    assert_eq!(error(&r).0, "transient");
    assert!(!h.account("heidi").suspended);
    let r = h.call(Operation::Suspend, service("heidi")).await;
    assert_eq!(ok(&r)["state"], "suspended");
    assert!(h.account("heidi").suspended);

    // createacct refused by a 503: nothing created, and a retry creates it.
    h.sim
        .inject(FaultRule::next("createacct", Fault::ServerError(503), 1));
    let input = new_service("ivan", "ivan.example.com", None);
    let r = h.call(Operation::Provision, input.clone()).await;
    assert_eq!(error(&r).0, "transient");
    assert!(h.sim.account("ivan").is_none());
    let r = h.call_attempt(Operation::Provision, input, 2).await;
    assert_eq!(ok(&r)["remote_id"], "ivan");
    assert_eq!(h.sim.count_calls("createacct"), 2);

    // Faults change the answers, never what the adapter sent.
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_auth_failed_and_never_shown() {
    let mut h = Whm::start().await;
    let wrong = "NOTTHETOKEN5H6J7K8L9";
    h.bind_token(wrong);

    let r = h.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "auth-failed", "{msg}");
    assert!(
        msg.contains("whm-token"),
        "the message names the secret: {msg}"
    );

    let r = h
        .call(
            Operation::Provision,
            new_service("judy", "judy.example.com", None),
        )
        .await;
    assert_eq!(error(&r).0, "auth-failed");
    assert!(h.sim.accounts().is_empty());

    let log = h.sim.request_log();
    assert_eq!(log.len(), 2, "test-connection, then provision's lookup");
    assert_eq!(wrong_auth(&log), 2);
    for l in &log {
        // Wrong only in the token: otherwise a proper API 1 request.
        assert!(l.api_version_1 && l.problems.is_empty(), "{l:#?}");
        assert_eq!(l.status, 401);
    }

    // The right token again: the same server works.
    h.bind_token(TOKEN);
    let r = h.call(Operation::TestConnection, json!({})).await;
    ok(&r);
    assert_eq!(h.sim.request_log().last().unwrap().auth, AuthOutcome::Ok);
}
