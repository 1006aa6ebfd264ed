//! Automated backups with the real cPanel adapter (world 0.2.0) against the
//! WHM simulator: a policy's backup is a pkgacct session followed by
//! `backup-status` tasks until WHM says COMPLETED; the prune of an older
//! backup ends `expired` (WHM API 1 cannot delete a cpmove archive: the
//! adapter has no delete-backup); restore-backup runs a cpmove restore.
// The cPanel harness; not every helper of it is used here.
#[allow(dead_code)]
use crate::common::stop;
use crate::whm::{spec, Setup, Whm};
use panel1_store::backups::policies::{self, PolicySpec};
use panel1_store::backups::retention::Retention;
use panel1_store::backups::schedule;
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

async fn wait_until(h: &Whm, sql: &str) {
    let start = Instant::now();
    loop {
        let ok: bool = sqlx::query_scalar(sql)
            .fetch_one(&h.pool)
            .await
            .unwrap_or(false);
        if ok {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for: {sql}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpanel_backups_follow_expire_and_restore() {
    let h = Whm::start(Setup::default()).await;
    let (svc, _, _) = h.provision_once("alice", "succeeded").await;
    // Each pkgacct session answers RUNNING once before it completes.
    h.sim.set_backup_polls(1);
    let mut conn = h.pool.acquire().await.unwrap();
    let policy = policies::create(
        &mut conn,
        h.tenant,
        &PolicySpec {
            name: "nightly".into(),
            plan: None,
            server_id: Some(h.server),
            cron: "0 3 * * *".into(),
            window_secs: 0,
            retention: Retention {
                daily: 1,
                weekly: 0,
                monthly: 0,
            },
            enabled: true,
        },
    )
    .await
    .unwrap();
    drop(conn);
    let old = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO backups (id, tenant_id, service_id, server_id, policy_id, trigger,
                              provider_backup_id, state, created_at, completed_at)
         VALUES ($1, $2, $3, $4, $5, 'policy', 'old-session', 'complete',
                 now() - interval '3 days', now() - interval '3 days')",
    )
    .bind(old)
    .bind(h.tenant)
    .bind(svc)
    .bind(h.server)
    .bind(policy.id)
    .execute(&h.pool)
    .await
    .unwrap();

    assert!(schedule::run_now(&h.pool, h.tenant, policy.id)
        .await
        .unwrap());
    let workers = h.workers(1);
    wait_until(
        &h,
        &format!("SELECT state = 'expired' FROM backups WHERE id = '{old}'"),
    )
    .await;
    let (id, state, polls, size, provider): (Uuid, String, i32, Option<i64>, String) =
        sqlx::query_as(
            "SELECT id, state, polls, size_bytes, provider_backup_id FROM backups
             WHERE service_id = $1 AND id <> $2",
        )
        .bind(svc)
        .bind(old)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(state, "complete");
    // Pending after create, RUNNING at the first check, COMPLETED at the second.
    assert_eq!(polls, 2);
    assert!(size.unwrap() > 0, "{size:?}");
    let sessions = h.sim.pkgacct_sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].session_id, provider);
    let reason: String = sqlx::query_scalar("SELECT failure_reason FROM backups WHERE id = $1")
        .bind(old)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert!(reason.contains("unsupported"), "{reason}");

    // Restore from the new backup: a cpmove restore on WHM.
    let task = h
        .enqueue(
            svc,
            "restore-backup",
            json!({"service": spec("alice"), "backup_id": provider}),
        )
        .await;
    assert_eq!(h.finished(task).await, "succeeded");
    stop(workers).await;
    assert_eq!(h.sim.restores().len(), 1);
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE kind = 'backup.completed' AND payload->>'backup_id' = $1",
    )
    .bind(id.to_string())
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(completed, 1);
    h.assert_nothing_leaked().await;
}
