//! Usage time series (docs/usage.md): a service's samples and rollups, a
//! server's and the tenant's aggregates, as JSON or CSV, and each server's
//! collection schedule. Collection itself is done by workers (platform
//! tasks); this only reads, and writes the schedule. Every query is scoped
//! to the caller's tenant: another tenant's service or server is a 404.
use crate::auth::{Principal, Scope};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use panel1_store::usage::{self as store, AggregateRow, Step, UsageRow, Window};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(service_usage))
        .routes(routes!(server_usage))
        .routes(routes!(tenant_usage))
        .routes(routes!(get_schedule, put_schedule))
}

/// Most buckets a bucketed answer may span, and most rows any answer holds.
const MAX_BUCKETS: i64 = 1000;
const MAX_ROWS: i64 = 10_000;
/// Bucket lengths a numeric `step` may ask for.
const MIN_STEP_SECS: i64 = 60;
const MAX_STEP_SECS: i64 = 86_400;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start, RFC 3339, inclusive (default: `to` minus 24 hours).
    pub from: Option<String>,
    /// End, RFC 3339, exclusive (default: now).
    pub to: Option<String>,
    /// `raw` (every sample), `hour`, `day`, or a bucket length in seconds
    /// (60–86400) over the raw samples. Default `hour`. Servers and the
    /// tenant take `hour` or `day`. At most 1000 buckets and 10000 points.
    pub step: Option<String>,
    /// Only this metric (`disk_used`, …).
    pub metric: Option<String>,
    /// `json` (default) or `csv`; `Accept: text/csv` also asks for CSV.
    pub format: Option<String>,
}

/// A service's figures over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceUsage {
    pub service_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: String,
    pub series: Vec<ServiceSeries>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceSeries {
    pub metric: String,
    pub unit: String,
    pub points: Vec<UsagePoint>,
}

/// A sample (`step=raw`: all five figures are its value) or a bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsagePoint {
    /// The sample's time, or the bucket's start.
    pub at: DateTime<Utc>,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    /// The bucket's latest sample.
    pub last: f64,
    pub samples: i64,
}

