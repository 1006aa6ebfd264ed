//! Shadow runs (issue 19) end to end: a server with `record_exchanges` runs
//! real tasks of the `shadow-refpanel` fixture against the fake refpanel on
//! 127.0.0.1 through the in-process worker; the recordings hold no secret;
//! candidates built from the same source (`rebuild`: same behaviour, other
//! bytes; `changed`: one request body and one outcome differ) are replayed
//! by the worker with no network, and promotion follows the reports.

use crate::common::fake_panel::FakePanel;
use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn upload_candidate(api: &Api, key: &str, file: &str, version: &str) -> String {
    let resp = api
        .http
        .post(format!(
            "{}/v1/adapters?name=refpanel&version={version}&candidate=true",
            api.base
        ))
        .bearer_auth(key)
        .header("content-type", "application/wasm")
        .body(component(file))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["candidate"], true, "{body}");
    ready(api, key, body["id"].as_str().unwrap()).await
}

async fn ready(api: &Api, key: &str, id: &str) -> String {
    let v = api
        .wait_for(key, &format!("/v1/adapters/{id}"), |v| {
            v["status"] != "inspecting"
        })
        .await;
    assert_eq!(v["status"], "ready", "{v}");
    id.to_string()
}

async fn service_state(api: &Api, key: &str, id: &str, state: &str) {
    api.wait_for(key, &format!("/v1/services/{id}"), |v| v["state"] == state)
        .await;
}

async fn finished_run(api: &Api, key: &str, version: &str, max: Option<i64>) -> Value {
    let body = max.map_or(json!({}), |n| json!({"max_attempts": n}));
    let r = api
        .post(key, &format!("/v1/adapters/{version}/shadow-runs"), body)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["state"], "pending");
    let run = r.body["id"].as_str().unwrap();
    let path = format!("/v1/adapters/{version}/shadow-runs/{run}");
    api.wait_for(key, &path, |v| {
        v["state"] == "completed" || v["state"] == "failed"
    })
    .await
}

