//! Running policies: each cron occurrence opens a window of `window_secs`;
//! a covered service's backup starts at `occurrence + offset`, its offset a
//! hash of its id modulo the window (`panel1_backup_offset_ms`), so a
//! policy over 10 000 services starts them evenly over the window, each at
//! the same point every time. Every worker's upkeep calls [`schedule_due`]
//! about once a second; each pass enqueues the services whose offsets fell
//! since the last pass (policies are taken `FOR UPDATE SKIP LOCKED`, so
//! concurrent workers take different policies and never the same part of
//! a window twice). When the window has passed, the policy moves to the
//! schedule's next occurrence; occurrences missed while no worker ran
//! collapse into one.
use crate::{next_run, StoreError};
use chrono::{DateTime, Duration, Utc};
use sqlx::{PgPool, Row};
use std::sync::atomic::{AtomicI64, Ordering};
use uuid::Uuid;

/// Policies one pass handles (the rest wait for the next pass).
const POLICIES_PER_PASS: i64 = 16;

/// How long a pending or deleting backup must be untouched before its
/// missing step task counts as cancelled.
const SWEEP_QUIET_SECS: f64 = 30.0;
static LAST_SWEEP: AtomicI64 = AtomicI64::new(0);

/// Enqueue the backups that are due (and settle backups whose step task
/// was cancelled). Returns how many were started.
pub async fn schedule_due(pool: &PgPool) -> Result<u64, StoreError> {
    // The sweep probes the queue for every backup in flight: once a
    // minute per process is plenty for something that only a cancel causes.
    let now = Utc::now().timestamp();
    if now - LAST_SWEEP.load(Ordering::Relaxed) >= 60 {
        LAST_SWEEP.store(now, Ordering::Relaxed);
        sweep(pool, SWEEP_QUIET_SECS).await?;
    }
    // The common case (nothing open) costs one indexed read.
    let open: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM backup_policies WHERE enabled AND occurrence_at <= now())",
    )
    .fetch_one(pool)
    .await?;
    if !open {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let due = sqlx::query(
        "SELECT id, cron, window_secs, occurrence_at, scheduled_until, now() AS now
         FROM backup_policies WHERE enabled AND occurrence_at <= now()
         ORDER BY occurrence_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(POLICIES_PER_PASS)
    .fetch_all(&mut *tx)
    .await?;
    let mut started = 0u64;
    for r in due {
        let id: Uuid = r.try_get("id")?;
        let cron: String = r.try_get("cron")?;
        let window_secs: i32 = r.try_get("window_secs")?;
        let occ: DateTime<Utc> = r.try_get("occurrence_at")?;
        let until: DateTime<Utc> = r.try_get("scheduled_until")?;
        let now: DateTime<Utc> = r.try_get("now")?;
        // A zero window is one instant: every service at offset 0.
        let window_ms = (i64::from(window_secs) * 1000).max(1);
        let from_ms = (until - occ).num_milliseconds().clamp(0, window_ms);
        let to_ms = (now - occ).num_milliseconds().clamp(0, window_ms);
        let (mut n, mut unsupported, mut busy) = (0, 0, 0);
        if to_ms > from_ms {
            (n, unsupported, busy) = sqlx::query_as::<_, (i32, i32, i32)>(
                "SELECT enqueued, skipped_unsupported, skipped_busy
                 FROM panel1_backup_policy_pass($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(from_ms)
            .bind(to_ms)
            .bind(window_ms)
            .fetch_one(&mut *tx)
            .await?;
        }
        started += n.max(0) as u64;
        let closed = to_ms >= window_ms;
        // The next occurrence whose window has not wholly passed.
        let next = if closed {
            let after = occ.max(now - Duration::milliseconds(window_ms));
            Some(next_run(&cron, after)?)
        } else {
            None
        };
        // SET reads the old row: `occurrence_at` is the one just passed.
        sqlx::query(
            "UPDATE backup_policies SET
                 run_enqueued = CASE WHEN $2 = 0 THEN $3 ELSE run_enqueued + $3 END,
                 run_skipped_unsupported = CASE WHEN $2 = 0 THEN $4 ELSE run_skipped_unsupported + $4 END,
                 run_skipped_busy = CASE WHEN $2 = 0 THEN $5 ELSE run_skipped_busy + $5 END,
                 run_at = occurrence_at, run_window_closed = $6,
                 scheduled_until = COALESCE($7, occurrence_at + make_interval(secs => $8::float8 / 1000)),
                 occurrence_at = COALESCE($7, occurrence_at)
             WHERE id = $1",
        )
        .bind(id)
        .bind(from_ms)
        .bind(n)
        .bind(unsupported)
        .bind(busy)
        .bind(closed)
        .bind(next)
        .bind(to_ms)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(started)
}

/// Open the policy's next occurrence now (tests, and an operator's "run
/// now" through the store): its window starts at this instant. `false`:
/// not the tenant's policy.
pub async fn run_now(pool: &PgPool, tenant: Uuid, policy: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE backup_policies SET occurrence_at = now(), scheduled_until = now(), updated_at = now()
         WHERE id = $1 AND tenant_id = $2",
    )
    .bind(policy)
    .bind(tenant)
    .execute(pool)
    .await?
    .rows_affected()
        > 0)
}

/// Settle pending or deleting backups, untouched for `quiet_secs`, whose
/// step task is no longer queued (cancelled: a completion would have moved
/// the record in its own transaction). Returns how many.
pub async fn sweep(pool: &PgPool, quiet_secs: f64) -> Result<u64, StoreError> {
    let n: i32 = sqlx::query_scalar("SELECT panel1_backup_sweep(make_interval(secs => $1))")
        .bind(quiet_secs)
        .fetch_one(pool)
        .await?;
    Ok(n.max(0) as u64)
}
