//! Migration 0006 (the narrow task queue) over a database that already holds
//! tasks in every state, written in the layout of the migrations before it:
//! nothing is lost, a running task keeps its lease (its worker can still
//! complete it, a stale one cannot), and the queue carries on from there.
use panel1_store::{
    claim, complete, testing, Applied, AttemptRecord, ClaimedTask, TaskOutcome, MIGRATOR,
};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// Apply the embedded migrations `from..=to` (by version) as plain SQL.
async fn apply(pool: &PgPool, from: i64, to: i64) {
    for m in MIGRATOR.iter().filter(|m| (from..=to).contains(&m.version)) {
        sqlx::raw_sql(m.sql.as_ref())
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("migration {}: {e}", m.version));
    }
}

/// A task as the pre-0006 `tasks` table held it: `run_in` seconds from now,
/// a running one leased to `old-worker` (attempt 1, lease 3), a final one
/// finished now.
async fn old_task(pool: &PgPool, tenant: Uuid, server: Uuid, state: &str, run_in: f64) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO tasks (id, tenant_id, server_id, operation, input, state, run_at, attempt,
                            lease, leased_by, lease_expires_at, finished_at)
         SELECT $1, $2, $3, 'info', '{}', s, now() + make_interval(secs => $5),
                CASE WHEN running THEN 1 ELSE 0 END, CASE WHEN running THEN 3 ELSE 0 END,
                CASE WHEN running THEN 'old-worker' END,
                CASE WHEN running THEN now() + interval '1 minute' END,
                CASE WHEN s IN ('succeeded', 'failed', 'cancelled') THEN now() END
         FROM (SELECT $4::task_state AS s, $4 = 'running' AS running) x",
    )
    .bind(id)
    .bind(tenant)
    .bind(server)
    .bind(state)
    .bind(run_in)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn seen(pool: &PgPool, id: Uuid) -> (String, i32, i64, Option<String>) {
    sqlx::query_as("SELECT state::text, attempt, lease, leased_by FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn tasks_in_every_state_survive_the_move_to_the_narrow_queue() {
    let (pool, _) = testing::empty_database().await;
    apply(&pool, 1, 5).await;
    let (tenant, server) = testing::tenant_and_server(&pool, 4).await;

    let available = old_task(&pool, tenant, server, "available", 0.0).await;
    let scheduled = old_task(&pool, tenant, server, "scheduled", 3600.0).await;
    let running = old_task(&pool, tenant, server, "running", 0.0).await;
    let retryable = old_task(&pool, tenant, server, "retryable", 3600.0).await;
    let succeeded = old_task(&pool, tenant, server, "succeeded", 0.0).await;

    // 0006, then the migrations after it (the checks below use today's code).
    apply(&pool, 6, i64::MAX).await;

    // The view shows every task as it was; only unfinished ones are queued.
    assert_eq!(seen(&pool, available).await.0, "available");
    assert_eq!(seen(&pool, scheduled).await.0, "scheduled");
    assert_eq!(seen(&pool, retryable).await.0, "retryable");
    assert_eq!(seen(&pool, succeeded).await.0, "succeeded");
    assert_eq!(
        seen(&pool, running).await,
        ("running".into(), 1, 3, Some("old-worker".into()))
    );
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM task_queue")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(queued, 4, "available, scheduled, running, retryable");
    let never_running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM task_records WHERE state = 'running'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(never_running, 0, "running lives in the queue only");

    // The running task's worker still holds its lease; an older lease is stale.
    let held = |lease| ClaimedTask {
        id: running,
        tenant_id: tenant,
        server_id: server,
        service_id: None,
        operation: "info".into(),
        input: json!({}),
        attempt: 1,
        max_attempts: 5,
        lease,
        idempotency_key: None,
    };
    let done = TaskOutcome::Succeeded { result: json!({}) };
    let record = AttemptRecord::default();
    assert_eq!(
        complete(&pool, &held(2), &done, &record).await.unwrap(),
        Applied::Stale
    );
    assert_eq!(
        complete(&pool, &held(3), &done, &record).await.unwrap(),
        Applied::Succeeded
    );
    assert_eq!(seen(&pool, running).await.0, "succeeded");

    // Claims carry on: the available task (and not the scheduled one).
    let next = claim(&pool, "new-worker", 10, Duration::from_secs(30))
        .await
        .unwrap();
    let ids: Vec<Uuid> = next.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![available]);
    assert_eq!(next[0].attempt, 1);
    assert_eq!(next[0].lease, 1);
}
