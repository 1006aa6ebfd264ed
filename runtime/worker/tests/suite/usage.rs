//! Usage collection (docs/usage.md) through real Postgres, real workers, the
//! real `cpanel.wasm` in the sandbox and the WHM simulator: samples on
//! schedule, spread over the interval, rolled up; one event per limit
//! crossing; a failing collection records nothing and leaves the service
//! alone; many schedulers at once enqueue each occurrence once; retention.

use crate::common::stop;
use crate::whm;
use crate::whm::{Setup, Whm};
use panel1_sims::{Account, Fault, FaultRule};
use panel1_store::setup;
use panel1_store::usage::{self, Retention};
use serde_json::Value;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;

const MIB: f64 = 1024.0 * 1024.0;

/// Events other than the servers' own (health transitions).
const OUR_EVENTS: &str = "SELECT count(*) FROM events WHERE kind NOT LIKE 'server.%'";

/// Active services on `h`'s server for accounts seeded on the simulator
/// (plan `default`: 1024 MB disk, 10 GB bandwidth), as if provisioned.
async fn seed(h: &Whm, users: &[&str]) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for user in users {
        h.sim
            .add_account(Account::new(user, &format!("{user}.example.com")).with_usage(100, 5000))
            .unwrap();
        let id = setup::add_service(&h.pool, h.tenant, h.server, &whm::spec(user))
            .await
            .unwrap();
        sqlx::query("UPDATE services SET state = 'active', remote_id = $2 WHERE id = $1")
            .bind(id)
            .bind(user)
            .execute(&h.pool)
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

async fn wait_until(pool: &PgPool, what: &str, sql: &str, bind: Option<Uuid>, timeout: Duration) {
    let start = Instant::now();
    loop {
        let mut q = sqlx::query_scalar::<_, bool>(sql);
        if let Some(b) = bind {
            q = q.bind(b);
        }
        if q.fetch_one(pool).await.unwrap() {
            return;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn samples(pool: &PgPool, service: Uuid, metric: &str) -> Vec<f64> {
    sqlx::query_scalar(
        "SELECT value FROM usage_samples WHERE service_id = $1 AND metric = $2 ORDER BY at",
    )
    .bind(service)
    .bind(metric)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The occurrence (ms since the epoch) of each usage task of `service`.
async fn occurrences(pool: &PgPool, service: Uuid) -> Vec<i64> {
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT idempotency_key FROM tasks WHERE service_id = $1 AND operation = 'usage' ORDER BY created_at",
    )
    .bind(service)
    .fetch_all(pool)
    .await
    .unwrap();
    keys.iter()
        .map(|k| {
            let rest = k
                .strip_prefix(&format!("panel1:usage:{service}:"))
                .unwrap_or_else(|| panic!("a usage key: {k}"));
            rest.parse().unwrap()
        })
        .collect()
}

/// Each service is sampled once per interval at its own offset (the hash
/// of its id), with the simulator's figures; rollups count every sample;
/// no task event is written and the service row is not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_sampled_each_interval_at_their_own_offset() {
    let h = Whm::start(Setup::default()).await;
    let users = ["ann", "bob", "cid", "dan", "eve", "fay"];
    let ids = seed(&h, &users).await;
    h.sim.set_usage("bob", 300, 123_456).unwrap();
    let before: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT id, updated_at FROM services ORDER BY id")
            .fetch_all(&h.pool)
            .await
            .unwrap();
    let every = 3;
    usage::set_schedule(&h.pool, h.tenant, h.server, every, true)
        .await
        .unwrap()
        .unwrap();
    let workers = h.workers(2);
    wait_until(
        &h.pool,
        "two samples of every service",
        "SELECT count(DISTINCT service_id) = 6 AND min(n) >= 2 FROM (
             SELECT service_id, count(*) AS n FROM usage_samples WHERE metric = 'disk_used' GROUP BY 1) x",
        None,
        Duration::from_secs(40),
    )
    .await;
    stop(workers).await;

    let every_ms = i64::from(every) * 1000;
    for id in &ids {
        let expected: i64 =
            sqlx::query_scalar("SELECT ((hashtextextended($1::text, 0) % $2) + $2) % $2")
                .bind(id)
                .bind(every_ms)
                .fetch_one(&h.pool)
                .await
                .unwrap();
        let occ = occurrences(&h.pool, *id).await;
        assert!(occ.len() >= 2, "{occ:?}");
        for o in &occ {
            assert_eq!(
                o.rem_euclid(every_ms),
                expected,
                "at the service's own offset"
            );
        }
        // One per interval (an occurrence is skipped only while the last
        // one's task is still queued, which a slow first compile can cause).
        for w in occ.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap > 0 && gap % every_ms == 0, "{occ:?}");
        }
    }
    // bob's figures are the simulator's.
    let bob = ids[1];
    assert!(samples(&h.pool, bob, "disk_used")
        .await
        .iter()
        .all(|v| *v == 300.0 * MIB));
    assert!(samples(&h.pool, bob, "bandwidth_used")
        .await
        .iter()
        .all(|v| *v == 123_456.0));
    assert!(samples(&h.pool, bob, "disk_limit")
        .await
        .iter()
        .all(|v| *v == 1024.0 * MIB));
    let units: Vec<String> = sqlx::query_scalar("SELECT DISTINCT unit FROM usage_samples")
        .fetch_all(&h.pool)
        .await
        .unwrap();
    assert_eq!(units, ["bytes"]);

    // Rollups count every sample: per service and metric, the hourly and
    // the daily rows add up to the raw samples.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             SELECT s.service_id, s.metric, count(*) AS raw,
                    (SELECT sum(samples) FROM usage_rollups r WHERE r.service_id = s.service_id
                       AND r.metric = s.metric AND r.width = 'hour') AS hourly,
                    (SELECT sum(samples) FROM usage_rollups r WHERE r.service_id = s.service_id
                       AND r.metric = s.metric AND r.width = 'day') AS daily
             FROM usage_samples s GROUP BY 1, 2) x
         WHERE raw <> hourly OR raw <> daily",
    )
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);

    // Bookkeeping, not the tenant's operations: no task events, services
    // untouched, every usage task succeeded on its first attempt.
    let events: i64 = sqlx::query_scalar(OUR_EVENTS)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(
        events, 0,
        "usage tasks write no events (nothing crossed a limit)"
    );
    let after: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT id, updated_at FROM services ORDER BY id")
            .fetch_all(&h.pool)
            .await
            .unwrap();
    assert_eq!(before, after);
    let odd: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE operation = 'usage' AND state = 'succeeded' AND attempt <> 1",
    )
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(odd, 0);
    assert!(h.sim.request_log().iter().all(|r| r.well_formed()));
    h.assert_nothing_leaked().await;
}

