//! Servers: a connection to one provider endpoint through one adapter
//! version, with its config (validated against the adapter's declared
//! schema), egress policy, concurrency cap, limits and bound secrets.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::{Page, PageParams};
use crate::problem::{ApiError, ApiResult, FieldError, Problem};
use crate::routes::adapters::{visible_version, AdapterVersion};
use crate::routes::server_health::{self, HealthSummary};
use crate::routes::server_update::{__path_update_server, update_server};
use crate::routes::tasks::{enqueue_task, Task};
use crate::routes::{
    is_unique_violation, validate_name, Accepted, ApiJson, ApiPath, ApiQuery, Created,
};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use panel1_sandbox::{EgressPolicy, EgressRule, Grants, Limits};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_server, list_servers))
        .routes(routes!(get_server, update_server))
        .routes(routes!(test_connection))
}

/// An egress rule: `[METHODS ]scheme://host[:port][/path-prefix][ sha256:PIN]`
/// (the pin accepts only the https server certificate with that SHA-256, for
/// self-signed panels), or an object that also allows internal addresses for
/// a host name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EgressInput {
    Rule(String),
    Detailed {
        rule: String,
        #[serde(default)]
        allow_internal: bool,
    },
}

/// A secret the server may use, and the destinations (`host`, `host:port`,
/// `*.domain[:port]`) its value may be sent to.
#[derive(Debug, Serialize, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct SecretBindingInput {
    pub name: String,
    #[schema(schema_with = crate::openapi::destinations)]
    pub destinations: Vec<String>,
}

/// Per-call limits; a server may lower the defaults, never raise them
/// (each is 1 up to this build's default, stated as its `maximum`).
#[derive(Debug, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    pub fuel: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub http_max_requests: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServer {
    /// 1–200 characters, unique; not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: String,
    /// A `ready`, non-deprecated adapter version visible to the tenant.
    pub adapter_version_id: Uuid,
    /// Non-secret settings, validated against the adapter's config schema.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
    /// Allowed destinations; none = no network at all.
    #[serde(default)]
    pub egress: Vec<EgressInput>,
    /// Operations running at once on this server (all tenants), 1–256.
    #[serde(default = "default_concurrency")]
    #[schema(minimum = 1, maximum = 256)]
    pub max_concurrency: i32,
    #[serde(default)]
    pub secrets: Vec<SecretBindingInput>,
    #[serde(default)]
    pub limits: LimitsInput,
    /// Let the adapter read secret plaintext (`secrets-reveal`): only for
    /// adapters that declare it and need it.
    #[serde(default)]
    pub allow_secret_reveal: bool,
    /// Keep each attempt's HTTP exchanges (redacted, capped, 14 days) for
    /// shadow runs of candidate versions (docs/shadow-runs.md).
    #[serde(default)]
    pub record_exchanges: bool,
}

fn empty_object() -> Value {
    json!({})
}

