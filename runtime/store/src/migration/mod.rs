//! Service migrations (docs/migration.md): a service moved from its server
//! to another of the same adapter, as dependent platform tasks
//! (`panel1:migration:<id>:<step>`): export on the source → import on the
//! target → verify (`status`) on the target → switch (the service row
//! moves, in the verify's completion) → terminate on the source once the
//! grace period has passed. A step that fails is compensated: the target
//! is cleaned up (a `terminate` there, when the import had started), the
//! service stays where it was in its previous state, and the migration
//! keeps `failed`, the step and the reason.
//!
//! `create` and `cancel` (the API's transaction) and `steps::project` (each
//! step's completion transaction) are the only writers.
mod cancel;
mod create;
mod steps;

pub use cancel::{cancel, CancelRefused};
pub use create::{create, NewMigration, Refused};
pub(crate) use steps::project;

use crate::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// A migration's record, with its steps as they are now.
#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    pub id: Uuid,
    pub service_id: Uuid,
    pub source_server_id: Uuid,
    pub target_server_id: Uuid,
    /// `running`, `switched`, `completed` or `failed`.
    pub state: String,
    pub grace_period_seconds: i32,
    /// The step that failed (`export`, `import`, `verify`, `terminate`), or
    /// `cancel` for a migration cancelled before its switch.
    pub failed_step: Option<String>,
    pub reason: Option<String>,
    pub steps: Vec<Step>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub switched_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One step: its name, its task (none for `switch`, done by the store) and
/// the task's state (`scheduled` while it waits on the step before).
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub task_id: Option<Uuid>,
    pub state: String,
}

/// The columns `read` turns into a [`Migration`]; each step task's state
/// is read from the live view, else from the archive.
const SELECT: &str = "
    SELECT m.id, m.service_id, m.source_server_id, m.target_server_id, m.state,
           m.grace_period_seconds, m.failed_step, m.reason, m.created_at, m.updated_at,
           m.switched_at, m.finished_at,
           jsonb_build_array(
               jsonb_build_array('export', m.export_task_id, panel1_migration_task_state(m.export_task_id)),
               jsonb_build_array('import', m.import_task_id, panel1_migration_task_state(m.import_task_id)),
               jsonb_build_array('verify', m.verify_task_id, panel1_migration_task_state(m.verify_task_id)),
               jsonb_build_array('switch', NULL,
                   CASE WHEN m.switched_at IS NOT NULL THEN 'succeeded'
                        WHEN m.state = 'failed' THEN 'cancelled' ELSE 'scheduled' END),
               jsonb_build_array('terminate', m.terminate_task_id, panel1_migration_task_state(m.terminate_task_id)),
               CASE WHEN m.cleanup_task_id IS NOT NULL THEN
                   jsonb_build_array('cleanup', m.cleanup_task_id, panel1_migration_task_state(m.cleanup_task_id))
               END
           ) AS steps
    FROM service_migrations m";

type Row = (
    Uuid,
    Uuid,
    Uuid,
    Uuid,
    String,
    i32,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Value,
);

fn from_row(r: Row) -> Migration {
    let steps =
        r.12.as_array()
            .map(|a| {
                a.iter()
                    .filter(|s| !s.is_null())
                    .map(|s| Step {
                        name: s[0].as_str().unwrap_or_default().to_string(),
                        task_id: s[1].as_str().and_then(|x| x.parse().ok()),
                        state: s[2].as_str().unwrap_or("unknown").to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
    Migration {
        id: r.0,
        service_id: r.1,
        source_server_id: r.2,
        target_server_id: r.3,
        state: r.4,
        grace_period_seconds: r.5,
        failed_step: r.6,
        reason: r.7,
        created_at: r.8,
        updated_at: r.9,
        switched_at: r.10,
        finished_at: r.11,
        steps,
    }
}

/// The tenant's migration `id`.
pub async fn get<'c>(
    db: impl PgExecutor<'c>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<Migration>, StoreError> {
    let row: Option<Row> =
        sqlx::query_as(&format!("{SELECT} WHERE m.id = $1 AND m.tenant_id = $2"))
            .bind(id)
            .bind(tenant)
            .fetch_optional(db)
            .await?;
    Ok(row.map(from_row))
}

/// The tenant's migrations with ids below `before`, newest first
/// (optionally of one service or in one state).
pub async fn list<'c>(
    db: impl PgExecutor<'c>,
    tenant: Uuid,
    before: Uuid,
    service: Option<Uuid>,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<Migration>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE m.tenant_id = $1 AND m.id < $2
           AND ($3::uuid IS NULL OR m.service_id = $3) AND ($4::text IS NULL OR m.state = $4)
         ORDER BY m.id DESC LIMIT $5"
    ))
    .bind(tenant)
    .bind(before)
    .bind(service)
    .bind(state)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// A `migration.<what>` event on the service's stream (so SSE and webhooks
/// see it), with the migration's summary.
pub(crate) async fn event(
    conn: &mut PgConnection,
    migration: Uuid,
    what: &str,
    extra: Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (tenant_id, kind, service_id, payload)
         SELECT m.tenant_id, $2, m.service_id,
                jsonb_build_object('migration_id', m.id, 'state', m.state,
                                   'source_server_id', m.source_server_id,
                                   'target_server_id', m.target_server_id,
                                   'failed_step', m.failed_step, 'reason', m.reason) || $3
         FROM service_migrations m WHERE m.id = $1",
    )
    .bind(migration)
    .bind(format!("migration.{what}"))
    .bind(if extra.is_object() { extra } else { json!({}) })
    .execute(conn)
    .await?;
    Ok(())
}

/// The `service.updated` event a migration's move of the service writes.
pub(crate) async fn service_event(
    conn: &mut PgConnection,
    service: Uuid,
    migration: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (tenant_id, kind, service_id, payload)
         SELECT s.tenant_id, 'service.updated', s.id,
                jsonb_build_object('state', s.state, 'server_id', s.server_id,
                                   'failure_reason', s.failure_reason, 'migration_id', $2::uuid)
         FROM services s WHERE s.id = $1",
    )
    .bind(service)
    .bind(migration)
    .execute(conn)
    .await?;
    Ok(())
}

/// The source server of the migration whose import step is `task` (the
/// worker binds that server's credential for the import call only).
pub async fn import_source<'c>(
    db: impl PgExecutor<'c>,
    tenant: Uuid,
    task: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT source_server_id FROM service_migrations WHERE import_task_id = $1 AND tenant_id = $2",
    )
    .bind(task)
    .bind(tenant)
    .fetch_optional(db)
    .await?)
}