/// Offsets spread a server's services evenly over the interval: 600
/// services over 60 s, every 10-second part of it gets its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_services_are_spread_over_the_interval() {
    let h = Whm::start(Setup::default()).await;
    let ids: Vec<Uuid> = (0..600).map(|_| Uuid::new_v4()).collect();
    let parts: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM unnest($1::uuid[]) AS id
         GROUP BY (((hashtextextended(id::text, 0) % 60000) + 60000) % 60000) / 10000 ORDER BY 1",
    )
    .bind(&ids)
    .fetch_all(&h.pool)
    .await
    .unwrap();
    assert_eq!(parts.len(), 6, "{parts:?}");
    // 100 expected per part, standard deviation about 9.
    assert!(parts.iter().all(|n| (60..=140).contains(n)), "{parts:?}");
}

/// Many workers scheduling at once (each calls schedule_due every second):
/// every occurrence is enqueued once, missed ones collapse into one, and a
/// service with a usage task still queued gets no second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_schedulers_enqueue_each_occurrence_once() {
    let h = Whm::start(Setup::default()).await;
    let users: Vec<String> = (0..300).map(|i| format!("u{i:03}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    seed(&h, &refs).await;
    usage::set_schedule(&h.pool, h.tenant, h.server, 2, true)
        .await
        .unwrap()
        .unwrap();
    // As if nobody had scheduled for a minute: 30 missed occurrences each.
    sqlx::query("UPDATE usage_schedules SET scheduled_until = now() - interval '60 seconds'")
        .execute(&h.pool)
        .await
        .unwrap();
    let passes = (0..8).map(|_| {
        let pool = h.pool.clone();
        tokio::spawn(async move { usage::schedule_due(&pool).await.unwrap() })
    });
    let mut created = 0;
    for p in passes {
        created += p.await.unwrap();
    }
    assert_eq!(created, 300, "one task per service");
    let per_service: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE operation = 'usage' GROUP BY service_id",
    )
    .fetch_all(&h.pool)
    .await
    .unwrap();
    assert_eq!(per_service.len(), 300);
    assert!(per_service.iter().all(|n| *n == 1));
    // Priority below a tenant's operations; keyed; nothing in events.
    let (prio, attempts): (i16, i32) = sqlx::query_as(
        "SELECT max(priority), max(max_attempts) FROM tasks WHERE operation = 'usage'",
    )
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!((prio, attempts), (-10, 3));
    // Three seconds later the next occurrences are due, but the first
    // tasks never ran: nothing new.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(usage::schedule_due(&h.pool).await.unwrap(), 0);
    let events: i64 = sqlx::query_scalar(OUR_EVENTS)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(events, 0);
}