/// A server's or the tenant's figures: per bucket, the sum of each
/// service's latest value (`total`), the largest one (`max`) and how many
/// services reported. Refreshed once a minute.
#[derive(Debug, Serialize, ToSchema)]
pub struct AggregateUsage {
    /// Set for a server's figures.
    pub server_id: Option<Uuid>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: String,
    pub series: Vec<AggregateSeries>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AggregateSeries {
    pub metric: String,
    pub unit: String,
    pub points: Vec<AggregatePoint>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AggregatePoint {
    pub at: DateTime<Utc>,
    pub total: f64,
    pub max: f64,
    pub services: i64,
}

/// How often a server's active services are sampled.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageSchedule {
    pub server_id: Uuid,
    pub interval_seconds: i32,
    pub enabled: bool,
}

impl From<store::Schedule> for UsageSchedule {
    fn from(s: store::Schedule) -> Self {
        UsageSchedule {
            server_id: s.server_id,
            interval_seconds: s.interval_secs,
            enabled: s.enabled,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleChange {
    /// Seconds between two samples of a service (60 to 604800; default 3600).
    #[schema(minimum = 60, maximum = 604800)]
    pub interval_seconds: i32,
    /// False stops collection on this server.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A service's usage: raw samples, hourly or daily rollups, or buckets of
/// N seconds. CSV with `format=csv` or `Accept: text/csv`.
#[utoipa::path(get, path = "/v1/services/{id}/usage", tag = "usage",
    params(("id" = Uuid, Path), UsageQuery),
    responses((status = 200, description = "The series, as JSON or CSV",
               content((ServiceUsage = "application/json"), (String = "text/csv"))),
              (status = 400, description = "A bad range, step, metric or format", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn service_usage(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Response> {
    let tenant = p.tenant(Scope::Read)?;
    let r = Request::parse(&q, &headers, true)?;
    let rows = store::service_series(&state.pool, tenant, id, &r.window())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("service {id}")))?;
    r.check_rows(rows.len())?;
    if r.csv {
        return Ok(csv(service_csv(&rows)));
    }
    Ok(Json(ServiceUsage {
        service_id: id,
        from: r.from,
        to: r.to,
        step: r.step_name.clone(),
        series: group(
            rows,
            |x| (x.metric.clone(), x.unit.clone()),
            |x| UsagePoint {
                at: x.at,
                avg: x.avg,
                min: x.min,
                max: x.max,
                last: x.last,
                samples: x.samples,
            },
        )
        .into_iter()
        .map(|(metric, unit, points)| ServiceSeries {
            metric,
            unit,
            points,
        })
        .collect(),
    })
    .into_response())
}

/// A server's usage: its services summed per hour or day.
#[utoipa::path(get, path = "/v1/servers/{id}/usage", tag = "usage",
    params(("id" = Uuid, Path), UsageQuery),
    responses((status = 200, description = "The series, as JSON or CSV",
               content((AggregateUsage = "application/json"), (String = "text/csv"))),
              (status = 400, description = "A bad range, step, metric or format", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn server_usage(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Response> {
    let tenant = p.tenant(Scope::Read)?;
    let r = Request::parse(&q, &headers, false)?;
    let rows = store::server_series(&state.pool, tenant, id, &r.window())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("server {id}")))?;
    aggregate_answer(&r, Some(id), rows)
}

/// The tenant's usage: all its servers summed per hour or day.
#[utoipa::path(get, path = "/v1/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, description = "The series, as JSON or CSV",
               content((AggregateUsage = "application/json"), (String = "text/csv"))),
              (status = 400, description = "A bad range, step, metric or format", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn tenant_usage(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Response> {
    let tenant = p.tenant(Scope::Read)?;
    let r = Request::parse(&q, &headers, false)?;
    let rows = store::tenant_series(&state.pool, tenant, &r.window()).await?;
    aggregate_answer(&r, None, rows)
}

/// A server's collection schedule.
#[utoipa::path(get, path = "/v1/servers/{id}/usage-schedule", tag = "usage",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UsageSchedule),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_schedule(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<UsageSchedule>> {
    let tenant = p.tenant(Scope::Read)?;
    let s = store::schedule(&state.pool, tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("server {id}")))?;
    Ok(Json(s.into()))
}

/// Set how often a server's active services are sampled (each is sampled
/// once per interval, at its own offset in it), or stop collection there.
#[utoipa::path(put, path = "/v1/servers/{id}/usage-schedule", tag = "usage",
    params(("id" = Uuid, Path)), request_body = ScheduleChange,
    responses((status = 200, body = UsageSchedule),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn put_schedule(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ScheduleChange>,
) -> ApiResult<Json<UsageSchedule>> {
    let tenant = p.tenant(Scope::Write)?;
    if !(store::MIN_INTERVAL_SECS..=store::MAX_INTERVAL_SECS).contains(&body.interval_seconds) {
        return Err(ApiError::validation(
            "interval_seconds",
            format!(
                "between {} and {} seconds",
                store::MIN_INTERVAL_SECS,
                store::MAX_INTERVAL_SECS
            ),
        ));
    }
    let s = store::set_schedule(&state.pool, tenant, id, body.interval_seconds, body.enabled)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("server {id}")))?;
    Ok(Json(s.into()))
}

/// A checked usage request.
struct Request {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Step,
    step_name: String,
    metric: Option<String>,
    csv: bool,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

impl Request {
    /// Read and check the query; `raw_ok`: a service's own samples can be
    /// read (raw or N-second buckets), not only rollups.
    fn parse(q: &UsageQuery, headers: &HeaderMap, raw_ok: bool) -> ApiResult<Request> {
        let time = |name: &str, v: &Option<String>| -> ApiResult<Option<DateTime<Utc>>> {
            v.as_deref()
                .map(|s| {
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| {
                            bad(format!(
                                "`{name}` must be an RFC 3339 time (2026-01-31T12:00:00Z): {e}"
                            ))
                        })
                })
                .transpose()
        };
        let to = time("to", &q.to)?.unwrap_or_else(Utc::now);
        let from = match time("from", &q.from)? {
            Some(f) => f,
            None => to
                .checked_sub_signed(Duration::hours(24))
                .ok_or_else(|| bad("`to` is too early"))?,
        };
        if from >= to {
            return Err(bad("`from` must be before `to`"));
        }
        let step_name = q.step.clone().unwrap_or_else(|| "hour".into());
        let step = match step_name.as_str() {
            "raw" if raw_ok => Step::Raw,
            "hour" => Step::Hour,
            "day" => Step::Day,
            s if raw_ok && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                match s.parse::<i64>() {
                    Ok(n) if (MIN_STEP_SECS..=MAX_STEP_SECS).contains(&n) => Step::Seconds(n),
                    _ => {
                        return Err(bad(format!(
                            "`step` in seconds must be {MIN_STEP_SECS} to {MAX_STEP_SECS}"
                        )))
                    }
                }
            }
            _ if raw_ok => {
                return Err(bad(
                    "`step` must be `raw`, `hour`, `day` or a number of seconds",
                ))
            }
            _ => return Err(bad("`step` must be `hour` or `day` here")),
        };
        if let Some(secs) = step.seconds() {
            let span = (to - from).num_seconds();
            let buckets = span / secs + i64::from(span % secs != 0) + 1;
            if buckets > MAX_BUCKETS {
                return Err(bad(format!(
                    "{buckets} buckets of {secs} s between `from` and `to`: at most {MAX_BUCKETS}; narrow the range or take a longer step"
                )));
            }
        }
        if let Some(m) = &q.metric {
            let ok = !m.is_empty()
                && m.len() <= 64
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err(bad(
                    "`metric` is a metric name (letters, digits, `_ . -`, at most 64)",
                ));
            }
        }
        let wants_csv = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().starts_with("text/csv")));
        let csv = match q.format.as_deref() {
            None => wants_csv,
            Some("json") => false,
            Some("csv") => true,
            Some(_) => return Err(bad("`format` must be `json` or `csv`")),
        };
        Ok(Request {
            from,
            to,
            step,
            step_name,
            metric: q.metric.clone(),
            csv,
        })
    }

