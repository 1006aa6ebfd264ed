//! The orchestrator with the real cPanel adapter: a real Postgres (a fresh
//! database per test), real workers, the real `cpanel.wasm` in the real
//! sandbox, and the WHM simulator over HTTPS on loopback (its self-signed
//! certificate pinned on the egress rule, the token stored encrypted and
//! bound to `127.0.0.1:PORT` as the `whm-token` secret).
//!
//! What is checked: a createacct that took effect but timed out is retried
//! and found, not made twice; each injected fault ends in the error kind the
//! retry policy expects and is (or is not) retried accordingly; and neither
//! the token nor a generated password ends up anywhere in the database or
//! the worker's logs.

use crate::common::stop;
use crate::whm::{existing, kinds, provision, Setup, Whm, GENERATED_LEN};
use panel1_sims::{Account, AuthOutcome, Fault, FaultRule};
use serde_json::json;
use std::time::Duration;
// ---------------------------------------------------------------- tests

/// createacct takes effect on WHM but the answer never comes within the
/// request timeout: the attempt is `transient`, the task is retried, and the
/// retry finds the account instead of creating it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_createacct_is_retried_and_makes_exactly_one_account() {
    let h = Whm::start(Setup::default()).await;
    h.sim.inject(FaultRule::next(
        "createacct",
        Fault::StallAfterApply(Duration::from_secs(10)),
        1,
    ));
    let (svc, task, attempts) = h.provision_once("erin", "succeeded").await;
    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("transient")), ("succeeded", None)]),
        "{attempts:#?}"
    );
    let first = &attempts[0];
    assert!(
        first.error_message.contains("createacct"),
        "{}",
        first.error_message
    );
    assert!(
        first.wall_us < 6_000_000,
        "the 1.5 s request timeout ended the first attempt, not the 10 s stall: {} µs",
        first.wall_us
    );
    assert_eq!(first.functions(), ["accountsummary", "createacct"]);
    // The password went in the POST body, not the URL.
    let create = first.exchange("createacct");
    assert_eq!(create["method"], "POST");
    // The retry looked and adopted the account.
    assert_eq!(attempts[1].functions(), ["accountsummary"]);

    let (attempt, _, last_error) = h.task_row(task).await;
    assert_eq!(attempt, 2);
    assert_eq!(last_error, None, "a success clears the error");
    assert_eq!(
        h.event_kinds(task).await,
        [
            "task.created",
            "task.retrying",
            "service.updated",
            "task.succeeded"
        ]
    );
    let (state, remote, reason) = h.service_row(svc).await;
    assert_eq!(state, "active");
    assert_eq!(remote.as_deref(), Some("erin"));
    assert_eq!(reason, None);

    assert_eq!(h.sim.count_calls("createacct"), 1, "created exactly once");
    let accounts = h.sim.accounts();
    assert_eq!(accounts.len(), 1);
    assert_eq!(
        (
            accounts[0].user.as_str(),
            accounts[0].domain.as_str(),
            accounts[0].plan.as_str()
        ),
        ("erin", "erin.example.com", "basic")
    );
    assert!(h.sim.request_log().iter().all(|r| r.well_formed()));
    h.assert_nothing_leaked().await;
}

/// A 503 from WHM is transient: retried, and the retry creates the account
/// (the refused createacct changed nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_then_succeeds() {
    let h = Whm::start(Setup::default()).await;
    h.sim
        .inject(FaultRule::next("createacct", Fault::ServerError(503), 1));
    let (svc, task, attempts) = h.provision_once("frank", "succeeded").await;
    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("transient")), ("succeeded", None)]),
        "{attempts:#?}"
    );
    assert!(
        attempts[0].error_message.contains("503"),
        "{}",
        attempts[0].error_message
    );
    assert_eq!(attempts[0].exchange("createacct")["status"], 503);
    assert_eq!(
        attempts[1].functions(),
        ["accountsummary", "createacct"],
        "nothing was made the first time, so the retry creates"
    );
    assert_eq!(h.sim.count_calls("createacct"), 2);
    assert_eq!(h.sim.accounts().len(), 1);
    h.assert_active(svc, "frank").await;
    h.assert_nothing_leaked().await;
}

/// WHM closes the connection without answering: transient, retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_is_retried_then_succeeds() {
    let h = Whm::start(Setup::default()).await;
    h.sim
        .inject(FaultRule::next("createacct", Fault::ResetConnection, 1));
    let (svc, task, attempts) = h.provision_once("grace", "succeeded").await;
    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("transient")), ("succeeded", None)]),
        "{attempts:#?}"
    );
    assert!(
        attempts[0].error_message.contains("createacct"),
        "{}",
        attempts[0].error_message
    );
    assert_eq!(h.sim.count_calls("createacct"), 2);
    assert_eq!(h.sim.accounts().len(), 1);
    assert!(h.sim.faults().is_empty(), "the reset was used");
    h.assert_active(svc, "grace").await;
    h.assert_nothing_leaked().await;
}

