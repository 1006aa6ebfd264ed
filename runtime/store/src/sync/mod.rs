//! Service sync (reconciliation): a run per server pages through the
//! adapter's `list-services` (one platform task per page, `panel1:sync:
//! <run>:<page>`), and the last page's completion compares what the
//! provider listed with Panel1's services into a drift report, then applies
//! the server's policy (migrations/0017, docs/sync.md).
//!
//! Everything a page learns is written in its completion's transaction
//! ([`project`]); the next page is enqueued there too, so a run moves one
//! committed step at a time whatever worker runs it.
mod page;
mod reads;

pub use page::{Page, RemoteItem};
pub use reads::{drift, get_run, list_runs, DriftFilter, DriftItem, RunFilter, SyncRun};

use crate::enqueue::{queue_rows_for, TASKS_CHANNEL};
use crate::platform::PlatformTask;
use crate::{ClaimedTask, NewTask, StoreError, TaskOutcome};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool, Row};
use std::sync::LazyLock;
use uuid::Uuid;

/// Accounts asked for per page.
pub const PAGE_SIZE: u32 = 250;
/// Most pages a run lists (2.5 million accounts at [`PAGE_SIZE`]): a cursor
/// that never ends fails the run instead of paging forever.
pub const MAX_PAGES: i32 = 10_000;
/// Attempts per page (transient failures are retried with backoff).
const PAGE_ATTEMPTS: i32 = 5;
/// Below a tenant's own operations when a server's cap is the limit.
const PAGE_PRIORITY: i16 = -1;
/// `service.drift_detected` events per run at most (the report has all).
pub const DRIFT_EVENT_CAP: i32 = 100;
/// Recurring runs started per call of [`schedule_due`].
const SCHEDULE_BATCH: i32 = 16;

/// What a run may do with the differences it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Store the report and raise events; change nothing.
    Report,
    /// Also make every unknown account (active or suspended on the
    /// provider) a service of the server's tenant.
    Adopt,
    /// Also enqueue suspend / unsuspend / change-package so the provider
    /// matches Panel1 again.
    Reapply,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Report => "report",
            Policy::Adopt => "adopt",
            Policy::Reapply => "reapply",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "report" => Some(Policy::Report),
            "adopt" => Some(Policy::Adopt),
            "reapply" => Some(Policy::Reapply),
            _ => None,
        }
    }
}

/// A server's sync settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub policy: Policy,
    pub interval_secs: i32,
    /// Whether runs start on their own every `interval_secs`.
    pub recurring: bool,
    /// When the next recurring run starts (if `recurring`).
    pub next_run_at: DateTime<Utc>,
}

/// Shortest and longest recurring interval.
pub const MIN_INTERVAL_SECS: i32 = 300;
pub const MAX_INTERVAL_SECS: i32 = 30 * 24 * 3600;

/// The settings of the tenant's server (`None`: not the tenant's).
pub async fn settings(
    conn: &mut PgConnection,
    tenant: Uuid,
    server: Uuid,
) -> Result<Option<Settings>, StoreError> {
    let row = sqlx::query(
        "SELECT policy, interval_secs, recurring, next_run_at FROM sync_settings
         WHERE server_id = $1 AND tenant_id = $2",
    )
    .bind(server)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| settings_of(&r)).transpose()
}

fn settings_of(r: &sqlx::postgres::PgRow) -> Result<Settings, StoreError> {
    let policy: String = r.try_get("policy")?;
    Ok(Settings {
        policy: Policy::parse(&policy)
            .ok_or_else(|| StoreError::Invalid(format!("sync policy {policy:?}")))?,
        interval_secs: r.try_get("interval_secs")?,
        recurring: r.try_get("recurring")?,
        next_run_at: r.try_get("next_run_at")?,
    })
}

/// Change a server's settings. A shorter interval brings the next
/// recurring run forward; a longer one applies after the planned run.
pub async fn set_settings(
    conn: &mut PgConnection,
    tenant: Uuid,
    server: Uuid,
    policy: Policy,
    interval_secs: i32,
    recurring: bool,
) -> Result<Option<Settings>, StoreError> {
    if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&interval_secs) {
        return Err(StoreError::Invalid(format!(
            "interval_secs must be {MIN_INTERVAL_SECS} to {MAX_INTERVAL_SECS}"
        )));
    }
    let row = sqlx::query(
        "UPDATE sync_settings
         SET policy = $3, interval_secs = $4, recurring = $5, updated_at = now(),
             next_run_at = LEAST(next_run_at, now() + make_interval(secs => $4))
         WHERE server_id = $1 AND tenant_id = $2
         RETURNING policy, interval_secs, recurring, next_run_at",
    )
    .bind(server)
    .bind(tenant)
    .bind(policy.as_str())
    .bind(interval_secs)
    .bind(recurring)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| settings_of(&r)).transpose()
}

