//! `PATCH /v1/servers/{id}`: a change reaches the next attempt (egress taken
//! away denies the call; given back, it succeeds), a version moves only
//! within its adapter, and a refused change leaves the server as it was.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

async fn patch(api: &Api, key: &str, server: &str, body: Value) -> Reply {
    api.call(
        Method::PATCH,
        &format!("/v1/servers/{server}"),
        Some(key),
        Some(body),
        &[],
    )
    .await
}

/// Run test-connection on the server and return the finished task. Workers
/// re-read a server's settings at most 2 s after a change.
async fn test_connection(api: &Api, key: &str, server: &str) -> Value {
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let r = api
        .post(
            key,
            &format!("/v1/servers/{server}/test-connection"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let task = r.body["id"].as_str().unwrap().to_string();
    api.wait_for(key, &format!("/v1/tasks/{task}"), |t| {
        matches!(t["state"].as_str(), Some("succeeded" | "failed" | "dead"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_applies_to_the_next_attempt() {
    let api = Api::start().await;
    let s = setup(&api, "update-a", None).await;
    // No health checks: a server without egress would be marked down and
    // its tasks held back, which is not what this test is about.
    let r = api
        .call(
            Method::PATCH,
            &format!("/v1/servers/{}/health", s.server),
            Some(&s.key),
            Some(json!({"enabled": false})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let r = patch(
        &api,
        &s.key,
        &s.server,
        json!({"egress": [], "name": "renamed", "max_concurrency": 2, "record_exchanges": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["name"], "renamed");
    assert_eq!(r.body["max_concurrency"], 2);
    assert_eq!(r.body["record_exchanges"], true);
    assert_eq!(r.body["egress"]["rules"], json!([]), "{:?}", r.body);
    // Untouched: config and the secret binding.
    assert_eq!(r.body["config"]["base_url"], s.panel.base_url());
    assert_eq!(r.body["secrets"][0]["name"], "api-token");
    let sent = s.panel.requests().len();
    let t = test_connection(&api, &s.key, &s.server).await;
    assert_eq!(t["state"], "failed", "{t}");
    let error = t["last_error"].to_string();
    assert!(
        error.contains("permanent") && error.contains("denied"),
        "{t}"
    );
    assert_eq!(
        s.panel.requests().len(),
        sent,
        "a denied call reached the panel"
    );

    let r = patch(
        &api,
        &s.key,
        &s.server,
        json!({"egress": [s.panel.base_url()]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let t = test_connection(&api, &s.key, &s.server).await;
    assert_eq!(t["state"], "succeeded", "{t}");
    assert!(s.panel.requests().len() > sent);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_changes_are_clear_and_change_nothing() {
    let api = Api::start().await;
    let s = setup(&api, "update-b", None).await;
    let (_, other) = api.tenant("update-c").await;
    let before = api.get(&s.key, &format!("/v1/servers/{}", s.server)).await;
    assert_eq!(before.status, StatusCode::OK);
    let field = |r: &Reply| {
        r.body["errors"][0]["field"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    for (body, expected) in [
        (json!({"max_concurrency": 0}), "max_concurrency"),
        (json!({"name": "  "}), "name"),
        (json!({"config": [1]}), "config"),
        (json!({"config": {"base_url": 5}}), "/config/base_url"),
        (json!({"egress": ["ftp://nope"]}), "/egress/0"),
        (json!({"limits": {"fuel": 1u64 << 62}}), "/limits/fuel"),
        (
            json!({"secrets": [{"name": "api-token", "destinations": []}]}),
            "/secrets/0/destinations",
        ),
        // Valid on its face; refused inside the transaction, after the
        // server's other fields were already written: all rolled back.
        (
            json!({"name": "half", "egress": [], "secrets": [{"name": "missing", "destinations": ["x.test"]}]}),
            "/secrets/0/name",
        ),
        (
            json!({"adapter_version_id": uuid::Uuid::now_v7()}),
            "adapter_version_id",
        ),
        (
            json!({"adapter_version_id": "not-a-uuid"}),
            "adapter_version_id",
        ),
    ] {
        let r = patch(&api, &s.key, &s.server, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.problem(), "validation", "{body}");
        assert_eq!(field(&r), expected, "{body}: {:?}", r.body);
    }
    let r = patch(&api, &s.key, &s.server, json!({"colour": "red"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().contains("colour"),
        "{:?}",
        r.body
    );
    let after = api.get(&s.key, &format!("/v1/servers/{}", s.server)).await;
    assert_eq!(after.body, before.body, "a refused change left a trace");

    // A version of another adapter: the tenant's own refpanel.
    let r = api
        .upload(&s.key, "refpanel", "1.0.0", component("shadow-refpanel"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let refpanel = r.body["id"].as_str().unwrap().to_string();
    api.wait_for(&s.key, &format!("/v1/adapters/{refpanel}"), |v| {
        v["status"] == "ready"
    })
    .await;
    let r = patch(
        &api,
        &s.key,
        &s.server,
        json!({"adapter_version_id": refpanel}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("adapter the server runs"),
        "{:?}",
        r.body
    );

    // Names stay unique; another tenant's server does not exist.
    let r = api
        .post(
            &s.key,
            "/v1/servers",
            json!({"name": "second", "adapter_version_id": s.version,
                   "config": {"base_url": s.panel.base_url()}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = patch(&api, &s.key, &s.server, json!({"name": "second"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    let r = patch(&api, &other, &s.server, json!({"name": "mine"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let r = patch(&api, &s.key, "not-a-uuid", json!({})).await;
    assert!(r.status.is_client_error(), "{:?}", r.status);
    // An empty change is a no-op.
    let r = patch(&api, &s.key, &s.server, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, before.body);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_moves_to_another_version_of_its_adapter() {
    let api = Api::start().await;
    let (_, key) = api.tenant("update-d").await;
    let mut versions = Vec::new();
    for (file, v) in [
        ("shadow-refpanel", "1.0.0"),
        ("shadow-refpanel-rebuild", "1.0.1"),
    ] {
        let r = api.upload(&key, "refpanel", v, component(file)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let id = r.body["id"].as_str().unwrap().to_string();
        api.wait_for(&key, &format!("/v1/adapters/{id}"), |v| {
            v["status"] == "ready"
        })
        .await;
        versions.push(id);
    }
    let r = api
        .post(
            &key,
            "/v1/servers",
            json!({"name": "p", "adapter_version_id": versions[0],
                   "config": {"base_url": "http://127.0.0.1:9"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let server = r.body["id"].as_str().unwrap().to_string();
    let r = patch(
        &api,
        &key,
        &server,
        json!({"adapter_version_id": versions[1]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["adapter_version_id"], versions[1].as_str());
    // With a config the version's schema refuses, nothing moves.
    let r = patch(
        &api,
        &key,
        &server,
        json!({"adapter_version_id": versions[0], "config": {"nope": 1}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = api.get(&key, &format!("/v1/servers/{server}")).await;
    assert_eq!(r.body["adapter_version_id"], versions[1].as_str());
    api.shutdown().await;
}
