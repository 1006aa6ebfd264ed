//! The orchestrator against a real Postgres: lifecycle, idempotency,
//! ordering, caps, retries, leases.

use crate::common::*;
use panel1_store::{AttemptRecord, TaskOutcome};
use panel1_worker::WorkerConfig;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_lifecycle_through_workers() {
    let e = env(1, 4).await;
    let s = e.servers[0];
    let svc = e.service(s, "alice").await;
    let workers = e.workers(1, fast());
    let (t1, _) = e
        .enqueue(
            s,
            Some(svc),
            "provision",
            json!({"service": spec("alice")}),
            None,
        )
        .await;
    e.wait_until(
        &format!("SELECT state = 'succeeded' FROM tasks WHERE id = '{t1}'"),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(e.service_state(svc).await, "active");
    let remote: Option<String> = sqlx::query_scalar("SELECT remote_id FROM services WHERE id = $1")
        .bind(svc)
        .fetch_one(&e.pool)
        .await
        .unwrap();
    assert_eq!(remote.as_deref(), Some("alice"));

    let existing =
        json!({"service": {"service_id": "alice", "remote_id": "alice"}, "reason": "unpaid"});
    let (t2, _) = e
        .enqueue(s, Some(svc), "suspend", existing.clone(), None)
        .await;
    let (t3, _) = e
        .enqueue(s, Some(svc), "unsuspend", existing.clone(), None)
        .await;
    let (t4, _) = e.enqueue(s, Some(svc), "terminate", existing, None).await;
    e.wait_until(
        &format!("SELECT state = 'succeeded' FROM tasks WHERE id = '{t4}'"),
        Duration::from_secs(60),
    )
    .await;
    for t in [t2, t3] {
        assert_eq!(e.task_state(t).await, "succeeded");
    }
    assert_eq!(e.service_state(svc).await, "terminated");
    assert_eq!(
        e.panel.with(|p| p.timeline["alice"].clone()),
        vec![
            "POST ",
            "POST /alice/suspend",
            "POST /alice/unsuspend",
            "DELETE /alice"
        ]
    );

    // Every attempt is recorded with its metrics; events were written.
    let (fuel, reqs): (i64, i32) =
        sqlx::query_as("SELECT fuel, http_requests FROM task_attempts WHERE task_id = $1")
            .bind(t1)
            .fetch_one(&e.pool)
            .await
            .unwrap();
    assert!(fuel > 0 && reqs >= 1);
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM events WHERE task_id = $1 ORDER BY id")
            .bind(t1)
            .fetch_all(&e.pool)
            .await
            .unwrap();
    assert_eq!(
        kinds,
        vec!["task.created", "service.updated", "task.succeeded"]
    );
    // The token is stored encrypted and never lands in attempts or events.
    let dump: String = sqlx::query_scalar(
        "SELECT (SELECT string_agg(t::text, ' ') FROM task_attempts t) || (SELECT string_agg(e::text, ' ') FROM events e)
             || (SELECT string_agg(encode(ciphertext, 'escape'), ' ') FROM secrets)",
    )
    .fetch_one(&e.pool)
    .await
    .unwrap();
    assert!(!dump.contains(TOKEN));
    stop(workers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_dedupe_per_tenant() {
    let e = env(1, 4).await;
    let s = e.servers[0];
    let svc = e.service(s, "bob").await;
    let input = json!({"service": spec("bob")});
    let (a, created_a) = e
        .enqueue(s, Some(svc), "provision", input.clone(), Some("order-42"))
        .await;
    let (b, created_b) = e
        .enqueue(s, Some(svc), "provision", input, Some("order-42"))
        .await;
    assert!(created_a && !created_b);
    assert_eq!(a, b);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&e.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_services_run_their_operations_in_order_without_overlap() {
    many_services(fast()).await;
}

/// The same with one commit per task: each finished slot claims its next
/// task on the same server in its completion's transaction (no server lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_services_in_order_without_overlap_one_commit_per_task() {
    many_services(WorkerConfig {
        claim_batch: 1,
        ..fast()
    })
    .await;
}

async fn many_services(config: WorkerConfig) {
    let e = env(8, 6).await;
    e.panel.with(|p| p.op_delay_ms = 2);
    let services = 1000;
    let ops = [
        "provision",
        "suspend",
        "unsuspend",
        "change-package",
        "terminate",
    ];
    let mut tasks = Vec::new();
    let mut conn = e.pool.acquire().await.unwrap();
    for i in 0..services {
        let server = e.servers[i % e.servers.len()];
        let user = format!("u{i}");
        let svc = e.service(server, &user).await;
        for op in ops {
            let input = match op {
                "provision" => json!({"service": spec(&user)}),
                "change-package" => {
                    json!({"service": {"service_id": user, "remote_id": user}, "plan": "pro"})
                }
                _ => json!({"service": {"service_id": user, "remote_id": user}}),
            };
            let t = panel1_store::NewTask::new(e.tenant, server, Some(svc), op, input);
            tasks.push(panel1_store::enqueue(&mut conn, &t).await.unwrap().0);
        }
    }
    drop(conn);
    let workers = e.workers(4, config);
    e.wait_all_succeeded(Duration::from_secs(240)).await;
    stop(workers).await;
    assert_eq!(tasks.len(), services * ops.len());
    let (overlaps, max_in_flight) = e.panel.with(|p| (p.overlaps, p.max_in_flight));
    assert_eq!(overlaps, 0, "two operations of one service overlapped");
    assert!(
        max_in_flight <= 8 * 6,
        "server caps exceeded: {max_in_flight}"
    );
    let expected = [
        "POST ",
        "POST /{u}/suspend",
        "POST /{u}/unsuspend",
        "PUT /{u}/plan",
        "DELETE /{u}",
    ];
    e.panel.with(|p| {
        for i in 0..services {
            let u = format!("u{i}");
            let want: Vec<String> = expected.iter().map(|s| s.replace("{u}", &u)).collect();
            assert_eq!(p.timeline[&u], want, "order for {u}");
        }
    });
    let running: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE state = 'running'")
        .fetch_one(&e.pool)
        .await
        .unwrap();
    assert_eq!(running, 0, "nothing left running");
    panel1_store::testing::assert_server_load_matches(&e.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_concurrency_cap_holds_across_workers() {
    let e = env(1, 2).await;
    e.panel.with(|p| p.op_delay_ms = 40);
    let s = e.servers[0];
    for i in 0..20 {
        let user = format!("c{i}");
        let svc = e.service(s, &user).await;
        e.enqueue(
            s,
            Some(svc),
            "provision",
            json!({"service": spec(&user)}),
            None,
        )
        .await;
    }
    let workers = e.workers(3, fast());
    e.wait_all_succeeded(Duration::from_secs(60)).await;
    stop(workers).await;
    let max = e.panel.with(|p| p.max_in_flight);
    assert!(max <= 2, "cap of 2 exceeded: {max} at once");
    assert_eq!(e.panel.with(|p| p.creates), 20);
    panel1_store::testing::assert_server_load_matches(&e.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_completion_after_rescue_is_dropped_and_counted() {
    let e = env(1, 4).await;
    let s = e.servers[0];
    let svc = e.service(s, "carol").await;
    let (t, _) = e
        .enqueue(
            s,
            Some(svc),
            "provision",
            json!({"service": spec("carol")}),
            None,
        )
        .await;
    let first = panel1_store::claim(&e.pool, "dead-worker", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // The worker goes silent: its lease expires and the rescuer takes the task back.
    sqlx::query(
        "UPDATE task_queue SET lease_expires_at = now() - interval '1 second' WHERE task_id = $1",
    )
    .bind(t)
    .execute(&e.pool)
    .await
    .unwrap();
    assert_eq!(
        panel1_store::rescue_expired(&e.pool).await.unwrap(),
        vec![t]
    );
    assert_eq!(e.task_state(t).await, "retryable");
    panel1_store::promote_due(&e.pool).await.unwrap();
    let second = panel1_store::claim(&e.pool, "live-worker", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(second[0].lease, first[0].lease + 1);
    assert_eq!(second[0].attempt, 2);
    // The dead worker's late completion is rejected...
    let late = TaskOutcome::Succeeded {
        result: json!({"remote_id": "carol", "state": "active"}),
    };
    let r = panel1_store::complete(&e.pool, &first[0], &late, &AttemptRecord::default())
        .await
        .unwrap();
    assert_eq!(r, panel1_store::Applied::Stale);
    assert_eq!(panel1_store::stale_completions(&e.pool).await.unwrap(), 1);
    assert_eq!(e.task_state(t).await, "running");
    // ...and the live one's lands.
    let r = panel1_store::complete(&e.pool, &second[0], &late, &AttemptRecord::default())
        .await
        .unwrap();
    assert_eq!(r, panel1_store::Applied::Succeeded);
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM task_attempts WHERE task_id = $1 ORDER BY attempt")
            .bind(t)
            .fetch_all(&e.pool)
            .await
            .unwrap();
    assert_eq!(outcomes, vec!["abandoned", "succeeded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_retry_after_what_the_provider_asked() {
    let e = env(1, 4).await;
    e.panel.with(|p| {
        p.force_status = 503;
        p.retry_after_secs = Some(2);
    });
    let s = e.servers[0];
    let svc = e.service(s, "dave").await;
    let (t, _) = e
        .enqueue(
            s,
            Some(svc),
            "provision",
            json!({"service": spec("dave")}),
            None,
        )
        .await;
    let workers = e.workers(1, fast());
    e.wait_until(
        &format!("SELECT state = 'retryable' FROM tasks WHERE id = '{t}'"),
        Duration::from_secs(60),
    )
    .await;
    let wait_ms: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM run_at - updated_at)::float8 * 1000 FROM tasks WHERE id = $1",
    )
    .bind(t)
    .fetch_one(&e.pool)
    .await
    .unwrap();
    assert!(
        (1800.0..2300.0).contains(&wait_ms),
        "retry scheduled {wait_ms} ms later, provider asked 2000"
    );
    e.panel.with(|p| p.force_status = 0);
    e.wait_until(
        &format!("SELECT state = 'succeeded' FROM tasks WHERE id = '{t}'"),
        Duration::from_secs(60),
    )
    .await;
    let gap_ms: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM (SELECT started_at FROM task_attempts WHERE task_id = $1 AND attempt = 2)
                              - (SELECT finished_at FROM task_attempts WHERE task_id = $1 AND attempt = 1))::float8 * 1000",
    )
    .bind(t)
    .fetch_one(&e.pool)
    .await
    .unwrap();
    assert!(
        gap_ms >= 1800.0,
        "second attempt started {gap_ms} ms after the first"
    );
    stop(workers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_fail_at_once_and_keep_the_reason() {
    let e = env(1, 4).await;
    let s = e.servers[0];
    let svc = e.service(s, "Bad Name").await;
    let (t, _) = e
        .enqueue(
            s,
            Some(svc),
            "provision",
            json!({"service": spec("Bad Name")}),
            None,
        )
        .await;
    let workers = e.workers(1, fast());
    e.wait_until(
        &format!("SELECT state = 'failed' FROM tasks WHERE id = '{t}'"),
        Duration::from_secs(60),
    )
    .await;
    stop(workers).await;
    let attempts: i32 = sqlx::query_scalar("SELECT attempt FROM tasks WHERE id = $1")
        .bind(t)
        .fetch_one(&e.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 1);
    assert_eq!(e.service_state(svc).await, "failed");
    let reason: String = sqlx::query_scalar("SELECT failure_reason FROM services WHERE id = $1")
        .bind(svc)
        .fetch_one(&e.pool)
        .await
        .unwrap();
    assert!(reason.contains("username"), "{reason}");
    // The operator can retry a failed task.
    assert!(panel1_store::retry_failed(&e.pool, e.tenant, t)
        .await
        .unwrap());
    assert_eq!(e.task_state(t).await, "available");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_tasks_wait_and_can_be_cancelled() {
    let e = env(1, 4).await;
    let s = e.servers[0];
    let mut later = panel1_store::NewTask::new(e.tenant, s, None, "test-connection", json!({}));
    later.run_at = Some(chrono::Utc::now() + chrono::Duration::milliseconds(1500));
    let mut conn = e.pool.acquire().await.unwrap();
    let (t, _) = panel1_store::enqueue(&mut conn, &later).await.unwrap();
    let mut never = later.clone();
    never.run_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let (n, _) = panel1_store::enqueue(&mut conn, &never).await.unwrap();
    drop(conn);
    assert_eq!(e.task_state(t).await, "scheduled");
    let workers = e.workers(1, fast());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(e.task_state(t).await, "scheduled", "not before its time");
    e.wait_until(
        &format!("SELECT state = 'succeeded' FROM tasks WHERE id = '{t}'"),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        panel1_store::cancel(&e.pool, e.tenant, n).await.unwrap(),
        panel1_store::TaskState::Cancelled
    );
    assert_eq!(e.task_state(n).await, "cancelled");
    // Another tenant cannot see or cancel it.
    assert!(panel1_store::cancel(&e.pool, uuid::Uuid::now_v7(), t)
        .await
        .is_err());
    stop(workers).await;
    // Finished tasks leave the hot table.
    let moved = panel1_store::prune(&e.pool, Duration::ZERO).await.unwrap();
    assert_eq!(moved, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recurring_tasks_enqueue_on_their_schedule() {
    let e = env(1, 4).await;
    let s = e.servers[0];
    // Every 2 seconds (6-field cron with seconds).
    panel1_store::add_recurring(
        &e.pool,
        e.tenant,
        s,
        None,
        "test-connection",
        &json!({}),
        "*/2 * * * * *",
    )
    .await
    .unwrap();
    assert!(panel1_store::add_recurring(
        &e.pool,
        e.tenant,
        s,
        None,
        "test-connection",
        &json!({}),
        "not a cron"
    )
    .await
    .is_err());
    let workers = e.workers(1, fast());
    e.wait_until("SELECT count(*) >= 2 FROM tasks WHERE state = 'succeeded' AND operation = 'test-connection'", Duration::from_secs(60)).await;
    stop(workers).await;
    // Each occurrence once: distinct idempotency keys, no duplicates.
    let (total, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT idempotency_key) FROM tasks")
            .fetch_one(&e.pool)
            .await
            .unwrap();
    assert_eq!(total, distinct);
}
