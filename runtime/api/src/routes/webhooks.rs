//! Webhook endpoints: where a tenant's billing system hears what happened.
//! Events matching an endpoint's filter are delivered by workers (never by
//! this API), signed per Standard Webhooks; here the tenant registers
//! endpoints, reads their signing secret, rotates it, and reads and
//! replays the delivery log. Every query is scoped to the caller's tenant.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::{Page, PageParams};
use crate::problem::{ApiError, ApiResult, FieldError, Problem};
use crate::routes::webhook_input::{
    all_ok, check_description, check_event_types, check_secret, check_url,
};
use crate::routes::{Accepted, ApiJson, ApiPath, ApiQuery, Created, NoContent, OptionalApiJson};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use panel1_store::webhooks::{self as store, EndpointPatch};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(redeliver))
}

/// An endpoint (its signing secret only at `/secret`).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Empty: every event.
    pub event_types: Vec<String>,
    /// False after a delivery exhausted its retries (see `disabled_reason`)
    /// or when the tenant disabled it.
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// While set, the previous secret also signs (after a rotation).
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<store::WebhookEndpoint> for WebhookEndpoint {
    fn from(e: store::WebhookEndpoint) -> Self {
        WebhookEndpoint {
            id: e.id,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            previous_secret_until: e.previous_secret_until,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// `https://…` (plain `http://` and internal addresses only where the
    /// operator allows them; checked again on every delivery).
    #[schema(max_length = 2048)]
    pub url: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// Event kinds (`service.updated`) or families (`task.*`); empty or
    /// absent: every event.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// A `whsec_` secret of your own (24–64 random bytes, base64); absent:
    /// one is generated (read it at `/secret`).
    pub secret: Option<String>,
}

impl std::fmt::Debug for NewEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEndpoint")
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// `true` re-enables a disabled endpoint: its pending deliveries go out
    /// from where they stopped.
    pub enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the current secret keeps signing beside the new one
    /// (0–7 days, default 24 h).
    pub overlap_seconds: Option<u64>,
    /// A `whsec_` secret of your own; absent: one is generated.
    pub secret: Option<String>,
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("overlap_seconds", &self.overlap_seconds)
            .finish_non_exhaustive()
    }
}

/// The signing secret receivers verify with.
#[derive(Serialize, ToSchema)]
pub struct SigningSecret {
    pub secret: String,
}

/// Every event of a tenant is fanned out to each of its endpoints inside
/// the transaction that writes it: a bound keeps that cost bounded.
const MAX_ENDPOINTS_PER_TENANT: i64 = 50;
const MAX_OVERLAP_SECS: u64 = 7 * 24 * 3600;

fn no_endpoint() -> ApiError {
    ApiError::NotFound("webhook endpoint".into())
}

/// Register an endpoint.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewEndpoint,
    responses((status = 201, body = WebhookEndpoint),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn create_endpoint(
    State(state): State<AppState>,
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> ApiResult<Created<WebhookEndpoint>> {
    let tenant = p.tenant(Scope::Write)?;
    let types = check_event_types(&body.event_types);
    all_ok(vec![
        check_url("url", &body.url),
        check_description(&body.description),
        types.as_ref().map(|_| ()).map_err(Clone::clone),
        body.secret
            .as_deref()
            .map_or(Ok(()), |s| check_secret("secret", s)),
    ])?;
    let types = types.map_err(|e| ApiError::Validation(vec![e]))?;
    let mut tx = effect.begin().await?;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
    if count >= MAX_ENDPOINTS_PER_TENANT {
        return Err(ApiError::Conflict(format!(
            "a tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints; delete one first"
        )));
    }
    let endpoint = store::create_endpoint(
        &mut *tx,
        &state.secrets,
        tenant,
        &body.url,
        &body.description,
        &types,
        body.secret.as_deref(),
    )
    .await?;
    Ok(Created(endpoint.into()))
}

/// List endpoints, newest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(PageParams),
    responses((status = 200, body = Page<WebhookEndpoint>)), security(("api_key" = [])))]
async fn list_endpoints(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<WebhookEndpoint>>> {
    let tenant = p.tenant(Scope::Read)?;
    let limit = page.limit()?;
    let rows = store::list_endpoints(&state.pool, tenant, page.before(), limit + 1).await?;
    let rows: Vec<WebhookEndpoint> = rows.into_iter().map(Into::into).collect();
    Ok(Json(Page::from_rows(rows, limit, |e| e.id)))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookEndpoint),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_endpoint(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<WebhookEndpoint>> {
    let tenant = p.tenant(Scope::Read)?;
    let e = store::get_endpoint(&state.pool, tenant, id).await?;
    Ok(Json(e.ok_or_else(no_endpoint)?.into()))
}

/// Change an endpoint; `enabled: true` re-enables a disabled one.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    request_body = EndpointChange,
    responses((status = 200, body = WebhookEndpoint),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn update_endpoint(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<EndpointChange>,
) -> ApiResult<Json<WebhookEndpoint>> {
    let tenant = p.tenant(Scope::Write)?;
    let types = body
        .event_types
        .as_deref()
        .map(check_event_types)
        .transpose();
    all_ok(vec![
        body.url.as_deref().map_or(Ok(()), |u| check_url("url", u)),
        body.description
            .as_deref()
            .map_or(Ok(()), check_description),
        types.as_ref().map(|_| ()).map_err(Clone::clone),
    ])?;
    let patch = EndpointPatch {
        url: body.url,
        description: body.description,
        event_types: types.map_err(|e| ApiError::Validation(vec![e]))?,
        enabled: body.enabled,
    };
    let e = store::update_endpoint(&state.pool, tenant, id, &patch).await?;
    Ok(Json(e.ok_or_else(no_endpoint)?.into()))
}

/// Delete an endpoint and its delivery log; nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn delete_endpoint(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<NoContent> {
    let tenant = p.tenant(Scope::Write)?;
    if store::delete_endpoint(&state.pool, tenant, id).await? {
        Ok(NoContent)
    } else {
        Err(no_endpoint())
    }
}

/// The current signing secret (`whsec_…`), for the receiver to verify
/// signatures with. Needs a key with write scope; never cached.
#[utoipa::path(get, path = "/v1/webhooks/{id}/secret", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 200, body = SigningSecret),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_secret(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let tenant = p.tenant(Scope::Write)?;
    let secret = store::signing_secret(&state.pool, &state.secrets, tenant, id)
        .await?
        .ok_or_else(no_endpoint)?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(SigningSecret { secret }),
    )
        .into_response())
}

