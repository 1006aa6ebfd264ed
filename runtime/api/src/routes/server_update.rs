//! Changing a connected server: its name, settings, egress, cap, limits,
//! secret bindings, recording, or the adapter version it runs. Every field
//! given replaces the current value whole; the rest stay. A change applies
//! to attempts that start after it (workers re-read a server within 2 s);
//! attempts already running finish with what they started with.
use crate::auth::{Principal, Scope};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::adapters::visible_version_in;
use crate::routes::servers::{
    bind_secrets, build_egress, build_limits, check_config_shape, check_secret_bindings,
    check_usable, load_server_in, no_such_version, to_json, validate_config, EgressInput,
    LimitsInput, SecretBindingInput, Server,
};
use crate::routes::{is_unique_violation, validate_name, ApiJson, ApiPath};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use panel1_sandbox::Grants;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// The fields to change; absent (or `null`) ones keep their value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerPatch {
    /// 1–200 characters, unique in the tenant.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Another `ready`, promoted, non-deprecated version of the same adapter.
    pub adapter_version_id: Option<Uuid>,
    /// The whole new config, validated against the (new) version's schema.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// The whole new egress list; `[]` = no network at all.
    pub egress: Option<Vec<EgressInput>>,
    /// 1–256.
    #[schema(minimum = 1, maximum = 256)]
    pub max_concurrency: Option<i32>,
    /// The whole new set of bindings; `[]` unbinds every secret.
    pub secrets: Option<Vec<SecretBindingInput>>,
    /// The whole new limits; fields left out return to the defaults.
    pub limits: Option<LimitsInput>,
    pub allow_secret_reveal: Option<bool>,
    /// Start (or stop) keeping each attempt's HTTP exchanges for shadow runs.
    pub record_exchanges: Option<bool>,
}

/// Change a server.
#[utoipa::path(patch, path = "/v1/servers/{id}", tag = "servers", params(("id" = Uuid, Path)),
    request_body = ServerPatch,
    responses((status = 200, body = Server),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub(crate) async fn update_server(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ServerPatch>,
) -> ApiResult<Json<Server>> {
    let tenant = p.tenant(Scope::Write)?;
    // Everything that needs no database first: a bad field is a 422 before
    // any row is locked.
    if let Some(name) = &body.name {
        validate_name("name", name, 200)?;
    }
    if let Some(n) = body.max_concurrency {
        if !(1..=256).contains(&n) {
            return Err(ApiError::validation("max_concurrency", "must be 1 to 256"));
        }
    }
    if let Some(config) = &body.config {
        check_config_shape(config)?;
    }
    let egress = body.egress.as_deref().map(build_egress).transpose()?;
    let limits = body.limits.as_ref().map(build_limits).transpose()?;
    if let Some(secrets) = &body.secrets {
        check_secret_bindings(secrets)?;
    }

    let mut tx = state.pool.begin().await?;
    let current: Option<(Uuid, Value, Uuid)> = sqlx::query_as(
        "SELECT s.adapter_version_id, s.config, v.adapter_id
         FROM servers s JOIN adapter_versions v ON v.id = s.adapter_version_id
         WHERE s.id = $1 AND s.tenant_id = $2 FOR UPDATE OF s",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    let (current_version, current_config, adapter_id) =
        current.ok_or_else(|| ApiError::NotFound(format!("server {id}")))?;

    let version_id = body.adapter_version_id.unwrap_or(current_version);
    let moved = version_id != current_version;
    if moved || body.config.is_some() {
        let version = visible_version_in(&mut tx, &p, version_id)
            .await
            .map_err(no_such_version)?;
        if moved {
            check_usable(&version)?;
            if version.adapter_id != adapter_id {
                return Err(ApiError::validation(
                    "adapter_version_id",
                    "must be a version of the adapter the server runs; connect a new server \
                     for another adapter",
                ));
            }
        }
        if let Some(schema) = &version.config_schema {
            validate_config(schema, body.config.as_ref().unwrap_or(&current_config)).map_err(
                |e| match (e, moved && body.config.is_none()) {
                    (ApiError::Validation(_), true) => ApiError::validation(
                        "adapter_version_id",
                        "the server's config does not satisfy this version's config schema; \
                         send a new `config` with it",
                    ),
                    (e, _) => e,
                },
            )?;
        }
    }

    let grants = body
        .allow_secret_reveal
        .map(|secrets_reveal| to_json(&Grants { secrets_reveal }))
        .transpose()?;
    let updated = sqlx::query(
        "UPDATE servers SET
             name = COALESCE($3, name),
             adapter_version_id = $4,
             config = COALESCE($5, config),
             egress = COALESCE($6, egress),
             max_concurrency = COALESCE($7, max_concurrency),
             limits = COALESCE($8, limits),
             grants = COALESCE($9, grants),
             record_exchanges = COALESCE($10, record_exchanges)
         WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant)
    .bind(&body.name)
    .bind(version_id)
    .bind(&body.config)
    .bind(egress.as_ref().map(to_json).transpose()?)
    .bind(body.max_concurrency)
    .bind(limits.as_ref().map(to_json).transpose()?)
    .bind(grants)
    .bind(body.record_exchanges)
    .execute(&mut *tx)
    .await;
    match updated {
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!(
                "a server named {:?} exists",
                body.name.as_deref().unwrap_or_default()
            )))
        }
        other => {
            other?;
        }
    }
    if let Some(secrets) = &body.secrets {
        sqlx::query("DELETE FROM server_secrets WHERE server_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        bind_secrets(&mut tx, tenant, id, secrets).await?;
    }
    let server = load_server_in(&mut tx, tenant, id).await?;
    tx.commit().await?;
    Ok(Json(server))
}
