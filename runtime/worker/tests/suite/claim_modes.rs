//! How workers take work, against a real Postgres: the local queue (claimed
//! tasks waiting for a slot) keeps its leases while it waits and is given
//! back uncounted when a worker stops; per-task mode (one claim statement
//! per task, several in flight) keeps the server's cap.

use crate::common::*;
use panel1_worker::WorkerConfig;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// One slot, a deep queue, a lease much shorter than the queue's wait.
fn queued(lease_ms: u64) -> WorkerConfig {
    WorkerConfig {
        slots: 1,
        queue: 8,
        claim_batch: 8,
        lease_ttl: Duration::from_millis(lease_ms),
        poll_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(10),
        ..WorkerConfig::default()
    }
}

async fn provisions(e: &Env, n: usize) -> Vec<Uuid> {
    let s = e.servers[0];
    let mut tasks = Vec::new();
    for i in 0..n {
        let user = format!("q{i}");
        let svc = e.service(s, &user).await;
        let (t, _) = e
            .enqueue(
                s,
                Some(svc),
                "provision",
                json!({"service": spec(&user)}),
                None,
            )
            .await;
        tasks.push(t);
    }
    tasks
}

async fn scalar(e: &Env, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&e.pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_tasks_keep_their_leases_while_they_wait() {
    let e = env(1, 100).await;
    // 8 operations of 300 ms on one slot: the last waits ~2 s in the queue,
    // twice its 1 s lease; the rescuer (every second) would take it back if
    // queued tasks were not kept alive.
    e.panel.with(|p| p.op_delay_ms = 300);
    provisions(&e, 8).await;
    let workers = e.workers(1, queued(1000));
    let mut most_held = 0;
    let start = std::time::Instant::now();
    loop {
        let running = scalar(&e, "SELECT count(*) FROM tasks WHERE state = 'running'").await;
        most_held = most_held.max(running);
        let left = scalar(&e, "SELECT count(*) FROM tasks WHERE state <> 'succeeded'").await;
        if left == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{left} left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(workers).await;
    assert!(
        most_held > 1,
        "tasks were claimed ahead of the single slot ({most_held} held at most)"
    );
    assert_eq!(
        scalar(
            &e,
            "SELECT count(*) FROM task_attempts WHERE outcome <> 'succeeded'"
        )
        .await,
        0,
        "no attempt was abandoned or rescued"
    );
    assert_eq!(scalar(&e, "SELECT max(attempt)::int8 FROM tasks").await, 1);
    assert_eq!(e.panel.with(|p| p.creates), 8, "each account created once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_gives_back_its_queue_uncounted() {
    let e = env(1, 100).await;
    e.panel.with(|p| p.op_delay_ms = 400);
    let tasks = provisions(&e, 6).await;
    let workers = e.workers(1, queued(30_000));
    e.wait_until(
        "SELECT count(*) = 6 FROM tasks WHERE state = 'running'",
        Duration::from_secs(30),
    )
    .await;
    stop(workers).await;
    // The one in its slot finished within the grace period; the queued ones
    // are available again, their claim not counted as an attempt.
    let done = scalar(&e, "SELECT count(*) FROM tasks WHERE state = 'succeeded'").await;
    let seen: Vec<(String, i32, Option<serde_json::Value>)> =
        sqlx::query_as("SELECT state::text, attempt, last_error FROM tasks ORDER BY created_at")
            .fetch_all(&e.pool)
            .await
            .unwrap();
    assert!(
        (1..6).contains(&done),
        "{done} finished before the stop took effect; tasks (state, attempt, error): {seen:?}"
    );
    assert_eq!(
        scalar(
            &e,
            "SELECT count(*) FROM tasks WHERE state = 'available' AND attempt = 0 AND leased_by IS NULL"
        )
        .await,
        6 - done
    );
    assert_eq!(
        scalar(&e, "SELECT count(*) FROM task_attempts").await,
        done,
        "only started tasks have attempts"
    );
    // Another worker takes them up.
    let workers = e.workers(1, fast());
    e.wait_all_succeeded(Duration::from_secs(60)).await;
    stop(workers).await;
    for t in tasks {
        assert_eq!(e.task_state(t).await, "succeeded");
    }
    assert_eq!(e.panel.with(|p| p.creates), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_task_claims_in_parallel_keep_the_cap() {
    let e = env(1, 3).await;
    e.panel.with(|p| p.op_delay_ms = 20);
    provisions(&e, 40).await;
    let per_task = WorkerConfig {
        slots: 8,
        claim_batch: 1,
        ..fast()
    };
    let workers = e.workers(2, per_task);
    e.wait_all_succeeded(Duration::from_secs(60)).await;
    stop(workers).await;
    let max = e.panel.with(|p| p.max_in_flight);
    assert!((1..=3).contains(&max), "cap of 3: {max} at once");
    assert_eq!(e.panel.with(|p| p.creates), 40);
    assert_eq!(scalar(&e, "SELECT max(attempt)::int8 FROM tasks").await, 1);
}

/// What a finished task unblocks starts at once, not at the next poll: a
/// service's next operation (accepted while the first ran) and a task held
/// back by its server's cap of one, in both claim modes. The poll is a
/// minute here, so only the worker's own look after a completion (or the
/// completion's hand-off) passes; an idle worker skips claims on a freed
/// slot alone, and this is what that must not lose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_completion_unblocks_starts_without_waiting_for_the_poll() {
    for claim_batch in [8, 1] {
        let e = env(1, 1).await;
        e.panel.with(|p| p.op_delay_ms = 150);
        let workers = e.workers(
            1,
            WorkerConfig {
                slots: 4,
                claim_batch,
                lease_ttl: Duration::from_secs(5),
                poll_interval: Duration::from_secs(60),
                shutdown_grace: Duration::from_secs(5),
                ..WorkerConfig::default()
            },
        );
        let s = e.servers[0];
        let (a, b) = (e.service(s, "ua").await, e.service(s, "ub").await);
        let (first, _) = e
            .enqueue(
                s,
                Some(a),
                "provision",
                json!({"service": spec("ua")}),
                None,
            )
            .await;
        e.wait_until(
            &format!("SELECT state = 'running' FROM tasks WHERE id = '{first}'"),
            Duration::from_secs(10),
        )
        .await;
        // Both wait: a's suspend for its turn, b's provision for the cap.
        let suspend = json!({"service": spec("ua"), "reason": ""});
        e.enqueue(s, Some(a), "suspend", suspend, None).await;
        e.enqueue(
            s,
            Some(b),
            "provision",
            json!({"service": spec("ub")}),
            None,
        )
        .await;
        e.wait_all_succeeded(Duration::from_secs(15)).await;
        stop(workers).await;
        // One at a time (cap 1), each started right after the one before.
        let gaps: Vec<Option<f64>> = sqlx::query_scalar(
            "SELECT extract(epoch FROM a.started_at - lag(a.finished_at) OVER (ORDER BY a.started_at))::float8
             FROM task_attempts a ORDER BY a.started_at",
        )
        .fetch_all(&e.pool)
        .await
        .unwrap();
        assert_eq!(gaps.len(), 3, "three attempts, none retried");
        assert!(gaps[1..].iter().all(Option::is_some), "{gaps:?}");
        for gap in gaps.iter().skip(1).flatten() {
            assert!(
                (0.0..1.0).contains(gap),
                "claim_batch {claim_batch}: a task waited {gap:.3} s after the one it waited for: {gaps:?}"
            );
        }
    }
}

/// A busy per-task worker keeps its commits on a few warm connections and
/// vacuums the queue itself. With 24 slots each commit used to take the
/// pool's longest-idle connection (growing the pool past a backend per
/// slot); now they commit on `COMMIT_CONNECTIONS` of the worker's own. And the dead entries
/// every claim and completion leave at the queue's head are cleared by the
/// worker's upkeep, not left to autovacuum's next visit (at best a minute;
/// turned off for the table here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_per_task_worker_commits_on_few_connections_and_vacuums_the_queue() {
    let e = env(1, 100).await;
    sqlx::query("ALTER TABLE task_queue SET (autovacuum_enabled = false)")
        .execute(&e.pool)
        .await
        .unwrap();
    panel1_store::testing::insert_available_tasks(&e.pool, e.tenant, e.servers[0], 3000).await;
    // The worker's connections by name (its commit connections are a pool
    // of their own, with the same settings).
    let options = PgConnectOptions::from_str(&e.url)
        .unwrap()
        .application_name("busy-worker");
    let pool = PgPoolOptions::new()
        .max_connections(64)
        .connect_with(options)
        .await
        .unwrap();
    let per_task = WorkerConfig {
        slots: 24,
        claim_batch: 1,
        ..fast()
    };
    let workers = spawn_workers(&pool, &e.secret_box, 1, per_task);
    let mut most = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while scalar(&e, "SELECT count(*) FROM task_queue").await > 0 {
        assert!(std::time::Instant::now() < deadline, "3 000 tasks not done");
        let open = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'busy-worker'";
        most = most.max(scalar(&e, open).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Commits, the claim connection, per-task claims in flight (4), the
    // session and listener connections and a few loops (heartbeats,
    // upkeep, webhooks, health) that hold one only for a statement: 13-18
    // seen. With completions committed through the worker's pool: 50.
    let bound = panel1_worker::COMMIT_CONNECTIONS as i64 + 16;
    assert!(
        most <= bound,
        "{most} connections open, at most {bound} expected"
    );
    e.wait_until(
        "SELECT vacuum_count > 0 FROM pg_stat_user_tables WHERE relname = 'task_queue'",
        Duration::from_secs(10),
    )
    .await;
    stop(workers).await;
    let done = "SELECT count(*) FROM tasks WHERE state = 'succeeded'";
    assert_eq!(scalar(&e, done).await, 3000);
}

/// A provision of `user` on `server` whose adapter reads `params`.
async fn provision_with(e: &Env, server: Uuid, user: &str, params: serde_json::Value) -> Uuid {
    let mut service = spec(user);
    service["params"] = params;
    let svc = panel1_store::setup::add_service(&e.pool, e.tenant, server, &service)
        .await
        .unwrap();
    let (task, _) = e
        .enqueue(
            server,
            Some(svc),
            "provision",
            json!({ "service": service }),
            None,
        )
        .await;
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_the_database_refuses_fails_its_own_task_and_holds_up_no_other() {
    let e = env(1, 16).await;
    // An adapter that names every account it provisions `big`: the second
    // and third services to get it would share one remote account, which
    // the unique index on live remote accounts refuses.
    let bomb = install_builtin(&e.pool, "output-bomb").await;
    let bomb_server = panel1_store::setup::add_server(
        &e.pool,
        &panel1_store::setup::NewServer {
            tenant_id: e.tenant,
            name: "bomb".into(),
            adapter_version_id: bomb,
            config: json!({}),
            egress: json!({"rules": []}),
            max_concurrency: 16,
        },
    )
    .await
    .unwrap();
    let mut poison = Vec::new();
    for i in 0..3 {
        let params = json!({"mode": "result", "mb": "0"});
        poison.push(provision_with(&e, bomb_server, &format!("b{i}"), params).await);
    }
    let normal = provisions(&e, 20).await;

    let workers = e.workers(
        1,
        WorkerConfig {
            slots: 16,
            claim_batch: 16,
            ..fast()
        },
    );
    // Well inside the four lease lengths (20 s) a refused batch used to be
    // retried for before it was dropped and every task in it ran again.
    e.wait_until(
        "SELECT count(*) = 23 FROM tasks WHERE state IN ('succeeded', 'failed')",
        Duration::from_secs(15),
    )
    .await;
    stop(workers).await;
    for t in &normal {
        assert_eq!(e.task_state(*t).await, "succeeded");
    }
    let mut states = Vec::new();
    for t in &poison {
        states.push(e.task_state(*t).await);
    }
    states.sort();
    assert_eq!(states, ["failed", "failed", "succeeded"]);
    let (reason, attempts): (String, i64) = sqlx::query_as(
        "SELECT s.failure_reason, (SELECT count(*) FROM task_attempts a WHERE a.task_id = t.id)
           FROM tasks t JOIN services s ON s.id = t.service_id
          WHERE t.id = ANY ($1) AND t.state = 'failed' LIMIT 1",
    )
    .bind(&poison)
    .fetch_one(&e.pool)
    .await
    .unwrap();
    assert!(reason.contains("could not be stored"), "{reason}");
    assert!(reason.contains("services_live_remote_account"), "{reason}");
    assert_eq!(attempts, 1, "a refused result is not run again");
}
