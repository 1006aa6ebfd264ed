//! A service's actions (suspend, unsuspend, terminate, change package or
//! password, login URL, refresh): each checks the service's state under its
//! row lock and enqueues its operation, in the request's transaction.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::services::{
    check_opt, load_service, service_input, Service, ServiceTask, COLUMNS,
};
use crate::routes::tasks::enqueue_task;
use crate::routes::{Accepted, ApiJson, ApiPath, OptionalApiJson};
use crate::state::AppState;
use axum::Extension;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(suspend))
        .routes(routes!(unsuspend))
        .routes(routes!(terminate))
        .routes(routes!(change_package))
        .routes(routes!(change_password))
        .routes(routes!(login_url))
        .routes(routes!(refresh_status))
}

/// Enqueue `operation` on a service whose state is one of `allowed`; the
/// check and the enqueue happen under a lock on the service row.
async fn act(
    effect: &Effect,
    p: &Principal,
    id: Uuid,
    operation: &str,
    allowed: &[&str],
    extra: Value,
) -> ApiResult<Accepted<ServiceTask>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = effect.begin().await?;
    let service: Service = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM services WHERE id = $1 AND tenant_id = $2 FOR UPDATE"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("service {id}")))?;
    if !allowed.contains(&service.state.as_str()) {
        return Err(ApiError::Conflict(format!(
            "cannot {operation} a service that is {}",
            service.state
        )));
    }
    // The state alone is not enough: an earlier operation's completion can
    // move a terminating service back to `active`.
    refuse_after_terminate(&mut tx, id, operation).await?;
    let mut input = json!({ "service": service_input(&service) });
    if let (Value::Object(i), Value::Object(x)) = (&mut input, extra) {
        i.extend(x);
    }
    let task = enqueue_task(
        &mut tx,
        tenant,
        service.server_id,
        Some(id),
        operation,
        input,
    )
    .await?;
    // Read back only what the enqueue changed (a round trip on the path of
    // every operation's 202).
    let service = match panel1_store::service_state_on_enqueue(operation) {
        Some(_) => load_service(&mut tx, tenant, id).await?,
        None => service,
    };
    Ok(Accepted(ServiceTask { service, task }))
}

/// Nothing is accepted after a terminate: a service's operations run in the
/// order they were accepted, so anything accepted after a queued terminate
/// would run against a deleted account (and write its failure onto a
/// terminated service). A terminate that failed or was cancelled no longer
/// counts. Call under the service row's lock (`act` holds it) so a
/// concurrent terminate is ordered before or after this check, never across.
pub async fn refuse_after_terminate(
    conn: &mut PgConnection,
    service: Uuid,
    operation: &str,
) -> ApiResult<()> {
    let queued: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT id, state::text FROM task_records
         WHERE service_id = $1 AND operation = 'terminate' AND state NOT IN ('failed', 'cancelled')
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(service)
    .fetch_optional(conn)
    .await?;
    match queued {
        Some((task, state)) => Err(ApiError::Conflict(format!(
            "cannot {operation} service {service}: it is being terminated (terminate task {task} is {state}); \
             nothing is accepted after a terminate"
        ))),
        None => Ok(()),
    }
}

pub(crate) const LIVE: &[&str] = &["provisioning", "active", "suspended"];
/// The states a terminate is accepted in (also cleans up after a failed provision).
pub(crate) const TERMINABLE: &[&str] =
    &["pending", "provisioning", "active", "suspended", "failed"];

/// A suspend's `reason`.
pub(crate) fn check_reason(reason: &str) -> ApiResult<()> {
    if reason.chars().count() > 500 {
        return Err(ApiError::validation("reason", "at most 500 characters"));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    /// Shown on the provider side where it supports a reason.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: String,
}

/// Suspend a service.
#[utoipa::path(post, path = "/v1/services/{id}/suspend", tag = "services", params(("id" = Uuid, Path)),
    request_body = SuspendBody,
    responses((status = 202, body = ServiceTask), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn suspend(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    // The body is optional: no body = no reason.
    OptionalApiJson(body): OptionalApiJson<SuspendBody>,
) -> ApiResult<Accepted<ServiceTask>> {
    let reason = body.reason;
    check_reason(&reason)?;
    act(
        &effect,
        &p,
        id,
        "suspend",
        LIVE,
        json!({ "reason": reason }),
    )
    .await
}

/// Unsuspend a service.
#[utoipa::path(post, path = "/v1/services/{id}/unsuspend", tag = "services", params(("id" = Uuid, Path)),
    responses((status = 202, body = ServiceTask), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn unsuspend(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Accepted<ServiceTask>> {
    act(&effect, &p, id, "unsuspend", LIVE, json!({})).await
}

/// Terminate a service (also cleans up after a failed provision).
#[utoipa::path(post, path = "/v1/services/{id}/terminate", tag = "services", params(("id" = Uuid, Path)),
    responses((status = 202, body = ServiceTask), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn terminate(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Accepted<ServiceTask>> {
    act(&effect, &p, id, "terminate", TERMINABLE, json!({})).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePackageBody {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub plan: String,
}

/// Move a service to another plan.
#[utoipa::path(post, path = "/v1/services/{id}/change-package", tag = "services", params(("id" = Uuid, Path)),
    request_body = ChangePackageBody,
    responses((status = 202, body = ServiceTask), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn change_package(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ChangePackageBody>,
) -> ApiResult<Accepted<ServiceTask>> {
    check_opt("plan", &Some(body.plan.clone()), 128)?;
    act(
        &effect,
        &p,
        id,
        "change-package",
        LIVE,
        json!({ "plan": body.plan }),
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    /// Name of a secret holding the new password (the password itself never
    /// travels in a task).
    pub password_secret: String,
}

/// Set a new password from a secret.
#[utoipa::path(post, path = "/v1/services/{id}/change-password", tag = "services", params(("id" = Uuid, Path)),
    request_body = ChangePasswordBody,
    responses((status = 202, body = ServiceTask), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn change_password(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> ApiResult<Accepted<ServiceTask>> {
    let tenant = p.tenant(Scope::Write)?;
    {
        let mut tx = effect.begin().await?;
        // Another tenant's service is a 404 before anything else is looked at.
        load_service(&mut tx, tenant, id).await?;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM secrets WHERE tenant_id = $1 AND name = $2)",
        )
        .bind(tenant)
        .bind(&body.password_secret)
        .fetch_one(&mut *tx)
        .await?;
        if !exists {
            return Err(ApiError::validation("password_secret", "no such secret"));
        }
    }
    let extra = json!({ "password_secret": body.password_secret });
    act(&effect, &p, id, "change-password", LIVE, extra).await
}

/// Ask for a one-time login link (in the task's result).
#[utoipa::path(post, path = "/v1/services/{id}/login-url", tag = "services", params(("id" = Uuid, Path)),
    responses((status = 202, body = ServiceTask), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn login_url(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Accepted<ServiceTask>> {
    act(&effect, &p, id, "login-url", &["active"], json!({})).await
}

/// Read the service's state from the provider.
#[utoipa::path(post, path = "/v1/services/{id}/refresh-status", tag = "services", params(("id" = Uuid, Path)),
    responses((status = 202, body = ServiceTask), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn refresh_status(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Accepted<ServiceTask>> {
    act(&effect, &p, id, "status", LIVE, json!({})).await
}
