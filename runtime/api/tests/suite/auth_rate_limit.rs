//! Failed authentications are limited per client address: after the limit
//! in a window, the address gets 429 with Retry-After — even with a good
//! key, so guessing on learns nothing — until the window ends. Successful
//! requests do not count.

use crate::common::*;
use reqwest::{Method, StatusCode};
use std::time::{Duration, Instant};

const LIMIT: u32 = 5;
const WINDOW: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_failing_is_refused_for_the_window() {
    let mut cfg = config();
    cfg.auth_failure_limit = LIMIT;
    cfg.auth_failure_window = WINDOW;
    let api = Api::start_with(cfg, false).await;
    let good = api.platform_key.clone();
    // Successes do not count.
    for _ in 0..(LIMIT * 2) {
        assert_eq!(api.get(&good, "/v1/tenants").await.status, StatusCode::OK);
    }
    let wrong = format!("p1_{}", "0".repeat(52));
    let start = Instant::now();
    for i in 0..LIMIT {
        // A wrong key, a malformed one and none at all all count.
        let r = match i % 3 {
            0 => api.get(&wrong, "/v1/tenants").await,
            1 => api.get("not-a-key", "/v1/tenants").await,
            _ => api.call(Method::GET, "/v1/tenants", None, None, &[]).await,
        };
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert_eq!(r.problem(), "unauthorized");
    }
    for key in [wrong.as_str(), good.as_str()] {
        let r = api.get(key, "/v1/tenants").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
        assert_eq!(r.problem(), "rate-limited");
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=WINDOW.as_secs()).contains(&retry), "{retry}");
    }
    // Unauthenticated endpoints are not behind it.
    let r = api.call(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    // The window ends: the good key works again.
    tokio::time::sleep(WINDOW.saturating_sub(start.elapsed()) + Duration::from_millis(200)).await;
    assert_eq!(api.get(&good, "/v1/tenants").await.status, StatusCode::OK);
    let r = api.get(&wrong, "/v1/tenants").await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a new window counts afresh"
    );
    api.shutdown().await;
}
