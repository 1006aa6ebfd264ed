use std::time::{Duration, Instant};

use crate::common::{client_for, reason, result, start};
use panel1_sims::{Fault, FaultRule};

fn create_query() -> Vec<(&'static str, &'static str)> {
    vec![
        ("api.version", "1"),
        ("username", "stally"),
        ("domain", "stally.example"),
    ]
}

#[tokio::test]
async fn slow_answers_late_and_never_blocks_other_connections() {
    let h = start().await;
    h.sim.inject(FaultRule::next(
        "listaccts",
        Fault::Slow(Duration::from_millis(1500)),
        1,
    ));
    let slow = {
        let (http, url, auth) = (h.http.clone(), h.url("listaccts"), h.sim.auth_header());
        tokio::spawn(async move {
            let t = Instant::now();
            let resp = http
                .get(url)
                .header("Authorization", auth)
                .query(&[("api.version", "1")])
                .send()
                .await
                .unwrap();
            (t.elapsed(), resp.json::<serde_json::Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Meanwhile another client is answered at once.
    let other = client_for(&h.sim, None);
    let t = Instant::now();
    let v = other
        .get(format!("{}?api.version=1", h.url("version")))
        .header("Authorization", h.sim.auth_header())
        .send()
        .await
        .unwrap();
    assert_eq!(v.status(), 200);
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );

    let (elapsed, body) = slow.await.unwrap();
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(result(&body), 1);
    assert!(h.sim.faults().is_empty(), "used up");
    let slow_entry = h
        .sim
        .request_log()
        .into_iter()
        .find(|r| r.function == "listaccts")
        .unwrap();
    assert_eq!(slow_entry.fault.as_deref(), Some("Slow(1.5s)"));
}

#[tokio::test]
async fn stall_after_apply_creates_the_account_while_the_client_times_out() {
    let h = start().await;
    h.sim.inject(FaultRule::next(
        "createacct",
        Fault::StallAfterApply(Duration::from_secs(30)),
        1,
    ));
    let impatient = client_for(&h.sim, Some(Duration::from_secs(3)));
    let (url, auth) = (h.url("createacct"), h.sim.auth_header());
    let pending = tokio::spawn(async move {
        impatient
            .get(url)
            .header("Authorization", auth)
            .query(&create_query())
            .send()
            .await
    });

    // The account appears while the answer is still held back.
    let deadline = Instant::now() + Duration::from_millis(2500);
    while h.sim.account("stally").is_none() {
        assert!(Instant::now() < deadline, "account never appeared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!pending.is_finished(), "the answer is being held");

    let err = pending.await.unwrap().expect_err("the client gives up");
    assert!(err.is_timeout(), "{err}");
    assert!(h.sim.account("stally").is_some());
    let entry = h.sim.request_log().pop().unwrap();
    assert_eq!((entry.status, entry.result), (200, Some(1)));

    // The retry learns the account is already there.
    let retry = h
        .get(
            "createacct",
            &[("username", "stally"), ("domain", "stally.example")],
        )
        .await;
    assert_eq!(reason(&retry), "An account named “stally” already exists.");
}

#[tokio::test]
async fn server_error_is_html_and_applies_nothing() {
    let h = start().await;
    h.sim
        .inject(FaultRule::next("createacct", Fault::ServerError(503), 1));
    let resp = h
        .http
        .get(h.url("createacct"))
        .header("Authorization", h.sim.auth_header())
        .query(&create_query())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(h.sim.account("stally").is_none());
    // Used up: the next call goes through.
    let ok = h
        .get(
            "createacct",
            &[("username", "stally"), ("domain", "stally.example")],
        )
        .await;
    assert_eq!(result(&ok), 1);
}

#[tokio::test]
async fn reset_connection_gives_a_connection_error_and_applies_nothing() {
    let h = start().await;
    h.sim
        .inject(FaultRule::next("createacct", Fault::ResetConnection, 1));
    let err = h
        .http
        .get(h.url("createacct"))
        .header("Authorization", h.sim.auth_header())
        .query(&create_query())
        .send()
        .await
        .expect_err("no answer");
    assert!(!err.is_timeout() && !err.is_status(), "{err:?}");
    assert!(h.sim.account("stally").is_none());
    let entry = h.sim.request_log().pop().unwrap();
    assert_eq!((entry.status, entry.result), (0, None));
    assert_eq!(entry.fault.as_deref(), Some("ResetConnection"));
    // Other calls still work (fresh connection).
    assert_eq!(result(&h.get("version", &[]).await), 1);
}

#[tokio::test]
async fn api0_answers_in_the_old_envelope() {
    let h = start().await;
    h.sim.inject(FaultRule {
        function: None,
        fault: Fault::WrongBody,
        times: Some(2),
    });
    let created = h
        .get(
            "createacct",
            &[("username", "stally"), ("domain", "stally.example")],
        )
        .await;
    assert_eq!(created["result"][0]["status"], 0, "{created}");
    assert!(created.get("metadata").is_none());
    assert!(h.sim.account("stally").is_none());
    let listed = h.get("listaccts", &[]).await;
    assert_eq!(listed["cpanelresult"]["apiversion"], "0");
    assert_eq!(listed["cpanelresult"]["data"]["result"], 0);
    // The request itself was fine: only the answer was API 0.
    assert!(h.sim.request_log().iter().all(|r| r.well_formed()));
    assert_eq!(result(&h.get("listaccts", &[]).await), 1);
}

#[tokio::test]
async fn login_page_fault_looks_like_an_expired_session() {
    let h = start().await;
    h.sim.inject(FaultRule::always(Fault::LoginPage));
    for function in ["createacct", "version"] {
        let resp = h
            .http
            .get(h.url(function))
            .header("Authorization", h.sim.auth_header())
            .query(&create_query())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(resp.text().await.unwrap().contains("<form"));
    }
    assert!(h.sim.account("stally").is_none());
    h.sim.clear_faults();
    assert_eq!(result(&h.get("version", &[]).await), 1);
}

#[tokio::test]
async fn faults_scoped_to_a_function_leave_others_alone() {
    let h = start().await;
    h.sim.inject(FaultRule {
        function: Some("createacct".into()),
        fault: Fault::ServerError(500),
        times: None,
    });
    assert_eq!(result(&h.get("version", &[]).await), 1);
    for _ in 0..3 {
        let resp = h
            .http
            .get(h.url("createacct"))
            .header("Authorization", h.sim.auth_header())
            .query(&create_query())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 500);
    }
    assert_eq!(h.sim.faults().len(), 1, "until cleared");
    h.sim.clear_faults();
    let ok = h
        .get(
            "createacct",
            &[("username", "stally"), ("domain", "stally.example")],
        )
        .await;
    assert_eq!(result(&ok), 1);
    assert_eq!(h.sim.count_calls("createacct"), 4);
}
