//! The queue's functions find rows by index even with plans made while the
//! queue was tiny. plpgsql keeps each statement's plan for the connection's
//! life (until its tables are analyzed again), and the planner's choice for
//! a one-page table is a sequential scan: kept through a burst, that scans
//! the whole queue on every claim and completion. Migration 0007 turns
//! sequential scans off inside those functions; this test counts them, and
//! the index entries read, which a join walking a whole index instead of
//! probing it per item (0008's first draft) would also give away.
use panel1_store::{
    claim, complete_and_claim, complete_batch, testing, Applied, AttemptRecord, Handoff, NewTask,
    QueueVacuum, TaskOutcome,
};
use serde_json::json;
use sqlx::{Connection, PgPool};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);

/// A statistics counter summed over the queue's two tables, this backend's
/// counts included (the pool has one connection: its pending counts are
/// flushed first).
async fn counter(pool: &PgPool, view: &str, column: &str) -> i64 {
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query_scalar(&format!(
        "SELECT sum({column})::int8 FROM {view} WHERE relname IN ('task_queue', 'task_records')"
    ))
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Sequential scans of the queue's two tables so far.
async fn seq_scans(pool: &PgPool) -> i64 {
    counter(pool, "pg_stat_user_tables", "seq_scan").await
}

/// Index entries read in the queue's two tables so far: a plan that walks
/// a whole index instead of probing it (a loop or hash join over a full
/// index scan) reads them all.
async fn index_entries_read(pool: &PgPool) -> i64 {
    counter(pool, "pg_stat_user_indexes", "idx_tup_read").await
}

/// One round through every path: a claim of three, one completion that
/// hands its slot on (`complete_one` with a hand-off), and the other two
/// with the handed-on task as one batch (`complete_batch`).
async fn claim_and_complete_all_ways(pool: &PgPool) {
    let held = claim(pool, "w", 3, LEASE).await.unwrap();
    assert_eq!(held.len(), 3);
    let done = || TaskOutcome::Succeeded { result: json!({}) };
    let first = [(held[0].clone(), done(), AttemptRecord::default())];
    let handoff = Handoff {
        limit: 1,
        worker: "w",
        lease_ttl: LEASE,
    };
    let (_, next) = complete_and_claim(pool, &first, Some(handoff))
        .await
        .unwrap();
    assert_eq!(next.len(), 1, "the slot was handed on");
    let rest: Vec<_> = [&held[1], &held[2], &next[0]]
        .into_iter()
        .map(|t| (t.clone(), done(), AttemptRecord::default()))
        .collect();
    let applied = complete_batch(pool, &rest).await.unwrap();
    assert!(applied.iter().all(|a| *a == Applied::Succeeded));
}

#[tokio::test]
async fn plans_made_on_a_tiny_queue_still_use_the_indexes_after_a_burst() {
    let (_, url) = testing::fresh_database().await;
    // One connection: every statement below shares its plan cache.
    let pool = panel1_store::connect(&url, 1).await.unwrap();
    // No ANALYZE behind the test's back (it would make new plans).
    sqlx::raw_sql(
        "ALTER TABLE task_queue SET (autovacuum_enabled = false);
         ALTER TABLE task_records SET (autovacuum_enabled = false);",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (tenant, server) = testing::tenant_and_server(&pool, 100).await;
    for _ in 0..8 {
        let mut conn = pool.acquire().await.unwrap();
        let t = NewTask::new(tenant, server, None, "info", json!({}));
        panel1_store::enqueue(&mut conn, &t).await.unwrap();
    }
    sqlx::query("ANALYZE task_queue, task_records")
        .execute(&pool)
        .await
        .unwrap();
    // Plans are made now, with the queue at one page.
    claim_and_complete_all_ways(&pool).await;

    // A burst, not yet analyzed.
    testing::insert_available_tasks(&pool, tenant, server, 5000).await;

    let before = seq_scans(&pool).await;
    let read_before = index_entries_read(&pool).await;
    for _ in 0..2 {
        claim_and_complete_all_ways(&pool).await;
    }
    assert_eq!(
        seq_scans(&pool).await,
        before,
        "a claim or completion scanned task_queue or task_records sequentially"
    );
    // Two rounds of four claimed tasks: a few probes each, not the 5 000
    // rows of the queue.
    let read = index_entries_read(&pool).await - read_before;
    assert!(
        read < 200,
        "{read} index entries read in two rounds: a claim or completion walked a whole index"
    );
}

/// What runs for every task or event keeps its plan: PL/pgSQL caches each
/// statement's plan for the connection's life, while a LANGUAGE sql function
/// is planned again on every call (Postgres 15). The webhook claim, run after
/// every event wake-up, spent ~0.9 ms a call planning before 0025.
#[tokio::test]
async fn hot_path_functions_keep_their_plans() {
    let (pool, _url) = testing::fresh_database().await;
    let hot = [
        "claim_tasks",
        "claim_on_servers",
        "complete_one",
        "complete_batch",
        "panel1_admit",
        "panel1_claim_webhook_deliveries",
        "panel1_settle_webhook_delivery",
    ];
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.proname::text, l.lanname::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
         WHERE p.proname = ANY($1)",
    )
    .bind(&hot[..])
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows.len(),
        hot.len(),
        "each hot function exists once: {rows:?}"
    );
    for (name, language) in rows {
        assert_eq!(language, "plpgsql", "{name} is planned on every call");
    }
}

