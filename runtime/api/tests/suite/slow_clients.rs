//! Slow clients cannot hold connections: half a header, half a body and an
//! idle keep-alive connection are each closed within their timeout (set
//! small here), trickling bytes does not extend the header deadline, a
//! streaming response is not cut, and past the connection cap new
//! connections wait until one closes. Raw TCP on loopback. One tenant's
//! open streams or compiling uploads are capped so it cannot take what
//! every tenant shares.

use crate::common::*;
use panel1_api::server::ConnectionLimits;
use panel1_api::ApiConfig;
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER: Duration = Duration::from_millis(300);
const BODY: Duration = Duration::from_millis(400);
const IDLE: Duration = Duration::from_millis(500);
/// Slack for the watcher's tick and a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(700);

fn limits(max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: HEADER,
        body_read_timeout: BODY,
        idle_timeout: IDLE,
        max_connections,
    }
}

async fn connect(api: &Api) -> TcpStream {
    TcpStream::connect(api.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Read until the server closes (or `within` passes): what was read, and
/// when the close came.
async fn until_closed(s: &mut TcpStream, within: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&got).into(), Some(start.elapsed()))
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into(), None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_header_is_closed_within_the_header_timeout_even_trickled() {
    let api = Api::start_limited(config(), false, limits(64)).await;
    let mut s = connect(&api).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, closed) = until_closed(&mut s, HEADER + SLACK).await;
    let closed = closed.expect("half a header was not closed");
    assert!(closed + Duration::from_millis(50) >= HEADER, "{closed:?}");

    // One byte every 100 ms (each well inside the idle timeout) does not
    // move the deadline: it runs from the head's first byte.
    let mut s = connect(&api).await;
    let start = Instant::now();
    let trickle = b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_at = None;
    for b in trickle {
        if s.write_all(&[*b]).await.is_err() {
            closed_at = Some(start.elapsed());
            break;
        }
        let (_, c) = until_closed(&mut s, Duration::from_millis(100)).await;
        if c.is_some() {
            closed_at = Some(start.elapsed());
            break;
        }
    }
    let closed_at = closed_at.expect("a trickled header was never closed");
    assert!(closed_at < HEADER + SLACK, "{closed_at:?}");
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_body_gets_408_and_is_closed_within_the_body_timeout() {
    let api = Api::start_limited(config(), false, limits(64)).await;
    let mut s = connect(&api).await;
    let head = format!(
        "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\": \"sl",
        api.platform_key
    );
    let start = Instant::now();
    s.write_all(head.as_bytes()).await.unwrap();
    let (answer, closed) = until_closed(&mut s, BODY + SLACK).await;
    assert!(closed.is_some(), "half a body was not closed: {answer:?}");
    assert!(start.elapsed() + Duration::from_millis(50) >= BODY);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("/problems/body-timeout"), "{answer}");
    // Nothing was created from the half body.
    let r = api.get(&api.platform_key, "/v1/tenants").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0, "{:?}", r.body);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_but_a_stream_in_progress_is_not() {
    let api = Api::start_limited(config(), false, limits(64)).await;
    // Connected, never a byte.
    let mut s = connect(&api).await;
    let (_, closed) = until_closed(&mut s, IDLE + SLACK).await;
    let closed = closed.expect("a silent connection was not closed");
    assert!(closed + Duration::from_millis(50) >= IDLE, "{closed:?}");
    // Kept alive after a request, then idle.
    let mut s = connect(&api).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = until_closed(&mut s, IDLE + SLACK).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        closed.is_some(),
        "an idle keep-alive connection stayed open"
    );

    // An event stream sends nothing for a while: it is a request in
    // progress, not an idle connection.
    let (_, key) = api.tenant("stream-co").await;
    let mut s = connect(&api).await;
    s.write_all(
        format!("GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (answer, closed) = until_closed(&mut s, (IDLE + HEADER) * 3).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("text/event-stream"), "{answer}");
    assert_eq!(closed, None, "the stream was cut: {answer}");
    drop(s);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let mut wide = limits(2);
    wide.idle_timeout = Duration::from_secs(30);
    wide.header_read_timeout = Duration::from_secs(30);
    let api = Api::start_limited(config(), false, wide).await;
    let first = connect(&api).await;
    let _second = connect(&api).await;
    // Let the server take both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect(&api).await; // the kernel's backlog takes it
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let waited = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "the third connection was served past the cap"
    );
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("served once a slot was free")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_may_hold_only_so_many_event_streams_open() {
    let api = Api::start_with(
        ApiConfig {
            max_event_streams_per_tenant: 3,
            ..config()
        },
        false,
    )
    .await;
    let (_, key) = api.tenant("streamer").await;
    let open = |key: String| {
        let http = api.http.clone();
        let url = format!("{}/v1/events", api.base);
        async move { http.get(url).bearer_auth(key).send().await.unwrap() }
    };
    // Held open (the responses are not dropped).
    let mut streams = Vec::new();
    for _ in 0..3 {
        let r = open(key.clone()).await;
        assert_eq!(r.status(), 200);
        streams.push(r);
    }
    let refused = open(key.clone()).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "5");
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/too-many-streams", "{problem}");
    // Another tenant's streams and everyone's other requests go on.
    let (_, other) = api.tenant("neighbour").await;
    assert_eq!(open(other.clone()).await.status(), 200);
    let r = api.get(&key, "/v1/servers").await;
    assert_eq!(r.status, StatusCode::OK);
    drop(streams);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_may_have_only_so_many_uploads_compiling() {
    let api = Api::start_with(
        ApiConfig {
            max_compiles_per_tenant: 1,
            ..config()
        },
        false,
    )
    .await;
    let (flooder_id, flooder) = api.tenant("flooder").await;
    let flooder_id: uuid::Uuid = flooder_id.parse().unwrap();
    // The JS guest takes seconds to compile: its slot is held meanwhile.
    let slow = {
        let (http, base, key) = (api.http.clone(), api.base.clone(), flooder.clone());
        tokio::spawn(async move {
            http.post(format!("{base}/v1/adapters?name=js&version=1.0.0"))
                .bearer_auth(key)
                .header("content-type", "application/wasm")
                .body(component("js-reference"))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.state.compiles.held(flooder_id) == 0 {
        assert!(
            Instant::now() < deadline,
            "the first upload never started compiling"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = api
        .upload(&flooder, "reference", "1.0.0", component("reference"))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        refused.body
    );
    assert_eq!(refused.problem(), "too-many-compiles");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(
        api.state.compiles.held(flooder_id),
        1,
        "the refused upload held no slot"
    );
    // Another tenant's upload compiles while the first is still going.
    let (_, neighbour) = api.tenant("neighbour").await;
    let r = api
        .upload(&neighbour, "reference", "1.0.0", component("reference"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert!(
        !slow.is_finished(),
        "the neighbour was served while the JS guest compiled"
    );
    assert_eq!(slow.await.unwrap(), StatusCode::CREATED);
    // The slot is given back: the refused upload goes through on retry.
    assert_eq!(api.state.compiles.held(flooder_id), 0);
    let r = api
        .upload(&flooder, "reference", "1.0.0", component("reference"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    api.shutdown().await;
}
