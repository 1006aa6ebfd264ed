//! Tenants (platform keys) and API keys (a tenant's admin keys, or the
//! platform creating a tenant's keys).
use crate::auth::{create_key, Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::{Page, PageParams};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::{
    is_unique_violation, validate_name, ApiJson, ApiPath, ApiQuery, Created, NoContent,
};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(create_tenant_key))
        .routes(routes!(create_own_key, list_keys))
        .routes(routes!(revoke_key))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1–200 characters, unique; not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: String,
}

/// A key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created: `key` is shown this once and stored only hashed.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Send as `Authorization: Bearer <key>`. Not retrievable later.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    /// An `admin` key for the new tenant.
    pub admin_key: CreatedKey,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1–200 characters; not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: String,
    /// Any of `admin`, `write`, `read` (admin includes write, write includes read).
    #[schema(value_type = Vec<TenantScope>, min_items = 1)]
    pub scopes: Vec<Scope>,
}

/// The scopes a tenant key can have (`platform` is for platform keys only).
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // documents `NewKey::scopes`
enum TenantScope {
    Admin,
    Write,
    Read,
}

fn check_scopes(scopes: &[Scope]) -> ApiResult<()> {
    if scopes.is_empty() {
        return Err(ApiError::validation("scopes", "at least one scope"));
    }
    if scopes.contains(&Scope::Platform) {
        return Err(ApiError::validation(
            "scopes",
            "`platform` cannot be given to a tenant key",
        ));
    }
    Ok(())
}

/// Create a tenant and its first admin key.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = NewTenant,
    responses((status = 201, body = CreatedTenant),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn create_tenant(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiJson(body): ApiJson<NewTenant>,
) -> ApiResult<Created<CreatedTenant>> {
    p.require_platform()?;
    validate_name("name", &body.name, 200)?;
    let mut tx = effect.begin().await?;
    let id = match panel1_store::setup::create_tenant(&mut *tx, &body.name).await {
        Ok(id) => id,
        Err(panel1_store::StoreError::Db(e)) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!(
                "a tenant named {:?} exists",
                body.name
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let scopes = vec![Scope::Admin];
    let (key_id, key) = create_key(&mut *tx, Some(id), "initial admin", &scopes).await?;
    let tenant: Tenant = sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    Ok(Created(CreatedTenant {
        tenant,
        admin_key: CreatedKey {
            id: key_id,
            name: "initial admin".into(),
            scopes,
            key,
        },
    }))
}

/// List tenants.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(PageParams),
    responses((status = 200, body = Page<Tenant>)), security(("api_key" = [])))]
async fn list_tenants(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Tenant>>> {
    p.require_platform()?;
    let limit = page.limit()?;
    let rows: Vec<Tenant> = sqlx::query_as(
        "SELECT id, name, created_at FROM tenants WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(page.before())
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |t| t.id)))
}

async fn insert_key(effect: &Effect, tenant: Uuid, body: NewKey) -> ApiResult<Created<CreatedKey>> {
    validate_name("name", &body.name, 200)?;
    check_scopes(&body.scopes)?;
    let mut tx = effect.begin().await?;
    let (id, key) = create_key(&mut *tx, Some(tenant), &body.name, &body.scopes).await?;
    Ok(Created(CreatedKey {
        id,
        name: body.name,
        scopes: body.scopes,
        key,
    }))
}

/// Create an API key for a tenant (platform).
#[utoipa::path(post, path = "/v1/tenants/{id}/keys", tag = "tenants", request_body = NewKey,
    params(("id" = Uuid, Path)),
    responses((status = 201, body = CreatedKey), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn create_tenant_key(
    State(state): State<AppState>,
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewKey>,
) -> ApiResult<Created<CreatedKey>> {
    p.require_platform()?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)")
        .bind(id)
        .fetch_one(&state.pool)
        .await?;
    if !exists {
        return Err(ApiError::NotFound(format!("tenant {id}")));
    }
    insert_key(&effect, id, body).await
}

/// Create an API key in the caller's tenant (admin).
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn create_own_key(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiJson(body): ApiJson<NewKey>,
) -> ApiResult<Created<CreatedKey>> {
    let tenant = p.tenant(Scope::Admin)?;
    insert_key(&effect, tenant, body).await
}

/// List the caller's tenant's keys (admin).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(PageParams),
    responses((status = 200, body = Page<ApiKey>)), security(("api_key" = [])))]
async fn list_keys(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<ApiKey>>> {
    let tenant = p.tenant(Scope::Admin)?;
    let limit = page.limit()?;
    let rows: Vec<ApiKey> = sqlx::query_as(
        "SELECT id, name, scopes, created_at, last_used_at, revoked_at FROM api_keys
         WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(page.before())
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |k| k.id)))
}

/// Revoke a key of the caller's tenant (admin). Takes effect at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn revoke_key(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<NoContent> {
    let tenant = p.tenant(Scope::Admin)?;
    let n = sqlx::query(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant)
    .execute(&state.pool)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound(format!("key {id}")));
    }
    Ok(NoContent)
}