/// Who asked for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Request,
}

/// Start a run on the tenant's server, in the caller's transaction, unless
/// one is in progress there: `(run, created)`; `None` when the server is
/// not the tenant's.
pub async fn start_run(
    conn: &mut PgConnection,
    tenant: Uuid,
    server: Uuid,
    trigger: Trigger,
) -> Result<Option<(Uuid, bool)>, StoreError> {
    let trigger = match trigger {
        Trigger::Schedule => "schedule",
        Trigger::Request => "request",
    };
    let row: Option<(Uuid, bool)> =
        sqlx::query_as("SELECT run_id, created FROM panel1_sync_start($1, $2, $3)")
            .bind(tenant)
            .bind(server)
            .bind(trigger)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some((run, true)) = row {
        enqueue_page(conn, run, tenant, server, 0, None).await?;
    }
    Ok(row)
}

/// Start the recurring runs that are due and fail runs whose page task
/// ended without a result (cancelled). Called by every worker's upkeep
/// about once a second: each due server is taken by one caller (`SKIP
/// LOCKED`), and a run in progress is never started twice.
pub async fn schedule_due(pool: &PgPool) -> Result<u64, StoreError> {
    // The common case (nothing to do) costs one indexed read.
    let busy: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sync_settings WHERE recurring AND next_run_at <= now())
             OR EXISTS (SELECT 1 FROM sync_runs r WHERE r.state = 'running'
                          AND NOT EXISTS (SELECT 1 FROM task_queue q WHERE q.task_id = r.page_task_id))",
    )
    .fetch_one(pool)
    .await?;
    if !busy {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let started: Vec<(Uuid, Uuid, Uuid)> =
        sqlx::query_as("SELECT run_id, tenant_id, server_id FROM panel1_sync_schedule($1)")
            .bind(SCHEDULE_BATCH)
            .fetch_all(&mut *tx)
            .await?;
    for (run, tenant, server) in &started {
        enqueue_page(&mut tx, *run, *tenant, *server, 0, None).await?;
    }
    tx.commit().await?;
    Ok(started.len() as u64)
}

/// A page task: the record and its queue row as `enqueue` writes them
/// (`queue_rows_for` keeps it in step with the queue), but no
/// `task.created` event (platform tasks are bookkeeping, 0014); the run
/// notes it as the page in flight.
static PAGE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH t AS (
             INSERT INTO task_records (id, tenant_id, server_id, service_id, operation, input, state,
                                       run_at, max_attempts, priority, idempotency_key, created_at)
             VALUES ($1, $2, $3, NULL, 'list-services', $4, 'available', now(), $5, $6, $7,
                     clock_timestamp())
             ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING *
         ),
         q AS ({} RETURNING task_id),
         noted AS (UPDATE sync_runs SET page_task_id = (SELECT task_id FROM q)
                   WHERE id = $8 AND EXISTS (SELECT 1 FROM q))
         SELECT q.task_id, pg_notify('{TASKS_CHANNEL}', '') FROM q",
        queue_rows_for("t")
    )
});

async fn enqueue_page(
    conn: &mut PgConnection,
    run: Uuid,
    tenant: Uuid,
    server: Uuid,
    page: i32,
    cursor: Option<&str>,
) -> Result<(), StoreError> {
    let key = PlatformTask::Sync.key(&[&run.to_string(), &page.to_string()]);
    sqlx::query(&PAGE_SQL)
        .bind(Uuid::now_v7())
        .bind(tenant)
        .bind(server)
        .bind(json!({"cursor": cursor, "limit": PAGE_SIZE}))
        .bind(PAGE_ATTEMPTS)
        .bind(PAGE_PRIORITY)
        .bind(key)
        .bind(run)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(())
}

