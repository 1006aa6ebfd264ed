//! Text Postgres cannot store never reaches it: NUL (raw or `\u0000`) and
//! text that is not UTF-8, in a query, a path or anywhere in a JSON body, is
//! refused at the edge with a 422 naming the field — walked over every
//! operation of the OpenAPI document, so a new route is covered the day it
//! is added. No probe may answer 5xx.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const SOME_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

/// Every (method, path template, operation) of the document.
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Ok(m) = Method::from_bytes(method.to_uppercase().as_bytes()) {
                ops.push((m, path.clone(), op.clone()));
            }
        }
    }
    ops
}

fn params<'a>(op: &'a Value, place: &str) -> Vec<&'a str> {
    op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["in"] == place)
                .map(|p| p["name"].as_str().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// The top-level property names of an operation's JSON body, if it has one.
fn body_fields(doc: &Value, op: &Value) -> Option<Vec<String>> {
    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
    let name = schema["$ref"].as_str()?.rsplit('/').next()?;
    let props = doc["components"]["schemas"][name]["properties"].as_object()?;
    Some(props.keys().cloned().collect())
}

/// `template` with every path parameter valid except `bad`, set to `value`.
fn fill(template: &str, bad: Option<(&str, &str)>) -> String {
    let mut path = template.to_string();
    while let Some(start) = path.find('{') {
        let end = path[start..].find('}').unwrap() + start;
        let name = path[start + 1..end].to_string();
        let value = match bad {
            Some((b, v)) if b == name => v.to_string(),
            _ if name == "name" => "some-secret".to_string(),
            _ => SOME_ID.to_string(),
        };
        path.replace_range(start..=end, &value);
    }
    path
}

/// The key that passes the route's coarse authorization.
fn key_for<'a>(path: &str, platform: &'a str, tenant: &'a str) -> &'a str {
    if path.starts_with("/v1/tenants") {
        platform
    } else {
        tenant
    }
}

fn assert_refused(r: &Reply, what: &str, field: &str) {
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{what}: {:?}",
        r.body
    );
    assert_eq!(r.problem(), "validation", "{what}");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no errors in {:?}", r.body))
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&field),
        "{what}: expected field {field:?}, got {fields:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_any_input_of_any_route_is_a_422_naming_the_field() {
    let api = Api::start_with(config(), false).await;
    let (_, tenant) = api.tenant("edge-co").await;
    let doc = api
        .call(Method::GET, "/v1/openapi.json", None, None, &[])
        .await
        .body;
    let mut probes = 0;
    for (method, template, op) in operations(&doc) {
        if op.get("security").is_none() {
            continue; // health and metrics take no input
        }
        let key = Some(key_for(&template, &api.platform_key, &tenant));
        let body = body_fields(&doc, &op).map(|_| json!({}));
        for name in params(&op, "path") {
            for (value, why) in [("a%00b", "NUL"), ("%FF%FE", "not UTF-8")] {
                let path = fill(&template, Some((name, value)));
                let r = api
                    .call(method.clone(), &path, key, body.clone(), &[])
                    .await;
                let what = format!("{method} {path} ({why} in path)");
                if why == "NUL" {
                    assert_refused(&r, &what, name);
                } else {
                    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{what}");
                    assert_eq!(r.problem(), "validation", "{what}");
                }
                probes += 1;
            }
        }
        let valid_path = fill(&template, None);
        for name in params(&op, "query") {
            for (value, why) in [("a%00b", "NUL"), ("%C3", "not UTF-8")] {
                let path = format!("{valid_path}?{name}={value}");
                let r = api
                    .call(method.clone(), &path, key, body.clone(), &[])
                    .await;
                assert_refused(&r, &format!("{method} {path} ({why} in query)"), name);
                probes += 1;
            }
        }
        if !params(&op, "query").is_empty() {
            // A parameter name the route does not even know is refused too.
            let path = format!("{valid_path}?x%00y=1");
            let r = api
                .call(method.clone(), &path, key, body.clone(), &[])
                .await;
            assert_refused(&r, &format!("{method} {path}"), "x\\u{0}y");
            probes += 1;
        }
        if let Some(fields) = body_fields(&doc, &op) {
            for field in fields {
                let bad = json!({ field.clone(): "x\u{0}y" });
                let r = api
                    .call(method.clone(), &valid_path, key, Some(bad), &[])
                    .await;
                let what = format!("{method} {valid_path} (NUL in body field {field})");
                assert_refused(&r, &what, &format!("/{field}"));
                probes += 1;
            }
            // Nested: in a key and in a value, wherever they are.
            let bad = json!({"params": {"k\u{0}": "v", "ok": ["a", {"deep": "\u{0}"}]}});
            let r = api
                .call(method.clone(), &valid_path, key, Some(bad), &[])
                .await;
            let what = format!("{method} {valid_path} (nested NUL)");
            assert_refused(&r, &what, "/params/k\\u{0}");
            assert_refused(&r, &what, "/params/ok/1/deep");
            probes += 1;
        }
    }
    assert!(probes > 80, "only {probes} probes: is the document empty?");
    api.shutdown().await;
}