/// The queue table's dead and live rows as the statistics have them now
/// (this backend's pending counts flushed first).
async fn queue_rows(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT n_dead_tup, n_live_tup, vacuum_count FROM pg_stat_user_tables
          WHERE relname = 'task_queue'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn delete_queue_rows(pool: &PgPool, n: i64) {
    sqlx::query(
        "DELETE FROM task_queue WHERE task_id IN (SELECT task_id FROM task_queue LIMIT $1)",
    )
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

/// Claims read `task_queue_available` from its head, where every claimed
/// or finished task leaves a dead entry until a vacuum; autovacuum comes
/// once a minute at best. The workers' own vacuum (store/src/queue_vacuum.rs)
/// runs past its threshold and not before, clears the dead rows, and does
/// not run again at once for rows an open snapshot still keeps.
#[tokio::test]
async fn the_queue_is_vacuumed_past_its_dead_row_threshold() {
    let (_, url) = testing::fresh_database().await;
    let pool = panel1_store::connect(&url, 1).await.unwrap();
    sqlx::query("ALTER TABLE task_queue SET (autovacuum_enabled = false)")
        .execute(&pool)
        .await
        .unwrap();
    let (tenant, server) = testing::tenant_and_server(&pool, 100).await;
    testing::insert_available_tasks(&pool, tenant, server, 4000).await;
    let mut vacuum = QueueVacuum::default();

    // 500 dead of 4 000: under 1 000 + 0.2 × live.
    delete_queue_rows(&pool, 500).await;
    assert_eq!(queue_rows(&pool).await, (500, 3500, 0));
    assert_eq!(vacuum.run_if_due(&pool).await.unwrap(), None);
    assert_eq!(queue_rows(&pool).await.2, 0, "vacuumed under the threshold");

    // 2 100 dead, 1 900 live: due (threshold 1 380).
    delete_queue_rows(&pool, 1600).await;
    assert_eq!(queue_rows(&pool).await.0, 2100);
    assert_eq!(vacuum.run_if_due(&pool).await.unwrap(), Some(2100));
    let (dead, live, vacuums) = queue_rows(&pool).await;
    assert_eq!(
        (dead, live, vacuums),
        (0, 1900, 1),
        "the vacuum cleared the dead rows"
    );

    // A snapshot held open: the next 1 500 dead rows stay after a vacuum,
    // and they do not make the next check due again.
    let mut reader = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM task_queue")
        .execute(&mut reader)
        .await
        .unwrap();
    delete_queue_rows(&pool, 1500).await;
    assert_eq!(queue_rows(&pool).await.0, 1500);
    assert_eq!(vacuum.run_if_due(&pool).await.unwrap(), Some(1500));
    let (dead, _, vacuums) = queue_rows(&pool).await;
    assert_eq!((dead, vacuums), (1500, 2), "the open snapshot kept them");
    assert_eq!(vacuum.run_if_due(&pool).await.unwrap(), None);
    assert_eq!(
        queue_rows(&pool).await.2,
        2,
        "vacuumed again for rows it cannot remove"
    );
    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
}
