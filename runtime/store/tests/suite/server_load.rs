//! The kept running count of a server (`server_load`, migrations/0006)
//! through every way a run starts and ends: fresh claim, completion (final
//! and retry), hand-off, cancel of a running task, release, unclaim and the
//! rescuer. After each, the count equals the queue's running rows, and the
//! server's cap is enforced from it.
use panel1_store::{
    cancel, claim, complete, complete_and_claim, release, rescue_expired, testing, unclaim,
    Applied, AttemptRecord, ClaimedTask, Handoff, NewTask, TaskOutcome,
};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(60);

async fn running(pool: &PgPool, server: Uuid) -> i32 {
    let kept: i32 = sqlx::query_scalar("SELECT panel1_running($1)")
        .bind(server)
        .fetch_one(pool)
        .await
        .unwrap();
    testing::assert_server_load_matches(pool).await;
    kept
}

fn succeeded() -> TaskOutcome {
    TaskOutcome::Succeeded { result: json!({}) }
}

#[tokio::test]
async fn the_running_count_follows_every_start_and_end_of_a_run() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 3).await;
    let mut conn = pool.acquire().await.unwrap();
    for _ in 0..12 {
        let t = NewTask::new(tenant, server, None, "info", json!({}));
        panel1_store::enqueue(&mut conn, &t).await.unwrap();
    }
    drop(conn);
    let record = AttemptRecord::default();

    // Fresh claims stop at the cap, read from the kept count.
    let mut held: Vec<ClaimedTask> = claim(&pool, "w", 10, LEASE).await.unwrap();
    assert_eq!(held.len(), 3);
    assert_eq!(running(&pool, server).await, 3);
    assert!(claim(&pool, "w", 10, LEASE).await.unwrap().is_empty());

    // A final completion frees a slot; a retry frees one too.
    let t = held.pop().unwrap();
    assert_eq!(
        complete(&pool, &t, &succeeded(), &record).await.unwrap(),
        Applied::Succeeded
    );
    assert_eq!(running(&pool, server).await, 2);
    let t = held.pop().unwrap();
    let transient = TaskOutcome::AdapterError {
        kind: "transient".into(),
        message: "later".into(),
        retry_after_ms: Some(60_000),
    };
    assert!(matches!(
        complete(&pool, &t, &transient, &record).await.unwrap(),
        Applied::Retrying { .. }
    ));
    assert_eq!(running(&pool, server).await, 1);

    // A hand-off keeps the count: one out, one in.
    held.extend(claim(&pool, "w", 10, LEASE).await.unwrap());
    assert_eq!(held.len(), 3);
    let t = held.pop().unwrap();
    let handoff = Handoff {
        limit: 1,
        worker: "w",
        lease_ttl: LEASE,
    };
    let items = [(t, succeeded(), record.clone())];
    let (_, next) = complete_and_claim(&pool, &items, Some(handoff))
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    held.extend(next);
    assert_eq!(running(&pool, server).await, 3);

    // Cancelling a running task frees its slot at once.
    let t = held.pop().unwrap();
    cancel(&pool, tenant, t.id).await.unwrap();
    assert_eq!(running(&pool, server).await, 2);
    assert_eq!(
        complete(&pool, &t, &succeeded(), &record).await.unwrap(),
        Applied::Stale,
        "the cancelled task's worker finds its lease gone"
    );
    assert_eq!(running(&pool, server).await, 2);

    // Release (shutdown) and unclaim (never started) give slots back.
    let t = held.pop().unwrap();
    assert!(release(&pool, t.id, t.lease).await.unwrap());
    assert_eq!(running(&pool, server).await, 1);
    let t = held.pop().unwrap();
    assert_eq!(unclaim(&pool, &[(t.id, t.lease)]).await.unwrap(), 1);
    assert_eq!(running(&pool, server).await, 0);

    // The rescuer frees the slots of leases that expired.
    let lost = claim(&pool, "dead", 10, LEASE).await.unwrap();
    assert_eq!(lost.len(), 3);
    assert_eq!(running(&pool, server).await, 3);
    sqlx::query("UPDATE task_queue SET lease_expires_at = now() - interval '1 second' WHERE leased_by = 'dead'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(rescue_expired(&pool).await.unwrap().len(), 3);
    assert_eq!(running(&pool, server).await, 0);
    assert_eq!(claim(&pool, "w", 10, LEASE).await.unwrap().len(), 3);
    assert_eq!(running(&pool, server).await, 3);
}