/// WHM answers with its login page: `auth-failed`, failed after one attempt
/// (a retry cannot fix a refused token), the service shows why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_page_fails_at_once_as_auth_failed() {
    let h = Whm::start(Setup::default()).await;
    h.sim
        .inject(FaultRule::next("accountsummary", Fault::LoginPage, 1));
    let (svc, task, _) = h.provision_once("heidi", "failed").await;

    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("auth-failed"))])
    );
    let (attempt, max_attempts, last_error) = h.task_row(task).await;
    assert_eq!(attempt, 1);
    assert!(max_attempts > 1, "failed by policy, not by running out");
    let last_error = last_error.expect("the error is kept");
    assert_eq!(last_error["kind"], "auth-failed");
    assert!(
        last_error["message"]
            .as_str()
            .unwrap()
            .contains("login page"),
        "{last_error}"
    );
    assert_eq!(
        h.event_kinds(task).await,
        ["task.created", "service.updated", "task.failed"]
    );
    let (state, remote, reason) = h.service_row(svc).await;
    assert_eq!(state, "failed");
    assert_eq!(remote, None);
    let reason = reason.expect("a failure reason");
    assert!(
        reason.starts_with("provision failed:") && reason.contains("login page"),
        "{reason}"
    );
    assert_eq!(h.sim.count_calls("accountsummary"), 1, "not retried");
    assert_eq!(h.sim.count_calls("createacct"), 0);
    assert!(h.sim.accounts().is_empty());
    h.assert_nothing_leaked().await;
}

/// The `whm-token` secret holds a wrong token: WHM refuses it (401 with its
/// login page); `auth-failed` at once; neither token is stored anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_fails_at_once_as_auth_failed() {
    let h = Whm::start(Setup {
        token: Some("WRONGTOKEN4F7A2C9E1B8D3".into()),
        ..Setup::default()
    })
    .await;
    let (svc, task, attempts) = h.provision_once("ivan", "failed").await;
    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("auth-failed"))])
    );
    assert_eq!(attempts[0].exchange("accountsummary")["status"], 401);
    let (attempt, _, _) = h.task_row(task).await;
    assert_eq!(attempt, 1);
    let (state, _, reason) = h.service_row(svc).await;
    assert_eq!(state, "failed");
    let reason = reason.unwrap();
    assert!(reason.contains("whm-token"), "names the secret: {reason}");
    let log = h.sim.request_log();
    assert_eq!(log.len(), 1, "one request, not retried: {log:#?}");
    assert_eq!(log[0].auth, AuthOutcome::Wrong, "the wrong token was sent");
    assert!(h.sim.accounts().is_empty());
    h.assert_nothing_leaked().await;
}

/// WHM answers in API 0's format: `permanent`, failed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api0_answer_fails_at_once_as_permanent() {
    let h = Whm::start(Setup::default()).await;
    h.sim
        .inject(FaultRule::next("createacct", Fault::WrongBody, 1));
    let (svc, task, attempts) = h.provision_once("judy", "failed").await;
    assert_eq!(
        h.attempt_kinds(task).await,
        kinds(&[("adapter-error", Some("permanent"))])
    );
    assert!(
        attempts[0].error_message.contains("API 0"),
        "{}",
        attempts[0].error_message
    );
    let (attempt, max_attempts, _) = h.task_row(task).await;
    assert_eq!((attempt, max_attempts), (1, 5));
    let (state, _, reason) = h.service_row(svc).await;
    assert_eq!(state, "failed");
    assert!(reason.unwrap().contains("API 0"));
    assert_eq!(h.sim.count_calls("createacct"), 1, "not retried");
    assert!(h.sim.accounts().is_empty());
    h.assert_nothing_leaked().await;
}

/// The other kinds the policy must not retry: `invalid-input` (a reserved
/// username, refused before any call), `conflict` (the account exists with
/// another plan), `not-found` (suspending an account WHM does not have).
/// And a transient error on a later operation is retried like on provision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_conflict_and_not_found_are_not_retried() {
    let h = Whm::start(Setup::default()).await;
    h.sim
        .add_account(Account::new("karl", "karl.example.com").with_plan("pro"))
        .unwrap();
    h.sim
        .add_account(Account::new("lena", "lena.example.com").with_plan("basic"))
        .unwrap();

    let root = h.service("root").await;
    let karl = h.service("karl").await;
    let nobody = h.service("nemo").await;
    let lena = h.service("lena").await;
    let t_invalid = h.enqueue(root, "provision", provision("root")).await;
    let t_conflict = h.enqueue(karl, "provision", provision("karl")).await;
    let t_missing = h
        .enqueue(
            nobody,
            "suspend",
            json!({ "service": { "service_id": "svc-nemo", "remote_id": "nemo" }, "reason": "unpaid" }),
        )
        .await;

    let workers = h.workers(1);
    for (task, want, kind) in [
        (t_invalid, "failed", "invalid-input"),
        (t_conflict, "failed", "conflict"),
        (t_missing, "failed", "not-found"),
    ] {
        assert_eq!(h.finished(task).await, want, "{kind}");
        assert_eq!(
            h.attempt_kinds(task).await,
            kinds(&[("adapter-error", Some(kind))]),
            "{kind}: one attempt, not retried"
        );
    }
    // Only now (so that nemo's suspend cannot meet it): a 502 on the next
    // suspendacct.
    h.sim
        .inject(FaultRule::next("suspendacct", Fault::ServerError(502), 1));
    let mut suspend = existing("lena");
    suspend["reason"] = json!("unpaid");
    let t_suspend = h.enqueue(lena, "suspend", suspend).await;
    assert_eq!(h.finished(t_suspend).await, "succeeded");
    stop(workers).await;
    assert_eq!(
        h.attempt_kinds(t_suspend).await,
        kinds(&[("adapter-error", Some("transient")), ("succeeded", None)])
    );
    assert_eq!(h.sim.count_calls("suspendacct"), 3, "nemo once, lena twice");
    assert!(h.sim.account("lena").unwrap().suspended);

    let (state, _, reason) = h.service_row(root).await;
    assert_eq!(state, "failed");
    assert!(reason.unwrap().contains("root"));
    let (state, _, reason) = h.service_row(karl).await;
    assert_eq!(state, "failed");
    assert!(reason.unwrap().contains("plan"));
    assert_eq!(h.sim.count_calls("createacct"), 0);
    assert_eq!(h.sim.account("karl").unwrap().plan, "pro", "untouched");
    h.assert_nothing_leaked().await;
}

