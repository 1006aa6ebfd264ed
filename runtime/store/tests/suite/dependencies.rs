//! Task dependencies (migrations/0020) against a real Postgres: a waiting
//! task is taken by no claim path (fresh claims, the single and batched
//! completions' hand-offs, promotion) until everything it waits on has
//! succeeded; a dependency that fails or is cancelled settles its waiters
//! (and theirs) instead of leaving them parked; a waiter's own run_at still
//! holds once released; dependencies already finished at creation count.
use chrono::{Duration as ChronoDuration, Utc};
use panel1_store::dependencies::{enqueue_after, is_waiting, wait_on, Waiting};
use panel1_store::{
    claim, complete_and_claim, promote_due, testing, AttemptRecord, ClaimedTask, Handoff, NewTask,
    StoreError, TaskOutcome,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(60);

fn task(tenant: Uuid, server: Uuid, n: i64) -> NewTask {
    NewTask::new(tenant, server, None, "info", json!({ "n": n }))
}

async fn enqueue(pool: &PgPool, t: NewTask) -> Uuid {
    let mut conn = pool.acquire().await.unwrap();
    panel1_store::enqueue(&mut conn, &t).await.unwrap().0
}

async fn enqueue_waiting(pool: &PgPool, t: NewTask, deps: &[Uuid]) -> (Uuid, Waiting) {
    let mut tx = pool.begin().await.unwrap();
    let r = enqueue_after(&mut tx, &t, deps).await.unwrap();
    tx.commit().await.unwrap();
    r
}

fn ok() -> TaskOutcome {
    TaskOutcome::Succeeded { result: json!({}) }
}

fn permanent() -> TaskOutcome {
    TaskOutcome::AdapterError {
        kind: "permanent".into(),
        message: "no".into(),
        retry_after_ms: None,
    }
}

fn handoff() -> Option<Handoff<'static>> {
    Some(Handoff {
        limit: 8,
        worker: "w",
        lease_ttl: LEASE,
    })
}

async fn finish(
    pool: &PgPool,
    items: &[(&ClaimedTask, TaskOutcome)],
    with_handoff: bool,
) -> Vec<ClaimedTask> {
    let items: Vec<_> = items
        .iter()
        .map(|(t, o)| ((*t).clone(), o.clone(), AttemptRecord::default()))
        .collect();
    let h = if with_handoff { handoff() } else { None };
    complete_and_claim(pool, &items, h).await.unwrap().1
}

fn by_n(tasks: &[ClaimedTask], n: i64) -> &ClaimedTask {
    tasks
        .iter()
        .find(|t| t.input["n"] == json!(n))
        .unwrap_or_else(|| panic!("task {n} not among {:?}", ids(tasks)))
}

fn ids(tasks: &[ClaimedTask]) -> Vec<Value> {
    tasks.iter().map(|t| t.input["n"].clone()).collect()
}