/// Going over the plan's disk quota raises `service.usage_limit_exceeded`
/// once, however many samples stay over; coming back within raises
/// `service.usage_limit_cleared` once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_a_limit_raises_one_event() {
    let h = Whm::start(Setup::default()).await;
    let svc = seed(&h, &["gil"]).await[0];
    usage::set_schedule(&h.pool, h.tenant, h.server, 2, true)
        .await
        .unwrap()
        .unwrap();
    let workers = h.workers(1);
    let n_samples = |n: i64| {
        format!("SELECT count(*) >= {n} FROM usage_samples WHERE service_id = $1 AND metric = 'disk_used'")
    };
    wait_until(
        &h.pool,
        "a sample within the limit",
        &n_samples(1),
        Some(svc),
        Duration::from_secs(20),
    )
    .await;
    h.sim.set_usage("gil", 2000, 5000).unwrap();
    wait_until(
        &h.pool,
        "three samples over the limit",
        "SELECT count(*) >= 3 FROM usage_samples WHERE service_id = $1 AND metric = 'disk_used' AND value > 1500 * 1048576",
        Some(svc),
        Duration::from_secs(30),
    )
    .await;
    h.sim.set_usage("gil", 10, 5000).unwrap();
    wait_until(
        &h.pool,
        "two samples back within",
        "SELECT count(*) >= 2 FROM usage_samples WHERE service_id = $1 AND metric = 'disk_used' AND value < 20 * 1048576",
        Some(svc),
        Duration::from_secs(30),
    )
    .await;
    stop(workers).await;

    let events: Vec<(String, Option<Uuid>, Option<Uuid>, Value)> =
        sqlx::query_as(
            "SELECT kind, service_id, task_id, payload FROM events WHERE kind NOT LIKE 'server.%' ORDER BY id",
        )
            .fetch_all(&h.pool)
            .await
            .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "service.usage_limit_exceeded",
            "service.usage_limit_cleared"
        ],
        "{events:#?}"
    );
    let (_, service, _, payload) = &events[0];
    assert_eq!(*service, Some(svc));
    assert_eq!(payload["metric"], "disk_used");
    assert_eq!(payload["value"].as_f64(), Some(2000.0 * MIB));
    assert_eq!(payload["limit"].as_f64(), Some(1024.0 * MIB));
    assert_eq!(payload["unit"], "bytes");
    assert_eq!(events[1].3["value"].as_f64(), Some(10.0 * MIB));
}

