//! Requests that would leave things half done, or done twice, are refused
//! whole: values too large to echo back, a retry of a task whose service
//! has moved on, and a secret deleted while a server binds it.
use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_too_large_to_answer_with_are_refused_up_front() {
    let api = Api::start().await;
    let s = setup(&api, "big-values", None).await;
    let key = [("idempotency-key", "big-1")];

    // A params value over 64 KiB: 422 naming the limit, no service.
    let body = json!({"server_id": s.server, "username": "big1",
                      "params": {"note": "a".repeat((64 << 10) + 1)}});
    let r = api
        .call(Method::POST, "/v1/services", Some(&s.key), Some(body), &key)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("64 KiB"));
    let list = api.get(&s.key, "/v1/services").await;
    assert_eq!(list.body["items"], json!([]), "{:?}", list.body);
    // At the limit it is accepted.
    let body = json!({"server_id": s.server, "username": "big1",
                      "params": {"note": "a".repeat(64 << 10)}});
    let r = api
        .call(Method::POST, "/v1/services", Some(&s.key), Some(body), &key)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);

    // A server config over 1 MiB: 422, on create and on update.
    let big = json!({"base_url": "http://127.0.0.1:9", "owner": "o",
                     "notes": "n".repeat(1 << 20)});
    let r = api
        .post(
            &s.key,
            "/v1/servers",
            json!({"name": "big", "adapter_version_id": s.version, "config": big}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("1 MiB"));
    let r = api
        .call(
            Method::PATCH,
            &format!("/v1/servers/{}", s.server),
            Some(&s.key),
            Some(json!({ "config": big })),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_is_not_retried_once_its_service_moved_on() {
    let api = Api::start().await;
    let s = setup(&api, "stale-retry", None).await;
    // A provision that fails for good (the adapter refuses the username).
    let r = api
        .post(
            &s.key,
            "/v1/services",
            json!({"server_id": s.server, "username": "Bad Name"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let task = r.body["task"]["id"].as_str().unwrap().to_string();
    let service: Uuid = r.body["service"]["id"].as_str().unwrap().parse().unwrap();
    api.wait_for(&s.key, &format!("/v1/tasks/{task}"), |t| {
        t["state"] == "failed"
    })
    .await;

    // The service is on another server now (as a migration leaves it):
    // the task would run against the old one.
    let r = api
        .post(
            &s.key,
            "/v1/servers",
            json!({"name": "panel-2", "adapter_version_id": s.version,
                   "config": {"base_url": s.panel.base_url(), "owner": "reseller1"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let other: Uuid = r.body["id"].as_str().unwrap().parse().unwrap();
    sqlx::query("UPDATE services SET server_id = $2 WHERE id = $1")
        .bind(service)
        .bind(other)
        .execute(&api.pool)
        .await
        .unwrap();
    let retry = format!("/v1/tasks/{task}/retry");
    let r = api.post(&s.key, &retry, json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().contains("moved"),
        "{:?}",
        r.body
    );
    let t = api.get(&s.key, &format!("/v1/tasks/{task}")).await;
    assert_eq!(
        t.body["state"], "failed",
        "nothing was queued: {:?}",
        t.body
    );

    // Back on its server but terminated: nothing to retry either.
    sqlx::query("UPDATE services SET server_id = $2, state = 'terminated' WHERE id = $1")
        .bind(service)
        .bind(s.server.parse::<Uuid>().unwrap())
        .execute(&api.pool)
        .await
        .unwrap();
    let r = api.post(&s.key, &retry, json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("terminated"));
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_not_deleted_from_under_a_binding_in_flight() {
    let api = Api::start().await;
    let s = setup(&api, "secret-race", None).await;
    let r = api
        .post(
            &s.key,
            "/v1/secrets",
            json!({"name": "spare", "value": "spare-value-123"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // A server binding the secret, its transaction still open (as the
    // API's binding takes it: a key-share lock on the secret's row).
    let mut tx = api.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO server_secrets (server_id, secret_id, destinations)
         SELECT $1, x.id, ARRAY['127.0.0.1'] FROM secrets x WHERE x.name = 'spare'
         FOR KEY SHARE",
    )
    .bind(s.server.parse::<Uuid>().unwrap())
    .execute(&mut *tx)
    .await
    .unwrap();
    let delete = {
        let (http, base, key) = (api.http.clone(), api.base.clone(), s.key.clone());
        tokio::spawn(async move {
            http.delete(format!("{base}/v1/secrets/spare"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!delete.is_finished(), "the delete waits for the binding");
    tx.commit().await.unwrap();
    let answer = delete.await.unwrap();
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("panel-1"),
        "{body:?}"
    );
    let bound: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM server_secrets b JOIN secrets x ON x.id = b.secret_id
         WHERE x.name = 'spare'",
    )
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(bound, 1, "the binding survived");
    api.shutdown().await;
}
