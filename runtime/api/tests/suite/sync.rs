//! Service sync over the REST API, with the in-process worker running the
//! reference adapter against the fake panel: a run started on demand (and
//! not twice), its drift report read with filters and pages, the policy
//! read and set, bad input refused with a problem, another tenant's server
//! and runs a 404, and the routes in the served OpenAPI document.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Create `user` through the API and wait until it is active.
async fn active_service(api: &Api, s: &Setup, user: &str) -> String {
    let r = api
        .post(
            &s.key,
            "/v1/services",
            json!({"server_id": s.server, "username": user, "domain": format!("{user}.test"), "plan": "basic"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let id = r.body["service"]["id"].as_str().unwrap().to_string();
    api.wait_for(&s.key, &format!("/v1/services/{id}"), |v| {
        v["state"] == "active"
    })
    .await;
    id
}

async fn finished_run(api: &Api, key: &str, run: &str) -> Value {
    api.wait_for(key, &format!("/v1/sync-runs/{run}"), |v| {
        v["state"] != "running"
    })
    .await
}

fn kinds(page: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["remote_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_report_over_the_api() {
    let api = Api::start().await;
    let s = setup(&api, "sync-a", None).await;
    let alice = active_service(&api, &s, "alice").await;
    active_service(&api, &s, "bob").await;
    active_service(&api, &s, "carol").await;
    // Behind Panel1's back.
    s.panel.with(|st| {
        st.accounts.get_mut("alice").unwrap()["state"] = json!("suspended");
        st.accounts.get_mut("bob").unwrap()["plan"] = json!("gold");
        st.accounts.remove("carol");
        st.accounts.insert(
            "erin".into(),
            json!({"username": "erin", "domain": "erin.test", "plan": "basic", "state": "active"}),
        );
        // The listing is slow, so the run is still in progress when it
        // is asked for again.
        st.op_delay_ms = 700;
    });
    let path = format!("/v1/servers/{}/sync", s.server);
    let r = api.post(&s.key, &path, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["state"], "running");
    assert_eq!(r.body["trigger"], "request");
    let run = r.body["id"].as_str().unwrap().to_string();
    let again = api.post(&s.key, &path, json!({})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body["id"], run, "runs never overlap on a server");

    let done = finished_run(&api, &s.key, &run).await;
    s.panel.with(|st| st.op_delay_ms = 0);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["remote_accounts"], 3);
    for (field, n) in [
        ("missing_remotely", 1),
        ("unknown_remotely", 1),
        ("state_differs", 1),
        ("plan_differs", 1),
        ("skipped", 0),
        ("adopted", 0),
        ("reapplied", 0),
    ] {
        assert_eq!(done[field], n, "{field}: {done}");
    }

    let drift = format!("/v1/sync-runs/{run}/drift");
    let all = api.get(&s.key, &drift).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(
        kinds(&all.body),
        [
            ("missing_remotely".to_string(), "carol".to_string()),
            ("plan_differs".into(), "bob".into()),
            ("state_differs".into(), "alice".into()),
            ("unknown_remotely".into(), "erin".into()),
        ]
    );
    let states = api
        .get(&s.key, &format!("{drift}?kind=state_differs"))
        .await;
    assert_eq!(states.body["items"].as_array().unwrap().len(), 1);
    let item = &states.body["items"][0];
    assert_eq!(item["service_id"], alice.as_str());
    assert_eq!(
        (item["panel1_state"].as_str(), item["remote_state"].as_str()),
        (Some("active"), Some("suspended"))
    );
    let by_service = api
        .get(&s.key, &format!("{drift}?service_id={alice}"))
        .await;
    assert_eq!(
        kinds(&by_service.body),
        [("state_differs".to_string(), "alice".to_string())]
    );
    // Pages: two of two, then one.
    let first = api.get(&s.key, &format!("{drift}?limit=2")).await;
    let cursor = first.body["next_cursor"].as_i64().expect("a next page");
    let rest = api
        .get(&s.key, &format!("{drift}?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 2);
    assert!(rest.body.get("next_cursor").is_none());

    let runs = api
        .get(
            &s.key,
            &format!("/v1/sync-runs?server_id={}&state=completed", s.server),
        )
        .await;
    assert_eq!(runs.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(runs.body["items"][0]["id"], run.as_str());
    let failed = api.get(&s.key, "/v1/sync-runs?state=failed").await;
    assert!(failed.body["items"].as_array().unwrap().is_empty());

    // The summary event is the tenant's, with the counts.
    let payload: Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE kind = 'server.sync_completed' AND tenant_id = $1::uuid",
    )
    .bind(&s.tenant)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(payload["run_id"], run.as_str());
    assert_eq!(payload["state_differs"], 1);

    // Bad input: a problem, never a 500.
    for (query, field) in [
        ("?kind=bogus", "kind"),
        ("?limit=0", "limit"),
        ("?cursor=abc", "cursor"),
    ] {
        let r = api.get(&s.key, &format!("{drift}{query}")).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {:?}",
            r.body
        );
        assert_eq!(r.problem(), "validation");
        assert!(r.body.to_string().contains(field), "{query}: {}", r.body);
    }
    let r = api.get(&s.key, "/v1/sync-runs?state=sideways").await;
    assert_eq!(
        (r.status, r.problem()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation")
    );
    let r = api
        .post(&s.key, "/v1/servers/not-a-uuid/sync", json!({}))
        .await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    r.problem();
    let r = api
        .get(&s.key, "/v1/sync-runs/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(
        (r.status, r.problem()),
        (StatusCode::NOT_FOUND, "not-found")
    );
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_is_read_and_set_and_other_tenants_see_nothing() {
    let api = Api::start().await;
    let s = setup(&api, "sync-b", None).await;
    let other = setup(&api, "sync-c", Some(s.version.clone())).await;
    let policy = format!("/v1/servers/{}/sync-policy", s.server);

    let r = api.get(&s.key, &policy).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (
            r.body["policy"].as_str(),
            r.body["interval_seconds"].as_i64(),
            r.body["recurring"].as_bool()
        ),
        (Some("report"), Some(86_400), Some(true))
    );

    let put = |body: Value| api.call(Method::PUT, &policy, Some(&s.key), Some(body), &[]);
    let r = put(json!({"policy": "adopt", "interval_seconds": 3600})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["policy"], "adopt");
    assert_eq!(r.body["interval_seconds"], 3600);
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(r.body["next_run_at"].clone()).unwrap();
    assert!(
        next <= chrono::Utc::now() + chrono::Duration::seconds(3601),
        "a shorter interval brings the next run forward"
    );
    assert_eq!(api.get(&s.key, &policy).await.body["policy"], "adopt");

    for (body, field) in [
        (json!({"policy": "delete"}), "policy"),
        (
            json!({"policy": "report", "interval_seconds": 10}),
            "interval_seconds",
        ),
        (
            json!({"policy": "report", "interval_seconds": 99_999_999_999i64}),
            "interval_seconds",
        ),
        (json!({"policy": 5}), "policy"),
        (json!({"policy": "report", "surprise": true}), "surprise"),
        (json!({}), "policy"),
    ] {
        let r = put(body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.problem(), "validation");
        assert!(r.body.to_string().contains(field), "{body}: {}", r.body);
    }
    let r = api
        .call(
            Method::PUT,
            &policy,
            Some(&s.key),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    r.problem();
    assert_eq!(
        api.get(&s.key, &policy).await.body["policy"],
        "adopt",
        "unchanged by the refused ones"
    );

    // A run of the first tenant, then the other tenant tries everything.
    let r = api
        .post(&s.key, &format!("/v1/servers/{}/sync", s.server), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let run = r.body["id"].as_str().unwrap().to_string();
    finished_run(&api, &s.key, &run).await;
    for (method, path) in [
        (Method::POST, format!("/v1/servers/{}/sync", s.server)),
        (Method::GET, policy.clone()),
        (Method::GET, format!("/v1/sync-runs/{run}")),
        (Method::GET, format!("/v1/sync-runs/{run}/drift")),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        let r = api
            .call(method.clone(), &path, Some(&other.key), body, &[])
            .await;
        assert_eq!(
            (r.status, r.problem()),
            (StatusCode::NOT_FOUND, "not-found"),
            "{method} {path}"
        );
    }
    let r = api
        .call(
            Method::PUT,
            &policy,
            Some(&other.key),
            Some(json!({"policy": "reapply"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api.get(&other.key, "/v1/sync-runs").await;
    assert!(r.body["items"].as_array().unwrap().is_empty());
    let r = api
        .get(&other.key, &format!("/v1/sync-runs?server_id={}", s.server))
        .await;
    assert!(r.body["items"].as_array().unwrap().is_empty());
    assert_eq!(api.get(&s.key, &policy).await.body["policy"], "adopt");
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_has_the_sync_routes() {
    let api = Api::start_with(config(), false).await;
    let doc = api
        .call(Method::GET, "/v1/openapi.json", None, None, &[])
        .await
        .body;
    for (path, method) in [
        ("/v1/servers/{id}/sync", "post"),
        ("/v1/servers/{id}/sync-policy", "get"),
        ("/v1/servers/{id}/sync-policy", "put"),
        ("/v1/sync-runs", "get"),
        ("/v1/sync-runs/{id}", "get"),
        ("/v1/sync-runs/{id}/drift", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert_eq!(op["tags"][0], "sync", "{method} {path}");
    }
    for schema in [
        "SyncRun",
        "DriftItem",
        "SyncPolicy",
        "SyncPolicyInput",
        "DriftPage",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    api.shutdown().await;
}
