//! A batch completion (`complete_batch`, migrations/0008) that has to wait
//! for a heartbeat: the heartbeat commits a new version of the queue rows
//! after the completion's statement began, and the completion must still
//! finish (or retry) every task it holds, not leave a queue row running for
//! the rescuer to run again.
use panel1_store::{claim, complete_batch, testing, Applied, AttemptRecord, NewTask, TaskOutcome};
use serde_json::json;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_batch_completion_that_waits_for_a_heartbeat_still_completes_every_task() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 10).await;
    for _ in 0..3 {
        let mut conn = pool.acquire().await.unwrap();
        let t = NewTask::new(tenant, server, None, "info", json!({}));
        panel1_store::enqueue(&mut conn, &t).await.unwrap();
    }
    let held = claim(&pool, "w", 3, LEASE).await.unwrap();
    assert_eq!(held.len(), 3);

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
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !completing.is_finished(),
        "the completion should be waiting for the heartbeat's locks"
    );
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
