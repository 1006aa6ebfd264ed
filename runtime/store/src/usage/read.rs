//! Reading the usage series, always within one tenant: a service's raw
//! samples, its rollups or buckets of N seconds over its samples, and the
//! server rollups summed per server or per tenant.
use crate::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// How points are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Every sample.
    Raw,
    /// The hourly rollups.
    Hour,
    /// The daily rollups.
    Day,
    /// Buckets of this many seconds over the raw samples (epoch-aligned).
    Seconds(i64),
}

impl Step {
    pub fn width(self) -> Option<&'static str> {
        match self {
            Step::Hour => Some("hour"),
            Step::Day => Some("day"),
            _ => None,
        }
    }

    /// The bucket length in seconds (`None` for raw).
    pub fn seconds(self) -> Option<i64> {
        match self {
            Step::Raw => None,
            Step::Hour => Some(3600),
            Step::Day => Some(86_400),
            Step::Seconds(n) => Some(n),
        }
    }
}

/// The range and filter of a read: `from` inclusive, `to` exclusive; at
/// most `limit` rows are returned (the caller asks one more than it allows
/// to tell "too many").
#[derive(Debug, Clone)]
pub struct Window<'a> {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: Step,
    pub metric: Option<&'a str>,
    pub limit: i64,
}

/// One point of a service's series (raw: min = max = last = avg, one sample).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UsageRow {
    pub metric: String,
    pub unit: String,
    pub at: DateTime<Utc>,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub last: f64,
    pub samples: i64,
}

/// One point of a server's or tenant's series: the sum of the services'
/// last values in the bucket, the largest single value, how many reported.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AggregateRow {
    pub metric: String,
    pub unit: String,
    pub at: DateTime<Utc>,
    pub total: f64,
    pub max: f64,
    pub services: i64,
}

/// A service's series, ordered by metric then time; `None` when the service
/// is not the tenant's.
pub async fn service_series(
    pool: &PgPool,
    tenant: Uuid,
    service: Uuid,
    w: &Window<'_>,
) -> Result<Option<Vec<UsageRow>>, StoreError> {
    let mine: Option<bool> =
        sqlx::query_scalar("SELECT true FROM services WHERE id = $1 AND tenant_id = $2")
            .bind(service)
            .bind(tenant)
            .fetch_optional(pool)
            .await?;
    if mine.is_none() {
        return Ok(None);
    }
    let sql = match w.step {
        Step::Raw => {
            "SELECT metric, unit, at, value AS avg, value AS min, value AS max, value AS last,
                    1::bigint AS samples
             FROM usage_samples
             WHERE tenant_id = $1 AND service_id = $2 AND at >= $3 AND at < $4
               AND ($5::text IS NULL OR metric = $5)
             ORDER BY metric, at LIMIT $6"
        }
        Step::Seconds(_) => {
            "SELECT metric, max(unit) AS unit,
                    date_bin(make_interval(secs => $7), at, 'epoch') AS at,
                    avg(value) AS avg, min(value) AS min, max(value) AS max,
                    (array_agg(value ORDER BY at DESC))[1] AS last, count(*) AS samples
             FROM usage_samples
             WHERE tenant_id = $1 AND service_id = $2 AND at >= $3 AND at < $4
               AND ($5::text IS NULL OR metric = $5)
             GROUP BY 1, 3 ORDER BY 1, 3 LIMIT $6"
        }
        Step::Hour | Step::Day => {
            "SELECT metric, unit, bucket AS at, sum / samples AS avg, min, max, last,
                    samples::bigint AS samples
             FROM usage_rollups
             WHERE tenant_id = $1 AND service_id = $2 AND width = $8
               AND bucket >= date_trunc($8, $3, 'UTC') AND bucket < $4
               AND ($5::text IS NULL OR metric = $5)
             ORDER BY metric, bucket LIMIT $6"
        }
    };
    let rows = sqlx::query_as(sql)
        .bind(tenant)
        .bind(service)
        .bind(w.from)
        .bind(w.to)
        .bind(w.metric)
        .bind(w.limit)
        .bind(w.step.seconds().unwrap_or(0) as f64)
        .bind(w.step.width().unwrap_or("hour"))
        .fetch_all(pool)
        .await?;
    Ok(Some(rows))
}

/// A server's series (hour or day steps: the server rollups); `None` when
/// the server is not the tenant's.
pub async fn server_series(
    pool: &PgPool,
    tenant: Uuid,
    server: Uuid,
    w: &Window<'_>,
) -> Result<Option<Vec<AggregateRow>>, StoreError> {
    let mine: Option<bool> =
        sqlx::query_scalar("SELECT true FROM servers WHERE id = $1 AND tenant_id = $2")
            .bind(server)
            .bind(tenant)
            .fetch_optional(pool)
            .await?;
    if mine.is_none() {
        return Ok(None);
    }
    let rows = sqlx::query_as(
        "SELECT metric, unit, bucket AS at, total, max, services::bigint AS services
         FROM usage_server_rollups
         WHERE tenant_id = $1 AND server_id = $2 AND width = $3
           AND bucket >= date_trunc($3, $4, 'UTC') AND bucket < $5
           AND ($6::text IS NULL OR metric = $6)
         ORDER BY metric, bucket LIMIT $7",
    )
    .bind(tenant)
    .bind(server)
    .bind(w.step.width().unwrap_or("hour"))
    .bind(w.from)
    .bind(w.to)
    .bind(w.metric)
    .bind(w.limit)
    .fetch_all(pool)
    .await?;
    Ok(Some(rows))
}

/// The tenant's series over all its servers (hour or day steps).
pub async fn tenant_series(
    pool: &PgPool,
    tenant: Uuid,
    w: &Window<'_>,
) -> Result<Vec<AggregateRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT metric, max(unit) AS unit, bucket AS at, sum(total) AS total, max(max) AS max,
                sum(services)::bigint AS services
         FROM usage_server_rollups
         WHERE tenant_id = $1 AND width = $2
           AND bucket >= date_trunc($2, $3, 'UTC') AND bucket < $4
           AND ($5::text IS NULL OR metric = $5)
         GROUP BY metric, bucket
         ORDER BY metric, bucket LIMIT $6",
    )
    .bind(tenant)
    .bind(w.step.width().unwrap_or("hour"))
    .bind(w.from)
    .bind(w.to)
    .bind(w.metric)
    .bind(w.limit)
    .fetch_all(pool)
    .await?)
}
