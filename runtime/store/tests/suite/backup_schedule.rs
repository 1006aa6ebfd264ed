//! A backup policy's occurrence spread over its window (no worker: the
//! scheduler's passes are called by hand and the enqueued tasks counted).
//! 600 services over a 60 s window: each 10 s part holds its share of the
//! offsets, a pass half-way in starts exactly the first half, the pass after
//! the window the rest, each service once; the policy then waits for its
//! next occurrence; services with a pending backup are skipped next time.
use panel1_store::backups::policies::{self, PolicySpec};
use panel1_store::backups::retention::Retention;
use panel1_store::backups::schedule;
use panel1_store::setup::{self, NewAdapterVersion, NewServer};
use panel1_store::testing;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const SERVICES: i64 = 600;

async fn fleet(pool: &PgPool) -> (Uuid, Uuid) {
    let tenant = setup::create_tenant(pool, "backups").await.unwrap();
    let version = setup::add_adapter_version(
        pool,
        &NewAdapterVersion {
            tenant: Some(tenant),
            name: "v2",
            version: "1",
            sha256: &"0".repeat(64),
            world_version: "0.2.0",
            component: b"not run here",
            report: &json!({}),
        },
    )
    .await
    .unwrap();
    let server = setup::add_server(
        pool,
        &NewServer {
            tenant_id: tenant,
            name: "s".into(),
            adapter_version_id: version,
            config: json!({}),
            egress: json!({"rules": []}),
            max_concurrency: 4,
        },
    )
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO services (id, tenant_id, server_id, spec, plan, state)
         SELECT gen_random_uuid(), $1, $2, jsonb_build_object('username', 'u' || n), 'basic', 'active'
         FROM generate_series(1, $3) n",
    )
    .bind(tenant)
    .bind(server)
    .bind(SERVICES)
    .execute(pool)
    .await
    .unwrap();
    (tenant, server)
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn an_occurrence_is_spread_over_its_window() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, _) = fleet(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    let policy = policies::create(
        &mut conn,
        tenant,
        &PolicySpec {
            name: "nightly".into(),
            plan: Some("basic".into()),
            server_id: None,
            cron: "0 3 * * *".into(),
            window_secs: 60,
            retention: Retention {
                daily: 7,
                weekly: 4,
                monthly: 0,
            },
            enabled: true,
        },
    )
    .await
    .unwrap();
    drop(conn);

    // Offsets fill each sixth of the window with about its share.
    let parts: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM services s
         GROUP BY panel1_backup_offset_ms(s.id, 60000) / 10000 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(parts.len(), 6, "{parts:?}");
    assert!(parts.iter().all(|n| (60..=140).contains(n)), "{parts:?}");

    // Nothing is due before the occurrence.
    assert_eq!(schedule::schedule_due(&pool).await.unwrap(), 0);

    // The occurrence began 30 s ago: the services of the first half start.
    sqlx::query(
        "UPDATE backup_policies SET occurrence_at = now() - interval '30 seconds',
                scheduled_until = now() - interval '30 seconds' WHERE id = $1",
    )
    .bind(policy.id)
    .execute(&pool)
    .await
    .unwrap();
    let first = schedule::schedule_due(&pool).await.unwrap() as i64;
    let below = |ms: i64| {
        format!("SELECT count(*) FROM services WHERE panel1_backup_offset_ms(id, 60000) < {ms}")
    };
    let (lo, hi) = (
        count(&pool, &below(30_000)).await,
        count(&pool, &below(32_000)).await,
    );
    assert!((lo..=hi).contains(&first), "{lo} <= {first} <= {hi}");
    assert!(first < SERVICES);
    let tasks = count(
        &pool,
        "SELECT count(*) FROM tasks WHERE operation = 'create-backup' AND state = 'available'
           AND priority = -5 AND idempotency_key LIKE 'panel1:backup:%:create'",
    )
    .await;
    assert_eq!(tasks, first);

    // The window has passed: the rest start, and each service has one.
    sqlx::query(
        "UPDATE backup_policies SET occurrence_at = occurrence_at - interval '60 seconds',
                scheduled_until = scheduled_until - interval '60 seconds' WHERE id = $1",
    )
    .bind(policy.id)
    .execute(&pool)
    .await
    .unwrap();
    let rest = schedule::schedule_due(&pool).await.unwrap() as i64;
    assert_eq!(first + rest, SERVICES);
    assert_eq!(
        count(
            &pool,
            "SELECT count(DISTINCT service_id) FROM backups WHERE state = 'pending' AND trigger = 'policy'"
        )
        .await,
        SERVICES
    );
    let p = policies::get(&pool, tenant, policy.id)
        .await
        .unwrap()
        .unwrap();
    assert!(p.run_window_closed);
    assert_eq!(p.run_enqueued as i64, SERVICES);
    assert!(p.occurrence_at > chrono::Utc::now(), "waits for 03:00");

    // Next time, every service still has its backup pending: all skipped.
    assert!(schedule::run_now(&pool, tenant, policy.id).await.unwrap());
    sqlx::query(
        "UPDATE backup_policies SET occurrence_at = occurrence_at - interval '61 seconds',
                scheduled_until = scheduled_until - interval '61 seconds' WHERE id = $1",
    )
    .bind(policy.id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(schedule::schedule_due(&pool).await.unwrap(), 0);
    let p = policies::get(&pool, tenant, policy.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.run_enqueued, p.run_skipped_busy as i64), (0, SERVICES));

    // A cancelled create-backup task leaves no backup pending forever: the
    // sweep fails it (with `backup.failed`); the others stay pending.
    let (backup, task): (Uuid, Uuid) =
        sqlx::query_as("SELECT id, task_id FROM backups ORDER BY id LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    panel1_store::cancel(&pool, tenant, task).await.unwrap();
    assert_eq!(schedule::sweep(&pool, 0.0).await.unwrap(), 1);
    let (state, reason): (String, String) =
        sqlx::query_as("SELECT state, failure_reason FROM backups WHERE id = $1")
            .bind(backup)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, "failed");
    assert!(reason.contains("cancelled"), "{reason}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM events WHERE kind = 'backup.failed'"
        )
        .await,
        1
    );
    assert_eq!(schedule::sweep(&pool, 0.0).await.unwrap(), 0);
}

