//! Bulk operations over HTTP (docs/bulk.md): a bulk suspend run by the
//! in-process worker against the fake panel, followed over SSE; the
//! child's input is the single route's; `Idempotency-Key` replays; pause,
//! resume and cancel answer by state; bad selectors are 422 with field
//! paths (never a 500); another tenant's bulk is a 404 and its services and
//! servers select nothing.

use crate::common::*;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// `n` services of `s`'s server, provisioned and active; their ids.
async fn services(api: &Api, s: &Setup, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = api
            .post(
                &s.key,
                "/v1/services",
                json!({"server_id": s.server, "username": format!("{prefix}{i}"), "plan": "basic"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
        ids.push(r.body["service"]["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        api.wait_for(&s.key, &format!("/v1/services/{id}"), |v| {
            v["state"] == "active"
        })
        .await;
    }
    ids
}

/// SSE `data` of every event until one of kind `last` (20 s at most).
async fn events_until(resp: reqwest::Response, last: &str) -> Vec<(String, Value)> {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut events: Vec<(String, Value)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !events.iter().any(|e| e.0 == last) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no {last}; got {events:?}"))
            .expect("stream ended")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut kind, mut data) = (String::new(), Value::Null);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).unwrap();
                }
            }
            if !data.is_null() {
                events.push((kind, data["payload"].clone()));
            }
        }
    }
    events
}

