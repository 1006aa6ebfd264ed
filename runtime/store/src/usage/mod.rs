//! Usage time series (issue 22 part 3; docs/usage.md): per server, one
//! `usage` platform task per active service each interval, spread over it;
//! what the adapter reports becomes raw samples, hourly and daily rollups
//! and limit-crossing events, written in the completion's transaction
//! (migrations/0016).
mod read;

pub use read::{
    server_series, service_series, tenant_series, AggregateRow, Step, UsageRow, Window,
};

use crate::{ClaimedTask, StoreError, TaskOutcome};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

/// A server's interval when nobody set one.
pub const DEFAULT_INTERVAL_SECS: i32 = 3600;
/// The shortest interval the API accepts.
pub const MIN_INTERVAL_SECS: i32 = 60;
/// The shortest interval the store accepts (tests and benchmarks set it
/// through [`set_schedule`]; the API refuses under [`MIN_INTERVAL_SECS`]).
pub const MIN_INTERNAL_INTERVAL_SECS: i32 = 2;
/// The longest interval (a week).
pub const MAX_INTERVAL_SECS: i32 = 7 * 24 * 3600;

/// Most metrics kept from one report, and what a metric may look like: an
/// adapter's output is untrusted, and an error here would fail the whole
/// completion batch.
const MAX_METRICS: usize = 32;
const MAX_NAME: usize = 64;
const MAX_UNIT: usize = 32;

/// Servers one scheduling pass handles (the rest wait for the next pass,
/// about a second later).
const SERVERS_PER_PASS: i32 = 100;

/// How long raw samples and rollups are kept.
#[derive(Debug, Clone)]
pub struct Retention {
    pub raw: Duration,
    pub hourly: Duration,
    pub daily: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Retention {
            raw: Duration::from_secs(31 * DAY),
            hourly: Duration::from_secs(92 * DAY),
            daily: Duration::from_secs(2 * 366 * DAY),
        }
    }
}

/// How often the upkeep (server rollups of the open buckets, pruning) runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(60);
/// Rows deleted per table per upkeep run.
const PRUNE_BATCH: i32 = 20_000;

/// Enqueue the usage tasks that are due (called by every worker's upkeep
/// about once a second; safe from many at once: servers are taken with
/// SKIP LOCKED and each occurrence has its own idempotency key), and once a
/// minute refresh the server rollups and prune. Returns the tasks created.
pub async fn schedule_due(pool: &PgPool) -> Result<u64, StoreError> {
    let n: i32 = sqlx::query_scalar("SELECT panel1_usage_schedule($1)")
        .bind(SERVERS_PER_PASS)
        .fetch_one(pool)
        .await?;
    upkeep(pool, UPKEEP_EVERY, &Retention::default()).await?;
    Ok(n.max(0) as u64)
}

/// Refresh the server rollups of the open buckets and prune past
/// `retention`, unless another caller did within `every`. Returns whether
/// it ran. (Tests call it with a zero `every` instead of waiting.)
pub async fn upkeep(
    pool: &PgPool,
    every: Duration,
    retention: &Retention,
) -> Result<bool, StoreError> {
    let ran: bool = sqlx::query_scalar("SELECT panel1_usage_upkeep($1, $2, $3, $4, $5)")
        .bind(interval(every))
        .bind(interval(retention.raw))
        .bind(interval(retention.hourly))
        .bind(interval(retention.daily))
        .bind(PRUNE_BATCH)
        .fetch_one(pool)
        .await?;
    Ok(ran)
}

fn interval(d: Duration) -> sqlx::postgres::types::PgInterval {
    sqlx::postgres::types::PgInterval {
        months: 0,
        days: 0,
        microseconds: d.as_micros().min(i64::MAX as u128) as i64,
    }
}

/// A server's collection schedule.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Schedule {
    pub server_id: Uuid,
    pub interval_secs: i32,
    pub enabled: bool,
    /// Occurrences up to here were enqueued.
    pub scheduled_until: DateTime<Utc>,
}

/// The tenant's server's schedule (the default if never set); `None` when
/// the server is not the tenant's.
pub async fn schedule(
    pool: &PgPool,
    tenant: Uuid,
    server: Uuid,
) -> Result<Option<Schedule>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT s.id AS server_id, COALESCE(u.interval_secs, $3) AS interval_secs,
                COALESCE(u.enabled, true) AS enabled, COALESCE(u.scheduled_until, now()) AS scheduled_until
         FROM servers s LEFT JOIN usage_schedules u ON u.server_id = s.id
         WHERE s.id = $1 AND s.tenant_id = $2",
    )
    .bind(server)
    .bind(tenant)
    .bind(DEFAULT_INTERVAL_SECS)
    .fetch_optional(pool)
    .await?)
}