    fn window(&self) -> Window<'_> {
        Window {
            from: self.from,
            to: self.to,
            step: self.step,
            metric: self.metric.as_deref(),
            limit: MAX_ROWS + 1,
        }
    }

    fn check_rows(&self, n: usize) -> ApiResult<()> {
        if n as i64 > MAX_ROWS {
            return Err(bad(format!(
                "more than {MAX_ROWS} points between `from` and `to`; narrow the range, pick a `metric` or take a longer step"
            )));
        }
        Ok(())
    }
}

fn aggregate_answer(
    r: &Request,
    server: Option<Uuid>,
    rows: Vec<AggregateRow>,
) -> ApiResult<Response> {
    r.check_rows(rows.len())?;
    if r.csv {
        return Ok(csv(aggregate_csv(&rows)));
    }
    let series = group(
        rows,
        |x| (x.metric.clone(), x.unit.clone()),
        |x| AggregatePoint {
            at: x.at,
            total: x.total,
            max: x.max,
            services: x.services,
        },
    );
    Ok(Json(AggregateUsage {
        server_id: server,
        from: r.from,
        to: r.to,
        step: r.step_name.clone(),
        series: series
            .into_iter()
            .map(|(metric, unit, points)| AggregateSeries {
                metric,
                unit,
                points,
            })
            .collect(),
    })
    .into_response())
}

/// Rows ordered by metric into one series per metric (its unit is the
/// first row's).
fn group<R, P>(
    rows: Vec<R>,
    key: impl Fn(&R) -> (String, String),
    point: impl Fn(&R) -> P,
) -> Vec<(String, String, Vec<P>)> {
    let mut out: Vec<(String, String, Vec<P>)> = Vec::new();
    for r in &rows {
        let (metric, unit) = key(r);
        match out.last_mut() {
            Some((m, _, points)) if *m == metric => points.push(point(r)),
            _ => out.push((metric, unit, vec![point(r)])),
        }
    }
    out
}

fn csv(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line
/// break, quotes doubled.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn service_csv(rows: &[UsageRow]) -> String {
    let mut out = String::from("metric,unit,at,avg,min,max,last,samples\r\n");
    for r in rows {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{}\r\n",
            field(&r.metric),
            field(&r.unit),
            r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            r.avg,
            r.min,
            r.max,
            r.last,
            r.samples
        );
    }
    out
}

fn aggregate_csv(rows: &[AggregateRow]) -> String {
    let mut out = String::from("metric,unit,at,total,max,services\r\n");
    for r in rows {
        let _ = write!(
            out,
            "{},{},{},{},{},{}\r\n",
            field(&r.metric),
            field(&r.unit),
            r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            r.total,
            r.max,
            r.services
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted() {
        assert_eq!(field("bytes"), "bytes");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }

    fn query(from: &str, to: &str, step: &str) -> UsageQuery {
        UsageQuery {
            from: Some(from.into()),
            to: Some(to.into()),
            step: Some(step.into()),
            metric: None,
            format: None,
        }
    }

    #[test]
    fn ranges_and_steps_are_checked() {
        let h = HeaderMap::new();
        let ok = |q: UsageQuery, raw| Request::parse(&q, &h, raw).is_ok();
        let (a, b) = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
        assert!(ok(query(a, b, "raw"), true));
        assert!(!ok(query(a, b, "raw"), false), "aggregates have no raw");
        assert!(ok(query(a, b, "hour"), false));
        assert!(ok(query(a, b, "300"), true));
        assert!(!ok(query(a, b, "59"), true));
        assert!(!ok(query(a, b, "60"), true), "1441 buckets");
        assert!(!ok(query(b, a, "hour"), true), "from after to");
        assert!(!ok(query("yesterday", b, "hour"), true));
        assert!(!ok(query(a, b, "week"), true));
        assert!(!ok(query(a, "2030-01-01T00:00:00Z", "hour"), true));
        assert!(ok(query(a, "2028-01-01T00:00:00Z", "day"), true));
    }
}
