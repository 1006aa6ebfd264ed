//! Automated backups end to end (docs/backups.md): real Postgres, real
//! wasmtime, the backups-v2 fixture (world 0.2.0) and the reference adapter
//! (0.1.0), in-process workers. A policy's occurrence runs; each covered
//! service's backup is created (pending), followed by a `backup-status`
//! check and completes; the retention prune deletes the expired ones with
//! `delete-backup` tasks; a failing backup gives `backup.failed` and a
//! webhook delivery; a 0.1.0 service is skipped and counted.

use crate::common::*;
use panel1_store::backups::policies::{self, PolicySpec};
use panel1_store::backups::retention::Retention;
use panel1_store::backups::schedule;
use panel1_store::setup::{self, NewServer};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

async fn v2_server(e: &Env) -> Uuid {
    let v2 = install_builtin(&e.pool, "backups-v2").await;
    setup::add_server(
        &e.pool,
        &NewServer {
            tenant_id: e.tenant,
            name: "backups-v2".into(),
            adapter_version_id: v2,
            config: json!({}),
            egress: json!({"rules": []}),
            max_concurrency: 4,
        },
    )
    .await
    .unwrap()
}

/// A service that is already live on its server.
async fn active(e: &Env, server: Uuid, user: &str) -> Uuid {
    let id = e.service(server, user).await;
    sqlx::query("UPDATE services SET state = 'active', remote_id = $2 WHERE id = $1")
        .bind(id)
        .bind(user)
        .execute(&e.pool)
        .await
        .unwrap();
    id
}

async fn policy(e: &Env, name: &str, server: Option<Uuid>, window: i32, daily: u32) -> Uuid {
    let mut conn = e.pool.acquire().await.unwrap();
    let p = policies::create(
        &mut conn,
        e.tenant,
        &PolicySpec {
            name: name.into(),
            plan: None,
            server_id: server,
            // Daily at 03:00: nothing runs until `run_now` opens it.
            cron: "0 3 * * *".into(),
            window_secs: window,
            retention: Retention {
                daily,
                weekly: 0,
                monthly: 0,
            },
            enabled: true,
        },
    )
    .await
    .unwrap();
    p.id
}

/// A complete backup taken `sql_at` (an SQL time expression), as earlier
/// runs of the policy left it.
async fn seed(
    e: &Env,
    service: Uuid,
    server: Uuid,
    policy: Option<Uuid>,
    name: &str,
    sql_at: &str,
) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(&format!(
        "INSERT INTO backups (id, tenant_id, service_id, server_id, policy_id, trigger,
                              provider_backup_id, state, size_bytes, created_at, completed_at)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $5::uuid IS NULL THEN 'request' ELSE 'policy' END,
                 $6, 'complete', 100, {sql_at}, {sql_at})"
    ))
    .bind(id)
    .bind(e.tenant)
    .bind(service)
    .bind(server)
    .bind(policy)
    .bind(name)
    .execute(&e.pool)
    .await
    .unwrap();
    id
}

