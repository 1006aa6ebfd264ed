//! Server health checks (migrations/0015): workers lease due checks, run
//! the adapter's `test-connection` and settle them; the state machine, the
//! history, the events and the circuit breaker live in
//! `panel1_settle_health_check`.
use crate::StoreError;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// A leased check: run `test-connection` on the server and settle it with
/// the token before the lease ends.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HealthCheck {
    pub server_id: Uuid,
    pub tenant_id: Uuid,
    pub token: i64,
}

/// How a check ended, as the settlement takes it.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    /// `test-connection` answered.
    Ok,
    /// It failed with this kind (`transient`, `deadline`, `auth-failed`,
    /// `permanent`, `unsupported`, a sandbox kind ...) and message.
    Failed { kind: String, message: String },
}

/// Lease up to `limit` due checks for `lease` (another worker takes a
/// check over when its lease lapses unsettled).
pub async fn claim_health_checks(
    pool: &PgPool,
    limit: usize,
    lease: Duration,
) -> Result<Vec<HealthCheck>, StoreError> {
    let limit = limit.min(1000) as i32;
    Ok(sqlx::query_as::<_, HealthCheck>(
        "SELECT server_id, tenant_id, token FROM panel1_claim_health_checks($1, $2)",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// Settle a leased check; `false` when it was no longer this worker's (a
/// settings change or a later check took over: nothing was written).
pub async fn settle_health_check(
    pool: &PgPool,
    check: &HealthCheck,
    outcome: &CheckOutcome,
    latency: Duration,
) -> Result<bool, StoreError> {
    let (kind, message) = match outcome {
        CheckOutcome::Ok => (None, None),
        CheckOutcome::Failed { kind, message } => (
            Some(kind.as_str()),
            // Postgres text cannot hold U+0000.
            Some(message.replace('\0', "\u{FFFD}")),
        ),
    };
    let latency_ms = latency.as_millis().min(i32::MAX as u128) as i32;
    Ok(
        sqlx::query_scalar("SELECT panel1_settle_health_check($1, $2, $3, $4, $5)")
            .bind(check.server_id)
            .bind(check.token)
            .bind(kind)
            .bind(message)
            .bind(latency_ms)
            .fetch_one(pool)
            .await?,
    )
}

/// Check this tenant's server as soon as a worker can (an operator's
/// test-connection, say). False when the server is not the tenant's.
pub async fn request_health_check(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
    server: Uuid,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE server_health SET next_check_at = now()
         WHERE server_id = $1 AND tenant_id = $2 AND enabled AND checking_until IS NULL",
    )
    .bind(server)
    .bind(tenant)
    .execute(db)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// New health settings for a server; `None` keeps a setting.
#[derive(Debug, Clone, Default)]
pub struct HealthSettings {
    pub enabled: Option<bool>,
    pub interval_secs: Option<i32>,
    pub recheck_secs: Option<i32>,
    pub down_after: Option<i32>,
    pub slow_ms: Option<i32>,
}

/// Change a server's health settings (a check follows at once; turning
/// checks off makes the server `unknown` and closes its breaker). False
/// when the server is not the tenant's.
pub async fn set_health_settings(
    pool: &PgPool,
    tenant: Uuid,
    server: Uuid,
    s: &HealthSettings,
) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT panel1_set_health_settings($1, $2, $3, $4, $5, $6, $7)")
            .bind(tenant)
            .bind(server)
            .bind(s.enabled)
            .bind(s.interval_secs)
            .bind(s.recheck_secs)
            .bind(s.down_after)
            .bind(s.slow_ms)
            .fetch_one(pool)
            .await?,
    )
}