/// The run and page a sync task's key names.
fn run_and_page(task: &ClaimedTask) -> Option<(Uuid, i32)> {
    let key = task.idempotency_key.as_deref()?;
    let rest = key.strip_prefix(&PlatformTask::Sync.key(&[]))?;
    let (run, page) = rest.split_once(':')?;
    Some((run.parse().ok()?, page.parse().ok()?))
}

/// Record a finished page (succeeded, or finally failed) in its
/// completion's transaction: stage what it listed and enqueue the next
/// page, or compute the report on the last one, or end the run failed.
/// Errors only for database failures, never for what the adapter said.
pub(crate) async fn project(
    tx: &mut PgConnection,
    task: &ClaimedTask,
    outcome: &TaskOutcome,
) -> Result<(), StoreError> {
    let Some((run, _)) = run_and_page(task) else {
        tracing::warn!(task = %task.id, "a sync task without a run in its key");
        return Ok(());
    };
    let (items, next_cursor, failure) = match page::read(outcome) {
        Page::Listed { items, next_cursor } => (items, next_cursor, None),
        Page::Failed(reason) => (Vec::new(), None, Some(reason)),
    };
    let row = sqlx::query(
        "SELECT outcome, tenant_id, server_id, page, cursor
         FROM panel1_sync_page($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(run)
    .bind(task.id)
    .bind(
        items
            .iter()
            .map(|i| i.remote_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(items.iter().map(|i| i.state).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.plan.as_deref()).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .map(|i| i.domain.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(next_cursor.as_deref())
    .bind(failure.as_deref())
    .bind(MAX_PAGES)
    .fetch_one(&mut *tx)
    .await?;
    let outcome: String = row.try_get("outcome")?;
    match outcome.as_str() {
        "next" => {
            let (tenant, server): (Uuid, Uuid) =
                (row.try_get("tenant_id")?, row.try_get("server_id")?);
            let page: i32 = row.try_get("page")?;
            let cursor: Option<String> = row.try_get("cursor")?;
            enqueue_page(tx, run, tenant, server, page, cursor.as_deref()).await
        }
        "finish" => finish(tx, run).await,
        _ => Ok(()),
    }
}

/// The report, the policy's adoptions, and its re-applied operations
/// enqueued like any other (a `task.created` event each).
async fn finish(tx: &mut PgConnection, run: Uuid) -> Result<(), StoreError> {
    let actions: Vec<(i64, Uuid, String, serde_json::Value)> = sqlx::query_as(
        "SELECT drift_id, service_id, operation, input FROM panel1_sync_finish($1, $2)",
    )
    .bind(run)
    .bind(DRIFT_EVENT_CAP)
    .fetch_all(&mut *tx)
    .await?;
    if actions.is_empty() {
        return Ok(());
    }
    let (tenant, server): (Uuid, Uuid) =
        sqlx::query_as("SELECT tenant_id, server_id FROM sync_runs WHERE id = $1")
            .bind(run)
            .fetch_one(&mut *tx)
            .await?;
    let mut drift = Vec::with_capacity(actions.len());
    let mut tasks = Vec::with_capacity(actions.len());
    for (id, service, operation, input) in actions {
        let task = NewTask::new(tenant, server, Some(service), &operation, input);
        let (task, _) = crate::enqueue(&mut *tx, &task).await?;
        drift.push(id);
        tasks.push(task);
    }
    sqlx::query("SELECT panel1_sync_acted($1, $2)")
        .bind(&drift)
        .bind(&tasks)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_key_names_its_run_and_page() {
        let run = Uuid::now_v7();
        let mut task = ClaimedTask {
            id: Uuid::now_v7(),
            tenant_id: Uuid::nil(),
            server_id: Uuid::nil(),
            service_id: None,
            operation: "list-services".into(),
            input: json!({}),
            attempt: 1,
            max_attempts: 5,
            lease: 1,
            idempotency_key: Some(PlatformTask::Sync.key(&[&run.to_string(), "7"])),
        };
        assert_eq!(PlatformTask::of(&task), Some(PlatformTask::Sync));
        assert_eq!(run_and_page(&task), Some((run, 7)));
        task.idempotency_key = Some("panel1:sync:nonsense".into());
        assert_eq!(run_and_page(&task), None);
    }

    #[test]
    fn policies_round_trip() {
        for p in [Policy::Report, Policy::Adopt, Policy::Reapply] {
            assert_eq!(Policy::parse(p.as_str()), Some(p));
        }
        assert_eq!(Policy::parse("delete"), None);
    }
}
