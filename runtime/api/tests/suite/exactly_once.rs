//! `Idempotency-Key`, exactly once: the key, the request's fingerprint and
//! the answer commit in the transaction of the request's effect. A request
//! that rolled back left nothing (its retry runs, never a lasting 409);
//! duplicates in flight wait for the first and replay its answer; every POST
//! with an effect goes through the same mechanism.

use crate::common;
use crate::common::{setup, Api};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn count(api: &Api, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&api.pool).await.unwrap()
}

async fn keyed(api: &Api, key: &str, path: &str, body: Value, idem: &str) -> common::Reply {
    api.call(
        Method::POST,
        path,
        Some(key),
        Some(body),
        &[("idempotency-key", idem)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_create_one_service_and_all_get_its_answer() {
    let api = Api::start().await;
    let s = setup(&api, "dup-co", None).await;
    let body = json!({"server_id": s.server, "username": "dora"});
    let replies = futures::future::join_all(
        (0..16).map(|_| keyed(&api, &s.key, "/v1/services", body.clone(), "order-77")),
    )
    .await;
    let first_id = &replies[0].body["service"]["id"];
    for r in &replies {
        // Nobody is told to come back later: they waited and got the answer.
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
        assert_eq!(&r.body["service"]["id"], first_id);
    }
    let replayed = replies
        .iter()
        .filter(|r| r.headers.get("idempotent-replayed").is_some())
        .count();
    assert_eq!(replayed, 15, "one request ran, fifteen replayed its answer");
    assert_eq!(count(&api, "SELECT count(*) FROM services").await, 1);
    assert_eq!(count(&api, "SELECT count(*) FROM tasks").await, 1);
    api.shutdown().await;
}

/// A duplicate waits on the first request's transaction (here held open by
/// a table lock the test takes), then replays its answer; past the wait
/// limit it gets a 409 that clears as soon as the first commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_waits_for_the_first_then_replays_and_a_long_wait_is_a_short_409() {
    let api = Api::start().await;
    let s = setup(&api, "wait-co", None).await;
    let body = json!({"server_id": s.server, "username": "walt"});

    let mut blocker = api.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE services IN EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let first = tokio::spawn({
        let (api_base, key, body) = (api.base.clone(), s.key.clone(), body.clone());
        async move { post_raw(&api_base, &key, "/v1/services", &body, "k-wait").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = tokio::spawn({
        let (api_base, key, body) = (api.base.clone(), s.key.clone(), body.clone());
        async move { post_raw(&api_base, &key, "/v1/services", &body, "k-wait").await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!first.is_finished() && !second.is_finished());
    blocker.commit().await.unwrap();
    let (s1, h1, b1) = first.await.unwrap();
    let (s2, h2, b2) = second.await.unwrap();
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert!(h1.get("idempotent-replayed").is_none());
    assert_eq!(h2["idempotent-replayed"], "true");
    assert_eq!(b1["service"]["id"], b2["service"]["id"]);

    // Held past the wait limit (5 s): the duplicate is told to retry in 1 s.
    let body = json!({"server_id": s.server, "username": "wanda"});
    let mut blocker = api.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE services IN EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let first = tokio::spawn({
        let (api_base, key, body) = (api.base.clone(), s.key.clone(), body.clone());
        async move { post_raw(&api_base, &key, "/v1/services", &body, "k-long").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let busy = keyed(&api, &s.key, "/v1/services", body.clone(), "k-long").await;
    let waited = started.elapsed();
    assert_eq!(busy.status, StatusCode::CONFLICT, "{:?}", busy.body);
    assert_eq!(busy.problem(), "idempotency-in-progress");
    assert_eq!(busy.headers["retry-after"], "1");
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    blocker.commit().await.unwrap();
    let (s1, _, b1) = first.await.unwrap();
    assert_eq!(s1, StatusCode::ACCEPTED);
    // The moment the first committed, the 409 is gone.
    let again = keyed(&api, &s.key, "/v1/services", body, "k-long").await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["service"]["id"], b1["service"]["id"]);
    assert_eq!(count(&api, "SELECT count(*) FROM services").await, 2);
    api.shutdown().await;
}

async fn post_raw(
    base: &str,
    key: &str,
    path: &str,
    body: &Value,
    idem: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

/// The database refuses to store the answer (a trigger stands in for a
/// crash or a lost connection at the last statement): the service and task
/// written before it roll back with it, nothing holds the key (no 409), and
/// the retry runs, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_did_not_commit_left_nothing_and_its_retry_runs() {
    let api = Api::start().await;
    let s = setup(&api, "doomed-co", None).await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_answer() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'the disk is full'; END $$;
         CREATE TRIGGER refuse_answer BEFORE INSERT OR UPDATE ON api_idempotency
             FOR EACH ROW WHEN (NEW.key = 'order-9' AND NEW.status IS NOT NULL)
             EXECUTE FUNCTION refuse_answer();",
    )
    .execute(&api.pool)
    .await
    .unwrap();
    let body = json!({"server_id": s.server, "username": "ivan"});
    for _ in 0..3 {
        let r = keyed(&api, &s.key, "/v1/services", body.clone(), "order-9").await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{:?}", r.body);
    }
    assert_eq!(count(&api, "SELECT count(*) FROM services").await, 0);
    assert_eq!(count(&api, "SELECT count(*) FROM tasks").await, 0);
    assert_eq!(count(&api, "SELECT count(*) FROM api_idempotency").await, 0);
    sqlx::query("DROP TRIGGER refuse_answer ON api_idempotency")
        .execute(&api.pool)
        .await
        .unwrap();
    let r = keyed(&api, &s.key, "/v1/services", body.clone(), "order-9").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert!(r.headers.get("idempotent-replayed").is_none());
    let again = keyed(&api, &s.key, "/v1/services", body, "order-9").await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(count(&api, "SELECT count(*) FROM services").await, 1);
    api.shutdown().await;
}

/// An error answer wrote nothing, so it is not kept: the same key runs
/// again once the cause is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_are_not_stored_and_the_retry_runs() {
    let api = Api::start().await;
    let s = setup(&api, "err-co", None).await;
    let r = api
        .post(
            &s.key,
            "/v1/services",
            json!({"server_id": s.server, "username": "erin"}),
        )
        .await;
    let svc = r.body["service"]["id"].as_str().unwrap().to_string();
    let path = format!("/v1/services/{svc}/change-password");
    let body = json!({"password_secret": "erin-pw"});
    let r = keyed(&api, &s.key, &path, body.clone(), "pw-1").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(count(&api, "SELECT count(*) FROM api_idempotency").await, 0);
    let r = api
        .post(
            &s.key,
            "/v1/secrets",
            json!({"name": "erin-pw", "value": "s3cret-pw"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = keyed(&api, &s.key, &path, body, "pw-1").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert!(r.headers.get("idempotent-replayed").is_none());
    api.shutdown().await;
}

/// Every POST with an effect: the same keyed request twice is one effect
/// and one answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_effectful_post_runs_once_per_key() {
    let api = Api::start().await;
    let s = setup(&api, "every-co", None).await;
    let twice = |key: String, path: String, body: Value, idem: &'static str| {
        let api = &api;
        async move {
            let a = keyed(api, &key, &path, body.clone(), idem).await;
            assert!(a.status.is_success(), "{path}: {:?}", a.body);
            let b = keyed(api, &key, &path, body, idem).await;
            assert_eq!(b.status, a.status, "{path}");
            assert_eq!(b.headers["idempotent-replayed"], "true", "{path}");
            assert_eq!(a.body, b.body, "{path}");
            a.body
        }
    };
    let platform = api.platform_key.clone();
    let t = twice(
        platform.clone(),
        "/v1/tenants".into(),
        json!({"name": "once-co"}),
        "t-1",
    )
    .await;
    assert_eq!(
        count(&api, "SELECT count(*) FROM tenants WHERE name = 'once-co'").await,
        1
    );
    let tenant = t["tenant"]["id"].as_str().unwrap();
    twice(
        platform.clone(),
        format!("/v1/tenants/{tenant}/keys"),
        json!({"name": "billing", "scopes": ["write"]}),
        "k-1",
    )
    .await;
    twice(
        s.key.clone(),
        "/v1/keys".into(),
        json!({"name": "ops", "scopes": ["read"]}),
        "k-2",
    )
    .await;
    assert_eq!(
        count(
            &api,
            "SELECT count(*) FROM api_keys WHERE name IN ('billing', 'ops')"
        )
        .await,
        2
    );
    twice(
        s.key.clone(),
        "/v1/secrets".into(),
        json!({"name": "once", "value": "v"}),
        "s-1",
    )
    .await;
    let server = twice(
        s.key.clone(),
        "/v1/servers".into(),
        json!({"name": "panel-once", "adapter_version_id": s.version,
               "config": {"base_url": s.panel.base_url(), "owner": "r1"}}),
        "srv-1",
    )
    .await;
    let server = server["id"].as_str().unwrap();
    twice(
        s.key.clone(),
        format!("/v1/servers/{server}/test-connection"),
        Value::Null,
        "tc-1",
    )
    .await;
    let created = twice(
        s.key.clone(),
        "/v1/services".into(),
        json!({"server_id": server, "username": "olga"}),
        "svc-1",
    )
    .await;
    let svc = created["service"]["id"].as_str().unwrap();
    twice(
        s.key.clone(),
        format!("/v1/services/{svc}/terminate"),
        Value::Null,
        "term-1",
    )
    .await;
    let task = created["task"]["id"].as_str().unwrap();
    twice(
        s.key.clone(),
        format!("/v1/tasks/{task}/cancel"),
        Value::Null,
        "cancel-1",
    )
    .await;
    // Two operations on the server, one provision and one terminate.
    assert_eq!(
        count(
            &api,
            &format!("SELECT count(*) FROM tasks WHERE server_id = '{server}'")
        )
        .await,
        3
    );
    api.shutdown().await;
}
