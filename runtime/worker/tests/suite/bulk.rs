//! Bulk operations through real Postgres, real workers, the real
//! `cpanel.wasm` in the sandbox and the WHM simulator on 127.0.0.1
//! (docs/bulk.md). Services are seeded directly: simulator accounts and
//! active service rows.
//!
//! What is checked: a bulk suspend ends with every service suspended on
//! WHM and in Panel1 and the counts right, never more children running on
//! the server than its cap, progress events at most one a second and one
//! `bulk.completed`; a bulk cancelled halfway leaves the rest untouched and
//! ends `cancelled` with counts that add up; a paused bulk starts nothing
//! until resumed, then finishes.
// The cPanel harness; not every helper of it is used here.
#[allow(dead_code)]
use crate::common::stop;
use crate::whm::{Setup, Whm};
use panel1_sims::{Account, Fault, FaultRule};
use panel1_store::bulk::{self, Control, Created, NewBulk};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

const LIVE: [&str; 3] = ["provisioning", "active", "suspended"];
const WAIT: Duration = Duration::from_secs(90);

/// `n` active services with their WHM accounts (`b000`, `b001`, ...).
async fn seed(h: &Whm, n: usize) -> Vec<(Uuid, String)> {
    let users: Vec<String> = (0..n).map(|i| format!("b{i:03}")).collect();
    for u in &users {
        h.sim
            .add_account(Account::new(u, &format!("{u}.example.com")))
            .unwrap();
    }
    sqlx::query_as(
        "INSERT INTO services (id, tenant_id, server_id, remote_id, plan, spec, state)
         SELECT panel1_uuid_v7(), $1, $2, u, 'default',
                jsonb_build_object('username', u, 'domain', u || '.example.com'), 'active'
         FROM unnest($3::text[]) AS u
         RETURNING id, remote_id",
    )
    .bind(h.tenant)
    .bind(h.server)
    .bind(&users)
    .fetch_all(&h.pool)
    .await
    .unwrap()
}

fn suspend_all(h: &Whm) -> NewBulk {
    NewBulk {
        tenant_id: h.tenant,
        action: "suspend".into(),
        operation: "suspend".into(),
        input: json!({"reason": "bulk test"}),
        selector: json!({"server_id": h.server}),
        service_ids: None,
        server_id: Some(h.server),
        plan: None,
        state: None,
        allowed: LIVE.iter().map(|s| s.to_string()).collect(),
    }
}

async fn create(h: &Whm, new: &NewBulk) -> (Uuid, i32, Value) {
    let mut tx = h.pool.begin().await.unwrap();
    let created = bulk::create(&mut tx, new).await.unwrap();
    tx.commit().await.unwrap();
    match created {
        Created::Bulk { id, total, skipped } => (id, total, skipped),
        other => panic!("no bulk: {other:?}"),
    }
}

async fn get(h: &Whm, id: Uuid) -> bulk::Bulk {
    let mut conn = h.pool.acquire().await.unwrap();
    bulk::get(&mut conn, h.tenant, id).await.unwrap().unwrap()
}

async fn control(h: &Whm, id: Uuid, what: Control) -> String {
    let mut conn = h.pool.acquire().await.unwrap();
    bulk::control(&mut conn, h.tenant, id, what)
        .await
        .unwrap()
        .unwrap()
}

