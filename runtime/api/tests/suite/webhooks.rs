//! Webhook endpoints over the REST API: registration and its validation,
//! the signing secret (read only by its tenant, never cached, sealed at
//! rest), rotation, the delivery log, and the egress rule every delivery
//! obeys: with the operator's defaults an endpoint on an internal address
//! gets no connection, and the log says why.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_validated_scoped_and_their_secret_is_sealed() {
    let api = Api::start_with(config(), false).await;
    let (_, a) = api.tenant("hooks-a").await;
    let (_, b) = api.tenant("hooks-b").await;

    let r = api
        .post(
            &a,
            "/v1/webhooks",
            json!({"url": "ftp://x/", "event_types": ["service", "task.*"], "secret": "nope"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["url", "event_types/0", "secret"], "{:?}", r.body);
    let r = api
        .post(
            &a,
            "/v1/webhooks",
            json!({"url": "https://u:p@billing.example.com/"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    let mine = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let r = api
        .post(
            &a,
            "/v1/webhooks",
            json!({"url": "https://billing.example.com/hooks", "event_types": ["service.*", "task.*"],
                   "description": "billing", "secret": mine}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(
        !r.body.to_string().contains("whsec_"),
        "no secret in the answer"
    );
    assert_eq!(r.body["enabled"], true);

    let r = api.get(&a, &format!("/v1/webhooks/{id}/secret")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["secret"], mine);
    assert_eq!(r.headers["cache-control"], "no-store");
    // Sealed at rest: the table holds no plaintext.
    let stored: String = sqlx::query_scalar("SELECT row_to_json(w)::text FROM webhook_endpoints w")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert!(!stored.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));

    // Another tenant sees none of it.
    for path in [
        format!("/v1/webhooks/{id}"),
        format!("/v1/webhooks/{id}/secret"),
        format!("/v1/webhooks/{id}/deliveries"),
    ] {
        assert_eq!(
            api.get(&b, &path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(api.get(&b, "/v1/webhooks").await.body["items"], json!([]));

    // Rotation: a new secret, the old one still signing for the overlap.
    let r = api
        .post(
            &a,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            json!({"overlap_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["previous_secret_until"].is_string());
    let new = api.get(&a, &format!("/v1/webhooks/{id}/secret")).await.body["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(new.starts_with("whsec_") && new != mine);
    let r = api
        .post(
            &a,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            json!({"overlap_seconds": 999_999_999}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Changes, then deletion.
    let r = api
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(&a),
            Some(json!({"enabled": false, "event_types": ["service.updated"]})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (r.body["enabled"].clone(), r.body["disabled_reason"].clone()),
        (json!(false), json!("disabled by the tenant"))
    );
    let r = api
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(&a),
            Some(json!({"enabled": true, "colour": "red"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "unknown field");
    let r = api.get(&a, "/v1/webhooks").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        api.delete(&a, &format!("/v1/webhooks/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get(&a, &format!("/v1/webhooks/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_on_an_internal_address_gets_no_connection_by_default() {
    // Counts connections to where the endpoint points.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });

    let api = Api::start().await;
    let a = setup(&api, "hooks-internal", None).await;
    let r = api
        .post(
            &a.key,
            "/v1/webhooks",
            json!({"url": format!("https://127.0.0.1:{port}/hook"), "event_types": ["task.*"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let hook = r.body["id"].as_str().unwrap().to_string();
    let r = api
        .post(
            &a.key,
            "/v1/services",
            json!({"server_id": a.server, "username": "hooky"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);

    // The worker tries and records why it did not connect.
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivery = loop {
        let page = api
            .get(&a.key, &format!("/v1/webhooks/{hook}/deliveries"))
            .await
            .body;
        let tried = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["attempts"].as_i64() >= Some(1) && d["state"] == "pending")
            .cloned();
        if let Some(d) = tried {
            break d;
        }
        assert!(Instant::now() < deadline, "no attempt recorded: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(delivery["event_kind"]
        .as_str()
        .unwrap()
        .starts_with("task."));
    let error = delivery["last_error"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.1") && error.contains("may not reach"),
        "{error}"
    );
    assert!(delivery["next_attempt_at"].is_string(), "retried later");
    let id = delivery["id"].as_i64().unwrap();
    let detail = api
        .get(&a.key, &format!("/v1/webhooks/{hook}/deliveries/{id}"))
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(detail.body["attempt_log"][0]["attempt"], 1);
    assert!(detail.body["attempt_log"][0]["status"].is_null());
    assert_eq!(connections.load(Ordering::SeqCst), 0, "never connected");

    // A redelivery is a new delivery of the same event.
    let r = api
        .post(
            &a.key,
            &format!("/v1/webhooks/{hook}/deliveries/{id}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let again = r.body["delivery_id"].as_i64().unwrap();
    assert!(again > id);
    let r = api
        .get(&a.key, &format!("/v1/webhooks/{hook}/deliveries/{again}"))
        .await;
    assert_eq!(r.body["event_id"], delivery["event_id"]);
    let r = api
        .get(
            &a.key,
            &format!("/v1/webhooks/{hook}/deliveries?state=bogus"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    api.shutdown().await;
}