/// Replace the signing secret; the current one keeps signing beside the
/// new one for `overlap_seconds`, so receivers switch without a gap.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = Uuid, Path)), request_body = Rotation,
    responses((status = 200, body = WebhookEndpoint),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn rotate_secret(
    State(state): State<AppState>,
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    OptionalApiJson(body): OptionalApiJson<Rotation>,
) -> ApiResult<Json<WebhookEndpoint>> {
    let tenant = p.tenant(Scope::Write)?;
    let overlap = body.overlap_seconds.unwrap_or(24 * 3600);
    all_ok(vec![
        if overlap > MAX_OVERLAP_SECS {
            Err(FieldError {
                field: "overlap_seconds".into(),
                message: format!("at most {MAX_OVERLAP_SECS} (7 days)"),
            })
        } else {
            Ok(())
        },
        body.secret
            .as_deref()
            .map_or(Ok(()), |s| check_secret("secret", s)),
    ])?;
    let mut tx = effect.begin().await?;
    let e = store::rotate_secret(
        &mut *tx,
        &state.secrets,
        tenant,
        id,
        Duration::from_secs(overlap),
        body.secret.as_deref(),
    )
    .await?;
    Ok(Json(e.ok_or_else(no_endpoint)?.into()))
}

/// One message to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub endpoint_id: Uuid,
    pub event_id: i64,
    pub event_kind: String,
    pub service_id: Option<Uuid>,
    /// pending, delivering, succeeded, failed (retries exhausted).
    pub state: String,
    pub attempts: i32,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<store::Delivery> for Delivery {
    fn from(d: store::Delivery) -> Self {
        Delivery {
            id: d.id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_kind: d.event_kind,
            service_id: d.service_id,
            state: d.state,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            finished_at: d.finished_at,
        }
    }
}

/// One try: the endpoint's status, latency and the start of its answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status: Option<i32>,
    pub latency_ms: i32,
    pub response: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempt_log: Vec<Attempt>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// pending, delivering, succeeded or failed.
    pub state: Option<String>,
    /// Items per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    pub cursor: Option<i64>,
}

/// The delivery log, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = Uuid, Path), DeliveryQuery),
    responses((status = 200, body = DeliveryPage),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn list_deliveries(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    let tenant = p.tenant(Scope::Read)?;
    let limit = PageParams {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    if let Some(s) = q.state.as_deref() {
        if !["pending", "delivering", "succeeded", "failed"].contains(&s) {
            return Err(ApiError::validation(
                "state",
                "pending, delivering, succeeded or failed",
            ));
        }
    }
    store::get_endpoint(&state.pool, tenant, id)
        .await?
        .ok_or_else(no_endpoint)?;
    let mut rows = store::list_deliveries(
        &state.pool,
        tenant,
        id,
        q.state.as_deref(),
        q.cursor,
        limit + 1,
    )
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(Json(DeliveryPage {
        next_cursor: if more {
            rows.last().map(|d| d.id)
        } else {
            None
        },
        items: rows.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries/{delivery_id}", tag = "webhooks",
    params(("id" = Uuid, Path), ("delivery_id" = i64, Path)),
    responses((status = 200, body = DeliveryDetail),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_delivery(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath((id, delivery_id)): ApiPath<(Uuid, i64)>,
) -> ApiResult<Json<DeliveryDetail>> {
    let tenant = p.tenant(Scope::Read)?;
    let (d, attempts) = store::get_delivery(&state.pool, tenant, id, delivery_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("webhook delivery".into()))?;
    Ok(Json(DeliveryDetail {
        delivery: d.into(),
        attempt_log: attempts
            .into_iter()
            .map(|a| Attempt {
                attempt: a.attempt,
                at: a.at,
                status: a.status,
                latency_ms: a.latency_ms,
                response: a.response,
                error: a.error,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivery {
    /// The new delivery (the same message, the same `webhook-id`).
    pub delivery_id: i64,
}

/// Send a delivery's message again (after fixing the receiver).
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = Uuid, Path), ("delivery_id" = i64, Path)),
    responses((status = 202, body = Redelivery),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn redeliver(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath((id, delivery_id)): ApiPath<(Uuid, i64)>,
) -> ApiResult<Accepted<Redelivery>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = effect.begin().await?;
    let new = store::redeliver(&mut *tx, tenant, id, delivery_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("webhook delivery".into()))?;
    Ok(Accepted(Redelivery { delivery_id: new }))
}