/// Recordings stored so far (the worker writes each after its completion).
async fn recordings(api: &Api, n: i64) -> Vec<(String, String)> {
    let start = Instant::now();
    loop {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT operation, exchanges::text FROM attempt_recordings ORDER BY recorded_at",
        )
        .fetch_all(&api.pool)
        .await
        .unwrap();
        if rows.len() as i64 >= n {
            return rows;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn attempt<'a>(report: &'a Value, operation: &str) -> &'a Value {
    report["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["operation"] == operation)
        .unwrap_or_else(|| panic!("no {operation} attempt in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_are_shadow_run_against_recorded_attempts_and_promoted_by_their_report() {
    let api = Api::start().await;
    let panel = FakePanel::start(TOKEN).await;
    // The panel echoes the credential it received: a recording must not keep it.
    panel.with(|st| st.echo_auth = true);
    let (_, key) = api.tenant("shadow-a").await;
    let r = api
        .upload(&key, "refpanel", "1.0.0", component("shadow-refpanel"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["candidate"], false);
    let current = ready(&api, &key, r.body["id"].as_str().unwrap()).await;
    let r = api
        .post(
            &key,
            "/v1/secrets",
            json!({"name": "api-token", "value": TOKEN}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let server_body = |version: &str| {
        json!({
            "name": format!("panel-{version}"),
            "adapter_version_id": version,
            "config": {"base_url": panel.base_url()},
            "egress": [panel.base_url()],
            "secrets": [{"name": "api-token", "destinations": [format!("127.0.0.1:{}", panel.port)]}],
            "record_exchanges": true,
        })
    };
    let r = api.post(&key, "/v1/servers", server_body(&current)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["record_exchanges"], true);
    let server = r.body["id"].as_str().unwrap().to_string();
    // No health checks: the only requests the panel sees are the tasks'.
    let r = api
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/servers/{server}/health"),
            Some(&key),
            Some(json!({"enabled": false})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // Four real attempts, recorded: test-connection, provision, suspend, unsuspend.
    let r = api
        .post(
            &key,
            &format!("/v1/servers/{server}/test-connection"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let task = r.body["id"]
        .as_str()
        .or(r.body["task"]["id"].as_str())
        .unwrap()
        .to_string();
    api.wait_for(&key, &format!("/v1/tasks/{task}"), |v| {
        v["state"] == "succeeded"
    })
    .await;
    let r = api
        .post(
            &key,
            "/v1/services",
            json!({"server_id": server, "username": "alice", "domain": "alice.test", "plan": "basic"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let svc = r.body["service"]["id"].as_str().unwrap().to_string();
    service_state(&api, &key, &svc, "active").await;
    let r = api
        .post(
            &key,
            &format!("/v1/services/{svc}/suspend"),
            json!({"reason": "unpaid"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    service_state(&api, &key, &svc, "suspended").await;
    let r = api
        .post(&key, &format!("/v1/services/{svc}/unsuspend"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    service_state(&api, &key, &svc, "active").await;

    let rows = recordings(&api, 4).await;
    let ops: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        ops,
        ["test-connection", "provision", "suspend", "unsuspend"]
    );
    for (op, text) in &rows {
        assert!(
            !text.contains(TOKEN),
            "{op}: the secret was recorded: {text}"
        );
        assert!(text.contains("{{secret:api-token}}"), "{op}: {text}");
    }
    // The echoed credential came back in the response, and was kept redacted.
    assert!(rows[0].1.contains("\"status\": 200"), "{}", rows[0].1);

    // A candidate is used by no server before promotion.
    let same = upload_candidate(&api, &key, "shadow-refpanel-rebuild", "1.0.1").await;
    let r = api.post(&key, "/v1/servers", server_body(&same)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(r.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("candidate"));
    let r = api
        .post(&key, &format!("/v1/adapters/{same}/promote"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().contains("no shadow run"),
        "{:?}",
        r.body
    );

    let sent_before = panel.requests().len();
    let clean = finished_run(&api, &key, &same, None).await;
    assert_eq!(clean["state"], "completed", "{clean}");
    assert_eq!(clean["clean"], true, "{clean}");
    let report = &clean["report"];
    assert_eq!(report["totals"]["attempts"], 4, "{report}");
    assert_eq!(report["totals"]["differing_attempts"], 0, "{report}");
    assert_eq!(report["baseline_version_ids"], json!([current]));

    // A candidate's runs are listed newest first, a page at a time, with
    // their totals (the whole report stays on the run itself).
    let again = finished_run(&api, &key, &same, None).await;
    let list = |q: &str| format!("/v1/adapters/{same}/shadow-runs{q}");
    let r = api.get(&key, &list("")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let ids: Vec<&Value> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["id"])
        .collect();
    assert_eq!(ids, [&again["id"], &clean["id"]], "{:?}", r.body);
    assert_eq!(r.body["items"][1]["totals"], clean["report"]["totals"]);
    assert_eq!(r.body["items"][1]["clean"], true);
    assert!(r.body["items"][1].get("report").is_none(), "{:?}", r.body);
    let first = api.get(&key, &list("?limit=1")).await;
    assert_eq!(first.body["items"][0]["id"], again["id"]);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = api
        .get(&key, &list(&format!("?limit=1&cursor={cursor}")))
        .await;
    assert_eq!(rest.body["items"][0]["id"], clean["id"]);
    assert!(rest.body.get("next_cursor").is_none(), "{:?}", rest.body);

    let changed = upload_candidate(&api, &key, "shadow-refpanel-changed", "2.0.0").await;
    let dirty = finished_run(&api, &key, &changed, Some(10)).await;
    assert_eq!(dirty["state"], "completed", "{dirty}");
    assert_eq!(dirty["clean"], false, "{dirty}");
    let report = &dirty["report"];
    assert_eq!(
        report["totals"],
        json!({"attempts": 4, "clean_attempts": 2, "differing_attempts": 2,
               "request_differences": 1, "outcome_differences": 1}),
        "{report}"
    );
    let suspend = attempt(report, "suspend");
    assert_eq!(suspend["outcome"], Value::Null, "{suspend}");
    assert_eq!(
        suspend["requests"],
        json!([{"kind": "body-shape", "method": "POST",
                "url": format!("{}/v1/accounts/alice/suspend", panel.base_url()),
                "changes": ["`/notify_owner` added"]}]),
        "{suspend}"
    );
    let unsuspend = attempt(report, "unsuspend");
    assert_eq!(unsuspend["requests"], json!([]), "{unsuspend}");
    assert_eq!(
        unsuspend["outcome"],
        json!({"recorded": {"status": "ok"},
               "candidate": {"status": "adapter-error", "kind": "permanent"}}),
        "{unsuspend}"
    );
    for op in ["test-connection", "provision"] {
        assert_eq!(attempt(report, op)["clean"], true, "{op}: {report}");
    }
    // Replays never reach the provider.
    assert_eq!(panel.requests().len(), sent_before);

    // Promotion follows the latest report.
    let r = api
        .post(&key, &format!("/v1/adapters/{changed}/promote"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.problem(), "conflict");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("2 of 4 attempts") && detail.contains("accept"),
        "{detail}"
    );
    let r = api
        .post(&key, &format!("/v1/adapters/{same}/promote"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["accepted"], false);
    assert_eq!(r.body["servers"], json!([server]));
    assert_eq!(r.body["version"]["candidate"], false);
    assert!(r.body["version"]["promoted_at"].is_string());
    let s = api.get(&key, &format!("/v1/servers/{server}")).await;
    assert_eq!(s.body["adapter_version_id"], same.as_str());
    // A dirty report may be accepted explicitly.
    let r = api
        .post(
            &key,
            &format!("/v1/adapters/{changed}/promote"),
            json!({"accept": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["accepted"], true);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_shadow_run_requests_are_clear_problems() {
    let api = Api::start().await;
    let (_, key) = api.tenant("shadow-b").await;
    let (_, other) = api.tenant("shadow-c").await;
    let r = api
        .upload(&key, "refpanel", "1.0.0", component("shadow-refpanel"))
        .await;
    let current = ready(&api, &key, r.body["id"].as_str().unwrap()).await;
    let cand = upload_candidate(&api, &key, "shadow-refpanel-rebuild", "1.0.1").await;
    let runs = |v: &str| format!("/v1/adapters/{v}/shadow-runs");
    // Not a candidate; nothing recorded; bad bounds; unknown body field.
    let r = api.post(&key, &runs(&current), json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("not a candidate"));
    let r = api.post(&key, &runs(&cand), json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("nothing to replay"));
    for body in [
        json!({"max_attempts": 0}),
        json!({"max_attempts": 201}),
        json!({"nope": 1}),
    ] {
        let r = api.post(&key, &runs(&cand), body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
    }
    // Another tenant's candidate and runs do not exist for this one.
    let r = api.post(&other, &runs(&cand), json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let r = api
        .post(&other, &format!("/v1/adapters/{cand}/promote"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let r = api
        .get(&other, &format!("{}/{}", runs(&cand), uuid::Uuid::now_v7()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api.get(&other, &runs(&cand)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let r = api.get(&key, &runs(&cand)).await;
    assert_eq!(r.body["items"], json!([]), "{:?}", r.body);
    let r = api.get(&key, &format!("{}?limit=0", runs(&cand))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = api.get(&key, &format!("{}/not-a-uuid", runs(&cand))).await;
    assert!(r.status.is_client_error(), "{:?}", r.status);
    // The platform uploads no candidates.
    let resp = api
        .http
        .post(format!(
            "{}/v1/adapters?name=x&version=1&candidate=true",
            api.base
        ))
        .bearer_auth(&api.platform_key)
        .header("content-type", "application/wasm")
        .body(component("shadow-refpanel"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    api.shutdown().await;
}
