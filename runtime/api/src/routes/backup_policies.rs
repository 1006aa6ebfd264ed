//! Backup policies (docs/backups.md): a cron schedule, a window the
//! backups are spread over and a retention, per tenant, optionally scoped
//! to a plan and/or a server. The most specific policy covers a service.
//! Every query is scoped to the caller's tenant.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::{Page, PageParams};
use crate::problem::{ApiError, ApiResult, FieldError, Problem};
use crate::routes::{is_unique_violation, ApiJson, ApiPath, ApiQuery, Created, NoContent};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use panel1_store::backups::policies::{self as store, PolicySpec, MAX_WINDOW_SECS};
use panel1_store::backups::retention::{Retention, MAX_DAILY, MAX_MONTHLY, MAX_WEEKLY};
use panel1_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_policy, list_policies))
        .routes(routes!(get_policy, update_policy, delete_policy))
}

const DEFAULT_WINDOW_SECS: i64 = 3600;

/// How many of each period's newest backup are kept.
#[derive(Debug, Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RetentionInput {
    /// The newest backup of each of the last N days that have one (0–366).
    #[schema(minimum = 0, maximum = 366)]
    pub daily: Option<i64>,
    /// Of each of the last N ISO weeks that have one (0–260).
    #[schema(minimum = 0, maximum = 260)]
    pub weekly: Option<i64>,
    /// Of each of the last N calendar months that have one (0–120).
    #[schema(minimum = 0, maximum = 120)]
    pub monthly: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionOut {
    pub daily: i32,
    pub weekly: i32,
    pub monthly: i32,
}