#[tokio::test]
async fn the_most_specific_policy_covers_a_service() {
    let (pool, _) = testing::fresh_database().await;
    let (tenant, server) = fleet(&pool).await;
    let spec = |name: &str, plan: Option<&str>, server: Option<Uuid>| PolicySpec {
        name: name.into(),
        plan: plan.map(String::from),
        server_id: server,
        cron: "0 3 * * *".into(),
        window_secs: 0,
        retention: Retention {
            daily: 1,
            weekly: 0,
            monthly: 0,
        },
        enabled: true,
    };
    let mut conn = pool.acquire().await.unwrap();
    let id = |p: policies::Policy| p.id;
    let all = id(
        policies::create(&mut conn, tenant, &spec("all", None, None))
            .await
            .unwrap(),
    );
    let by_server = id(
        policies::create(&mut conn, tenant, &spec("server", None, Some(server)))
            .await
            .unwrap(),
    );
    let by_plan = id(
        policies::create(&mut conn, tenant, &spec("plan", Some("basic"), None))
            .await
            .unwrap(),
    );
    // One per scope.
    let again = policies::create(&mut conn, tenant, &spec("again", Some("basic"), None)).await;
    assert!(again.is_err());
    let covering = |plan: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, Uuid>("SELECT panel1_backup_policy_for($1, $2, $3)")
                .bind(tenant)
                .bind(plan)
                .bind(server)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(covering("basic").await, by_plan);
    assert_eq!(covering("pro").await, by_server);
    let both = id(policies::create(
        &mut conn,
        tenant,
        &spec("both", Some("basic"), Some(server)),
    )
    .await
    .unwrap());
    assert_eq!(covering("basic").await, both);
    assert!(policies::delete(&pool, tenant, by_server).await.unwrap());
    assert_eq!(covering("pro").await, all);
    // Another tenant's server is not one to scope a policy to.
    let other = setup::create_tenant(&pool, "other").await.unwrap();
    let refused = policies::create(&mut conn, other, &spec("x", None, Some(server))).await;
    assert!(matches!(
        refused,
        Err(panel1_store::StoreError::NotFound(_))
    ));
}