fn fields(r: &Reply) -> Vec<String> {
    r.body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_suspend_over_http_with_progress_on_sse_and_idempotency() {
    let api = Api::start().await;
    let s = setup(&api, "bulk-a", None).await;
    let ids = services(&api, &s, "bk", 4).await;
    // The single route's input for one service, to compare with a child's.
    let single = api
        .post(
            &s.key,
            &format!("/v1/services/{}/suspend", ids[0]),
            json!({"reason": "r"}),
        )
        .await;
    assert_eq!(single.status, StatusCode::ACCEPTED, "{:?}", single.body);
    let single_task = single.body["task"]["id"].as_str().unwrap().to_string();
    api.wait_for(&s.key, &format!("/v1/tasks/{single_task}"), |v| {
        v["state"] == "succeeded"
    })
    .await;
    let unsuspend = api
        .post(
            &s.key,
            &format!("/v1/services/{}/unsuspend", ids[0]),
            json!({}),
        )
        .await;
    let t = unsuspend.body["task"]["id"].as_str().unwrap().to_string();
    api.wait_for(&s.key, &format!("/v1/tasks/{t}"), |v| {
        v["state"] == "succeeded"
    })
    .await;

    let body = json!({"action": "suspend", "selector": {"server_id": s.server}, "reason": "r"});
    let key = [("Idempotency-Key", "bulk-1")];
    let sse = api
        .http
        .get(format!("{}/v1/events?kind=bulk.&after=0", api.base))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    let r = api
        .call(
            Method::POST,
            "/v1/bulk",
            Some(&s.key),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["total"], 4);
    assert_eq!(r.body["skipped"], 0);
    assert_eq!(r.body["state"], "running");
    let id = r.body["id"].as_str().unwrap().to_string();
    // The same key again: the same answer, no second bulk.
    let again = api
        .call(
            Method::POST,
            "/v1/bulk",
            Some(&s.key),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body["id"], r.body["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");

    let events = events_until(sse, "bulk.completed").await;
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"bulk.created"), "{kinds:?}");
    assert!(kinds.contains(&"bulk.progress"), "{kinds:?}");
    let last = &events.last().unwrap().1;
    assert_eq!(last["bulk_id"], json!(id));
    assert_eq!(
        (last["succeeded"].as_i64(), last["state"].as_str()),
        (Some(4), Some("completed"))
    );

    let b = api.get(&s.key, &format!("/v1/bulk/{id}")).await;
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(
        [
            &b.body["succeeded"],
            &b.body["failed"],
            &b.body["running"],
            &b.body["waiting"]
        ],
        [&json!(4), &json!(0), &json!(0), &json!(0)]
    );
    assert!(b.body["finished_at"].is_string());
    for svc in &ids {
        let r = api.get(&s.key, &format!("/v1/services/{svc}")).await;
        assert_eq!(r.body["state"], "suspended");
    }
    let list = api.get(&s.key, "/v1/bulk?limit=1").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["items"][0]["id"], json!(id));

    // The child for ids[0] got exactly the input the single route built.
    let tasks = api
        .get(
            &s.key,
            &format!("/v1/tasks?service_id={}&operation=suspend", ids[0]),
        )
        .await;
    let inputs: Vec<&Value> = tasks.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["input"])
        .collect();
    assert_eq!(inputs.len(), 2, "{inputs:?}");
    assert_eq!(inputs[0], inputs[1]);

    // A completed bulk: pause and resume are 409, cancel too.
    for verb in ["pause", "resume", "cancel"] {
        let r = api
            .post(&s.key, &format!("/v1/bulk/{id}/{verb}"), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{verb}: {:?}", r.body);
    }
    // A selection that matches nothing: 422.
    let r = api
        .post(
            &s.key,
            "/v1/bulk",
            json!({"action": "unsuspend", "selector": {"state": "active"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_cancel_answer_by_state() {
    let api = Api::start().await;
    let s = setup(&api, "bulk-c", None).await;
    // A server whose panel does not answer (nothing listens on port 1):
    // its provisions retry with backoff, and the bulk's terminates wait
    // behind them (one operation per service, in order), so each control
    // below is seen as it is.
    let dead = api
        .post(
            &s.key,
            "/v1/servers",
            json!({
                "name": "dead",
                "adapter_version_id": s.version,
                "config": {"base_url": "http://127.0.0.1:1", "owner": "reseller1"},
                "egress": ["http://127.0.0.1:1"],
                "max_concurrency": 4,
                "secrets": [{"name": "api-token", "destinations": ["127.0.0.1:1"]}],
            }),
        )
        .await;
    assert_eq!(dead.status, StatusCode::CREATED, "{:?}", dead.body);
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = api
            .post(
                &s.key,
                "/v1/services",
                json!({"server_id": dead.body["id"], "username": format!("pc{i}")}),
            )
            .await;
        ids.push(r.body["service"]["id"].as_str().unwrap().to_string());
    }
    // `provisioning` services: terminate is accepted in that state.
    let r = api
        .post(
            &s.key,
            "/v1/bulk",
            json!({"action": "terminate", "selector": {"service_ids": ids}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(
        (r.body["total"].as_i64(), r.body["waiting"].as_i64()),
        (Some(3), Some(3))
    );
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = api
        .post(&s.key, &format!("/v1/bulk/{id}/pause"), json!({}))
        .await;
    assert_eq!(
        (r.status, r.body["state"].as_str()),
        (StatusCode::OK, Some("paused"))
    );
    let tasks = api.get(&s.key, "/v1/tasks?operation=terminate").await;
    for t in tasks.body["items"].as_array().unwrap() {
        assert_eq!(t["state"], "scheduled", "{t}");
        assert!(t["run_at"].as_str().unwrap().starts_with("9999-"), "{t}");
    }
    // Pausing again is a no-op; resuming makes them available.
    let r = api
        .post(&s.key, &format!("/v1/bulk/{id}/pause"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api
        .post(&s.key, &format!("/v1/bulk/{id}/resume"), json!({}))
        .await;
    assert_eq!(
        (r.status, r.body["state"].as_str()),
        (StatusCode::OK, Some("running"))
    );
    let tasks = api
        .get(&s.key, "/v1/tasks?operation=terminate&state=available")
        .await;
    assert_eq!(tasks.body["items"].as_array().unwrap().len(), 3);
    let r = api
        .post(&s.key, &format!("/v1/bulk/{id}/cancel"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.body["state"].as_str(), r.body["cancelled"].as_i64()),
        (Some("cancelled"), Some(3))
    );
    assert_eq!(r.body["waiting"], 0);
    let r = api
        .post(&s.key, &format!("/v1/bulk/{id}/resume"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let tasks = api
        .get(&s.key, "/v1/tasks?operation=terminate&state=cancelled")
        .await;
    assert_eq!(tasks.body["items"].as_array().unwrap().len(), 3);
    let r = api.get(&s.key, "/v1/bulk?state=cancelled").await;
    assert_eq!(r.body["items"][0]["id"], json!(id));
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_selectors_and_other_tenants_are_4xx_with_field_paths() {
    let api = Api::start().await;
    let a = setup(&api, "bulk-owner", None).await;
    let b = setup(&api, "bulk-other", None).await;
    let r = api
        .post(
            &a.key,
            "/v1/services",
            json!({"server_id": a.server, "username": "own1"}),
        )
        .await;
    let a_service = r.body["service"]["id"].as_str().unwrap().to_string();
    let ok = api
        .post(
            &a.key,
            "/v1/bulk",
            json!({"action": "terminate", "selector": {"service_ids": [a_service]}}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{:?}", ok.body);
    let a_bulk = ok.body["id"].as_str().unwrap().to_string();

    let nil = "00000000-0000-0000-0000-000000000000";
    let cases: Vec<(Value, &str)> = vec![
        (json!({"selector": {"all": true}}), ""),
        (
            json!({"action": "explode", "selector": {"all": true}}),
            "action",
        ),
        (
            json!({"action": "login-url", "selector": {"all": true}}),
            "action",
        ),
        (json!({"action": "suspend"}), ""),
        (json!({"action": "suspend", "selector": {}}), "selector"),
        (
            json!({"action": "suspend", "selector": {"all": false}}),
            "selector.all",
        ),
        (
            json!({"action": "suspend", "selector": {"all": true, "state": "active"}}),
            "selector",
        ),
        (
            json!({"action": "suspend", "selector": {"service_ids": [a_service], "plan": "x"}}),
            "selector",
        ),
        (
            json!({"action": "suspend", "selector": {"service_ids": []}}),
            "selector.service_ids",
        ),
        (
            json!({"action": "suspend", "selector": {"service_ids": ["nope"]}}),
            "selector.service_ids[0]",
        ),
        (
            json!({"action": "suspend", "selector": {"state": "asleep"}}),
            "selector.state",
        ),
        (
            json!({"action": "suspend", "selector": {"plan": ""}}),
            "selector.plan",
        ),
        (
            json!({"action": "suspend", "selector": {"plan": "a\u{7}"}}),
            "selector.plan",
        ),
        (
            json!({"action": "suspend", "selector": {"server_id": nil}}),
            "selector.server_id",
        ),
        (
            json!({"action": "suspend", "selector": {"all": true}, "reason": "x".repeat(501)}),
            "reason",
        ),
        (
            json!({"action": "unsuspend", "selector": {"all": true}, "reason": "x"}),
            "reason",
        ),
        (
            json!({"action": "change-package", "selector": {"all": true}}),
            "plan",
        ),
        (
            json!({"action": "change-package", "selector": {"all": true}, "plan": ""}),
            "plan",
        ),
        (
            json!({"action": "suspend", "selector": {"all": true}, "plan": "pro"}),
            "plan",
        ),
        (
            json!({"action": "suspend", "selector": {"all": true}, "extra": 1}),
            "",
        ),
        (
            json!({"action": "suspend", "selector": {"all": true, "tenant_id": nil}}),
            "",
        ),
        // Tenant B naming A's service or A's server: no such thing for B.
        (
            json!({"action": "suspend", "selector": {"service_ids": [nil, a_service]}}),
            "selector.service_ids[0]",
        ),
        (
            json!({"action": "suspend", "selector": {"server_id": a.server}}),
            "selector.server_id",
        ),
        // B's own server has no service.
        (
            json!({"action": "suspend", "selector": {"server_id": b.server}}),
            "selector",
        ),
    ];
    for (body, field) in cases {
        let r = api.post(&b.key, "/v1/bulk", body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.problem(), "validation", "{body}: {:?}", r.body);
        if !field.is_empty() {
            assert!(
                fields(&r).iter().any(|f| f.starts_with(field)),
                "{body}: {:?}",
                r.body
            );
        }
    }
    // Both missing ids are named, each by its place.
    let r = api
        .post(
            &b.key,
            "/v1/bulk",
            json!({"action": "suspend", "selector": {"service_ids": [nil, a_service]}}),
        )
        .await;
    assert_eq!(
        fields(&r),
        ["selector.service_ids[0]", "selector.service_ids[1]"]
    );
    // Not JSON at all: 400.
    let r = api
        .call(
            Method::POST,
            "/v1/bulk",
            Some(&b.key),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert!(r.status.is_client_error(), "{:?}", r.body);

    // A's bulk does not exist for B, whatever B does with it.
    assert_eq!(
        api.get(&b.key, &format!("/v1/bulk/{a_bulk}")).await.status,
        StatusCode::NOT_FOUND
    );
    for verb in ["pause", "resume", "cancel"] {
        let r = api
            .post(&b.key, &format!("/v1/bulk/{a_bulk}/{verb}"), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{verb}");
    }
    let list = api.get(&b.key, "/v1/bulk").await;
    assert_eq!(list.body["items"], json!([]));
    assert_eq!(
        api.get(&a.key, "/v1/bulk?state=nope").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert!(api
        .get(&a.key, "/v1/bulk/not-a-uuid")
        .await
        .status
        .is_client_error());
    // A's service is being terminated: nothing can take a suspend (409).
    let r = api
        .post(
            &a.key,
            "/v1/bulk",
            json!({"action": "suspend", "selector": {"service_ids": [a_service]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("cannot suspend a service that is termin"),
        "{:?}",
        r.body
    );
    // A's bulk was not cancelled or paused by B: it runs to its end.
    let r = api
        .wait_for(&a.key, &format!("/v1/bulk/{a_bulk}"), |v| {
            !v["finished_at"].is_null()
        })
        .await;
    assert_eq!(
        (r["state"].as_str(), r["succeeded"].as_i64()),
        (Some("completed"), Some(1))
    );
    api.shutdown().await;
}
