//! Nothing runs after a terminate: once a terminate is queued (or done) a
//! service accepts no other operation, even while an earlier operation's
//! completion shows it `active` again, and an operator retry cannot revive
//! an operation behind it. Checked in both orders, in sequence and at once,
//! against what the provider saw.

use crate::common::{setup, Api, Setup};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn create(api: &Api, s: &Setup, user: &str) -> String {
    let r = api
        .post(
            &s.key,
            "/v1/services",
            json!({"server_id": s.server, "username": user, "domain": format!("{user}.test")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    r.body["service"]["id"].as_str().unwrap().to_string()
}

async fn service(api: &Api, s: &Setup, id: &str) -> Value {
    api.get(&s.key, &format!("/v1/services/{id}")).await.body
}

/// The provider's changes to one account, in arrival order (`create`,
/// `suspend`, `delete`, ...; reads left out).
fn timeline(s: &Setup, user: &str) -> Vec<String> {
    let calls = s
        .panel
        .with(|st| st.timeline.get(user).cloned().unwrap_or_default());
    calls
        .iter()
        .filter(|c| !c.starts_with("GET"))
        .map(|c| match c.split_once(' ') {
            Some(("POST", "")) => "create".to_string(),
            Some(("DELETE", _)) => "delete".to_string(),
            Some((_, path)) => path.rsplit('/').next().unwrap_or(path).to_string(),
            None => c.clone(),
        })
        .collect()
}

/// Terminated, no failure written on it, and the provider saw nothing
/// after the account was deleted.
async fn assert_clean_end(api: &Api, s: &Setup, id: &str, user: &str) {
    let v = api
        .wait_for(&s.key, &format!("/v1/services/{id}"), |v| {
            v["state"] == "terminated"
        })
        .await;
    assert!(v["failure_reason"].is_null(), "{user}: {v}");
    let calls = timeline(s, user);
    assert_eq!(
        calls.last().map(String::as_str),
        Some("delete"),
        "{user}: {calls:?}"
    );
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE service_id = $1::uuid AND state = 'failed'",
    )
    .bind(id)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(failed, 0, "{user}: a failed task");
}

/// The window of the issue: provision still running when the terminate is
/// queued; its completion shows the service `active` while the terminate
/// waits. Suspends sent all along are refused, and never reach the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_accepted_after_a_terminate_even_while_the_state_shows_active() {
    let api = Api::start().await;
    let s = setup(&api, "late-co", None).await;
    s.panel.with(|st| st.op_delay_ms = 700);
    let id = create(&api, &s, "lena").await;
    let r = api
        .post(&s.key, &format!("/v1/services/{id}/terminate"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let terminate_task = r.body["task"]["id"].as_str().unwrap().to_string();
    let mut saw_active = false;
    let start = Instant::now();
    loop {
        let r = api
            .post(
                &s.key,
                &format!("/v1/services/{id}/suspend"),
                json!({"reason": "late"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        let v = service(&api, &s, &id).await;
        if v["state"] == "active" {
            saw_active = true;
            assert!(
                r.body["detail"].as_str().unwrap().contains(&terminate_task),
                "names the terminate: {:?}",
                r.body
            );
        }
        if v["state"] == "terminated" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_active, "the provision's completion showed it active");
    // Terminated: refused as well.
    let r = api
        .post(&s.key, &format!("/v1/services/{id}/unsuspend"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_clean_end(&api, &s, &id, "lena").await;
    assert_eq!(timeline(&s, "lena"), ["create", "delete"]);
    api.shutdown().await;
}

/// Suspend then terminate: both run, in that order. Terminate then
/// suspend: the suspend is refused. Then both at once on eight services:
/// whichever wins, the end is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_terminate_in_both_orders_and_at_once() {
    let api = Api::start().await;
    let s = setup(&api, "order-co", None).await;
    let users: Vec<String> = (0..10).map(|i| format!("user{i}")).collect();
    let mut ids = Vec::new();
    for u in &users {
        ids.push(create(&api, &s, u).await);
    }
    for id in &ids {
        api.wait_for(&s.key, &format!("/v1/services/{id}"), |v| {
            v["state"] == "active"
        })
        .await;
    }
    let suspend = |id: String| {
        let api = &api;
        let key = s.key.clone();
        async move {
            api.post(
                &key,
                &format!("/v1/services/{id}/suspend"),
                json!({"reason": "x"}),
            )
            .await
        }
    };
    let terminate = |id: String| {
        let api = &api;
        let key = s.key.clone();
        async move {
            api.post(&key, &format!("/v1/services/{id}/terminate"), json!({}))
                .await
        }
    };

    // In sequence, both orders.
    let r = suspend(ids[0].clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(terminate(ids[0].clone()).await.status, StatusCode::ACCEPTED);
    assert_clean_end(&api, &s, &ids[0], &users[0]).await;
    assert_eq!(timeline(&s, &users[0]), ["create", "suspend", "delete"]);
    assert_eq!(terminate(ids[1].clone()).await.status, StatusCode::ACCEPTED);
    let r = suspend(ids[1].clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_clean_end(&api, &s, &ids[1], &users[1]).await;
    assert_eq!(timeline(&s, &users[1]), ["create", "delete"]);

    // At once, half of them launched suspend-first, half terminate-first.
    let races = ids[2..].iter().enumerate().map(|(i, id)| {
        let (sus, term) = (suspend(id.clone()), terminate(id.clone()));
        async move {
            if i % 2 == 0 {
                let (a, b) = tokio::join!(sus, term);
                (a, b)
            } else {
                let (b, a) = tokio::join!(term, sus);
                (a, b)
            }
        }
    });
    let results = futures::future::join_all(races).await;
    let mut accepted = 0;
    for ((sus, term), (id, user)) in results.iter().zip(ids[2..].iter().zip(&users[2..])) {
        assert_eq!(term.status, StatusCode::ACCEPTED, "{:?}", term.body);
        assert_clean_end(&api, &s, id, user).await;
        let calls = timeline(&s, user);
        match sus.status {
            StatusCode::ACCEPTED => {
                accepted += 1;
                assert_eq!(calls, ["create", "suspend", "delete"]);
            }
            StatusCode::CONFLICT => assert_eq!(calls, ["create", "delete"]),
            other => panic!("{other}: {:?}", sus.body),
        }
    }
    eprintln!("{accepted} of 8 concurrent suspends were ordered before their terminate");
    api.shutdown().await;
}

/// An operator retry cannot revive an operation behind a terminate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_operation_is_not_retried_after_a_terminate() {
    let api = Api::start().await;
    let s = setup(&api, "retry-co", None).await;
    let id = create(&api, &s, "rita").await;
    api.wait_for(&s.key, &format!("/v1/services/{id}"), |v| {
        v["state"] == "active"
    })
    .await;
    // The account vanished on the provider: the suspend fails for good.
    s.panel.with(|st| st.accounts.remove("rita"));
    let r = api
        .post(
            &s.key,
            &format!("/v1/services/{id}/suspend"),
            json!({"reason": "x"}),
        )
        .await;
    let task = r.body["task"]["id"].as_str().unwrap().to_string();
    api.wait_for(&s.key, &format!("/v1/tasks/{task}"), |v| {
        v["state"] == "failed"
    })
    .await;
    let r = api
        .post(&s.key, &format!("/v1/services/{id}/terminate"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = api
        .post(&s.key, &format!("/v1/tasks/{task}/retry"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("being terminated"));
    let t = api.get(&s.key, &format!("/v1/tasks/{task}")).await.body;
    assert_eq!(t["state"], "failed", "not revived");
    api.shutdown().await;
}