/// A collection that fails (the account is gone: not-found, final at once;
/// a 503 on every try: transient, retried, then failed) writes no sample,
/// no event and leaves the service row as it was; the next interval tries
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_collection_records_nothing_and_leaves_the_service_alone() {
    let h = Whm::start(Setup::default()).await;
    let ids = seed(&h, &["hal", "ida"]).await;
    let (hal, ida) = (ids[0], ids[1]);
    // hal's account disappears behind Panel1's back; every showbw fails.
    sqlx::query("UPDATE services SET remote_id = 'nobody', spec = spec || '{\"username\": \"nobody\"}' WHERE id = $1")
        .bind(hal)
        .execute(&h.pool)
        .await
        .unwrap();
    h.sim
        .inject(FaultRule::next("showbw", Fault::ServerError(503), 1000));
    let before: Vec<(Uuid, String, Option<String>, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as(
            "SELECT id, state::text, failure_reason, updated_at FROM services ORDER BY id",
        )
        .fetch_all(&h.pool)
        .await
        .unwrap();
    usage::set_schedule(&h.pool, h.tenant, h.server, 2, true)
        .await
        .unwrap()
        .unwrap();
    let workers = h.workers(1);
    wait_until(
        &h.pool,
        "ida's first usage task to fail after its retries, hal's two to fail",
        "SELECT (SELECT count(*) FROM tasks WHERE operation = 'usage' AND state = 'failed' AND service_id <> $1) >= 1
            AND (SELECT count(*) FROM tasks WHERE operation = 'usage' AND state = 'failed' AND service_id = $1) >= 2",
        Some(hal),
        Duration::from_secs(40),
    )
    .await;
    stop(workers).await;

    let kinds: Vec<(Uuid, i32, Option<String>)> = sqlx::query_as(
        "SELECT t.service_id, t.attempt, a.error_kind FROM tasks t
         JOIN task_attempts a ON a.task_id = t.id AND a.attempt = t.attempt
         WHERE t.operation = 'usage' AND t.state = 'failed'",
    )
    .fetch_all(&h.pool)
    .await
    .unwrap();
    for (svc, attempt, kind) in &kinds {
        if *svc == hal {
            assert_eq!(
                (*attempt, kind.as_deref()),
                (1, Some("not-found")),
                "final at once"
            );
        } else {
            assert_eq!(
                (*attempt, kind.as_deref()),
                (3, Some("transient")),
                "retried, then failed"
            );
        }
    }
    for svc in [hal, ida] {
        assert!(samples(&h.pool, svc, "disk_used").await.is_empty());
    }
    let rollups: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_rollups")
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(rollups, 0);
    let events: i64 = sqlx::query_scalar(OUR_EVENTS)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(events, 0);
    let after: Vec<(Uuid, String, Option<String>, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT id, state::text, failure_reason, updated_at FROM services ORDER BY id",
    )
    .fetch_all(&h.pool)
    .await
    .unwrap();
    assert_eq!(before, after, "a platform task never moves the service");
}

/// Retention: raw samples older than 31 days, hourly rollups older than
/// 92 days and daily ones older than two years are pruned; newer ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_old_samples_and_rollups() {
    let h = Whm::start(Setup::default()).await;
    let svc = seed(&h, &["jon"]).await[0];
    for age_days in [0, 30, 32, 100, 800] {
        sqlx::query(
            "INSERT INTO usage_samples (tenant_id, server_id, service_id, at, metric, value, unit)
             VALUES ($1, $2, $3, now() - make_interval(days => $4), 'disk_used', $4, 'bytes')",
        )
        .bind(h.tenant)
        .bind(h.server)
        .bind(svc)
        .bind(age_days)
        .execute(&h.pool)
        .await
        .unwrap();
        for width in ["hour", "day"] {
            sqlx::query(
                "INSERT INTO usage_rollups (tenant_id, server_id, service_id, width, bucket, metric, unit,
                                            samples, sum, min, max, last, last_at)
                 VALUES ($1, $2, $3, $5, date_trunc($5, now() - make_interval(days => $4), 'UTC'),
                         'disk_used', 'bytes', 1, $4, $4, $4, $4, now())",
            )
            .bind(h.tenant)
            .bind(h.server)
            .bind(svc)
            .bind(age_days)
            .bind(width)
            .execute(&h.pool)
            .await
            .unwrap();
        }
    }
    assert!(
        usage::upkeep(&h.pool, Duration::ZERO, &Retention::default())
            .await
            .unwrap()
    );
    let raw: Vec<f64> = samples(&h.pool, svc, "disk_used").await;
    assert_eq!(raw, [30.0, 0.0], "raw kept 31 days");
    let hourly: Vec<f64> =
        sqlx::query_scalar("SELECT last FROM usage_rollups WHERE width = 'hour' ORDER BY bucket")
            .fetch_all(&h.pool)
            .await
            .unwrap();
    assert_eq!(hourly, [32.0, 30.0, 0.0], "hourly kept 92 days");
    let daily: Vec<f64> =
        sqlx::query_scalar("SELECT last FROM usage_rollups WHERE width = 'day' ORDER BY bucket")
            .fetch_all(&h.pool)
            .await
            .unwrap();
    assert_eq!(daily, [100.0, 32.0, 30.0, 0.0], "daily kept two years");
    // The upkeep also summed today's rollups per server.
    let total: f64 = sqlx::query_scalar(
        "SELECT total FROM usage_server_rollups WHERE width = 'day' AND bucket = date_trunc('day', now(), 'UTC')",
    )
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(total, 0.0);
    // Another run within the period does nothing.
    assert!(
        !usage::upkeep(&h.pool, Duration::from_secs(60), &Retention::default())
            .await
            .unwrap()
    );
}
