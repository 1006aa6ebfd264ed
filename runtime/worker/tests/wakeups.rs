//! How a worker is woken (worker/src/notices.rs, migrations/0026): one
//! LISTEN connection for all its loops, and webhook wake-ups only when
//! deliveries were written, yet every delivery goes out without waiting for
//! the poll, whichever path wrote it.
mod common;

use common::*;
use panel1_store::webhooks::{self, WEBHOOKS_CHANNEL};
use panel1_worker::webhooks::{Reach, WebhookConfig};
use panel1_worker::WorkerConfig;
use serde_json::json;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// Answers every request on 127.0.0.1 with 204 once its body is read.
async fn receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    format!("http://{addr}/hook")
}

/// Polls at a minute, so anything sooner came from a wake-up.
fn slow_polling() -> WorkerConfig {
    WorkerConfig {
        poll_interval: Duration::from_secs(60),
        webhooks: WebhookConfig {
            reach: Reach {
                allow_internal: true,
                allow_http: true,
                timeout: Duration::from_secs(5),
            },
            poll_interval: Duration::from_secs(60),
            ..WebhookConfig::default()
        },
        ..fast()
    }
}

async fn endpoint(env: &Env, url: &str, types: &[&str]) -> Uuid {
    let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    webhooks::create_endpoint(
        &env.pool,
        &env.secret_box,
        env.tenant,
        url,
        "",
        &types,
        None,
    )
    .await
    .unwrap()
    .id
}

async fn delivered(pool: &PgPool, endpoint: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'succeeded'",
    )
    .bind(endpoint)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn wait_delivered(pool: &PgPool, endpoint: Uuid, count: i64, what: &str) {
    let start = std::time::Instant::now();
    while delivered(pool, endpoint).await < count {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: {count} deliveries not made within 10 s with the poll at a minute"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `service.updated` event of `tenant`, as a request's transaction writes one.
async fn service_event(db: impl sqlx::PgExecutor<'_>, tenant: Uuid) {
    sqlx::query(
        "INSERT INTO events (tenant_id, kind, payload) VALUES ($1, 'service.updated', '{}')",
    )
    .bind(tenant)
    .execute(db)
    .await
    .unwrap();
}

/// No webhook wake-up arrives within half a second.
async fn no_wakeup(listener: &mut PgListener, why: &str) {
    let quiet = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    assert!(quiet.is_err(), "{why}: {quiet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_listens_on_one_connection() {
    let env = env(1, 4).await;
    let workers = env.workers(1, slow_polling());
    // Listening connections of this database's backends (the test's own
    // pool listens on none).
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        )
        .fetch_one(&env.pool)
        .await
        .unwrap()
    };
    let start = std::time::Instant::now();
    while count().await < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the worker never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every loop has started and had its chance to open a connection of its own.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count().await,
        1,
        "one LISTEN connection for all of a worker's loops"
    );
    stop(workers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_wakeups_go_out_only_for_deliveries() {
    let env = env(1, 4).await;
    let mut listener = PgListener::connect_with(&env.pool).await.unwrap();
    listener.listen(WEBHOOKS_CHANNEL).await.unwrap();
    // No endpoint: events go out on the event channel only.
    service_event(&env.pool, env.tenant).await;
    no_wakeup(&mut listener, "a webhook wake-up with nothing to deliver").await;
    // An endpoint that takes other kinds only: still nothing.
    endpoint(&env, "http://127.0.0.1:9/", &["backup.*"]).await;
    service_event(&env.pool, env.tenant).await;
    no_wakeup(
        &mut listener,
        "a webhook wake-up for an event no endpoint takes",
    )
    .await;
    // One that takes it: woken at the commit.
    endpoint(&env, "http://127.0.0.1:9/", &["service.*"]).await;
    service_event(&env.pool, env.tenant).await;
    let woke = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await;
    assert!(
        matches!(woke, Ok(Ok(_))),
        "no wake-up for a delivery: {woke:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_go_out_at_once_from_requests_completions_and_redelivery() {
    let env = env(1, 4).await;
    let workers = env.workers(1, slow_polling());
    let url = receiver().await;
    // The worker is listening before anything is announced.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Written by a transaction of the API's kind (the trigger's wake-up).
    let updates = endpoint(&env, &url, &["service.updated"]).await;
    service_event(&env.pool, env.tenant).await;
    wait_delivered(&env.pool, updates, 1, "an event a request wrote").await;

    // Written by a completion, which defers its wake-up past its commit.
    let finished = endpoint(&env, &url, &["task.succeeded"]).await;
    let service = env.service(env.servers[0], "hookuser").await;
    let input = json!({ "service": spec("hookuser") });
    env.enqueue(env.servers[0], Some(service), "provision", input, None)
        .await;
    wait_delivered(&env.pool, finished, 1, "a completion's event").await;

    // Sent again on request.
    let first: i64 = sqlx::query_scalar("SELECT id FROM webhook_deliveries WHERE endpoint_id = $1")
        .bind(finished)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    webhooks::redeliver(&env.pool, env.tenant, finished, first)
        .await
        .unwrap()
        .expect("the delivery exists");
    wait_delivered(&env.pool, finished, 2, "a redelivery").await;
    stop(workers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_held_back_by_an_older_transaction_goes_out_when_it_ends() {
    let env = env(1, 4).await;
    let workers = env.workers(1, slow_polling());
    let url = receiver().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hooked = endpoint(&env, &url, &["service.updated"]).await;
    // An older transaction, still open, of a tenant no endpoint listens to:
    // its commit announces no webhook.
    let other = panel1_store::setup::create_tenant(&env.pool, "quiet-tenant")
        .await
        .unwrap();
    let mut older = env.pool.begin().await.unwrap();
    service_event(&mut *older, other).await;
    // The delivery commits behind it (and announces itself).
    service_event(&env.pool, env.tenant).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        delivered(&env.pool, hooked).await,
        0,
        "sent ahead of an older transaction"
    );
    older.commit().await.unwrap();
    wait_delivered(
        &env.pool,
        hooked,
        1,
        "a delivery an older transaction held back",
    )
    .await;
    stop(workers).await;
}
