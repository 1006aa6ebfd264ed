//! The OpenAPI document states what the server does: every error status an
//! operation can answer, and constraints a generated client and a
//! schema-driven fuzzer can rely on — checked here by sending values on
//! both sides of each declared constraint and comparing the server's
//! verdict with the schema's.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn document(api: &Api) -> Value {
    api.call(Method::GET, "/v1/openapi.json", None, None, &[])
        .await
        .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_states_the_errors_it_can_answer() {
    let api = Api::start_with(config(), false).await;
    let doc = document(&api).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            let takes = |place: &str| params.iter().any(|p| p["in"] == place);
            let mut expected = Vec::new();
            if op.get("security").is_some() {
                expected.extend(["401", "403", "429", "503"]);
            }
            if takes("path") {
                expected.extend(["404", "422"]);
            }
            if takes("query") {
                expected.push("422");
            }
            if op.get("requestBody").is_some() {
                expected.extend(["400", "413", "415", "422"]);
            }
            if method == "post" && path.starts_with("/v1/") {
                expected.extend(["409", "413", "422"]);
                assert!(
                    params.iter().any(|p| p["name"] == "Idempotency-Key"),
                    "{method} {path}: no Idempotency-Key header"
                );
            }
            for status in expected {
                let r = responses
                    .get(status)
                    .unwrap_or_else(|| panic!("{method} {path} does not state {status}"));
                assert!(
                    r["content"]["application/problem+json"].is_object(),
                    "{method} {path} {status}: {r}"
                );
                checked += 1;
            }
            // Lists state their page bounds.
            for p in params.iter().filter(|p| p["name"] == "limit") {
                assert_eq!(p["schema"]["minimum"], 1, "{method} {path}");
                assert_eq!(p["schema"]["maximum"], 500, "{method} {path}");
            }
        }
    }
    assert!(checked > 100, "{checked}");
    api.shutdown().await;
}

/// The schema of a component's property.
fn property(doc: &Value, component: &str, name: &str) -> Value {
    let p = doc["components"]["schemas"][component]["properties"][name].clone();
    assert!(p.is_object(), "{component}.{name} not in the document");
    // `Option<String>` fields are `["string", "null"]`: a value is a string.
    p
}

fn schema_accepts(schema: &Value, value: &Value) -> bool {
    jsonschema::validator_for(schema)
        .unwrap_or_else(|e| panic!("{schema}: {e}"))
        .is_valid(value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_constraints_are_the_enforced_ones() {
    let api = Api::start_with(config(), false).await;
    let doc = document(&api).await;
    let (_, key) = api.tenant("schema-co").await;

    // Secret names: the pattern.
    let schema = property(&doc, "NewSecret", "name");
    for name in [
        "a",
        "Api-Token_2.x",
        "-lead",
        "",
        "has space",
        "ünï",
        &"x".repeat(63),
        &"x".repeat(64),
    ] {
        let r = api
            .post(&key, "/v1/secrets", json!({"name": name, "value": "v"}))
            .await;
        assert_eq!(
            r.status.is_success(),
            schema_accepts(&schema, &json!(name)),
            "secret name {name:?}: server {} {:?}",
            r.status,
            r.body
        );
    }
    // Secret values: not empty.
    let schema = property(&doc, "NewSecret", "value");
    for value in ["", "v"] {
        let r = api
            .post(&key, "/v1/secrets", json!({"name": "val", "value": value}))
            .await;
        assert_eq!(
            r.status.is_success(),
            schema_accepts(&schema, &json!(value)),
            "{value:?}"
        );
    }
    // Key names (the same rule as tenant and server names): length, not
    // blank, no control characters; and the scopes.
    let schema = property(&doc, "NewKey", "name");
    for name in [
        "k",
        " padded ",
        "",
        "   ",
        "tab\there",
        "del\u{7f}",
        "c1\u{85}",
        "ünïcødé ✓",
        &"x".repeat(200),
        &"x".repeat(201),
        &"é".repeat(200),
    ] {
        let r = api
            .post(&key, "/v1/keys", json!({"name": name, "scopes": ["read"]}))
            .await;
        assert_eq!(
            r.status.is_success(),
            schema_accepts(&schema, &json!(name)),
            "key name {name:?}: server {} {:?}",
            r.status,
            r.body
        );
    }
    let scopes = doc["components"]["schemas"]["NewKey"]["properties"]["scopes"].clone();
    let mut scopes_schema = scopes.clone();
    if let Some(r) = scopes["items"]["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        scopes_schema["items"] = doc["components"]["schemas"][name].clone();
    }
    for given in [
        json!(["read"]),
        json!([]),
        json!(["platform"]),
        json!(["admin", "write"]),
    ] {
        let r = api
            .post(&key, "/v1/keys", json!({"name": "s", "scopes": given}))
            .await;
        assert_eq!(
            r.status.is_success(),
            schema_accepts(&scopes_schema, &given),
            "scopes {given}: server {} {:?}",
            r.status,
            r.body
        );
    }
    // Query parameters: page bounds and state enums.
    for (path, name, values) in [
        ("/v1/secrets", "limit", vec!["0", "1", "500", "501", "-3"]),
        (
            "/v1/services",
            "state",
            vec!["active", "terminated", "gone", "ACTIVE"],
        ),
        ("/v1/tasks", "state", vec!["failed", "scheduled", "done"]),
    ] {
        let op = &doc["paths"][path]["get"];
        let schema = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone();
        for v in values {
            let r = api.get(&key, &format!("{path}?{name}={v}")).await;
            let typed: Value = v.parse::<i64>().map(Value::from).unwrap_or(json!(v));
            assert_eq!(
                r.status == StatusCode::OK,
                schema_accepts(&schema, &typed),
                "{path}?{name}={v}: server {} {:?}",
                r.status,
                r.body
            );
        }
    }
    // Server limits: at most this build's defaults.
    let fuel = property(&doc, "LimitsInput", "fuel");
    let max = fuel["maximum"].as_u64().expect("fuel states its maximum");
    assert_eq!(max, panel1_sandbox::Limits::default().fuel);
    assert!(schema_accepts(&fuel, &json!(max)) && !schema_accepts(&fuel, &json!(max + 1)));
    api.shutdown().await;
}
