//! How a worker is woken (worker/src/notices.rs, migrations/0026): one
//! LISTEN connection for all its loops, and webhook wake-ups only when
//! deliveries were written, yet every delivery goes out without waiting for
//! the poll, whichever path wrote it.

use crate::common::*;
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

/// Index entries read in `webhook_deliveries` so far, this connection's
/// own reads flushed first.
async fn delivery_entries_read(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT sum(idx_tup_read)::int8 FROM pg_stat_user_indexes
          WHERE relname = 'webhook_deliveries'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap()
}

async fn held(pool: &PgPool, endpoint: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND held")
        .bind(endpoint)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn set_enabled(env: &Env, endpoint: Uuid, enabled: bool) {
    let patch = webhooks::EndpointPatch {
        enabled: Some(enabled),
        ..Default::default()
    };
    webhooks::update_endpoint(&env.pool, env.tenant, endpoint, &patch)
        .await
        .unwrap()
        .expect("the endpoint exists");
}

/// `n` `service.updated` events of `tenant` in one statement.
async fn service_events(pool: &PgPool, tenant: Uuid, n: i32) {
    sqlx::query(
        "INSERT INTO events (tenant_id, kind, payload)
         SELECT $1, 'service.updated', jsonb_build_object('n', g) FROM generate_series(1, $2) g",
    )
    .bind(tenant)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_endpoints_backlog_costs_no_claim_and_no_wakeup_until_it_is_enabled() {
    let env = env(1, 4).await;
    let url = receiver().await;
    let hooked = endpoint(&env, &url, &["service.updated"]).await;
    set_enabled(&env, hooked, false).await;
    // What a disabled endpoint collects: a backlog no claim may send.
    service_events(&env.pool, env.tenant, 3000).await;
    let mut conn = env.pool.acquire().await.unwrap();
    let claim = "SELECT count(*) FROM panel1_claim_webhook_deliveries(16, 30)";
    let claimed: i64 = sqlx::query_scalar(claim)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(claimed, 0, "a disabled endpoint's delivery was claimed");
    assert_eq!(held(&env.pool, hooked).await, 3000, "the claim parks them");

    // Parked, they are out of the claim's way: before, every claim read
    // every one of them (3 000 here) to find each queue's head. (Once the
    // entries the park left dead are vacuumed, as autovacuum does.)
    sqlx::raw_sql("VACUUM webhook_deliveries")
        .execute(&mut *conn)
        .await
        .unwrap();
    let before = delivery_entries_read(&mut conn).await;
    for _ in 0..5 {
        sqlx::query_scalar::<_, i64>(claim)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    }
    let read = delivery_entries_read(&mut conn).await - before;
    assert!(
        read < 100,
        "five claims read {read} delivery index entries with only a parked backlog"
    );
    // ...and out of the check after a completion: no wake-up for them.
    let mut listener = PgListener::connect_with(&env.pool).await.unwrap();
    listener.listen(WEBHOOKS_CHANNEL).await.unwrap();
    panel1_store::wake_event_streams(&env.pool).await.unwrap();
    no_wakeup(&mut listener, "a wake-up for a disabled endpoint's backlog").await;
    // The API still shows them as waiting.
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'pending'",
    )
    .bind(hooked)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(pending, 3000);
    drop(conn);

    // Enabled again, the backlog goes out at once (the poll is at a minute)
    // and in order. The test waits for the first 100 of one queue; the
    // rest follow one at a time.
    let workers = env.workers(1, slow_polling());
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_enabled(&env, hooked, true).await;
    assert_eq!(held(&env.pool, hooked).await, 0, "enabling unparks");
    wait_delivered(&env.pool, hooked, 100, "a re-enabled endpoint's backlog").await;
    let out_of_order: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             SELECT event_id < lag(event_id) OVER (ORDER BY finished_at, id) AS back
               FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'succeeded') s
          WHERE back",
    )
    .bind(hooked)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(out_of_order, 0, "the backlog went out of order");
    stop(workers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabling_an_endpoint_while_a_claim_parks_its_deliveries_strands_none() {
    let env = env(1, 4).await;
    let hooked = endpoint(&env, "http://127.0.0.1:9/", &["service.updated"]).await;
    for round in 0..40 {
        set_enabled(&env, hooked, false).await;
        service_events(&env.pool, env.tenant, 50).await;
        let claim = async {
            sqlx::query("SELECT * FROM panel1_claim_webhook_deliveries(0, 30)")
                .execute(&env.pool)
                .await
                .unwrap();
        };
        tokio::join!(claim, set_enabled(&env, hooked, true));
        // Whichever went first, an enabled endpoint has nothing parked.
        assert_eq!(
            held(&env.pool, hooked).await,
            0,
            "round {round}: deliveries left parked for an enabled endpoint"
        );
    }
}
