//! A task completed alone (`complete_one`, migrations/0007) and the same
//! tasks completed as one batch (`complete_batch`, 0008) write the same thing:
//! the same scenario runs in two databases, one completion per task in one
//! and one batch in the other, and everything the completions wrote is
//! compared. The scenario covers each way a completion goes: a provision
//! that succeeds (the service becomes active with its remote id and plan), a
//! permanent failure (the service fails with the reason), a transient error
//! (retried later, the service left alone), a stale lease (nothing written,
//! counted), and slots handed on to waiting tasks under a cap lowered below
//! what runs.
use panel1_store::setup;
use panel1_store::{
    claim, complete_and_claim, testing, AttemptRecord, ClaimedTask, Handoff, NewTask, TaskOutcome,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);

async fn enqueue(pool: &PgPool, t: NewTask) {
    let mut conn = pool.acquire().await.unwrap();
    panel1_store::enqueue(&mut conn, &t).await.unwrap();
}

/// The outcome the scenario gives the task marked `n` (its input).
fn outcome_for(task: &ClaimedTask) -> TaskOutcome {
    match task.input["n"].as_i64() {
        Some(1) => TaskOutcome::Succeeded {
            result: json!({"remote_id": "acct-1", "plan": "gold"}),
        },
        Some(2) => TaskOutcome::AdapterError {
            kind: "permanent".into(),
            message: "no such package".into(),
            retry_after_ms: None,
        },
        Some(3) => TaskOutcome::AdapterError {
            kind: "transient".into(),
            message: "panel busy".into(),
            retry_after_ms: Some(60_000),
        },
        _ => TaskOutcome::Succeeded { result: json!({}) },
    }
}

/// Run the scenario; `batched` completes the four claimed tasks in one
/// call, otherwise one call each. Returns what the database holds after.
async fn scenario(batched: bool) -> Value {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 10).await;
    let mut services = Vec::new();
    for name in ["a", "b", "c"] {
        let spec = json!({"name": name, "plan": "basic"});
        services.push(
            setup::add_service(&pool, tenant, server, &spec)
                .await
                .unwrap(),
        );
    }
    // Marked 1..=4; claimed first (enqueued first), then three to hand on.
    let claimed_first = [
        (Some(services[0]), "provision", 1),
        (Some(services[1]), "provision", 2),
        (None, "info", 3),
        (Some(services[2]), "provision", 4),
    ];
    for (service, op, n) in claimed_first {
        enqueue(
            &pool,
            NewTask::new(tenant, server, service, op, json!({"n": n})),
        )
        .await;
    }
    let mut held = claim(&pool, "w", 4, LEASE).await.unwrap();
    assert_eq!(held.len(), 4);
    // The operator lowers the cap below what runs: the hand-offs must
    // bring the server down to it (the room formulas of both paths bind).
    sqlx::query("UPDATE servers SET max_concurrency = 3 WHERE id = $1")
        .bind(server)
        .execute(&pool)
        .await
        .unwrap();
    for n in 5..=7 {
        enqueue(
            &pool,
            NewTask::new(tenant, server, None, "info", json!({"n": n})),
        )
        .await;
    }
    held.sort_by_key(|t| t.input["n"].as_i64());
    // Task 4's worker lost its lease: its completion must be stale.
    held[3].lease -= 1;
    let items: Vec<_> = held
        .iter()
        .map(|t| (t.clone(), outcome_for(t), AttemptRecord::default()))
        .collect();
    let handoff = || {
        Some(Handoff {
            limit: 4,
            worker: "w",
            lease_ttl: LEASE,
        })
    };
    let mut handed_on = Vec::new();
    if batched {
        let (_, next) = complete_and_claim(&pool, &items, handoff()).await.unwrap();
        handed_on.extend(next);
    } else {
        for item in &items {
            let one = std::slice::from_ref(item);
            let (_, next) = complete_and_claim(&pool, one, handoff()).await.unwrap();
            assert!(next.len() <= 1, "one slot handed on per finished task");
            handed_on.extend(next);
        }
    }
    testing::assert_server_load_matches(&pool).await;
    let mut handed: Vec<i64> = handed_on
        .iter()
        .filter_map(|t| t.input["n"].as_i64())
        .collect();
    handed.sort();
    snapshot(&pool, handed).await
}