async fn backup_row(e: &Env, id: Uuid) -> (String, Option<String>, Option<i64>, i32) {
    sqlx::query_as("SELECT state, failure_reason, size_bytes, polls FROM backups WHERE id = $1")
        .bind(id)
        .fetch_one(&e.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_backs_up_follows_prunes_and_reports_failures() {
    let e = env(1, 4).await;
    let v1_server = e.servers[0];
    let v2 = v2_server(&e).await;
    let alice = active(&e, v2, "alice").await;
    let bob = active(&e, v2, "fail-backup-bob").await;
    let carol = active(&e, v1_server, "carol").await;
    let hook = panel1_store::webhooks::create_endpoint(
        &e.pool,
        &e.secret_box,
        e.tenant,
        "https://hooks.example.test/panel1",
        "backups",
        &["backup.failed".to_string()],
        None,
    )
    .await
    .unwrap();

    // The server's policy covers alice and bob (more specific than the
    // tenant-wide one, which is left with carol on the 0.1.0 adapter).
    let on_v2 = policy(&e, "v2 daily", Some(v2), 2, 2).await;
    let tenant_wide = policy(&e, "everything", None, 0, 1).await;

    // Earlier runs: yesterday, two the day before, one three days ago; and
    // an on-demand backup, which retention never touches.
    let day =
        |n: i32| format!("date_trunc('day', now()) - interval '{n} days' + interval '1 hour'");
    let kept = seed(&e, alice, v2, Some(on_v2), "alice-d1", &day(1)).await;
    let d2a = seed(&e, alice, v2, Some(on_v2), "alice-d2a", &day(2)).await;
    let d2b = seed(
        &e,
        alice,
        v2,
        Some(on_v2),
        "alice-d2b",
        &format!("{} + interval '2 hours'", day(2)),
    )
    .await;
    let d3 = seed(&e, alice, v2, Some(on_v2), "alice-d3", &day(3)).await;
    let manual = seed(&e, alice, v2, None, "alice-manual", &day(5)).await;

    assert!(schedule::run_now(&e.pool, e.tenant, on_v2).await.unwrap());
    assert!(schedule::run_now(&e.pool, e.tenant, tenant_wide)
        .await
        .unwrap());
    let workers = e.workers(1, fast());
    e.wait_until(
        &format!(
            "SELECT count(*) = 3 FROM backups WHERE id IN ('{d2a}', '{d2b}', '{d3}') AND state = 'deleted'"
        ),
        Duration::from_secs(60),
    )
    .await;
    e.wait_until(
        &format!(
            "SELECT count(*) = 1 FROM backups WHERE service_id = '{bob}' AND state = 'failed'"
        ),
        Duration::from_secs(30),
    )
    .await;
    e.wait_until(
        &format!("SELECT run_window_closed FROM backup_policies WHERE id = '{on_v2}'"),
        Duration::from_secs(30),
    )
    .await;
    stop(workers).await;

    // Alice's new backup: created pending, one status check, complete.
    let (new_id, state, polls, size, provider): (Uuid, String, i32, Option<i64>, String) =
        sqlx::query_as(
            "SELECT id, state, polls, size_bytes, provider_backup_id FROM backups
             WHERE service_id = $1 AND task_id IS NOT NULL",
        )
        .bind(alice)
        .fetch_one(&e.pool)
        .await
        .unwrap();
    assert_eq!((state.as_str(), polls, size), ("complete", 1, Some(4096)));
    assert!(provider.starts_with("alice-"), "{provider}");
    let status_task: (String, Option<Uuid>) =
        sqlx::query_as("SELECT state::text, service_id FROM tasks WHERE idempotency_key = $1")
            .bind(format!("panel1:backup:{new_id}:status-1"))
            .fetch_one(&e.pool)
            .await
            .unwrap();
    assert_eq!(status_task, ("succeeded".to_string(), None));

    // Retention (2 days with a backup): today's and yesterday's stay; the
    // others were deleted on the provider through delete-backup tasks.
    assert_eq!(backup_row(&e, kept).await.0, "complete");
    assert_eq!(backup_row(&e, manual).await.0, "complete");
    let deletes: Vec<(String, String, Option<Uuid>, String)> = sqlx::query_as(
        "SELECT t.input->>'backup_id', t.state::text, t.service_id, a.outcome
         FROM tasks t JOIN task_attempts a ON a.task_id = t.id
         WHERE t.operation = 'delete-backup' ORDER BY 1",
    )
    .fetch_all(&e.pool)
    .await
    .unwrap();
    assert_eq!(
        deletes,
        ["alice-d2a", "alice-d2b", "alice-d3"].map(|p| (
            p.to_string(),
            "succeeded".to_string(),
            None,
            "succeeded".to_string()
        ))
    );
    let deleted_at: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM backups WHERE state = 'deleted' AND deleted_at IS NOT NULL",
    )
    .fetch_one(&e.pool)
    .await
    .unwrap();
    assert_eq!(deleted_at, 3);

    // Bob's failed: the reason, the event, the webhook delivery.
    let (bob_backup, reason): (Uuid, String) =
        sqlx::query_as("SELECT id, failure_reason FROM backups WHERE service_id = $1")
            .bind(bob)
            .fetch_one(&e.pool)
            .await
            .unwrap();
    assert!(reason.contains("backup storage is full"), "{reason}");
    let events: Vec<(i64, String, Value)> = sqlx::query_as(
        "SELECT id, kind, payload FROM events WHERE kind LIKE 'backup.%' ORDER BY id",
    )
    .fetch_all(&e.pool)
    .await
    .unwrap();
    let failed: Vec<&(i64, String, Value)> = events
        .iter()
        .filter(|(_, k, _)| k == "backup.failed")
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0].2["backup_id"], json!(bob_backup));
    assert!(events
        .iter()
        .any(|(_, k, p)| k == "backup.completed" && p["backup_id"] == json!(new_id)));
    let deliveries: Vec<i64> =
        sqlx::query_scalar("SELECT event_id FROM webhook_deliveries WHERE endpoint_id = $1")
            .bind(hook.id)
            .fetch_all(&e.pool)
            .await
            .unwrap();
    assert_eq!(
        deliveries,
        [failed[0].0],
        "one delivery, for backup.failed only"
    );
    // A failed backup never moves the service.
    assert_eq!(e.service_state(bob).await, "active");

    // Carol (0.1.0) is skipped and counted by the tenant-wide policy.
    let runs: Vec<(Uuid, i32, i32, i32)> = sqlx::query_as(
        "SELECT id, run_enqueued, run_skipped_unsupported, run_skipped_busy FROM backup_policies",
    )
    .fetch_all(&e.pool)
    .await
    .unwrap();
    assert!(runs.contains(&(on_v2, 2, 0, 0)), "{runs:?}");
    assert!(runs.contains(&(tenant_wide, 0, 1, 0)), "{runs:?}");
    let carol_backups: i64 =
        sqlx::query_scalar("SELECT count(*) FROM backups WHERE service_id = $1")
            .bind(carol)
            .fetch_one(&e.pool)
            .await
            .unwrap();
    assert_eq!(carol_backups, 0);
    // Both windows passed: the policies wait for their next 03:00.
    let next: Vec<bool> = sqlx::query_scalar(
        "SELECT occurrence_at > now() AND run_window_closed FROM backup_policies",
    )
    .fetch_all(&e.pool)
    .await
    .unwrap();
    assert_eq!(next, [true, true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_the_adapter_cannot_carry_out_leaves_the_backup_expired() {
    // The 0.1.0 adapter answers `unsupported` for delete-backup: the
    // expired backup stays on the provider, marked, not retried forever.
    let e = env(1, 4).await;
    let v1 = e.servers[0];
    let v2 = v2_server(&e).await;
    let alice = active(&e, v2, "alice").await;
    let p = policy(&e, "daily", Some(v2), 0, 1).await;
    let old = seed(
        &e,
        alice,
        v2,
        Some(p),
        "alice-old",
        "now() - interval '3 days'",
    )
    .await;
    // The old backup's server was since swapped for the 0.1.0 one (say the
    // account moved): its delete runs there.
    sqlx::query("UPDATE backups SET server_id = $2 WHERE id = $1")
        .bind(old)
        .bind(v1)
        .execute(&e.pool)
        .await
        .unwrap();
    assert!(schedule::run_now(&e.pool, e.tenant, p).await.unwrap());
    let workers = e.workers(1, fast());
    e.wait_until(
        &format!("SELECT state = 'expired' FROM backups WHERE id = '{old}'"),
        Duration::from_secs(60),
    )
    .await;
    stop(workers).await;
    let (state, reason, _, _) = backup_row(&e, old).await;
    assert_eq!(state, "expired");
    assert!(reason.unwrap().contains("unsupported"));
    let (task_state, attempts): (String, i32) =
        sqlx::query_as("SELECT state::text, attempt FROM tasks WHERE operation = 'delete-backup'")
            .fetch_one(&e.pool)
            .await
            .unwrap();
    assert_eq!((task_state.as_str(), attempts), ("failed", 1));
}