/// A whole lifecycle with faults along the way, then the secrecy checks:
/// the token is in no table (attempt logs, http records, errors, task
/// input/result/last_error, events, services ...), in no log line the
/// worker wrote, and the generated password is in no URL and nowhere
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_and_the_generated_password_never_leak() {
    let h = Whm::start(Setup::default()).await;
    h.sim.inject(FaultRule::next(
        "createacct",
        Fault::StallAfterApply(Duration::from_secs(10)),
        1,
    ));
    h.sim
        .inject(FaultRule::next("unsuspendacct", Fault::ResetConnection, 1));
    h.sim
        .inject(FaultRule::next("removeacct", Fault::ServerError(503), 1));
    let svc = h.service("mallory").await;
    let workers = h.workers(2);
    let mut tasks = vec![h.enqueue(svc, "provision", provision("mallory")).await];
    for (op, input) in [
        ("suspend", {
            let mut i = existing("mallory");
            i["reason"] = json!("unpaid");
            i
        }),
        ("unsuspend", existing("mallory")),
        ("status", existing("mallory")),
        ("usage", existing("mallory")),
        ("login-url", existing("mallory")),
        ("test-connection", json!({})),
    ] {
        tasks.push(h.enqueue(svc, op, input).await);
    }
    for &t in &tasks {
        assert_eq!(
            h.finished(t).await,
            "succeeded",
            "{:#?}",
            h.attempts(t).await
        );
    }
    // The account holds the generated password now: look for it (and the
    // token) everywhere.
    assert_eq!(h.sim.accounts().len(), 1);
    let create = h.attempts(tasks[0]).await[0].exchange("createacct");
    assert_eq!(create["method"], "POST");
    assert!(
        create["bytes_sent"].as_u64().unwrap() > 0,
        "createacct had a body (where the password goes): {create}"
    );
    h.assert_nothing_leaked().await;

    let t = h.enqueue(svc, "terminate", existing("mallory")).await;
    assert_eq!(h.finished(t).await, "succeeded");
    stop(workers).await;
    let retried: i64 =
        sqlx::query_scalar("SELECT count(*) FROM task_attempts WHERE error_kind = 'transient'")
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(retried, 3, "the three faults were met and retried");
    assert_eq!(h.sim.count_calls("createacct"), 1);
    assert!(h.sim.accounts().is_empty(), "terminated");
    assert_eq!(h.service_row(svc).await.0, "terminated");
    h.assert_nothing_leaked().await;

    // The checks do catch a leak: a known password on an account, then it
    // and the token planted in an event and a recorded URL.
    let planted = "Planted-Pw-2345678901234";
    assert_eq!(planted.len(), GENERATED_LEN);
    h.sim
        .add_account(Account::new("oscar", "oscar.example.com").with_password(planted))
        .unwrap();
    sqlx::query("INSERT INTO events (tenant_id, kind, payload) VALUES ($1, 'test.planted', $2)")
        .bind(h.tenant)
        .bind(json!({ "note": format!("x{}y", h.sim.token()) }))
        .execute(&h.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE task_attempts SET http = jsonb_build_array(jsonb_build_object('url', $1::text))
         WHERE task_id = $2 AND attempt = 1",
    )
    .bind(format!(
        "{}/json-api/passwd?api.version=1&user=oscar&password={}",
        h.sim.base_url(),
        planted.replace('-', "%2D")
    ))
    .bind(t)
    .execute(&h.pool)
    .await
    .unwrap();
    let found = h.leaks(&h.dump().await, "");
    assert!(
        found.iter().any(|f| f.contains("token is in events")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("a password parameter in a URL")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("password of `oscar` is in an attempt's http URL")),
        "{found:#?}"
    );
}
