//! The per-server concurrency cap under concurrent claimers, against a real
//! database. Many claimers on separate connections race for one server with
//! a small cap; each counts what it holds in process (added after its claim
//! committed, removed before its completion starts), so the in-process total
//! never exceeds what the database holds as running. The cap is exact only if
//! that total never passes it. Hand-offs (a completion that claims the next
//! task in its own transaction, without the server lock) race the fresh
//! claims in the second test.
use panel1_store::{
    claim, complete, complete_and_claim, testing, AttemptRecord, ClaimedTask, Handoff, NewTask,
    TaskOutcome,
};
use serde_json::json;
use sqlx::PgPool;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CAP: i32 = 2;
const TASKS: usize = 1500;
const CLAIMERS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_cap_holds_under_racing_claimers() {
    race(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_cap_holds_when_completions_hand_off_their_slots() {
    race(true).await;
}

/// A server capped at CAP, TASKS tasks, CLAIMERS racing for them.
async fn race(handoff: bool) {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, CAP).await;
    let mut conn = pool.acquire().await.unwrap();
    for _ in 0..TASKS {
        let t = NewTask::new(tenant, server, None, "info", json!({}));
        panel1_store::enqueue(&mut conn, &t).await.unwrap();
    }
    drop(conn);

    let held = Arc::new(AtomicI64::new(0));
    let peak = Arc::new(AtomicI64::new(0));
    let mut claimers = Vec::new();
    for i in 0..CLAIMERS {
        let (pool, held, peak) = (pool.clone(), held.clone(), peak.clone());
        claimers.push(tokio::spawn(async move {
            let me = format!("claimer-{i}");
            let mut idle = 0;
            while idle < 50 {
                let got = claim(&pool, &me, CAP as i64, Duration::from_secs(60))
                    .await
                    .unwrap();
                if got.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                idle = 0;
                let now = held.fetch_add(got.len() as i64, Ordering::SeqCst) + got.len() as i64;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                if handoff && i % 2 == 0 {
                    chain(&pool, &me, got, &held, &peak).await;
                    continue;
                }
                held.fetch_sub(got.len() as i64, Ordering::SeqCst);
                for task in &got {
                    let done = TaskOutcome::Succeeded { result: json!({}) };
                    complete(&pool, task, &done, &AttemptRecord::default())
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for c in claimers {
        c.await.unwrap();
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE state <> 'succeeded'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "every task ran");
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak >= 1, "claims happened");
    assert!(
        peak <= CAP as i64,
        "{peak} tasks held at once on a server capped at {CAP}"
    );
    testing::assert_server_load_matches(&pool).await;
}

/// Complete each task with a hand-off of one, and keep going with what it
/// hands back: counted out before the commit, the next one counted in after.
async fn chain(
    pool: &PgPool,
    me: &str,
    mut work: Vec<ClaimedTask>,
    held: &AtomicI64,
    peak: &AtomicI64,
) {
    while let Some(task) = work.pop() {
        held.fetch_sub(1, Ordering::SeqCst);
        let done = TaskOutcome::Succeeded { result: json!({}) };
        let items = [(task, done, AttemptRecord::default())];
        let handoff = Handoff {
            limit: 1,
            worker: me,
            lease_ttl: Duration::from_secs(60),
        };
        let (applied, next) = complete_and_claim(pool, &items, Some(handoff))
            .await
            .unwrap();
        assert_eq!(applied, vec![panel1_store::Applied::Succeeded]);
        assert!(next.len() <= 1, "one task per finished one");
        for n in next {
            let now = held.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            work.push(n);
        }
        tokio::task::yield_now().await;
    }
}
