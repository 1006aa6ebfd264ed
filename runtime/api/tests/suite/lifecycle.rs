//! A service's whole life through the API: create (provision), suspend,
//! unsuspend, terminate, run by a real worker against a fake panel, watched
//! over SSE; tasks with their attempts; secrets never leave in plaintext.

use crate::common::*;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

/// Read SSE events from `resp` until `stop` says so (20 s at most).
async fn read_events(resp: reqwest::Response, stop: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !stop(&events) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no more events; got {events:?}"))
            .expect("stream ended")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut event = json!({});
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    event["sse_id"] = json!(v.trim());
                } else if let Some(v) = line.strip_prefix("event:") {
                    event["sse_event"] = json!(v.trim());
                } else if let Some(v) = line.strip_prefix("data:") {
                    event["data"] = serde_json::from_str(v.trim()).unwrap();
                }
            }
            if event.get("data").is_some() {
                events.push(event);
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_lifecycle_over_the_api_with_live_events() {
    let api = Api::start().await;
    let s = setup(&api, "acme-hosting", None).await;

    let r = api
        .post(
            &s.key,
            "/v1/services",
            json!({"server_id": s.server, "username": "alice", "domain": "alice.test", "plan": "basic"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let service = r.body["service"]["id"].as_str().unwrap().to_string();
    let task = r.body["task"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["service"]["state"], "provisioning");
    assert_eq!(r.body["task"]["operation"], "provision");

    // Live status: the service's events, from its first one.
    let sse = api
        .http
        .get(format!("{}/v1/events?service_id={service}", api.base))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    assert!(sse.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = read_events(sse, |ev| {
        ev.iter().any(|e| e["sse_event"] == "task.succeeded")
    })
    .await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["sse_event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["task.created", "service.updated", "task.succeeded"]);
    assert!(events
        .iter()
        .all(|e| e["data"]["service_id"] == service.as_str()
            || e["data"]["task_id"] == task.as_str()));

    let svc = api.get(&s.key, &format!("/v1/services/{service}")).await;
    assert_eq!(svc.body["state"], "active");
    assert_eq!(svc.body["remote_id"], "alice");

    // The task with its attempt and sandbox metrics.
    let t = api.get(&s.key, &format!("/v1/tasks/{task}")).await;
    assert_eq!(t.status, StatusCode::OK);
    assert_eq!(t.body["state"], "succeeded");
    let attempt = &t.body["attempts"][0];
    assert_eq!(attempt["outcome"], "succeeded");
    assert!(attempt["fuel"].as_i64().unwrap() > 0);
    assert!(attempt["wall_us"].as_i64().unwrap() > 0);
    assert!(attempt["http_requests"].as_i64().unwrap() >= 1);

    // Suspend, unsuspend, terminate; queued in order, run one at a time.
    for (action, body) in [
        ("suspend", json!({"reason": "unpaid"})),
        ("unsuspend", json!({})),
        ("terminate", json!({})),
    ] {
        let r = api
            .post(&s.key, &format!("/v1/services/{service}/{action}"), body)
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{action}: {:?}", r.body);
    }
    let done = api
        .wait_for(&s.key, &format!("/v1/services/{service}"), |v| {
            v["state"] == "terminated"
        })
        .await;
    assert_eq!(done["state"], "terminated");
    assert_eq!(
        s.panel.with(|p| p.timeline["alice"].clone()),
        vec![
            "POST ",
            "POST /alice/suspend",
            "POST /alice/unsuspend",
            "DELETE /alice"
        ]
    );
    // A terminated service accepts no more actions.
    let r = api
        .post(
            &s.key,
            &format!("/v1/services/{service}/suspend"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.problem(), "conflict");

    // Tasks of the service, filtered; all succeeded.
    let list = api
        .get(&s.key, &format!("/v1/tasks?service_id={service}"))
        .await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|t| t["state"] == "succeeded"));

    // Secrets: listed by name only; never in any answer; sealed in the database.
    let secrets = api.get(&s.key, "/v1/secrets").await;
    assert_eq!(secrets.body["items"][0]["name"], "api-token");
    for path in [
        "/v1/secrets".to_string(),
        format!("/v1/servers/{}", s.server),
        format!("/v1/tasks/{task}"),
        format!("/v1/services/{service}"),
        "/v1/tasks".to_string(),
    ] {
        let r = api.get(&s.key, &path).await;
        assert!(
            !r.body.to_string().contains(TOKEN),
            "{path} leaked the token"
        );
    }
    let dump = std::process::Command::new("pg_dump")
        .arg("--data-only")
        // sqlx's own URL parameters mean nothing to libpq.
        .arg(api.db_url.split('?').next().unwrap())
        .output()
        .expect("pg_dump (postgresql-client)");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("api-token"), "the dump has the secret's row");
    assert!(!dump.contains(TOKEN), "plaintext token in pg_dump");
    let token_hex: String = TOKEN.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!dump.contains(&token_hex), "hex token in pg_dump");
    assert!(
        !dump.contains(&api.platform_key[3..]),
        "an API key in pg_dump"
    );

    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_after_last_event_id_and_filter_by_kind() {
    let api = Api::start().await;
    let s = setup(&api, "resume-co", None).await;
    let mut services = Vec::new();
    for user in ["bob", "carol"] {
        let r = api
            .post(
                &s.key,
                "/v1/services",
                json!({"server_id": s.server, "username": user, "domain": format!("{user}.test")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
        services.push(r.body["service"]["id"].as_str().unwrap().to_string());
    }
    for id in &services {
        api.wait_for(&s.key, &format!("/v1/services/{id}"), |v| {
            v["state"] == "active"
        })
        .await;
    }
    // Everything after event 0, only task events.
    let sse = api
        .http
        .get(format!("{}/v1/events?kind=task.&after=0", api.base))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    let all = read_events(sse, |ev| ev.len() >= 4).await;
    assert!(all
        .iter()
        .all(|e| e["sse_event"].as_str().unwrap().starts_with("task.")));
    let ids: Vec<i64> = all
        .iter()
        .map(|e| e["sse_id"].as_str().unwrap().parse().unwrap())
        .collect();
    // Streams deliver in commit-safe (transaction, id) order, not raw id
    // order: no event twice, and each task's events in the order written.
    let mut seen = std::collections::HashSet::new();
    assert!(
        ids.iter().all(|id| seen.insert(*id)),
        "no event twice: {ids:?}"
    );
    for task in all.iter().map(|e| &e["data"]["task_id"]) {
        let mine: Vec<i64> = all
            .iter()
            .zip(&ids)
            .filter(|(e, _)| &e["data"]["task_id"] == task)
            .map(|(_, id)| *id)
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "in order: {mine:?}");
    }

    // Resume after the second: the stream continues with the third.
    let sse = api
        .http
        .get(format!("{}/v1/events?kind=task.", api.base))
        .bearer_auth(&s.key)
        .header("last-event-id", ids[1].to_string())
        .send()
        .await
        .unwrap();
    let resumed = read_events(sse, |ev| ev.len() >= 2).await;
    assert_eq!(resumed[0]["sse_id"], json!(ids[2].to_string()));
    assert_eq!(resumed[1]["sse_id"], json!(ids[3].to_string()));

    // A new event arrives live on an open stream.
    let sse = api
        .http
        .get(format!("{}/v1/events", api.base))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    let r = api
        .post(
            &s.key,
            &format!("/v1/services/{}/suspend", services[0]),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let live = read_events(sse, |ev| {
        ev.iter().any(|e| e["sse_event"] == "task.succeeded")
    })
    .await;
    assert_eq!(live[0]["sse_event"], "task.created");
    assert_eq!(live[0]["data"]["task_id"], r.body["task"]["id"]);

    // Another tenant's stream sees none of it.
    let (_, other) = api.tenant("someone-else").await;
    let sse = api
        .http
        .get(format!("{}/v1/events?after=0", api.base))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    let mut stream = sse.bytes_stream();
    let first = tokio::time::timeout(Duration::from_millis(1500), stream.next()).await;
    if let Ok(Some(Ok(chunk))) = first {
        assert!(
            !String::from_utf8_lossy(&chunk).contains("data:"),
            "another tenant's events leaked"
        );
    }
    api.shutdown().await;
}

/// Ids are taken at insert, but transactions commit in their own order. An
/// event whose transaction commits after a later id's must still reach the
/// stream (read by id alone, the stream had already moved past it), in the
/// order the commits allow, and a stream resumed after it continues with the
/// next.
#[tokio::test]
async fn events_committed_out_of_id_order_are_not_skipped() {
    let api = Api::start_with(config(), false).await;
    let (tenant, key) = api.tenant("commit-order").await;
    let tenant: uuid::Uuid = tenant.parse().unwrap();
    let insert = "INSERT INTO events (tenant_id, kind) VALUES ($1, $2) RETURNING id";
    // The first writer takes the lower id and stays open; the second takes
    // the next id and commits.
    let mut first_tx = api.pool.begin().await.unwrap();
    let first: i64 = sqlx::query_scalar(insert)
        .bind(tenant)
        .bind("test.first")
        .fetch_one(&mut *first_tx)
        .await
        .unwrap();
    let mut second_tx = api.pool.begin().await.unwrap();
    let second: i64 = sqlx::query_scalar(insert)
        .bind(tenant)
        .bind("test.second")
        .fetch_one(&mut *second_tx)
        .await
        .unwrap();
    second_tx.commit().await.unwrap();
    assert!(first < second);

    let sse = api
        .http
        .get(format!("{}/v1/events?kind=test.&after=0", api.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(read_events(sse, |ev| ev.len() >= 2));
    // The stream reads while the first writer is still open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!reader.is_finished(), "nothing settled yet");
    first_tx.commit().await.unwrap();
    let got = reader.await.unwrap();
    let ids: Vec<i64> = got
        .iter()
        .map(|e| e["sse_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, vec![first, second], "both, in commit-safe order");

    let sse = api
        .http
        .get(format!("{}/v1/events?kind=test.", api.base))
        .bearer_auth(&key)
        .header("last-event-id", first.to_string())
        .send()
        .await
        .unwrap();
    let resumed = read_events(sse, |ev| !ev.is_empty()).await;
    assert_eq!(resumed[0]["sse_id"], json!(second.to_string()));
    api.shutdown().await;
}