/// Wait until the bulk is finished (the upkeep saw its last child end).
async fn finished(h: &Whm, id: Uuid) -> bulk::Bulk {
    let start = Instant::now();
    loop {
        let b = get(h, id).await;
        if b.finished_at.is_some() {
            return b;
        }
        assert!(start.elapsed() < WAIT, "bulk not finished: {b:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for(h: &Whm, id: Uuid, what: &str, ok: impl Fn(&bulk::Bulk) -> bool) -> bulk::Bulk {
    let start = Instant::now();
    loop {
        let b = get(h, id).await;
        if ok(&b) {
            return b;
        }
        assert!(start.elapsed() < WAIT, "waiting for {what}: {b:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn service_states(h: &Whm) -> Vec<(Uuid, String, String)> {
    sqlx::query_as(
        "SELECT id, remote_id, state::text FROM services WHERE remote_id IS NOT NULL ORDER BY remote_id",
    )
    .fetch_all(&h.pool)
    .await
    .unwrap()
}

fn suspended_on_whm(h: &Whm) -> BTreeSet<String> {
    h.sim
        .accounts()
        .into_iter()
        .filter(|a| a.suspended)
        .map(|a| a.user)
        .collect()
}

/// The bulk's events of `kind`: (payload, seconds since the first event).
async fn events(h: &Whm, id: Uuid, kind: &str) -> Vec<(Value, f64)> {
    sqlx::query_as(
        "SELECT payload, extract(epoch FROM created_at)::float8 FROM events
         WHERE tenant_id = $1 AND kind = $2 AND payload->>'bulk_id' = $3::text ORDER BY id",
    )
    .bind(h.tenant)
    .bind(kind)
    .bind(id)
    .fetch_all(&h.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_suspend_suspends_every_service_under_the_cap_with_progress_events() {
    let h = Whm::start(Setup::default()).await;
    let n = 60;
    let seeded = seed(&h, n).await;
    // One more, already terminated: selected by the server filter, skipped.
    let gone = h.service("gone").await;
    sqlx::query("UPDATE services SET state = 'terminated' WHERE id = $1")
        .bind(gone)
        .execute(&h.pool)
        .await
        .unwrap();
    // Slow enough that the cap is what limits concurrency.
    h.sim.inject(FaultRule::next(
        "suspendacct",
        Fault::Slow(Duration::from_millis(40)),
        1000,
    ));
    let (id, total, skipped) = create(&h, &suspend_all(&h)).await;
    assert_eq!(total, n as i32);
    assert_eq!(skipped.as_array().unwrap().len(), 1, "{skipped}");
    assert_eq!(skipped[0]["service_id"], json!(gone));
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("terminated"),
        "{skipped}"
    );

    let workers = h.workers(2);
    // Sample the server's running children until the bulk ends.
    let mut peak = 0i64;
    let start = Instant::now();
    let done = loop {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM task_queue WHERE server_id = $1 AND state = 'running'",
        )
        .bind(h.server)
        .fetch_one(&h.pool)
        .await
        .unwrap();
        peak = peak.max(running);
        let b = get(&h, id).await;
        if b.finished_at.is_some() {
            break b;
        }
        assert!(start.elapsed() < WAIT, "bulk not finished: {b:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    stop(workers).await;

    assert!(
        peak <= 4,
        "{peak} children ran at once on a server capped at 4"
    );
    assert!(
        peak >= 2,
        "the children ran one at a time ({peak}): not a real test of the cap"
    );
    assert_eq!(done.state, "completed");
    assert_eq!(
        (
            done.total,
            done.succeeded,
            done.failed,
            done.cancelled,
            done.running,
            done.waiting
        ),
        (n as i32, n as i32, 0, 0, 0, 0)
    );
    let users: BTreeSet<String> = seeded.iter().map(|s| s.1.clone()).collect();
    assert_eq!(suspended_on_whm(&h), users);
    for (svc, user, state) in service_states(&h).await {
        if svc != gone {
            assert_eq!(state, "suspended", "{user}");
        }
    }
    let reason: Vec<String> = h
        .sim
        .accounts()
        .into_iter()
        .filter_map(|a| a.suspend_reason)
        .collect();
    assert!(reason.iter().all(|r| r == "bulk test"), "{reason:?}");

    // Progress: at most one event a second, counts never going back, and
    // exactly one completion carrying the final counts.
    let progress = events(&h, id, "bulk.progress").await;
    assert!(!progress.is_empty());
    for w in progress.windows(2) {
        assert!(
            w[1].1 - w[0].1 >= 0.999,
            "two progress events {:.3} s apart",
            w[1].1 - w[0].1
        );
        assert!(w[1].0["succeeded"].as_i64() >= w[0].0["succeeded"].as_i64());
    }
    let completed = events(&h, id, "bulk.completed").await;
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].0["succeeded"], json!(n));
    assert_eq!(completed[0].0["state"], json!("completed"));
    // Each child is an ordinary task: created, succeeded, moved its service.
    let (created, succeeded, moved): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE kind = 'task.created'),
                count(*) FILTER (WHERE kind = 'task.succeeded'),
                count(*) FILTER (WHERE kind = 'service.updated')
         FROM events WHERE tenant_id = $1",
    )
    .bind(h.tenant)
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!((created, succeeded, moved), (n as i64, n as i64, n as i64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_cancelled_halfway_leaves_the_rest_untouched() {
    let h = Whm::start(Setup::default()).await;
    let n = 40;
    seed(&h, n).await;
    h.sim.inject(FaultRule::next(
        "suspendacct",
        Fault::Slow(Duration::from_millis(150)),
        1000,
    ));
    let (id, _, _) = create(&h, &suspend_all(&h)).await;
    let workers = h.workers(2);
    wait_for(&h, id, "a quarter done", |b| b.succeeded >= 10).await;
    assert_eq!(control(&h, id, Control::Cancel).await, "cancelled");
    // Cancel again: the same answer, nothing more.
    assert_eq!(control(&h, id, Control::Cancel).await, "cancelled");
    let done = finished(&h, id).await;
    // Nothing left that could still start.
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop(workers).await;

    assert_eq!(done.state, "cancelled");
    assert_eq!(done.running + done.waiting, 0);
    assert_eq!(done.succeeded + done.failed + done.cancelled, n as i32);
    assert!(done.cancelled >= 10, "{done:?}");
    assert!(done.succeeded >= 10 && done.failed == 0, "{done:?}");

    // Exactly the succeeded children's services were suspended, on WHM and
    // in Panel1; the cancelled ones' are untouched.
    let by_task: Vec<(String, String)> = sqlx::query_as(
        "SELECT s.remote_id, t.state::text FROM bulk_tasks b
         JOIN tasks t ON t.id = b.task_id JOIN services s ON s.id = b.service_id
         WHERE b.bulk_id = $1",
    )
    .bind(id)
    .fetch_all(&h.pool)
    .await
    .unwrap();
    let succeeded: BTreeSet<String> = by_task
        .iter()
        .filter(|(_, st)| st == "succeeded")
        .map(|(u, _)| u.clone())
        .collect();
    assert_eq!(succeeded.len(), done.succeeded as usize);
    assert_eq!(suspended_on_whm(&h), succeeded);
    for (_, user, state) in service_states(&h).await {
        let expect = if succeeded.contains(&user) {
            "suspended"
        } else {
            "active"
        };
        assert_eq!(state, expect, "{user}");
    }
    let final_counts = events(&h, id, "bulk.completed").await;
    assert_eq!(final_counts.len(), 1);
    assert_eq!(final_counts[0].0["cancelled"], json!(done.cancelled));
    assert_eq!(final_counts[0].0["state"], json!("cancelled"));
    // A cancelled bulk cannot be resumed or paused.
    assert_eq!(control(&h, id, Control::Resume).await, "cancelled");
    assert!(!Control::Resume.took_effect("cancelled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_bulk_starts_nothing_until_resumed() {
    let h = Whm::start(Setup::default()).await;
    let n = 30;
    seed(&h, n).await;
    h.sim.inject(FaultRule::next(
        "suspendacct",
        Fault::Slow(Duration::from_millis(100)),
        1000,
    ));
    let (id, _, _) = create(&h, &suspend_all(&h)).await;
    let workers = h.workers(2);
    wait_for(&h, id, "some done", |b| b.succeeded >= 5).await;
    assert_eq!(control(&h, id, Control::Pause).await, "paused");
    // Running children finish; nothing else starts.
    let held = wait_for(&h, id, "running ones finished", |b| b.running == 0).await;
    let whm_then = suspended_on_whm(&h).len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = get(&h, id).await;
    assert_eq!(later.state, "paused");
    assert_eq!(
        (later.succeeded, later.running, later.waiting),
        (held.succeeded, 0, n as i32 - held.succeeded),
        "a paused bulk started children"
    );
    assert!(
        later.waiting > 0,
        "everything finished before the pause took hold"
    );
    assert_eq!(suspended_on_whm(&h).len(), whm_then);
    // The waiting children read as held.
    let held_tasks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bulk_tasks b JOIN tasks t ON t.id = b.task_id
         WHERE b.bulk_id = $1 AND t.state = 'scheduled' AND t.run_at > now() + interval '1000 years'",
    )
    .bind(id)
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(held_tasks, later.waiting as i64);

    assert_eq!(control(&h, id, Control::Resume).await, "running");
    let done = finished(&h, id).await;
    stop(workers).await;
    assert_eq!(done.state, "completed");
    assert_eq!(
        (done.succeeded, done.failed, done.cancelled),
        (n as i32, 0, 0)
    );
    assert_eq!(suspended_on_whm(&h).len(), n);
    assert_eq!(events(&h, id, "bulk.paused").await.len(), 1);
    assert_eq!(events(&h, id, "bulk.resumed").await.len(), 1);
    // A completed bulk cannot be paused.
    assert_eq!(control(&h, id, Control::Pause).await, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selection_is_the_tenants_own_and_refuses_after_a_terminate() {
    let h = Whm::start(Setup::default()).await;
    let seeded = seed(&h, 3).await;
    // A terminate queued on the first, and its state back to `active` (as
    // an earlier operation's completion can leave it): the state alone would
    // allow a suspend, the terminate rule does not.
    h.enqueue(seeded[0].0, "terminate", json!({})).await;
    sqlx::query("UPDATE services SET state = 'active' WHERE id = $1")
        .bind(seeded[0].0)
        .execute(&h.pool)
        .await
        .unwrap();
    let mut new = suspend_all(&h);
    new.service_ids = Some(seeded.iter().map(|s| s.0).collect());
    new.server_id = None;
    let (id, total, skipped) = create(&h, &new).await;
    assert_eq!(total, 2);
    assert_eq!(skipped[0]["service_id"], json!(seeded[0].0));
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("nothing is accepted after a terminate"),
        "{skipped}"
    );
    // Another tenant sees none of it and selects none of these services.
    let other = panel1_store::setup::create_tenant(&h.pool, "other")
        .await
        .unwrap();
    let mut conn = h.pool.acquire().await.unwrap();
    assert!(bulk::get(&mut conn, other, id).await.unwrap().is_none());
    assert!(bulk::control(&mut conn, other, id, Control::Cancel)
        .await
        .unwrap()
        .is_none());
    let mut theirs = new.clone();
    theirs.tenant_id = other;
    assert_eq!(
        bulk::create(&mut conn, &theirs).await.unwrap(),
        Created::Missing(seeded.iter().map(|s| s.0).collect())
    );
    theirs.service_ids = None;
    theirs.server_id = Some(h.server);
    assert_eq!(
        bulk::create(&mut conn, &theirs).await.unwrap(),
        Created::NoneMatched
    );
    // Over the cap: nothing written.
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM task_records")
        .fetch_one(&h.pool)
        .await
        .unwrap();
    let mut all = suspend_all(&h);
    all.server_id = None;
    assert_eq!(
        bulk::create_capped(&mut conn, &all, 2).await.unwrap(),
        Created::TooMany(3)
    );
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM task_records")
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(before, after);
}
