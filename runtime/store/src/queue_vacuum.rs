//! Vacuuming the queue table between autovacuum's visits.
//!
//! Every claim reads `task_queue_available` from its head, and each task
//! claimed or finished leaves a dead entry there (and a dead row in the
//! heap) until a VACUUM removes it. Autovacuum visits a database at most
//! once per `autovacuum_naptime` (a minute by default): at 2 000 tasks a
//! second that is over 100 000 dead entries, which every claim steps over.
//! Measured in the queue benchmark, one commit per task, 30 000 tasks:
//! claims read 217 pages each by the end; with the table vacuumed every
//! second, 72. (On two cores that did not change the tasks a second: the
//! database there is bound by its commits; see docs/benchmarks.md.)
//!
//! So workers look at the table's dead-row count once a second and vacuum
//! it past autovacuum's own rule (`threshold + scale × live rows`) with a
//! lower threshold. Rows that a long transaction still keeps visible cannot
//! be removed; the next vacuum waits until that many more have died, so a
//! stuck transaction does not turn this into a vacuum a second.
use crate::StoreError;
use sqlx::PgPool;

/// Dead rows that make a vacuum due on a small queue.
pub const QUEUE_VACUUM_THRESHOLD: i64 = 1_000;

/// The share of live rows added to the threshold: a large backlog is
/// vacuumed less often, as each vacuum of it costs more.
pub const QUEUE_VACUUM_SCALE: f64 = 0.2;

/// What one worker remembers between checks.
#[derive(Debug, Default)]
pub struct QueueVacuum {
    /// Dead rows the last vacuum could not remove.
    left_behind: i64,
}

impl QueueVacuum {
    /// Vacuum `task_queue` if enough rows died since the last vacuum.
    /// `Some(dead rows seen)` when it vacuumed. Several workers may decide
    /// at once: `SKIP_LOCKED` lets one vacuum and the others pass. A role
    /// that does not own the table gets a warning from Postgres, not an
    /// error, and the table is left to autovacuum.
    pub async fn run_if_due(&mut self, pool: &PgPool) -> Result<Option<i64>, StoreError> {
        let (dead, live) = queue_rows(pool).await?;
        let due = QUEUE_VACUUM_THRESHOLD as f64 + QUEUE_VACUUM_SCALE * live as f64;
        if ((dead - self.left_behind) as f64) < due {
            return Ok(None);
        }
        // Simple-query protocol: VACUUM cannot run in the implicit
        // transaction of a prepared statement's pipeline.
        sqlx::raw_sql("VACUUM (SKIP_LOCKED) task_queue")
            .execute(pool)
            .await?;
        self.left_behind = queue_rows(pool).await?.0;
        Ok(Some(dead))
    }
}

/// The table's dead and live row counts as the statistics have them (each
/// backend reports its changes within about a second; a vacuum at once).
async fn queue_rows(pool: &PgPool) -> Result<(i64, i64), StoreError> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables
          WHERE relid = to_regclass('task_queue')",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.unwrap_or((0, 0)))
}
