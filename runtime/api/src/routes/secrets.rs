//! Secrets: write-only. Values are sealed (XChaCha20-Poly1305, master key
//! outside the database) before they are stored and are never returned.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::{Page, PageParams};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::{ApiJson, ApiPath, ApiQuery, NoContent};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_secret, list_secrets))
        .routes(routes!(delete_secret))
}

/// A secret as listed: its name, never its value.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct SecretMeta {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSecret {
    /// `[A-Za-z0-9][A-Za-z0-9_.-]*`, up to 63 characters.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
    pub name: String,
    /// Write-only; 1 byte to 64 KiB of UTF-8.
    #[schema(min_length = 1, max_length = 65536)]
    pub value: String,
}

// The value must never reach a log line through `{:?}`.
impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

fn check_secret_name(name: &str) -> ApiResult<()> {
    let b = name.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "name",
            "letters, digits, `_`, `.`, `-`, starting with a letter or digit, up to 63",
        ))
    }
}

/// Create or replace a secret (201 created, 200 replaced).
#[utoipa::path(post, path = "/v1/secrets", tag = "secrets", request_body = NewSecret,
    responses((status = 201, body = SecretMeta), (status = 200, body = SecretMeta),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn put_secret(
    State(state): State<AppState>,
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiJson(body): ApiJson<NewSecret>,
) -> ApiResult<Response> {
    let tenant = p.tenant(Scope::Write)?;
    check_secret_name(&body.name)?;
    if body.value.is_empty() || body.value.len() > 64 << 10 {
        return Err(ApiError::validation("value", "must be 1 byte to 64 KiB"));
    }
    let mut tx = effect.begin().await?;
    let existed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM secrets WHERE tenant_id = $1 AND name = $2)",
    )
    .bind(tenant)
    .bind(&body.name)
    .fetch_one(&mut *tx)
    .await?;
    let id =
        panel1_store::setup::put_secret(&mut *tx, &state.secrets, tenant, &body.name, &body.value)
            .await?;
    let meta: SecretMeta =
        sqlx::query_as("SELECT id, name, created_at, updated_at FROM secrets WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(meta)).into_response())
}

/// List secret names.
#[utoipa::path(get, path = "/v1/secrets", tag = "secrets", params(PageParams),
    responses((status = 200, body = Page<SecretMeta>)), security(("api_key" = [])))]
async fn list_secrets(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<SecretMeta>>> {
    let tenant = p.tenant(Scope::Read)?;
    let limit = page.limit()?;
    let rows: Vec<SecretMeta> = sqlx::query_as(
        "SELECT id, name, created_at, updated_at FROM secrets
         WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(page.before())
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |s| s.id)))
}

/// Delete a secret. Refused while a server uses it.
#[utoipa::path(delete, path = "/v1/secrets/{name}", tag = "secrets", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn delete_secret(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<NoContent> {
    let tenant = p.tenant(Scope::Write)?;
    // The row's lock orders this against a server binding the secret at the
    // same moment (`bind_secrets` takes a key-share lock on it): either the
    // binding is seen below (409), or the binding finds no secret (422).
    let mut tx = state.pool.begin().await?;
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM secrets WHERE tenant_id = $1 AND name = $2 FOR UPDATE")
            .bind(tenant)
            .bind(&name)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(id) = id else {
        return Err(ApiError::NotFound(format!("secret {name:?}")));
    };
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT s.name FROM server_secrets b JOIN servers s ON s.id = b.server_id
         WHERE b.secret_id = $1 ORDER BY s.name",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    if !users.is_empty() {
        return Err(ApiError::Conflict(format!(
            "secret {name:?} is bound to servers {}; unbind it first",
            users.join(", ")
        )));
    }
    sqlx::query("DELETE FROM secrets WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(NoContent)
}