fn default_concurrency() -> i32 {
    4
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Server {
    pub id: Uuid,
    pub name: String,
    pub adapter_version_id: Uuid,
    #[schema(value_type = Object)]
    pub config: Value,
    #[schema(value_type = Object)]
    pub egress: Value,
    pub max_concurrency: i32,
    #[schema(value_type = Object)]
    pub limits: Value,
    #[schema(value_type = Object)]
    pub grants: Value,
    pub secrets: Vec<SecretBindingInput>,
    /// Each attempt's HTTP exchanges are kept (docs/shadow-runs.md).
    pub record_exchanges: bool,
    pub created_at: DateTime<Utc>,
    /// The latest health check's verdict (details at `/health`).
    pub health: Option<HealthSummary>,
}

type ServerRow = (
    Uuid,
    String,
    Uuid,
    Value,
    Value,
    i32,
    Value,
    Value,
    bool,
    DateTime<Utc>,
);

async fn load_server(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<Server> {
    load_server_in(&mut *state.pool.acquire().await?, tenant, id).await
}

/// [`load_server`] on this connection (a request's transaction sees its own writes).
pub(crate) async fn load_server_in(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> ApiResult<Server> {
    let row: Option<ServerRow> = sqlx::query_as(
        "SELECT id, name, adapter_version_id, config, egress, max_concurrency, limits, grants,
                record_exchanges, created_at
         FROM servers WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    let (
        id,
        name,
        adapter_version_id,
        config,
        egress,
        max_concurrency,
        limits,
        grants,
        record_exchanges,
        created_at,
    ) = row.ok_or_else(|| ApiError::NotFound(format!("server {id}")))?;
    let secrets: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT x.name, b.destinations FROM server_secrets b JOIN secrets x ON x.id = b.secret_id
         WHERE b.server_id = $1 ORDER BY x.name",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let health = server_health::summary(&mut *conn, id).await?;
    Ok(Server {
        id,
        name,
        adapter_version_id,
        config,
        egress,
        max_concurrency,
        limits,
        grants,
        secrets: secrets
            .into_iter()
            .map(|(name, destinations)| SecretBindingInput { name, destinations })
            .collect(),
        record_exchanges,
        created_at,
        health,
    })
}

/// The server if it is the tenant's (404 otherwise).
pub async fn tenant_server(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<Server> {
    load_server(state, tenant, id).await
}

/// Largest server config, as JSON: settings, not data. It reaches every
/// call of the adapter and every answer about the server.
const MAX_CONFIG_BYTES: usize = 1 << 20;

/// A config is a JSON object of at most [`MAX_CONFIG_BYTES`].
pub(crate) fn check_config_shape(config: &Value) -> ApiResult<()> {
    if !config.is_object() {
        return Err(ApiError::validation("config", "must be a JSON object"));
    }
    let size = serde_json::to_vec(config)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_CONFIG_BYTES {
        return Err(ApiError::validation(
            "config",
            format!("is {size} bytes as JSON, over the limit of {MAX_CONFIG_BYTES} (1 MiB)"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_config(schema: &Value, config: &Value) -> ApiResult<()> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| ApiError::Conflict(format!("the adapter's config schema is unusable: {e}")))?;
    let errors: Vec<FieldError> = validator
        .iter_errors(config)
        .map(|e| FieldError {
            field: format!("/config{}", e.instance_path),
            message: e.to_string(),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

pub(crate) fn build_egress(input: &[EgressInput]) -> ApiResult<EgressPolicy> {
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    for (i, e) in input.iter().enumerate() {
        let (text, internal) = match e {
            EgressInput::Rule(r) => (r, false),
            EgressInput::Detailed {
                rule,
                allow_internal,
            } => (rule, *allow_internal),
        };
        match EgressRule::parse(text) {
            Ok(mut r) => {
                r.allow_internal = internal;
                rules.push(r);
            }
            Err(err) => errors.push(FieldError {
                field: format!("/egress/{i}"),
                message: err.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(EgressPolicy::new(rules))
    } else {
        Err(ApiError::Validation(errors))
    }
}

pub(crate) fn build_limits(input: &LimitsInput) -> ApiResult<Limits> {
    let mut limits = Limits::default();
    let mut errors = Vec::new();
    let mut lower = |field: &str, given: Option<u64>, slot: &mut u64| {
        if let Some(v) = given {
            if v == 0 || v > *slot {
                errors.push(FieldError {
                    field: format!("/limits/{field}"),
                    message: format!("must be between 1 and {} (the default)", slot),
                });
            } else {
                *slot = v;
            }
        }
    };
    lower("fuel", input.fuel, &mut limits.fuel);
    lower("memory_bytes", input.memory_bytes, &mut limits.memory_bytes);
    lower("timeout_ms", input.timeout_ms, &mut limits.timeout_ms);
    let mut reqs = limits.http_max_requests as u64;
    lower(
        "http_max_requests",
        input.http_max_requests.map(u64::from),
        &mut reqs,
    );
    limits.http_max_requests = reqs as u32;
    if errors.is_empty() {
        Ok(limits)
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn check_destination(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 255
        && d.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'*' | b':' | b'[' | b']')
        })
}

/// Connect a server.
#[utoipa::path(post, path = "/v1/servers", tag = "servers", request_body = NewServer,
    responses((status = 201, body = Server),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn create_server(
    State(state): State<AppState>,
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiJson(body): ApiJson<NewServer>,
) -> ApiResult<Created<Server>> {
    let tenant = p.tenant(Scope::Write)?;
    validate_name("name", &body.name, 200)?;
    if !(1..=256).contains(&body.max_concurrency) {
        return Err(ApiError::validation("max_concurrency", "must be 1 to 256"));
    }
    check_config_shape(&body.config)?;
    let version = visible_version(&state, &p, body.adapter_version_id)
        .await
        .map_err(no_such_version)?;
    check_usable(&version)?;
    if let Some(schema) = &version.config_schema {
        validate_config(schema, &body.config)?;
    }
    let egress = build_egress(&body.egress)?;
    let limits = build_limits(&body.limits)?;
    let grants = Grants {
        secrets_reveal: body.allow_secret_reveal,
    };
    check_secret_bindings(&body.secrets)?;
    let mut tx = effect.begin().await?;
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO servers (id, tenant_id, name, adapter_version_id, config, egress, grants, limits,
             max_concurrency, record_exchanges)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(tenant)
    .bind(&body.name)
    .bind(body.adapter_version_id)
    .bind(&body.config)
    .bind(to_json(&egress)?)
    .bind(to_json(&grants)?)
    .bind(to_json(&limits)?)
    .bind(body.max_concurrency)
    .bind(body.record_exchanges)
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!(
                "a server named {:?} exists",
                body.name
            )))
        }
        other => {
            other?;
        }
    }
    bind_secrets(&mut tx, tenant, id, &body.secrets).await?;
    Ok(Created(load_server_in(&mut tx, tenant, id).await?))
}

/// A version a server may use: `ready`, promoted (not a candidate) and not
/// deprecated; otherwise a 409 (still inspecting) or 422 saying why.
pub(crate) fn check_usable(version: &AdapterVersion) -> ApiResult<()> {
    match version.status.as_str() {
        "ready" => {}
        "inspecting" => {
            return Err(ApiError::Conflict(
                "the adapter version is still being inspected; retry in a moment".into(),
            ))
        }
        _ => {
            return Err(ApiError::validation(
                "adapter_version_id",
                format!(
                    "the adapter version was rejected: {}",
                    version.rejection.as_deref().unwrap_or("unknown reason")
                ),
            ))
        }
    }
    if version.candidate {
        return Err(ApiError::validation(
            "adapter_version_id",
            "the adapter version is a candidate: servers use it once it is promoted \
             (POST /v1/adapters/{id}/promote after a shadow run)",
        ));
    }
    if version.deprecated {
        return Err(ApiError::validation(
            "adapter_version_id",
            "the adapter version is deprecated; use a newer one",
        ));
    }
    Ok(())
}

/// An unknown `adapter_version_id` in a body is a 422 on that field, not a 404.
pub(crate) fn no_such_version(e: ApiError) -> ApiError {
    match e {
        ApiError::NotFound(_) => {
            ApiError::validation("adapter_version_id", "no such adapter version")
        }
        other => other,
    }
}

pub(crate) fn check_secret_bindings(secrets: &[SecretBindingInput]) -> ApiResult<()> {
    for (i, s) in secrets.iter().enumerate() {
        if s.destinations.is_empty() || !s.destinations.iter().all(|d| check_destination(d)) {
            return Err(ApiError::validation(
                &format!("/secrets/{i}/destinations"),
                "one or more of `host`, `host:port`, `*.domain[:port]`",
            ));
        }
    }
    Ok(())
}

/// Bind the tenant's named secrets to the server (in the request's transaction).
pub(crate) async fn bind_secrets(
    conn: &mut PgConnection,
    tenant: Uuid,
    server: Uuid,
    secrets: &[SecretBindingInput],
) -> ApiResult<()> {
    for (i, s) in secrets.iter().enumerate() {
        let n = sqlx::query(
            "INSERT INTO server_secrets (server_id, secret_id, destinations)
             SELECT $1, x.id, $4 FROM secrets x WHERE x.tenant_id = $2 AND x.name = $3
             FOR KEY SHARE",
        )
        .bind(server)
        .bind(tenant)
        .bind(&s.name)
        .bind(&s.destinations)
        .execute(&mut *conn)
        .await;
        match n {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => {
                return Err(ApiError::validation(
                    &format!("/secrets/{i}/name"),
                    format!("no secret named {:?}", s.name),
                ))
            }
            Err(e) if is_unique_violation(&e) => {
                return Err(ApiError::validation(
                    &format!("/secrets/{i}/name"),
                    "bound twice",
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Our own types always serialize; if one did not, that is an internal
/// error, not a panic.
pub(crate) fn to_json<T: Serialize>(v: &T) -> ApiResult<Value> {
    serde_json::to_value(v).map_err(|e| ApiError::internal("encoding", e))
}

/// List servers.
#[utoipa::path(get, path = "/v1/servers", tag = "servers", params(PageParams),
    responses((status = 200, body = Page<Server>)), security(("api_key" = [])))]
async fn list_servers(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Server>>> {
    let tenant = p.tenant(Scope::Read)?;
    let limit = page.limit()?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM servers WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(page.before())
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        rows.push(load_server(&state, tenant, id).await?);
    }
    Ok(Json(Page::from_rows(rows, limit, |s| s.id)))
}

/// Get a server.
#[utoipa::path(get, path = "/v1/servers/{id}", tag = "servers", params(("id" = Uuid, Path)),
    responses((status = 200, body = Server), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_server(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Server>> {
    let tenant = p.tenant(Scope::Read)?;
    Ok(Json(load_server(&state, tenant, id).await?))
}

/// Check the connection: enqueues a `test-connection` task and asks for a
/// health check at once.
#[utoipa::path(post, path = "/v1/servers/{id}/test-connection", tag = "servers", params(("id" = Uuid, Path)),
    responses((status = 202, body = Task), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn test_connection(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Accepted<Task>> {
    let tenant = p.tenant(Scope::Write)?;
    let mut tx = effect.begin().await?;
    load_server_in(&mut tx, tenant, id).await?;
    let task = enqueue_task(&mut tx, tenant, id, None, "test-connection", json!({})).await?;
    // And a health check now: the task waits while the server is down, the
    // check (outside the queue) is what can bring it back.
    panel1_store::health::request_health_check(&mut *tx, tenant, id).await?;
    Ok(Accepted(task))
}
