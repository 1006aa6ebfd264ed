//! A batch completion (`complete_batch`, migrations/0008) that has to wait
//! for a heartbeat: the heartbeat commits a new version of the queue rows
//! after the completion's statement began, and the completion must still
//! finish (or retry) every task it holds, not leave a queue row running for
//! the rescuer to run again.
use panel1_store::{
    claim, complete, complete_batch, testing, Applied, AttemptRecord, ClaimedTask, NewTask,
    TaskOutcome,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);

/// A fresh database with three tasks enqueued and claimed.
async fn three_claimed() -> (PgPool, Vec<ClaimedTask>) {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 10).await;
    for _ in 0..3 {
        let mut conn = pool.acquire().await.unwrap();
        let t = NewTask::new(tenant, server, None, "info", json!({}));
        panel1_store::enqueue(&mut conn, &t).await.unwrap();
    }
    let held = claim(&pool, "w", 3, LEASE).await.unwrap();
    assert_eq!(held.len(), 3);
    (pool, held)
}

#[tokio::test]
async fn a_batch_completion_that_waits_for_a_heartbeat_still_completes_every_task() {
    let (pool, held) = three_claimed().await;

    // A heartbeat of all three, not yet committed: it holds their rows.
    let ids: Vec<_> = held.iter().map(|t| t.id).collect();
    let mut beat = pool.begin().await.unwrap();
    let n = sqlx::query(
        "UPDATE task_queue SET lease_expires_at = now() + interval '60 seconds'
         WHERE task_id = ANY ($1)",
    )
    .bind(&ids)
    .execute(&mut *beat)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(n, 3);

    // Two succeed, one is retried later.
    let items: Vec<_> = held
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let outcome = if k == 2 {
                TaskOutcome::AdapterError {
                    kind: "transient".into(),
                    message: "busy".into(),
                    retry_after_ms: Some(60_000),
                }
            } else {
                TaskOutcome::Succeeded { result: json!({}) }
            };
            (t.clone(), outcome, AttemptRecord::default())
        })
        .collect();
    let completing = {
        let pool = pool.clone();
        tokio::spawn(async move { complete_batch(&pool, &items).await })
    };
    // The completion's statement has begun and waits for a row lock: the
    // heartbeat's new row versions will commit after its snapshot.
    let mut waited = Duration::ZERO;
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                            WHERE datname = current_database() AND wait_event_type = 'Lock'
                              AND query LIKE '%complete_batch%')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting {
            break;
        }
        assert!(
            waited < Duration::from_secs(10) && !completing.is_finished(),
            "the completion never waited for the heartbeat's locks"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    beat.commit().await.unwrap();

    let applied = completing.await.unwrap().unwrap();
    assert_eq!(applied[0], Applied::Succeeded);
    assert_eq!(applied[1], Applied::Succeeded);
    assert!(
        matches!(applied[2], Applied::Retrying { .. }),
        "{applied:?}"
    );
    let queue: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT task_id, state::text FROM task_queue")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        queue,
        vec![(held[2].id, "retryable".to_string())],
        "the finished tasks' rows are gone and the retried one waits"
    );
    let records: Vec<String> =
        sqlx::query_scalar("SELECT state::text FROM tasks WHERE id = ANY ($1) ORDER BY state")
            .bind(&ids)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(records, ["retryable", "succeeded", "succeeded"]);
    testing::assert_server_load_matches(&pool).await;
}

/// An adapter's `null` result is stored as SQL NULL by both completion
/// paths (one task alone, and a batch), not as a jsonb `null` by one.
#[tokio::test]
async fn a_null_result_is_stored_as_null_alone_and_in_a_batch() {
    let (pool, held) = three_claimed().await;
    let null = || TaskOutcome::Succeeded {
        result: Value::Null,
    };
    let alone = complete(&pool, &held[0], &null(), &AttemptRecord::default())
        .await
        .unwrap();
    assert_eq!(alone, Applied::Succeeded);
    let batch: Vec<_> = held[1..]
        .iter()
        .map(|t| (t.clone(), null(), AttemptRecord::default()))
        .collect();
    let applied = complete_batch(&pool, &batch).await.unwrap();
    assert_eq!(applied, [Applied::Succeeded, Applied::Succeeded]);
    let nulls: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM task_records WHERE state = 'succeeded' AND result IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(nulls, 3, "every null result is SQL NULL");
}

/// Batch completions and heartbeats of the same leases, side by side: both
/// lock the rows in id order, so neither waits for the other in a cycle
/// (a batch locking in completion order deadlocked with a heartbeat, and
/// Postgres aborted one of them after `deadlock_timeout`).
#[tokio::test]
async fn batch_completions_and_heartbeats_of_the_same_rows_do_not_deadlock() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 1000).await;
    for _ in 0..5 {
        testing::insert_available_tasks(&pool, tenant, server, 400).await;
        let mut held = claim(&pool, "w", 400, LEASE).await.unwrap();
        assert_eq!(held.len(), 400);
        let leases: Vec<_> = held.iter().map(|t| (t.id, t.lease)).collect();
        let beating = {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    panel1_store::heartbeat_many(&pool, &leases, LEASE)
                        .await
                        .unwrap();
                }
            })
        };
        // Completed against id order, in batches, while the heartbeats run.
        held.sort_by_key(|t| std::cmp::Reverse(t.id));
        for chunk in held.chunks(100) {
            let items: Vec<_> = chunk
                .iter()
                .map(|t| {
                    let done = TaskOutcome::Succeeded { result: json!({}) };
                    (t.clone(), done, AttemptRecord::default())
                })
                .collect();
            let applied = complete_batch(&pool, &items)
                .await
                .expect("a completion beside heartbeats");
            assert!(applied.iter().all(|a| *a == Applied::Succeeded));
        }
        beating.await.unwrap();
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM task_queue")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