/// The inputs the attacker found answering 500, one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reported_500s_are_422s() {
    let api = Api::start().await;
    let s = setup(&api, "reported-co", None).await;
    let r = api
        .post(
            &s.key,
            "/v1/services",
            json!({"server_id": s.server, "username": "alice"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let service = r.body["service"]["id"].as_str().unwrap().to_string();
    for (path, field) in [
        ("/v1/services?state=%00".to_string(), "state"),
        ("/v1/tasks?operation=%00".to_string(), "operation"),
        ("/v1/adapters?name=%00".to_string(), "name"),
        ("/v1/events?kind=%00".to_string(), "kind"),
    ] {
        let r = api.get(&s.key, &path).await;
        assert_refused(&r, &path, field);
    }
    let r = api.delete(&s.key, "/v1/secrets/%00").await;
    assert_refused(&r, "DELETE /v1/secrets/%00", "name");
    for (path, body, field) in [
        (
            "/v1/services".to_string(),
            json!({"server_id": s.server, "params": {"k\u{0}": "v"}}),
            "/params/k\\u{0}",
        ),
        (
            "/v1/services".to_string(),
            json!({"server_id": s.server, "params": {"k": "v\u{0}"}}),
            "/params/k",
        ),
        (
            format!("/v1/services/{service}/suspend"),
            json!({"reason": "unpaid\u{0}"}),
            "/reason",
        ),
        (
            format!("/v1/services/{service}/change-password"),
            json!({"password_secret": "api-token\u{0}"}),
            "/password_secret",
        ),
    ] {
        let r = api.post(&s.key, &path, body).await;
        assert_refused(&r, &path, field);
    }
    // Nothing of it was written: the service is still the only one, with
    // only its provision task.
    let tasks = api.get(&s.key, "/v1/tasks").await;
    assert_eq!(tasks.body["items"].as_array().unwrap().len(), 1);
    api.shutdown().await;
}

/// `kind=%00` used to open a stream that retried the failing query every
/// second until the client left; it is refused before any stream starts,
/// and a stream is still served for a good filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_with_a_bad_filter_is_refused_up_front() {
    let api = Api::start_with(config(), false).await;
    let (_, key) = api.tenant("events-co").await;
    let bad = tokio::time::timeout(
        Duration::from_secs(5),
        api.http
            .get(format!("{}/v1/events?kind=task.%00", api.base))
            .bearer_auth(&key)
            .send(),
    )
    .await
    .expect("answered at once, not a stream")
    .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad.headers()["content-type"],
        "application/problem+json",
        "not text/event-stream"
    );
    let good = api
        .http
        .get(format!("{}/v1/events?kind=task.", api.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    assert_eq!(good.headers()["content-type"], "text/event-stream");
    drop(good);
    api.shutdown().await;
}

/// A string Postgres can store (any other control character, any code
/// point) still goes through: the edge refuses only what it must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storable_text_passes_the_edge() {
    let api = Api::start_with(config(), false).await;
    let (_, key) = api.tenant("storable-co").await;
    let r = api
        .post(
            &key,
            "/v1/secrets",
            json!({"name": "tab", "value": "a\tb\u{1}c ünï \u{10FFFF}"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api.get(&key, "/v1/adapters?name=%C3%A9t%C3%A9").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    api.shutdown().await;
}