/// What the latest occurrence did (so far, while its window is open).
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyRun {
    pub occurrence_at: DateTime<Utc>,
    /// Backups started.
    pub enqueued: i32,
    /// Covered services whose adapter cannot create backups (world 0.1.0,
    /// or no `create-backup`): skipped.
    pub skipped_unsupported: i32,
    /// Covered services that still had a pending backup: skipped.
    pub skipped_busy: i32,
    /// Whether the occurrence's window has passed.
    pub window_closed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupPolicy {
    pub id: Uuid,
    pub name: String,
    /// Only services on this plan (absent: any).
    pub plan: Option<String>,
    /// Only services on this server (absent: any).
    pub server_id: Option<Uuid>,
    /// 5-field cron expression, UTC.
    pub cron: String,
    /// Backups of one occurrence are spread over this many seconds after it.
    pub window_seconds: i32,
    pub retention: RetentionOut,
    pub enabled: bool,
    /// The occurrence whose window is open now, or the next one.
    pub next_occurrence_at: DateTime<Utc>,
    pub last_run: Option<PolicyRun>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<store::Policy> for BackupPolicy {
    fn from(p: store::Policy) -> Self {
        BackupPolicy {
            id: p.id,
            name: p.name,
            plan: p.plan,
            server_id: p.server_id,
            cron: p.cron,
            window_seconds: p.window_secs,
            retention: RetentionOut {
                daily: p.keep_daily,
                weekly: p.keep_weekly,
                monthly: p.keep_monthly,
            },
            enabled: p.enabled,
            next_occurrence_at: p.occurrence_at,
            last_run: p.run_at.map(|at| PolicyRun {
                occurrence_at: at,
                enqueued: p.run_enqueued,
                skipped_unsupported: p.run_skipped_unsupported,
                skipped_busy: p.run_skipped_busy,
                window_closed: p.run_window_closed,
            }),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBackupPolicy {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Scope to services on this plan.
    #[schema(min_length = 1, max_length = 128)]
    pub plan: Option<String>,
    /// Scope to services on this server (one of the caller's).
    pub server_id: Option<Uuid>,
    /// 5 fields (minute hour day-of-month month day-of-week), UTC.
    #[schema(example = "0 3 * * *")]
    pub cron: String,
    /// Spread each occurrence's backups over this many seconds (0–86400,
    /// default 3600).
    #[schema(minimum = 0, maximum = 86400)]
    pub window_seconds: Option<i64>,
    pub retention: RetentionInput,
    /// Default true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupPolicyChange {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    pub cron: Option<String>,
    #[schema(minimum = 0, maximum = 86400)]
    pub window_seconds: Option<i64>,
    /// Fields given replace the policy's; absent ones stay.
    pub retention: Option<RetentionInput>,
    pub enabled: Option<bool>,
}

fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

fn check_name(name: &str) -> Result<(), FieldError> {
    crate::routes::validate_name("name", name, 100)
        .map_err(|_| field("name", "must be 1 to 100 characters, no control characters"))
}

fn check_cron(cron: &str) -> Result<(), FieldError> {
    store::check_cron(cron, false).map_err(|m| field("cron", m))
}

fn check_window(w: i64) -> Result<i32, FieldError> {
    if (0..=i64::from(MAX_WINDOW_SECS)).contains(&w) {
        Ok(w as i32)
    } else {
        Err(field(
            "window_seconds",
            format!("0 to {MAX_WINDOW_SECS} seconds"),
        ))
    }
}

/// The retention `r` over `base`, each field within its bounds.
fn retention(r: &RetentionInput, base: Retention) -> Result<Retention, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut one = |name: &str, v: Option<i64>, max: u32, old: u32| match v {
        None => old,
        Some(n) if (0..=i64::from(max)).contains(&n) => n as u32,
        Some(_) => {
            errors.push(field(&format!("retention/{name}"), format!("0 to {max}")));
            old
        }
    };
    let out = Retention {
        daily: one("daily", r.daily, MAX_DAILY, base.daily),
        weekly: one("weekly", r.weekly, MAX_WEEKLY, base.weekly),
        monthly: one("monthly", r.monthly, MAX_MONTHLY, base.monthly),
    };
    if errors.is_empty() {
        if let Err(m) = out.check() {
            errors.push(field("retention", m));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn collect(errors: Vec<FieldError>) -> ApiResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn no_policy(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("backup policy {id}"))
}

fn scope_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Db(d) if is_unique_violation(&d) => ApiError::Conflict(
            "a backup policy with this scope (plan and server) exists; change that one".into(),
        ),
        StoreError::NotFound(_) => ApiError::validation("server_id", "no such server"),
        other => other.into(),
    }
}

/// Create a policy. The most specific policy covers a service: scoped to
/// its plan and server, then to its plan, then to its server, then
/// tenant-wide (a disabled policy still covers, so it opts its services
/// out). One policy per scope.
#[utoipa::path(post, path = "/v1/backup-policies", tag = "backups", request_body = NewBackupPolicy,
    responses((status = 201, body = BackupPolicy),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "A policy with this scope exists"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn create_policy(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiJson(body): ApiJson<NewBackupPolicy>,
) -> ApiResult<Created<BackupPolicy>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut errors = Vec::new();
    errors.extend(check_name(&body.name).err());
    if let Some(plan) = &body.plan {
        if plan.is_empty() || plan.chars().count() > 128 || plan.chars().any(char::is_control) {
            errors.push(field("plan", "1 to 128 characters, no control characters"));
        }
    }
    errors.extend(check_cron(&body.cron).err());
    let window = check_window(body.window_seconds.unwrap_or(DEFAULT_WINDOW_SECS));
    let zero = Retention {
        daily: 0,
        weekly: 0,
        monthly: 0,
    };
    let kept = retention(&body.retention, zero);
    let (window, kept) = match (window, kept) {
        (Ok(w), Ok(k)) if errors.is_empty() => (w, k),
        (w, k) => {
            errors.extend(w.err());
            errors.extend(k.err().into_iter().flatten());
            return Err(ApiError::Validation(errors));
        }
    };
    let spec = PolicySpec {
        name: body.name,
        plan: body.plan,
        server_id: body.server_id,
        cron: body.cron,
        window_secs: window,
        retention: kept,
        enabled: body.enabled.unwrap_or(true),
    };
    let mut tx = effect.begin().await?;
    let policy = store::create(&mut tx, tenant, &spec)
        .await
        .map_err(scope_taken)?;
    Ok(Created(policy.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PolicyQuery {
    /// Items per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// The tenant's backup policies, newest first.
#[utoipa::path(get, path = "/v1/backup-policies", tag = "backups", params(PolicyQuery),
    responses((status = 200, body = Page<BackupPolicy>)), security(("api_key" = [])))]
async fn list_policies(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<PolicyQuery>,
) -> ApiResult<Json<Page<BackupPolicy>>> {
    let tenant = p.tenant(Scope::Read)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let rows = store::list(&state.pool, tenant, page.before(), limit + 1).await?;
    let rows: Vec<BackupPolicy> = rows.into_iter().map(Into::into).collect();
    Ok(Json(Page::from_rows(rows, limit, |p| p.id)))
}

#[utoipa::path(get, path = "/v1/backup-policies/{id}", tag = "backups", params(("id" = Uuid, Path)),
    responses((status = 200, body = BackupPolicy),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_policy(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<BackupPolicy>> {
    let tenant = p.tenant(Scope::Read)?;
    let policy = store::get(&state.pool, tenant, id)
        .await?
        .ok_or_else(|| no_policy(id))?;
    Ok(Json(policy.into()))
}

/// Change a policy's name, schedule, window, retention or `enabled` (its
/// scope stays: delete it and create another). A new schedule or window
/// starts from the schedule's next occurrence; a new retention applies at
/// each service's next completed backup.
#[utoipa::path(patch, path = "/v1/backup-policies/{id}", tag = "backups", params(("id" = Uuid, Path)),
    request_body = BackupPolicyChange,
    responses((status = 200, body = BackupPolicy),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn update_policy(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<BackupPolicyChange>,
) -> ApiResult<Json<BackupPolicy>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut errors = Vec::new();
    errors.extend(body.name.as_deref().and_then(|n| check_name(n).err()));
    errors.extend(body.cron.as_deref().and_then(|c| check_cron(c).err()));
    let window = body.window_seconds.map(check_window).transpose();
    errors.extend(window.as_ref().err().cloned());
    let window = window.ok().flatten();
    // The retention is checked against the stored one inside `update`;
    // its bounds here.
    let probe = Retention {
        daily: 1,
        weekly: 0,
        monthly: 0,
    };
    if let Some(r) = &body.retention {
        if let Err(e) = retention(r, probe) {
            errors.extend(e);
        }
    }
    collect(errors)?;
    let mut kept_error = None;
    let policy = store::update(&state.pool, tenant, id, |spec| {
        if let Some(n) = body.name {
            spec.name = n;
        }
        if let Some(c) = body.cron {
            spec.cron = c;
        }
        if let Some(w) = window {
            spec.window_secs = w;
        }
        if let Some(r) = &body.retention {
            match retention(r, spec.retention) {
                Ok(k) => spec.retention = k,
                Err(e) => {
                    // Nothing of the change is written.
                    kept_error = Some(e);
                    return Err(StoreError::Invalid("retention".into()));
                }
            }
        }
        if let Some(e) = body.enabled {
            spec.enabled = e;
        }
        Ok(())
    })
    .await;
    if let Some(e) = kept_error {
        return Err(ApiError::Validation(e));
    }
    let policy = match policy {
        Ok(p) => p.ok_or_else(|| no_policy(id))?,
        // The change as a whole keeps nothing (checked with the stored
        // retention).
        Err(StoreError::Invalid(m)) => return Err(ApiError::validation("retention", m)),
        Err(e) => return Err(e.into()),
    };
    Ok(Json(policy.into()))
}

/// Delete a policy. Its backups stay and are kept like on-demand ones
/// (never pruned); services it covered fall to the next most specific
/// policy.
#[utoipa::path(delete, path = "/v1/backup-policies/{id}", tag = "backups", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn delete_policy(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<NoContent> {
    let tenant = p.tenant(Scope::Write)?;
    if store::delete(&state.pool, tenant, id).await? {
        Ok(NoContent)
    } else {
        Err(no_policy(id))
    }
}