/// What the completions wrote, keyed by the tasks' marks and the services'
/// names (ids and times differ between the two databases).
async fn snapshot(pool: &PgPool, handed: Vec<i64>) -> Value {
    let read = |sql: &'static str| async move {
        let v: Value = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        v
    };
    json!({
        "handed_on": handed,
        "tasks": read(
            "SELECT jsonb_agg(jsonb_build_object(
                 'n', input->'n', 'state', state, 'attempt', attempt, 'lease', lease,
                 'result', result, 'error', last_error, 'finished', finished_at IS NOT NULL,
                 'later', run_at > now() + interval '30 seconds') ORDER BY input->'n')
             FROM tasks"
        ).await,
        "attempts": read(
            "SELECT jsonb_agg(jsonb_build_object(
                 'n', t.input->'n', 'attempt', a.attempt, 'lease', a.lease, 'outcome', a.outcome,
                 'kind', a.error_kind, 'message', a.error_message) ORDER BY t.input->'n')
             FROM task_attempts a JOIN tasks t ON t.id = a.task_id"
        ).await,
        "services": read(
            "SELECT jsonb_agg(jsonb_build_object(
                 'name', spec->>'name', 'state', state, 'remote_id', remote_id, 'plan', plan,
                 'reason', failure_reason) ORDER BY spec->>'name')
             FROM services"
        ).await,
        // As a set (a batch writes its service events before its task
        // events), with each task's own order checked separately below.
        "events": read(
            "SELECT jsonb_agg(jsonb_build_object(
                 'kind', e.kind, 'n', t.input->'n', 'service', s.spec->>'name',
                 'payload', e.payload - 'run_at') ORDER BY t.input->'n', e.kind)
             FROM events e JOIN tasks t ON t.id = e.task_id LEFT JOIN services s ON s.id = e.service_id
             WHERE e.kind <> 'task.created'"
        ).await,
        "service_event_before_task_event": read(
            "SELECT to_jsonb(bool_and(sv.id < tk.id))
             FROM events sv JOIN events tk ON tk.task_id = sv.task_id AND tk.kind LIKE 'task.%' AND tk.kind <> 'task.created'
             WHERE sv.kind = 'service.updated'"
        ).await,
        "stale": read("SELECT to_jsonb(value) FROM queue_counters WHERE name = 'stale_completions'").await,
        "running": read("SELECT to_jsonb(count(*)) FROM task_queue WHERE state = 'running'").await,
    })
}

#[tokio::test]
async fn one_completion_at_a_time_writes_what_a_batch_writes() {
    let alone = scenario(false).await;
    let batch = scenario(true).await;
    assert_eq!(alone, batch);

    // And what both wrote is right.
    assert_eq!(alone["handed_on"], json!([5, 6]), "the cap of 3 binds");
    assert_eq!(alone["stale"], json!(1));
    assert_eq!(
        alone["running"],
        json!(3),
        "task 4 (stale) and the two handed on"
    );
    assert_eq!(alone["service_event_before_task_event"], json!(true));
    let tasks = alone["tasks"].as_array().unwrap();
    let state = |n: usize| tasks[n - 1]["state"].as_str().unwrap().to_string();
    assert_eq!(
        (state(1), state(2), state(3), state(4)),
        (
            "succeeded".into(),
            "failed".into(),
            "retryable".into(),
            "running".into()
        )
    );
    assert_eq!(tasks[2]["later"], json!(true), "retried after retry-after");
    assert_eq!(
        tasks[0]["result"],
        json!({"remote_id": "acct-1", "plan": "gold"})
    );
    let services = alone["services"].as_array().unwrap();
    assert_eq!(services[0]["state"], json!("active"));
    assert_eq!(services[0]["remote_id"], json!("acct-1"));
    assert_eq!(services[0]["plan"], json!("gold"));
    assert_eq!(services[1]["state"], json!("failed"));
    assert_eq!(
        services[1]["reason"],
        json!("provision failed: no such package")
    );
    assert_eq!(
        services[2]["state"],
        json!("provisioning"),
        "left as its enqueue set it: the stale completion moved nothing"
    );
    let attempts = alone["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        3,
        "no attempt recorded for the stale completion"
    );
    let kinds: Vec<&str> = alone["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "service.updated",
            "task.succeeded",
            "service.updated",
            "task.failed",
            "task.retrying"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_id_too_long_to_store_fails_its_task_not_the_batch() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = testing::tenant_and_server(&pool, 10).await;
    let mut services = Vec::new();
    for (n, name) in ["long", "fine"].into_iter().enumerate() {
        let spec = json!({"name": name, "plan": "basic"});
        let service = setup::add_service(&pool, tenant, server, &spec)
            .await
            .unwrap();
        enqueue(
            &pool,
            NewTask::new(tenant, server, Some(service), "provision", json!({"n": n})),
        )
        .await;
        services.push(service);
    }
    let mut held = claim(&pool, "w", 2, LEASE).await.unwrap();
    held.sort_by_key(|t| t.input["n"].as_i64());
    // 3 008 bytes of random hex: more than a btree entry of the
    // remote-account index holds (and nothing to compress), so the
    // statement itself would fail, and the batch with it.
    let long: String = (0..94)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let items = vec![
        (
            held[0].clone(),
            TaskOutcome::Succeeded {
                result: json!({"remote_id": long}),
            },
            AttemptRecord::default(),
        ),
        (
            held[1].clone(),
            TaskOutcome::Succeeded {
                result: json!({"remote_id": "acct-fine"}),
            },
            AttemptRecord::default(),
        ),
    ];
    let (applied, _) = complete_and_claim(&pool, &items, None).await.unwrap();
    assert_eq!(
        applied,
        [
            panel1_store::Applied::Failed,
            panel1_store::Applied::Succeeded
        ]
    );
    let (state, reason): (String, Option<String>) =
        sqlx::query_as("SELECT state::text, failure_reason FROM services WHERE id = $1")
            .bind(services[0])
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, "failed");
    let reason = reason.unwrap_or_default();
    assert!(reason.contains("`remote_id` is 3008 bytes"), "{reason}");
    let remote: Option<String> = sqlx::query_scalar("SELECT remote_id FROM services WHERE id = $1")
        .bind(services[1])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(remote.as_deref(), Some("acct-fine"));
}
