//! The API's contract: problem documents with field paths, uploads and their
//! validation, idempotency replays, pagination, body and rate limits, keys,
//! task cancel/retry, health and metrics, and no internal text in a 500.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_are_problems_with_field_paths() {
    let api = Api::start().await;
    let s = setup(&api, "valid-co", None).await;
    // Config checked against the adapter's schema: wrong type, unknown key.
    let r = api
        .post(
            &s.key,
            "/v1/servers",
            json!({
                "name": "bad", "adapter_version_id": s.version,
                "config": {"base_url": 5, "colour": "red"},
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.problem(), "validation");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"/config/base_url"), "{fields:?}");
    assert!(
        fields.contains(&"/config"),
        "additionalProperties at the root: {fields:?}"
    );
    // Missing required config.
    let r = api
        .post(
            &s.key,
            "/v1/servers",
            json!({"name": "bad", "adapter_version_id": s.version}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body["detail"].as_str().unwrap().contains("base_url"),
        "{:?}",
        r.body
    );
    // Bad egress rule, named by its index.
    let r = api
        .post(&s.key, "/v1/servers", json!({
            "name": "bad", "adapter_version_id": s.version,
            "config": {"base_url": "http://127.0.0.1:1"}, "egress": ["http://ok.test", "ftp://nope"],
        }))
        .await;
    assert_eq!(r.body["errors"][0]["field"], "/egress/1", "{:?}", r.body);
    // Limits can be lowered, not raised.
    let r = api
        .post(
            &s.key,
            "/v1/servers",
            json!({
                "name": "bad", "adapter_version_id": s.version,
                "config": {"base_url": "http://127.0.0.1:1"}, "limits": {"fuel": 1u64 << 60},
            }),
        )
        .await;
    assert_eq!(r.body["errors"][0]["field"], "/limits/fuel", "{:?}", r.body);
    // A wrong JSON type names the field; an unknown field is named.
    let r = api
        .post(&s.key, "/v1/services", json!({"server_id": 5}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["field"], "server_id", "{:?}", r.body);
    let r = api
        .post(
            &s.key,
            "/v1/services",
            json!({"server_id": s.server, "bogus": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body["detail"].as_str().unwrap().contains("bogus"),
        "{:?}",
        r.body
    );
    // Not JSON at all; not the JSON content type.
    let r = api
        .call(
            Method::POST,
            "/v1/secrets",
            Some(&s.key),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.problem(), "bad-request");
    // Unknown endpoint.
    let r = api.get(&s.key, "/v1/nothing-here").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.problem(), "not-found");
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_validated_versioned_and_inspected() {
    let api = Api::start().await;
    let (_, key) = api.tenant("uploader").await;
    // Not a component.
    let r = api
        .upload(&key, "junk", "1.0.0", b"hello world".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["field"], "component");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly"),
        "{:?}",
        r.body
    );
    // An import the host does not provide is named.
    let r = api
        .upload(&key, "bad-import", "1.0.0", component("bad-import"))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body["detail"].as_str().unwrap().contains("evil"),
        "{:?}",
        r.body
    );
    // Bad labels.
    let r = api
        .upload(&key, "Bad_Name", "1.0.0", component("reference"))
        .await;
    assert_eq!(r.body["errors"][0]["field"], "name");
    // A good one: inspected by the worker, then ready with its schema.
    let r = api
        .upload(&key, "mine", "1.0.0", component("reference"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // The answer is read after the insert commits, so a quick worker may
    // already have inspected it.
    assert!(
        r.body["status"] == "inspecting" || r.body["status"] == "ready",
        "{:?}",
        r.body
    );
    assert_eq!(r.body["builtin"], false);
    assert!(!r.body["report"]["capabilities"]
        .as_array()
        .unwrap()
        .is_empty());
    let id = r.body["id"].as_str().unwrap().to_string();
    let v = api
        .wait_for(&key, &format!("/v1/adapters/{id}"), |v| {
            v["status"] != "inspecting"
        })
        .await;
    assert_eq!(v["status"], "ready", "{v:?}");
    assert_eq!(v["config_schema"]["type"], "object");
    // Same bytes again: the same version (200); other bytes under the same version: 409.
    let again = api
        .upload(&key, "mine", "1.0.0", component("reference"))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["id"], v["id"]);
    let clash = api
        .upload(&key, "mine", "1.0.0", component("spin-loop"))
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{:?}", clash.body);
    // Multipart works too.
    let form = reqwest::multipart::Form::new()
        .text("name", "mine")
        .text("version", "2.0.0")
        .part(
            "component",
            reqwest::multipart::Part::bytes(component("log-spam")).file_name("a.wasm"),
        );
    let r = api
        .http
        .post(format!("{}/v1/adapters", api.base))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Deprecated versions take no new servers.
    let r = api
        .post(&key, &format!("/v1/adapters/{id}/deprecate"), json!({}))
        .await;
    assert_eq!(r.body["deprecated"], true);
    let r = api
        .post(&key, "/v1/servers", json!({"name": "x", "adapter_version_id": id, "config": {"base_url": "http://127.0.0.1:1"}}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["detail"].as_str().unwrap().contains("deprecated"));
    // Listed for this tenant only.
    let list = api.get(&key, "/v1/adapters?name=mine").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    let (_, other) = api.tenant("other").await;
    let list = api.get(&other, "/v1/adapters?name=mine").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 0);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_and_refuse_reuse() {
    let api = Api::start().await;
    let s = setup(&api, "idem-co", None).await;
    let body = json!({"server_id": s.server, "username": "dave"});
    let h = [("idempotency-key", "order-1001")];
    let first = api
        .call(
            Method::POST,
            "/v1/services",
            Some(&s.key),
            Some(body.clone()),
            &h,
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let second = api
        .call(Method::POST, "/v1/services", Some(&s.key), Some(body), &h)
        .await;
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(second.body["service"]["id"], first.body["service"]["id"]);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM services")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "one service for two identical requests");
    // The same key with another body.
    let other = api
        .call(
            Method::POST,
            "/v1/services",
            Some(&s.key),
            Some(json!({"server_id": s.server, "username": "eve"})),
            &h,
        )
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.problem(), "idempotency-key-reused");
    // Keys are per tenant: another tenant's same key is its own.
    let t = setup(&api, "idem-two", Some(s.version.clone())).await;
    let theirs = api
        .call(
            Method::POST,
            "/v1/services",
            Some(&t.key),
            Some(json!({"server_id": t.server, "username": "dave"})),
            &h,
        )
        .await;
    assert_eq!(theirs.status, StatusCode::ACCEPTED);
    assert!(theirs.headers.get("idempotent-replayed").is_none());
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_keys_secrets_and_tasks() {
    let api = Api::start().await;
    let s = setup(&api, "page-co", None).await;
    for i in 0..5 {
        let r = api
            .post(
                &s.key,
                "/v1/secrets",
                json!({"name": format!("s{i}"), "value": format!("v{i}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    // Replacing a secret answers 200 and still shows no value.
    let r = api
        .post(&s.key, "/v1/secrets", json!({"name": "s0", "value": "new"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.get("value").is_none());
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/secrets?limit=2&cursor={c}"),
            None => "/v1/secrets?limit=2".to_string(),
        };
        let r = api.get(&s.key, &path).await;
        let items = r.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        names.extend(
            items
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_string()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    names.sort();
    assert_eq!(names, ["api-token", "s0", "s1", "s2", "s3", "s4"]);
    let r = api.get(&s.key, "/v1/secrets?limit=0").await;
    assert_eq!(r.body["errors"][0]["field"], "limit");
    // A bound secret cannot be deleted; a free one can.
    assert_eq!(
        api.delete(&s.key, "/v1/secrets/api-token").await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.delete(&s.key, "/v1/secrets/s4").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.delete(&s.key, "/v1/secrets/s4").await.status,
        StatusCode::NOT_FOUND
    );

    // Keys: shown once, listed without the key, revoked at once.
    let k = api
        .post(
            &s.key,
            "/v1/keys",
            json!({"name": "ci", "scopes": ["write"]}),
        )
        .await;
    assert_eq!(k.status, StatusCode::CREATED);
    let ci = k.body["key"].as_str().unwrap().to_string();
    assert_eq!(api.get(&ci, "/v1/servers").await.status, StatusCode::OK);
    let list = api.get(&s.key, "/v1/keys").await;
    assert!(!list.body.to_string().contains(&ci[3..]));
    assert_eq!(
        api.get(&ci, "/v1/keys").await.status,
        StatusCode::FORBIDDEN,
        "write < admin"
    );
    let r = api
        .post(
            &s.key,
            "/v1/keys",
            json!({"name": "x", "scopes": ["platform"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let id = k.body["id"].as_str().unwrap();
    assert_eq!(
        api.delete(&s.key, &format!("/v1/keys/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get(&ci, "/v1/servers").await.status,
        StatusCode::UNAUTHORIZED
    );

    // A failed task is retried by the operator; a succeeded one cannot be.
    let r = api
        .post(
            &s.key,
            "/v1/services",
            json!({"server_id": s.server, "username": "Bad Name"}),
        )
        .await;
    let task = r.body["task"]["id"].as_str().unwrap().to_string();
    let failed = api
        .wait_for(&s.key, &format!("/v1/tasks/{task}"), |t| {
            t["state"] == "failed"
        })
        .await;
    assert_eq!(
        failed["attempts"][0]["error_kind"], "invalid-input",
        "{failed:?}"
    );
    let svc = api
        .get(
            &s.key,
            &format!("/v1/services/{}", r.body["service"]["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(svc.body["state"], "failed");
    assert!(svc.body["failure_reason"]
        .as_str()
        .unwrap()
        .contains("username"));
    let retried = api
        .post(&s.key, &format!("/v1/tasks/{task}/retry"), json!({}))
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{:?}", retried.body);
    api.wait_for(&s.key, &format!("/v1/tasks/{task}"), |t| {
        t["state"] == "failed" && t["attempts"].as_array().unwrap().len() == 2
    })
    .await;
    let r = api.post(&s.key, "/v1/servers", json!({})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = api
        .post(
            &s.key,
            &format!("/v1/servers/{}/test-connection", s.server),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let t = r.body["id"].as_str().unwrap().to_string();
    api.wait_for(&s.key, &format!("/v1/tasks/{t}"), |t| {
        t["state"] == "succeeded"
    })
    .await;
    let r = api
        .post(&s.key, &format!("/v1/tasks/{t}/retry"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // The worker's metrics: throughput by outcome, failures by kind, cost.
    let m = api.call(Method::GET, "/metrics", None, None, &[]).await;
    let text = m.body.as_str().unwrap();
    for line in [
        "panel1_tasks_completed_total{operation=\"provision\",outcome=\"failed\"} 2",
        "panel1_tasks_completed_total{operation=\"test-connection\",outcome=\"succeeded\"} 1",
        "panel1_task_errors_total{kind=\"invalid-input\"} 2",
        "panel1_task_duration_seconds_count{operation=\"test-connection\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in:\n{text}");
    }
    assert!(
        text.contains("panel1_sandbox_fuel_consumed_count 3"),
        "{text}"
    );
    assert!(
        text.contains("panel1_sandbox_peak_memory_bytes_count 3"),
        "{text}"
    );
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_a_waiting_task() {
    // No worker: the task waits, and is cancelled.
    let api = Api::start_with(config(), false).await;
    let r = api
        .upload(
            &api.platform_key,
            "reference",
            "0.1.0",
            component("reference"),
        )
        .await;
    let version = r.body["id"].as_str().unwrap().to_string();
    // Without a worker nothing inspects it; stand in for the inspection.
    sqlx::query("UPDATE adapter_versions SET status = 'ready', info = '{}', config_schema = '{\"type\":\"object\"}', inspected_at = now()")
        .execute(&api.pool).await.unwrap();
    let s = setup(&api, "cancel-co", Some(version)).await;
    let r = api
        .post(
            &s.key,
            "/v1/services",
            json!({"server_id": s.server, "username": "frank"}),
        )
        .await;
    let task = r.body["task"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["task"]["state"], "available");
    let c = api
        .post(&s.key, &format!("/v1/tasks/{task}/cancel"), json!({}))
        .await;
    assert_eq!(c.status, StatusCode::OK);
    assert_eq!(c.body["state"], "cancelled");
    let list = api.get(&s.key, "/v1/tasks?state=cancelled").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let bad = api.get(&s.key, "/v1/tasks?state=sleeping").await;
    assert_eq!(bad.body["errors"][0]["field"], "state");
    // Servers need a ready version: an inspecting one is a 409.
    let r = api
        .upload(&s.key, "fresh", "1.0.0", component("reference"))
        .await;
    let fresh = r.body["id"].as_str().unwrap();
    let r = api
        .post(
            &s.key,
            "/v1/servers",
            json!({"name": "y", "adapter_version_id": fresh, "config": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_health_metrics_and_generic_internal_errors() {
    let mut cfg = config();
    cfg.max_body_bytes = 64 << 10;
    cfg.rate_limit_per_second = 2;
    cfg.rate_limit_burst = 5;
    let api = Api::start_with(cfg, false).await;
    let (_, key) = api.tenant("limits-co").await;
    // Body limit.
    let r = api.upload(&key, "big", "1.0.0", vec![0u8; 200 << 10]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Rate limit: a burst of 5, then 429 with Retry-After.
    let mut limited = None;
    for _ in 0..10 {
        let r = api.get(&key, "/v1/servers").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the burst is limited");
    assert_eq!(r.problem(), "rate-limited");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait));
    // Health and metrics need no key.
    assert_eq!(
        api.call(Method::GET, "/healthz", None, None, &[])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        api.call(Method::GET, "/readyz", None, None, &[])
            .await
            .status,
        StatusCode::OK
    );
    let m = api.call(Method::GET, "/metrics", None, None, &[]).await;
    let text = m.body.as_str().unwrap();
    assert!(
        text.contains("panel1_tasks{state=\"available\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "panel1_http_requests_total{method=\"GET\",route=\"/v1/servers\",status=\"429\"}"
        ),
        "{text}"
    );
    // The OpenAPI document names problem types and the bearer scheme.
    let doc = api
        .call(Method::GET, "/v1/openapi.json", None, None, &[])
        .await
        .body;
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    assert!(doc["paths"]["/v1/services/{id}/suspend"]["post"].is_object());
    // A database failure: 500 with an id, never the database's words.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    sqlx::query("ALTER TABLE servers RENAME TO servers_gone")
        .execute(&api.pool)
        .await
        .unwrap();
    let r = api.get(&key, "/v1/servers").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.problem(), "internal");
    assert!(r.body["error_id"].as_str().is_some());
    let text = r.body.to_string();
    assert!(
        !text.contains("servers") && !text.contains("relation"),
        "{text}"
    );
    api.shutdown().await;
}
