//! The usage API (docs/usage.md) over real HTTP: a service provisioned
//! through the API, sampled by the in-process worker from the fake panel
//! (the reference adapter's `usage`), read back raw, rolled up, in buckets
//! of seconds and as CSV; the server's and tenant's aggregates; schedules;
//! another tenant sees none of it; bad input is a 400 problem, never a 500.

use crate::common::*;
use chrono::{Duration as Span, SecondsFormat, Utc};
use panel1_store::usage::{self, Retention};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const DISK: f64 = 1_048_576.0;
const BANDWIDTH: f64 = 2_097_152.0;

fn at(offset: Span) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `from` an hour ago `to` a minute ahead, plus `extra` (URL-encoded).
fn range(extra: &str) -> String {
    let enc = |s: String| s.replace('+', "%2B");
    format!(
        "from={}&to={}{extra}",
        enc(at(-Span::hours(1))),
        enc(at(Span::minutes(1)))
    )
}

fn series<'a>(body: &'a Value, metric: &str) -> &'a Value {
    body["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metric"] == metric)
        .unwrap_or_else(|| panic!("no {metric} series in {body:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_collected_and_read_back_within_the_tenant() {
    let api = Api::start().await;
    let a = setup(&api, "usage-a", None).await;
    let b = setup(&api, "usage-b", Some(a.version.clone())).await;
    let r = api
        .post(
            &a.key,
            "/v1/services",
            json!({"server_id": a.server, "username": "alice", "domain": "alice.test", "plan": "basic"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let svc = r.body["service"]["id"].as_str().unwrap().to_string();
    api.wait_for(&a.key, &format!("/v1/services/{svc}"), |v| {
        v["state"] == "active"
    })
    .await;

    // The schedule: one hour by default; 60 s is the API's minimum.
    let path = format!("/v1/servers/{}/usage-schedule", a.server);
    let r = api.get(&a.key, &path).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["interval_seconds"], 3600);
    let put = |body: Value| api.call(Method::PUT, &path, Some(&a.key), Some(body), &[]);
    let r = put(json!({"interval_seconds": 30})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = put(json!({"interval_seconds": 60})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({"server_id": a.server, "interval_seconds": 60, "enabled": true})
    );
    // Tests go faster through the store.
    let tenant_a = a.tenant.parse().unwrap();
    usage::set_schedule(&api.pool, tenant_a, a.server.parse().unwrap(), 2, true)
        .await
        .unwrap()
        .unwrap();
    let start = Instant::now();
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM usage_samples WHERE metric = 'disk_used'")
                .fetch_one(&api.pool)
                .await
                .unwrap();
        if n >= 3 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "3 samples");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Freeze the series: no more collection while reading.
    usage::set_schedule(&api.pool, tenant_a, a.server.parse().unwrap(), 2, false)
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM task_queue")
            .fetch_one(&api.pool)
            .await
            .unwrap();
        if queued == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "usage tasks finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let raw_count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM usage_samples WHERE metric = 'disk_used'")
            .fetch_one(&api.pool)
            .await
            .unwrap();

    // Raw.
    let base = format!("/v1/services/{svc}/usage");
    let r = api
        .get(&a.key, &format!("{base}?{}", range("&step=raw")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["step"], "raw");
    let disk = series(&r.body, "disk_used");
    assert_eq!(disk["unit"], "bytes");
    let points = disk["points"].as_array().unwrap();
    assert_eq!(points.len() as i64, raw_count);
    assert!(points.iter().all(|p| p["avg"] == DISK && p["samples"] == 1));
    let bw = series(&r.body, "bandwidth_used");
    assert!(bw["points"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["last"] == BANDWIDTH));

    // Hourly rollups: every sample counted.
    let r = api
        .get(&a.key, &format!("{base}?{}", range("&step=hour")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let points = series(&r.body, "disk_used")["points"]
        .as_array()
        .unwrap()
        .clone();
    let counted: i64 = points.iter().map(|p| p["samples"].as_i64().unwrap()).sum();
    assert_eq!(counted, raw_count);
    assert!(points.iter().all(|p| p["min"] == DISK && p["max"] == DISK));
    // Daily, and buckets of 60 s over the raw samples, filtered to one metric.
    let r = api
        .get(&a.key, &format!("{base}?{}", range("&step=day")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = api
        .get(
            &a.key,
            &format!("{base}?{}", range("&step=60&metric=disk_used")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["series"].as_array().unwrap().len(), 1);
    let points = series(&r.body, "disk_used")["points"].as_array().unwrap();
    let counted: i64 = points.iter().map(|p| p["samples"].as_i64().unwrap()).sum();
    assert_eq!(counted, raw_count);

    // CSV, by parameter or by Accept.
    for (query, headers) in [
        (range("&step=raw&format=csv"), vec![]),
        (range("&step=raw"), vec![("accept", "text/csv")]),
    ] {
        let r = api
            .call(
                Method::GET,
                &format!("{base}?{query}"),
                Some(&a.key),
                None,
                &headers,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.content_type().starts_with("text/csv"),
            "{}",
            r.content_type()
        );
        let text = r.body.as_str().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "metric,unit,at,avg,min,max,last,samples");
        let disk_lines: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with("disk_used,"))
            .collect();
        assert_eq!(disk_lines.len() as i64, raw_count);
        assert!(
            disk_lines[0].ends_with(",1048576,1048576,1048576,1048576,1"),
            "{}",
            disk_lines[0]
        );
    }

    // The server's and the tenant's aggregates (the upkeep refreshes them
    // once a minute; here at once).
    assert!(
        usage::upkeep(&api.pool, Duration::ZERO, &Retention::default())
            .await
            .unwrap()
    );
    let r = api
        .get(
            &a.key,
            &format!("/v1/servers/{}/usage?{}", a.server, range("&step=hour")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let p = &series(&r.body, "disk_used")["points"][0];
    assert_eq!(
        (p["total"].as_f64(), p["services"].as_i64()),
        (Some(DISK), Some(1))
    );
    let r = api
        .get(&a.key, &format!("/v1/usage?{}", range("&step=day")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        series(&r.body, "bandwidth_used")["points"][0]["total"],
        BANDWIDTH
    );
    let r = api
        .get(
            &a.key,
            &format!("/v1/usage?{}", range("&step=day&format=csv")),
        )
        .await;
    assert!(r
        .body
        .as_str()
        .unwrap()
        .starts_with("metric,unit,at,total,max,services\r\n"));

    // Another tenant: 404s, and nothing of A's in its own aggregates.
    for path in [
        format!("{base}?step=raw"),
        format!("/v1/servers/{}/usage", a.server),
        format!("/v1/servers/{}/usage-schedule", a.server),
    ] {
        let r = api.get(&b.key, &path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {:?}", r.body);
        assert_eq!(r.problem(), "not-found");
    }
    let r = api
        .call(
            Method::PUT,
            &format!("/v1/servers/{}/usage-schedule", a.server),
            Some(&b.key),
            Some(json!({"interval_seconds": 60})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .get(&b.key, &format!("/v1/usage?{}", range("&step=hour")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["series"], json!([]));
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_queries_are_400_problems() {
    let api = Api::start().await;
    let a = setup(&api, "usage-bad", None).await;
    let r = api
        .post(
            &a.key,
            "/v1/services",
            json!({"server_id": a.server, "username": "bob", "domain": "bob.test"}),
        )
        .await;
    let svc = r.body["service"]["id"].as_str().unwrap().to_string();
    let service = format!("/v1/services/{svc}/usage");
    let server = format!("/v1/servers/{}/usage", a.server);
    let cases = [
        format!("{service}?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
        format!("{service}?from=yesterday"),
        format!("{service}?to=2026-13-01T00:00:00Z"),
        format!("{service}?step=week"),
        format!("{service}?step=59"),
        format!("{service}?step=99999999999999999999999"),
        format!("{service}?from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&step=hour"),
        format!("{service}?metric=disk%20used"),
        format!("{service}?format=xml"),
        format!("{server}?step=raw"),
        format!("{server}?step=300"),
        "/v1/usage?step=raw".to_string(),
        "/v1/usage?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&step=day".to_string(),
    ];
    for path in cases {
        let r = api.get(&a.key, &path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {:?}", r.body);
        assert_eq!(r.problem(), "bad-request", "{path}");
        assert!(
            !r.body["detail"].as_str().unwrap_or("").is_empty(),
            "{path}: {:?}",
            r.body
        );
    }
    // Far but valid ranges answer (empty), never a 500.
    for path in [
        format!("{service}?from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z&step=raw"),
        format!("{service}?from=9999-12-30T00:00:00Z&to=9999-12-31T00:00:00Z&step=hour"),
        "/v1/usage?from=0001-01-01T00:00:00Z&to=0002-01-01T00:00:00Z&step=day".to_string(),
    ] {
        let r = api.get(&a.key, &path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
        assert_eq!(r.body["series"], json!([]));
    }
    let r = api
        .get(
            &a.key,
            &format!("/v1/services/{}/usage", uuid::Uuid::new_v4()),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The OpenAPI document has them.
    let doc = api
        .call(Method::GET, "/v1/openapi.json", None, None, &[])
        .await
        .body;
    for p in [
        "/v1/services/{id}/usage",
        "/v1/servers/{id}/usage",
        "/v1/usage",
        "/v1/servers/{id}/usage-schedule",
    ] {
        assert!(doc["paths"][p]["get"].is_object(), "{p}");
    }
    assert!(
        doc["paths"]["/v1/services/{id}/usage"]["get"]["responses"]["200"]["content"]["text/csv"]
            .is_object()
    );
    api.shutdown().await;
}
