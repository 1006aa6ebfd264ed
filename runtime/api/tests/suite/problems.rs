//! Every error is `application/problem+json` with a stable `type`, also the
//! ones axum used to answer in `text/plain`: a malformed query or path id,
//! an unknown route, a wrong method, a wrong content type, and a body over
//! the limit (413, not 400) however it is sent.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const LIMIT: usize = 4096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_queries_and_path_ids_are_problems_naming_the_parameter() {
    let api = Api::start_with(config(), false).await;
    let (_, key) = api.tenant("malformed-co").await;
    for (path, field) in [
        ("/v1/services?limit=abc", "limit"),
        ("/v1/services?limit=0", "limit"),
        ("/v1/services?limit=501", "limit"),
        ("/v1/services?cursor=not-a-uuid", "cursor"),
        ("/v1/tasks?server_id=1&limit=5", "server_id"),
        ("/v1/tasks?state=sleeping", "state"),
        ("/v1/services?state=sleeping", "state"),
        ("/v1/events?after=soon", "after"),
        ("/v1/services?limit=1&limit=2", "query"),
        ("/v1/services/not-a-uuid", "id"),
        ("/v1/tasks/123/cancel", "id"),
        ("/v1/adapters/%zz", "id"),
    ] {
        let method = if path.ends_with("/cancel") {
            Method::POST
        } else {
            Method::GET
        };
        let r = api.call(method, path, Some(&key), None, &[]).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {:?}",
            r.body
        );
        assert_eq!(r.problem(), "validation", "{path}");
        assert_eq!(r.body["errors"][0]["field"], field, "{path}: {:?}", r.body);
    }
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_and_content_errors_are_problems() {
    let api = Api::start_with(config(), false).await;
    let (_, key) = api.tenant("routing-co").await;
    let k = Some(key.as_str());

    let r = api
        .call(Method::GET, "/v1/nothing-here", k, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.problem(), "not-found");
    let r = api.call(Method::GET, "/elsewhere", None, None, &[]).await;
    assert_eq!(r.problem(), "not-found");

    let r = api.call(Method::PUT, "/v1/secrets", k, None, &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.problem(), "method-not-allowed");
    let allow = r.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let r = api.call(Method::DELETE, "/healthz", None, None, &[]).await;
    assert_eq!(r.problem(), "method-not-allowed");

    // Not JSON: 415; JSON that does not parse: 400.
    let resp = api
        .http
        .post(format!("{}/v1/secrets", api.base))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body(r#"{"name":"a","value":"b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = api
        .http
        .post(format!("{}/v1/secrets", api.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(r#"{"name":"a","#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "/problems/bad-request");

    // An upload that is neither wasm nor multipart.
    let resp = api
        .http
        .post(format!("{}/v1/adapters?name=x&version=1", api.base))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413_however_it_is_sent() {
    let mut cfg = config();
    cfg.max_body_bytes = LIMIT;
    let api = Api::start_with(cfg, false).await;
    let (_, key) = api.tenant("big-co").await;
    let big = json!({"name": "big", "value": "x".repeat(LIMIT * 2)});

    let r = api.post(&key, "/v1/secrets", big.clone()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
    assert_eq!(r.problem(), "too-large");
    // Through the idempotency layer, which reads the body first.
    let r = api
        .call(
            Method::POST,
            "/v1/secrets",
            Some(&key),
            Some(big.clone()),
            &[("idempotency-key", "big-1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
    assert_eq!(r.problem(), "too-large");
    // Chunked, with no Content-Length to refuse it by.
    let mut pieces = vec![b"{\"name\":\"big\",\"value\":\"".to_vec()];
    pieces.extend((0..8).map(|_| vec![b'x'; 1024]));
    pieces.push(b"\"}".to_vec());
    let chunks = pieces.into_iter().map(Ok::<_, std::io::Error>);
    let resp = api
        .http
        .post(format!("{}/v1/secrets", api.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    // Multipart and raw uploads.
    let form = reqwest::multipart::Form::new()
        .text("name", "big")
        .text("version", "1")
        .part(
            "component",
            reqwest::multipart::Part::bytes(vec![0u8; LIMIT * 2]),
        );
    let resp = api
        .http
        .post(format!("{}/v1/adapters", api.base))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let r = api.upload(&key, "big", "1", vec![0u8; LIMIT * 2]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Under the limit is fine.
    let r = api
        .post(&key, "/v1/secrets", json!({"name": "small", "value": "x"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    api.shutdown().await;
}
