//! A Postgres restart under API traffic: requests that meet the restart
//! (a pooled connection the server cut, the server not accepting yet) get
//! 503 with Retry-After, never 500; a keyed POST retried through the
//! restart takes effect exactly once, and no retry is told "in progress".

use crate::common::*;
use panel1_api::server::ConnectionLimits;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

/// 503 with Retry-After as problem+json, or a success.
fn assert_ok_or_unavailable(r: &Reply, what: &str) {
    if r.status.is_success() {
        return;
    }
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {:?}",
        r.body
    );
    assert_eq!(r.problem(), "unavailable", "{what}");
    assert!(r.headers.contains_key("retry-after"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_answers_503_never_500_and_keyed_retries_take_effect_once() {
    let cluster = panel1_store::testing::TempCluster::start();
    let (pool, url) = panel1_store::testing::fresh_database_on(&cluster.url()).await;
    let api = Api::start_on(
        pool.clone(),
        url,
        config(),
        false,
        ConnectionLimits::default(),
    )
    .await;
    let (_, key) = api.tenant("restart-co").await;
    // Warm the pool: connections the restart will cut.
    for _ in 0..8 {
        assert_eq!(api.get(&key, "/v1/services").await.status, StatusCode::OK);
    }

    // Reads across a restart.
    let mut statuses = Vec::new();
    let reads = async {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            let r = api.get(&key, "/v1/services").await;
            assert_ok_or_unavailable(&r, "GET during the restart");
            statuses.push(r.status.as_u16());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let restart = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokio::task::block_in_place(|| cluster.restart());
    };
    tokio::join!(reads, restart);
    assert!(statuses.contains(&200), "{statuses:?}");

    // A keyed create right after another restart, retried until it lands.
    tokio::task::block_in_place(|| cluster.restart());
    let body = json!({"name": "whm-token", "value": "s3cret-value-123"});
    let headers = [("idempotency-key", "order-77")];
    let start = Instant::now();
    let mut unavailable = 0;
    let answer = loop {
        let r = api
            .call(
                Method::POST,
                "/v1/secrets",
                Some(&key),
                Some(body.clone()),
                &headers,
            )
            .await;
        assert_ok_or_unavailable(&r, "keyed POST after the restart");
        if r.status.is_success() {
            break r;
        }
        unavailable += 1;
        assert!(start.elapsed() < Duration::from_secs(30), "never landed");
    };
    // The replay names the same secret; there is one.
    let again = api
        .call(
            Method::POST,
            "/v1/secrets",
            Some(&key),
            Some(body),
            &headers,
        )
        .await;
    assert_eq!(again.status, answer.status);
    assert_eq!(again.body, answer.body);
    assert!(again.headers.contains_key("idempotent-replayed"));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM secrets WHERE name = 'whm-token'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    eprintln!(
        "reads across the restart: {} ok, {} unavailable; keyed POST: {unavailable} 503s before it landed",
        statuses.iter().filter(|s| **s == 200).count(),
        statuses.iter().filter(|s| **s == 503).count()
    );

    // Down, not restarting: still 503 (after the pool's acquire timeout).
    cluster.pg_ctl(&["stop", "-m", "fast"]);
    let r = api.get(&key, "/v1/services").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.problem(), "unavailable");
    cluster.pg_ctl(&["start", "-w"]);
    api.shutdown().await;
}