async fn state_of(pool: &PgPool, id: Uuid) -> (String, Option<Value>) {
    sqlx::query_as("SELECT state::text, last_error FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_task_is_taken_by_no_claim_path_until_its_dependencies_succeed() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 10).await;
    let d1 = enqueue(&pool, task(tenant, server, 1)).await;
    let d2 = enqueue(&pool, task(tenant, server, 2)).await;
    let (w, how) = enqueue_waiting(&pool, task(tenant, server, 9), &[d1, d2]).await;
    assert_eq!(how, Waiting::Waiting);
    assert!(is_waiting(&pool, w).await.unwrap());
    for n in 3..=5 {
        enqueue(&pool, task(tenant, server, n)).await;
    }
    // A fresh claim with room for everything takes all but the waiter.
    let held = claim(&pool, "w", 10, LEASE).await.unwrap();
    let mut got: Vec<i64> = held.iter().filter_map(|t| t.input["n"].as_i64()).collect();
    got.sort();
    assert_eq!(got, vec![1, 2, 3, 4, 5]);
    // Promotion of due scheduled tasks leaves it parked.
    promote_due(&pool).await.unwrap();
    assert_eq!(state_of(&pool, w).await.0, "scheduled");
    // The single completion's hand-off (complete_one) does not take it.
    let next = finish(&pool, &[(by_n(&held, 3), ok())], true).await;
    assert!(next.is_empty(), "handed on {:?}", ids(&next));
    // Nor the batch's (complete_batch), though one dependency succeeded.
    let next = finish(
        &pool,
        &[(by_n(&held, 1), ok()), (by_n(&held, 4), ok())],
        true,
    )
    .await;
    assert!(next.is_empty(), "handed on {:?}", ids(&next));
    assert!(claim(&pool, "w", 10, LEASE).await.unwrap().is_empty());
    assert!(is_waiting(&pool, w).await.unwrap());
    // The last dependency's completion releases it, due now, but not to
    // its own hand-off: nothing claims it in the releasing transaction.
    let next = finish(&pool, &[(by_n(&held, 2), ok())], true).await;
    assert!(next.is_empty(), "handed on {:?}", ids(&next));
    assert!(!is_waiting(&pool, w).await.unwrap());
    // The promotion makes it available, and a fresh claim takes it.
    assert_eq!(promote_due(&pool).await.unwrap(), 1);
    let next = claim(&pool, "w", 10, LEASE).await.unwrap();
    assert_eq!(ids(&next), vec![json!(9)]);
    finish(&pool, &[(by_n(&held, 5), ok()), (&next[0], ok())], false).await;
    assert_eq!(state_of(&pool, w).await.0, "succeeded");
    testing::assert_server_load_matches(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_task_is_claimed_by_a_fresh_claim_and_keeps_its_own_run_at() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 10).await;
    let d = enqueue(&pool, task(tenant, server, 1)).await;
    let (now_w, _) = enqueue_waiting(&pool, task(tenant, server, 2), &[d]).await;
    let mut later = task(tenant, server, 3);
    let at = Utc::now() + ChronoDuration::hours(1);
    later.run_at = Some(at);
    let (later_w, _) = enqueue_waiting(&pool, later, &[d]).await;
    let held = claim(&pool, "w", 10, LEASE).await.unwrap();
    assert_eq!(ids(&held), vec![json!(1)]);
    finish(&pool, &[(&held[0], ok())], false).await;
    // Released: due now, available once promoted, then claimed.
    promote_due(&pool).await.unwrap();
    let next = claim(&pool, "w", 10, LEASE).await.unwrap();
    assert_eq!(ids(&next), vec![json!(2)]);
    assert_eq!(next[0].id, now_w);
    // The one with a later run_at is scheduled for it, not available.
    let (st, run_at): (String, chrono::DateTime<Utc>) =
        sqlx::query_as("SELECT state::text, run_at FROM tasks WHERE id = $1")
            .bind(later_w)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(st, "scheduled");
    assert!((run_at - at).num_seconds().abs() <= 1, "{run_at} vs {at}");
    finish(&pool, &[(&next[0], ok())], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dependency_settles_its_waiters_and_theirs() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 10).await;
    let d = enqueue(&pool, task(tenant, server, 1)).await;
    let (w, _) = enqueue_waiting(&pool, task(tenant, server, 2), &[d]).await;
    let (v, _) = enqueue_waiting(&pool, task(tenant, server, 3), &[w]).await;
    let held = claim(&pool, "w", 10, LEASE).await.unwrap();
    assert_eq!(ids(&held), vec![json!(1)]);
    finish(&pool, &[(&held[0], permanent())], true).await;
    assert_eq!(state_of(&pool, d).await.0, "failed");
    for (waiter, on) in [(w, d), (v, w)] {
        let (st, err) = state_of(&pool, waiter).await;
        assert_eq!(st, "cancelled");
        let err = err.expect("a reason");
        assert_eq!(err["kind"], "dependency");
        assert_eq!(err["depends_on"], json!(on.to_string()));
        let events: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE task_id = $1 AND kind = 'task.cancelled'",
        )
        .bind(waiter)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(events, 1);
    }
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM task_queue")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(queued, 0, "nothing left parked");
    assert!(!is_waiting(&pool, w).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_dependency_settles_its_waiter() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 10).await;
    let d = enqueue(&pool, task(tenant, server, 1)).await;
    let (w, _) = enqueue_waiting(&pool, task(tenant, server, 2), &[d]).await;
    panel1_store::cancel(&pool, tenant, d).await.unwrap();
    let (st, err) = state_of(&pool, w).await;
    assert_eq!(st, "cancelled");
    assert!(err.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("cancelled"));
    assert!(claim(&pool, "w", 10, LEASE).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_finished_before_count_and_foreign_ones_are_refused() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 10).await;
    let good = enqueue(&pool, task(tenant, server, 1)).await;
    let bad = enqueue(&pool, task(tenant, server, 2)).await;
    let held = claim(&pool, "w", 10, LEASE).await.unwrap();
    finish(
        &pool,
        &[(by_n(&held, 1), ok()), (by_n(&held, 2), permanent())],
        false,
    )
    .await;
    let (r, how) = enqueue_waiting(&pool, task(tenant, server, 3), &[good]).await;
    assert_eq!(how, Waiting::Ready);
    assert_eq!(state_of(&pool, r).await.0, "available");
    assert!(!is_waiting(&pool, r).await.unwrap());
    let (s, how) = enqueue_waiting(&pool, task(tenant, server, 4), &[good, bad]).await;
    assert_eq!(how, Waiting::Settled);
    assert_eq!(state_of(&pool, s).await.0, "cancelled");
    // Another tenant's task (or none at all) cannot be waited on.
    let other = panel1_store::setup::create_tenant(&pool, "other")
        .await
        .unwrap();
    let foreign = enqueue(&pool, task(other, server, 5)).await;
    for dep in [foreign, Uuid::now_v7()] {
        let mut tx = pool.begin().await.unwrap();
        let e = enqueue_after(&mut tx, &task(tenant, server, 6), &[dep])
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    }
    // A task something waits on cannot be given dependencies later.
    let x = enqueue(&pool, task(tenant, server, 7)).await;
    enqueue_waiting(&pool, task(tenant, server, 8), &[x]).await;
    let mut conn = pool.acquire().await.unwrap();
    let e = wait_on(&mut conn, x, &[r]).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
}
