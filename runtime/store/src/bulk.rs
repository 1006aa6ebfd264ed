//! Bulk operations (migrations/0018, docs/bulk.md): one operation on many
//! services as one ordinary child task per service, created set-based in one
//! statement, with progress counted by the workers' upkeep and pause,
//! resume and cancel acting on the children that have not started.
//!
//! The caller (the API) validates the request and passes the operation's
//! rules (the states it is allowed in); the statement applies them and the
//! "nothing after a terminate" rule to every selected service.
use crate::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// At most this many services in one bulk (a selector matching more is
/// refused: split it, e.g. by server or plan).
pub const MAX_SERVICES: i32 = 100_000;

/// What to create: the tenant's services the selector matches (every given
/// filter must hold; none = all of the tenant's services).
#[derive(Debug, Clone)]
pub struct NewBulk {
    pub tenant_id: Uuid,
    /// As the client named it (`suspend`, `refresh-status`, ...).
    pub action: String,
    /// The task operation each child runs (`suspend`, `status`, ...).
    pub operation: String,
    /// Extra input every child gets beside `service` (`reason`, `plan`).
    pub input: Value,
    /// The selector as the client gave it (kept on the record).
    pub selector: Value,
    pub service_ids: Option<Vec<Uuid>>,
    pub server_id: Option<Uuid>,
    pub plan: Option<String>,
    pub state: Option<String>,
    /// Service states the operation is accepted in.
    pub allowed: Vec<String>,
}

/// What [`create`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The bulk and its `total` children were written.
    Bulk {
        id: Uuid,
        total: i32,
        skipped: Value,
    },
    /// Explicit ids the tenant has no service for (in the order given).
    Missing(Vec<Uuid>),
    /// More than [`MAX_SERVICES`] matched (at least this many).
    TooMany(i32),
    /// The selector matched nothing.
    NoneMatched,
    /// Services matched but none can take the operation (why, per service).
    NoneEligible { matched: i32, skipped: Value },
}

/// Create a bulk in the caller's transaction (the API's request transaction,
/// so `Idempotency-Key` covers it). Nothing is written unless it returns
/// [`Created::Bulk`].
pub async fn create(conn: &mut PgConnection, new: &NewBulk) -> Result<Created, StoreError> {
    create_capped(conn, new, MAX_SERVICES).await
}

/// [`create`] with another cap (tests).
pub async fn create_capped(
    conn: &mut PgConnection,
    new: &NewBulk,
    cap: i32,
) -> Result<Created, StoreError> {
    let id = Uuid::now_v7();
    let (matched, created, missing, skipped): (i32, i32, Option<Vec<Uuid>>, Option<Value>) =
        sqlx::query_as(
            "SELECT matched, created, missing, skipped
             FROM panel1_bulk_create($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(id)
        .bind(new.tenant_id)
        .bind(&new.action)
        .bind(&new.operation)
        .bind(&new.input)
        .bind(&new.selector)
        .bind(&new.service_ids)
        .bind(new.server_id)
        .bind(&new.plan)
        .bind(&new.state)
        .bind(&new.allowed)
        .bind(cap)
        .fetch_one(&mut *conn)
        .await?;
    let skipped = skipped.unwrap_or(Value::Array(vec![]));
    Ok(match missing {
        Some(m) => Created::Missing(m),
        None if matched > cap => Created::TooMany(matched),
        None if matched == 0 => Created::NoneMatched,
        None if created == 0 => Created::NoneEligible { matched, skipped },
        None => Created::Bulk {
            id,
            total: created,
            skipped,
        },
    })
}

/// A bulk as read back: counts are live for an unfinished bulk read by id,
/// and as last counted by the upkeep (at most about a second old) in lists.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Bulk {
    pub id: Uuid,
    pub action: String,
    pub operation: String,
    pub selector: Value,
    pub input: Value,
    /// `running`, `paused`, `cancelled` or `completed`.
    pub state: String,
    pub total: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub cancelled: i32,
    pub running: i32,
    pub waiting: i32,
    pub skipped: i32,
    pub skipped_some: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const STORED: &str = "b.id, b.action, b.operation, b.selector, b.input, b.state, b.total,
    b.succeeded, b.failed, b.cancelled, b.running, b.waiting, b.skipped, b.skipped_some,
    b.created_at, b.updated_at, b.finished_at";

/// One bulk of this tenant, with live counts while it is unfinished.
pub async fn get(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<Bulk>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT b.id, b.action, b.operation, b.selector, b.input, b.state, b.total,
                COALESCE(c.succeeded, b.succeeded) AS succeeded, COALESCE(c.failed, b.failed) AS failed,
                COALESCE(c.cancelled, b.cancelled) AS cancelled, COALESCE(c.running, b.running) AS running,
                COALESCE(c.waiting, b.waiting) AS waiting, b.skipped, b.skipped_some,
                b.created_at, b.updated_at, b.finished_at
         FROM bulk_operations b
         LEFT JOIN LATERAL (SELECT * FROM panel1_bulk_counts(b.id) WHERE b.finished_at IS NULL) c ON true
         WHERE b.id = $1 AND b.tenant_id = $2",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await?)
}

/// The tenant's bulks, newest first, ids below `before`, with their counts
/// as last taken by the upkeep.
pub async fn list(
    pool: &PgPool,
    tenant: Uuid,
    before: Uuid,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<Bulk>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {STORED} FROM bulk_operations b
         WHERE b.tenant_id = $1 AND b.id < $2 AND ($3::text IS NULL OR b.state = $3)
         ORDER BY b.id DESC LIMIT $4"
    ))
    .bind(tenant)
    .bind(before)
    .bind(state)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// What pause, resume and cancel may act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Cancel,
}

impl Control {
    fn function(self) -> &'static str {
        match self {
            Control::Pause => "panel1_bulk_pause",
            Control::Resume => "panel1_bulk_resume",
            Control::Cancel => "panel1_bulk_cancel",
        }
    }

    /// Whether a bulk left in `state` after the call means the call had its
    /// effect (now or before: each is idempotent).
    pub fn took_effect(self, state: &str) -> bool {
        match self {
            Control::Pause => state == "paused",
            Control::Resume => state == "running",
            Control::Cancel => state == "cancelled",
        }
    }
}

/// Pause, resume or cancel a bulk of this tenant; returns its state after
/// the call (`None`: no such bulk). The caller checks
/// [`Control::took_effect`] (a completed bulk cannot be paused).
pub async fn control(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    what: Control,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar(&format!("SELECT {}($1, $2)", what.function()))
            .bind(tenant)
            .bind(id)
            .fetch_one(conn)
            .await?,
    )
}

/// Count every unfinished bulk not counted within `every` (progress and
/// completion events; see migrations/0018). Safe in every worker at once.
/// Returns the events written.
pub async fn upkeep(pool: &PgPool, every: Duration) -> Result<i32, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT panel1_bulk_upkeep(make_interval(secs => $1))")
            .bind(every.as_secs_f64())
            .fetch_one(pool)
            .await?,
    )
}
