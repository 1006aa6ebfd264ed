//! Completions that hand their slot to the next task (complete_batch with a
//! hand-off), against a real database: one task claimed per finished task at
//! most, none when the server's cap was lowered below what runs, a service's
//! next operation handed on in order, stale completions written nowhere.
use panel1_store::setup;
use panel1_store::{
    claim, complete_and_claim, testing, Applied, AttemptRecord, ClaimedTask, Handoff, NewTask,
    TaskOutcome,
};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(60);

async fn enqueue(pool: &PgPool, t: NewTask) -> Uuid {
    let mut conn = pool.acquire().await.unwrap();
    panel1_store::enqueue(&mut conn, &t).await.unwrap().0
}

/// Succeed `task`, handing off up to `limit`.
async fn finish(pool: &PgPool, task: &ClaimedTask, limit: usize) -> (Applied, Vec<ClaimedTask>) {
    let done = TaskOutcome::Succeeded {
        result: json!({"remote_id": "r-1"}),
    };
    let items = [(task.clone(), done, AttemptRecord::default())];
    let handoff = Handoff {
        limit,
        worker: "w",
        lease_ttl: LEASE,
    };
    let (mut applied, next) = complete_and_claim(pool, &items, Some(handoff))
        .await
        .unwrap();
    (applied.remove(0), next)
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_handoff_takes_one_slot_per_finished_task_and_respects_a_lowered_cap() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 4).await;
    for _ in 0..8 {
        enqueue(&pool, NewTask::new(tenant, server, None, "info", json!({}))).await;
    }
    let running = "SELECT count(*) FROM tasks WHERE state = 'running'";
    let held = claim(&pool, "w", 2, LEASE).await.unwrap();
    assert_eq!(held.len(), 2);

    // Asked for five with room for three: one finished, one handed on, the
    // count unchanged.
    let (applied, next) = finish(&pool, &held[0], 5).await;
    assert_eq!(applied, Applied::Succeeded);
    assert_eq!(next.len(), 1, "one per finished task, whatever the room");
    assert_eq!(next[0].attempt, 1);
    assert_eq!(next[0].lease, 1);
    assert_eq!(scalar(&pool, running).await, 2);

    // The operator lowers the cap below what runs: no hand-off until the
    // count is under it.
    sqlx::query("UPDATE servers SET max_concurrency = 1 WHERE id = $1")
        .bind(server)
        .execute(&pool)
        .await
        .unwrap();
    let (_, none) = finish(&pool, &held[1], 1).await;
    assert!(none.is_empty(), "1 running on a server capped at 1");
    let (_, next4) = finish(&pool, &next[0], 1).await;
    assert_eq!(next4.len(), 1, "0 running: the slot is handed on");
    assert_eq!(scalar(&pool, running).await, 1);

    // A completion under a lease that moved on writes nothing and hands
    // nothing on.
    let mut old = next4[0].clone();
    old.lease -= 1;
    let (applied, none) = finish(&pool, &old, 1).await;
    assert_eq!(applied, Applied::Stale);
    assert!(none.is_empty());
    assert_eq!(panel1_store::stale_completions(&pool).await.unwrap(), 1);
    assert_eq!(scalar(&pool, running).await, 1);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM task_attempts").await,
        3,
        "one attempt row per applied completion"
    );
}

#[tokio::test]
async fn a_services_next_operation_is_handed_on_after_its_last_moved_the_service() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 1).await;
    let spec = json!({"service_id": "alice", "plan": "basic"});
    let svc = setup::add_service(&pool, tenant, server, &spec)
        .await
        .unwrap();
    let provision = NewTask::new(
        tenant,
        server,
        Some(svc),
        "provision",
        json!({"service": spec}),
    );
    let p = enqueue(&pool, provision).await;
    let suspend = NewTask::new(
        tenant,
        server,
        Some(svc),
        "suspend",
        json!({"service": spec}),
    );
    let s = enqueue(&pool, suspend).await;

    let held = claim(&pool, "w", 10, LEASE).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].id, p, "the older operation first");
    let (_, next) = finish(&pool, &held[0], 1).await;
    assert_eq!(next.len(), 1, "the suspend follows in the same commit");
    assert_eq!(next[0].id, s);
    // It learns the remote id the provision just stored.
    assert_eq!(next[0].input["service"]["remote_id"], "r-1");
    let state: String = sqlx::query_scalar("SELECT state::text FROM services WHERE id = $1")
        .bind(svc)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "active");
    // The outbox: the service's move, then the task's end, in that order.
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM events WHERE task_id = $1 AND kind <> 'task.created' ORDER BY id",
    )
    .bind(p)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(kinds, ["service.updated", "task.succeeded"]);
}
