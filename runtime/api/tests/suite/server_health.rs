//! Server health through the API, with a worker checking a fake panel:
//! the state on the server and at `/health` with its history, settings
//! changed and validated, a task held by an open breaker reading as
//! waiting for its server, the metric, and another tenant seeing nothing.

use crate::common::{setup, Api};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_checked_shown_configured_and_holds_tasks_while_down() {
    let api = Api::start().await;
    let a = setup(&api, "health-a", None).await;
    let path = format!("/v1/servers/{}/health", a.server);

    // Not checked until asked (or one interval after it was connected).
    let h = api.get(&a.key, &path).await;
    assert_eq!(h.body["state"], "unknown", "{:?}", h.body);
    assert!(h.body["last_checked_at"].is_null(), "{:?}", h.body);
    // test-connection asks for a check at once: healthy, on the server too.
    let r = api
        .post(
            &a.key,
            &format!("/v1/servers/{}/test-connection", a.server),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let h = api
        .wait_for(&a.key, &path, |v| v["state"] == "healthy")
        .await;
    assert_eq!(h["server_id"], a.server.as_str());
    assert_eq!(h["breaker_open"], false);
    assert_eq!(h["failures"], 0);
    assert_eq!(h["settings"]["enabled"], true);
    assert_eq!(h["history"][0]["from_state"], "unknown");
    assert_eq!(h["history"][0]["to_state"], "healthy");
    assert!(h["last_latency_ms"].is_i64(), "{h}");
    let server = api.get(&a.key, &format!("/v1/servers/{}", a.server)).await;
    assert_eq!(
        server.body["health"]["state"], "healthy",
        "{:?}",
        server.body
    );

    // Bad settings: a field path and a reason, nothing changed.
    let patch = |body| api.call(Method::PATCH, &path, Some(a.key.as_str()), Some(body), &[]);
    let r = patch(json!({"interval_secs": 0, "down_after": 1000})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let text = r.body.to_string();
    assert!(
        text.contains("/interval_secs") && text.contains("/down_after"),
        "{text}"
    );
    let r = patch(json!({"interval": 5})).await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    let r = patch(json!({"interval_secs": "often"})).await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    assert_eq!(
        api.get(&a.key, &path).await.body["settings"]["interval_secs"],
        60
    );

    // The panel stops answering (every request a 503): down after one
    // failed check, the breaker holds the next task.
    a.panel.with(|p| p.force_status = 503);
    let r = patch(json!({"down_after": 1, "recheck_secs": 1, "interval_secs": 2})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["settings"]["down_after"], 1);
    let h = api.wait_for(&a.key, &path, |v| v["state"] == "down").await;
    assert_eq!(h["breaker_open"], true);
    assert!(
        h["reason"].as_str().unwrap().starts_with("transient"),
        "{h}"
    );
    let r = api
        .post(
            &a.key,
            "/v1/services",
            json!({"server_id": a.server, "username": "held"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let task = r.body["task"]["id"].as_str().unwrap().to_string();
    let t = api
        .wait_for(&a.key, &format!("/v1/tasks/{task}"), |v| {
            v["waiting_for"] == "server_down"
        })
        .await;
    assert_eq!(t["attempt"], 0, "{t}");
    assert_eq!(
        api.get(&a.key, &path).await.body["held_tasks"],
        1,
        "the breaker holds it"
    );
    let metrics = api.call(Method::GET, "/metrics", None, None, &[]).await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    assert!(text.contains("panel1_servers{health=\"down\"} 1"), "{text}");

    // Another tenant: 404 for reading and for changing.
    let (_, b_key) = api.tenant("health-b").await;
    assert_eq!(api.get(&b_key, &path).await.status, StatusCode::NOT_FOUND);
    let r = api
        .call(
            Method::PATCH,
            &path,
            Some(b_key.as_str()),
            Some(json!({"enabled": false})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(api.get(&a.key, &path).await.body["state"], "down");

    // The panel answers again: healthy, the task runs once.
    a.panel.with(|p| p.force_status = 0);
    api.wait_for(&a.key, &path, |v| v["state"] == "healthy")
        .await;
    let t = api
        .wait_for(&a.key, &format!("/v1/tasks/{task}"), |v| {
            v["state"] == "succeeded"
        })
        .await;
    assert_eq!(t["attempt"], 1, "{t}");
    assert!(t["waiting_for"].is_null(), "{t}");

    // Checks off: unknown, recorded in the history.
    let r = patch(json!({"enabled": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "unknown");
    let states: Vec<String> = r.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|t| t["to_state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["healthy", "down", "healthy", "unknown"]);
    api.shutdown().await;
}