/// Set a server's interval (at least [`MIN_INTERNAL_INTERVAL_SECS`]; the
/// API checks its own minimum) and whether it is collected. Collection
/// starts now (a server the scheduler found by itself starts one default
/// interval after it was found), the next occurrences on the new interval. `None`: not the tenant's
/// server.
pub async fn set_schedule(
    pool: &PgPool,
    tenant: Uuid,
    server: Uuid,
    interval_secs: i32,
    enabled: bool,
) -> Result<Option<Schedule>, StoreError> {
    if !(MIN_INTERNAL_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&interval_secs) {
        return Err(StoreError::Invalid(format!(
            "usage interval {interval_secs} s: between {MIN_INTERNAL_INTERVAL_SECS} and {MAX_INTERVAL_SECS}"
        )));
    }
    Ok(sqlx::query_as(
        "INSERT INTO usage_schedules (server_id, tenant_id, interval_secs, enabled)
         SELECT s.id, s.tenant_id, $3, $4 FROM servers s WHERE s.id = $1 AND s.tenant_id = $2
         ON CONFLICT (server_id) DO UPDATE
         SET interval_secs = EXCLUDED.interval_secs, enabled = EXCLUDED.enabled,
             scheduled_until = CASE WHEN usage_schedules.enabled
                                    THEN LEAST(usage_schedules.scheduled_until, now()) ELSE now() END,
             updated_at = now()
         RETURNING server_id, interval_secs, enabled, scheduled_until",
    )
    .bind(server)
    .bind(tenant)
    .bind(interval_secs)
    .bind(enabled)
    .fetch_optional(pool)
    .await?)
}

/// Record what a finished usage task found. A failure records nothing (no
/// sample; the service is never touched by a platform task). Only database
/// errors are returned: the report is untrusted and read defensively.
pub(crate) async fn project(
    tx: &mut PgConnection,
    task: &ClaimedTask,
    outcome: &TaskOutcome,
) -> Result<(), StoreError> {
    let (TaskOutcome::Succeeded { result }, Some(service)) = (outcome, task.service_id) else {
        return Ok(());
    };
    let metrics = metrics_of(result);
    if metrics.is_empty() {
        return Ok(());
    }
    let (names, values, units) = metrics.into_iter().fold(
        (Vec::new(), Vec::new(), Vec::new()),
        |(mut n, mut v, mut u), m| {
            n.push(m.name);
            v.push(m.value);
            u.push(m.unit);
            (n, v, u)
        },
    );
    sqlx::query("SELECT panel1_usage_record($1, $2, $3, $4, $5, $6)")
        .bind(task.tenant_id)
        .bind(task.server_id)
        .bind(service)
        .bind(names)
        .bind(values)
        .bind(units)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One metric as stored.
#[derive(Debug, Clone, PartialEq)]
struct Metric {
    name: String,
    value: f64,
    unit: String,
}

/// The usable metrics of a usage report (`{"metrics": [{name, value,
/// unit}]}`): names of ASCII letters, digits, `_ . -` (at most 64), finite
/// values, units of printable text (at most 32, else empty); the first of
/// a repeated name wins; at most 32. Anything else is skipped.
fn metrics_of(result: &Value) -> Vec<Metric> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for m in result
        .get("metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = m.get("name").and_then(Value::as_str) else {
            continue;
        };
        let name_ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        let Some(value) = m.get("value").and_then(Value::as_f64) else {
            continue;
        };
        if !name_ok || !value.is_finite() || !seen.insert(name.to_string()) {
            continue;
        }
        let unit = m
            .get("unit")
            .and_then(Value::as_str)
            .filter(|u| u.chars().count() <= MAX_UNIT && !u.chars().any(char::is_control))
            .unwrap_or("");
        out.push(Metric {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
        });
        if out.len() == MAX_METRICS {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_are_read_defensively() {
        let r = json!({"remote_id": "a", "metrics": [
            {"name": "disk_used", "value": 10.5, "unit": "bytes"},
            {"name": "disk_used", "value": 99, "unit": "bytes"},
            {"name": "bad name", "value": 1, "unit": "x"},
            {"name": "nan", "value": null, "unit": "x"},
            {"name": "text", "value": "12", "unit": "x"},
            {"name": "odd_unit", "value": 3, "unit": "a\u{0}b"},
            {"name": "no_unit", "value": -1},
            {"value": 1, "unit": "x"},
            "junk",
        ]});
        assert_eq!(
            metrics_of(&r),
            vec![
                Metric {
                    name: "disk_used".into(),
                    value: 10.5,
                    unit: "bytes".into()
                },
                Metric {
                    name: "odd_unit".into(),
                    value: 3.0,
                    unit: String::new()
                },
                Metric {
                    name: "no_unit".into(),
                    value: -1.0,
                    unit: String::new()
                },
            ]
        );
        assert!(metrics_of(&json!(null)).is_empty());
        assert!(metrics_of(&json!({"metrics": {"a": 1}})).is_empty());
        let many: Vec<Value> = (0..100)
            .map(|i| json!({"name": format!("m{i}"), "value": i, "unit": ""}))
            .collect();
        assert_eq!(metrics_of(&json!({ "metrics": many })).len(), MAX_METRICS);
    }
}
