//! Adapter versions: upload (validated and compiled here, never run: a
//! worker inspects it by calling `info` in the sandbox), list, get,
//! deprecate. Platform uploads are built-in (every tenant sees them); a
//! tenant's uploads are its own.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::{Page, PageParams};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::{is_unique_violation, ApiPath, ApiQuery, Created};
use crate::state::AppState;
use axum::body::to_bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use panel1_sandbox::SandboxError;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_adapter, list_adapters))
        .routes(routes!(get_adapter))
        .routes(routes!(deprecate_adapter))
}

/// An immutable adapter version.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct AdapterVersion {
    pub id: Uuid,
    pub adapter_id: Uuid,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub world_version: String,
    pub size_bytes: i64,
    /// Imports and capabilities found at upload (`panel1 adapter check`).
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
    /// `inspecting` until a worker has called `info`; then `ready` or `rejected`.
    pub status: String,
    /// What `info` returned (operations, config schema, egress, secrets).
    #[schema(value_type = Option<Object>)]
    pub info: Option<serde_json::Value>,
    /// JSON Schema that server configs are validated against.
    #[schema(value_type = Option<Object>)]
    pub config_schema: Option<serde_json::Value>,
    pub rejection: Option<String>,
    pub deprecated: bool,
    /// Uploaded as a candidate: no server uses it until it is promoted
    /// (`POST /v1/adapters/{id}/promote`, after a shadow run).
    pub candidate: bool,
    /// When the candidate was promoted.
    pub promoted_at: Option<DateTime<Utc>>,
    /// Visible to every tenant.
    pub builtin: bool,
    pub created_at: DateTime<Utc>,
}

const SELECT: &str =
    "SELECT v.id, a.id AS adapter_id, a.name, v.version, v.sha256, v.world_version,
        octet_length(v.component)::bigint AS size_bytes, v.report, v.status::text AS status, v.info,
        v.config_schema, v.rejection, v.deprecated, v.candidate, v.promoted_at,
        a.tenant_id IS NULL AS builtin, v.created_at
    FROM adapter_versions v JOIN adapters a ON a.id = v.adapter_id";

/// The version if `principal` may see it (built-in, or its tenant's).
pub async fn visible_version(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> ApiResult<AdapterVersion> {
    visible_version_in(&mut *state.pool.acquire().await?, principal, id).await
}

/// [`visible_version`] on this connection (a request's transaction sees its own writes).
pub(crate) async fn visible_version_in(
    conn: &mut PgConnection,
    principal: &Principal,
    id: Uuid,
) -> ApiResult<AdapterVersion> {
    let tenant = if principal.is_platform() {
        None
    } else {
        Some(principal.tenant(Scope::Read)?)
    };
    sqlx::query_as(&format!(
        "{SELECT} WHERE v.id = $1 AND (a.tenant_id IS NULL OR a.tenant_id = $2)"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("adapter version {id}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// Adapter name (`[a-z0-9][a-z0-9-]*`, up to 63); with a raw body.
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub name: Option<String>,
    /// The version label, e.g. `1.4.0` (1 to 64 visible ASCII characters);
    /// with a raw body.
    #[param(pattern = "^[!-~]{1,64}$")]
    pub version: Option<String>,
    /// Upload as a candidate of the adapter (tenant adapters only): no
    /// server uses it until it is promoted after a shadow run.
    pub candidate: Option<bool>,
}

fn check_label(field: &str, value: Option<String>, adapter_name: bool) -> ApiResult<String> {
    let v = value.ok_or_else(|| ApiError::validation(field, "is required"))?;
    let ok = if adapter_name {
        let b = v.as_bytes();
        (1..=63).contains(&b.len())
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    } else {
        (1..=64).contains(&v.len()) && v.bytes().all(|c| c.is_ascii_graphic())
    };
    if !ok {
        return Err(ApiError::validation(
            field,
            if adapter_name {
                "lower-case letters, digits and `-`, starting with a letter or digit, up to 63"
            } else {
                "1 to 64 visible ASCII characters"
            },
        ));
    }
    Ok(v)
}

/// A component's bytes (the raw upload body).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the body `read_upload` reads
struct ComponentBytes(Vec<u8>);

/// A multipart upload: the labels (here or in the query) and the component.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form `read_upload` reads
struct UploadForm {
    /// As the `name` query parameter (the form's wins).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    name: Option<String>,
    /// As the `version` query parameter (the form's wins).
    #[schema(pattern = "^[!-~]{1,64}$")]
    version: Option<String>,
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
}

/// Read past the body limit before answering 413 (see `read_upload`).
const DRAIN_BYTES: usize = 1 << 20;

/// The component and its labels from a raw `application/wasm` body or a
/// multipart form (`name`, `version`, `component`).
async fn read_upload(
    state: &AppState,
    q: UploadParams,
    req: Request,
) -> ApiResult<(String, String, Vec<u8>)> {
    let limit = state.config.max_body_bytes;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("multipart body: {}", e.body_text())))?;
        let too_large = |status: axum::http::StatusCode| status.as_u16() == 413;
        let (mut name, mut version, mut component) = (q.name, q.version, None);
        while let Some(field) = form.next_field().await.map_err(|e| {
            if too_large(e.status()) {
                ApiError::TooLarge(limit)
            } else {
                ApiError::BadRequest(format!("multipart body: {}", e.body_text()))
            }
        })? {
            let field_name = field.name().unwrap_or("").to_string();
            let data = field.bytes().await.map_err(|e| {
                if too_large(e.status()) {
                    ApiError::TooLarge(limit)
                } else {
                    ApiError::BadRequest(format!("multipart field {field_name}: {}", e.body_text()))
                }
            })?;
            match field_name.as_str() {
                "name" => name = Some(String::from_utf8_lossy(&data).into_owned()),
                "version" => version = Some(String::from_utf8_lossy(&data).into_owned()),
                "component" => component = Some(data.to_vec()),
                other => {
                    return Err(ApiError::validation(
                        other,
                        "unknown form field (expected name, version, component)",
                    ))
                }
            }
        }
        let component =
            component.ok_or_else(|| ApiError::validation("component", "is required"))?;
        Ok((
            check_label("name", name, true)?,
            check_label("version", version, false)?,
            component,
        ))
    } else if ct.starts_with("application/wasm") || ct.starts_with("application/octet-stream") {
        // Read the body before judging anything: a client still sending
        // when the connection closes sees a reset instead of our answer.
        // A little past the limit is read too, for the same reason.
        let bytes = to_bytes(req.into_body(), limit + DRAIN_BYTES)
            .await
            .map_err(|e| ApiError::reading_body(&e, limit))?;
        if bytes.len() > limit {
            return Err(ApiError::TooLarge(limit));
        }
        let name = check_label("name", q.name, true)?;
        let version = check_label("version", q.version, false)?;
        Ok((name, version, bytes.to_vec()))
    } else {
        Err(ApiError::UnsupportedMediaType(
            "upload the component as `application/wasm` (with ?name=&version=) or as multipart/form-data".into(),
        ))
    }
}

/// Upload an adapter component.
///
/// The bytes are validated before anything is compiled (structural limits; a
/// component exporting a supported world, only imports the host provides),
/// then compiled under the server's compile budget (422 naming the limit or
/// budget otherwise); the version is then `inspecting`
/// until a worker has read its `info`. Uploading the same bytes again returns
/// the existing version (200).
#[utoipa::path(post, path = "/v1/adapters", tag = "adapters", params(UploadParams),
    request_body(description = "The component (`application/wasm` or `application/octet-stream`, with `?name=&version=`), or a multipart form",
                 content((ComponentBytes = "application/wasm"), (ComponentBytes = "application/octet-stream"),
                         (UploadForm = "multipart/form-data"))),
    responses((status = 201, body = AdapterVersion), (status = 200, body = AdapterVersion, description = "Same bytes uploaded before"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json", description = "This tenant already has as many uploads compiling as it may (or the key's rate limit); retry after `Retry-After`"),
              (status = 503, body = Problem, content_type = "application/problem+json", description = "The compile queue is full; retry after `Retry-After`")),
    security(("api_key" = [])))]
async fn upload_adapter(
    State(state): State<AppState>,
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiQuery(q): ApiQuery<UploadParams>,
    req: Request,
) -> ApiResult<Response> {
    let tenant = if p.is_platform() {
        None
    } else {
        Some(p.tenant(Scope::Write)?)
    };
    let candidate = q.candidate.unwrap_or(false);
    let (name, version, bytes) = read_upload(&state, q, req).await?;
    if candidate && tenant.is_none() {
        return Err(ApiError::validation(
            "candidate",
            "candidates are tenant adapters (built-in versions are not shadow-run)",
        ));
    }
    // Held until the compile ends: one tenant's uploads cannot take every
    // place in the compile queue the whole server shares.
    let _compiling = state
        .compiles
        .take(tenant.unwrap_or(Uuid::nil()))
        .ok_or(ApiError::TooManyCompiles(state.compiles.max_per_tenant()))?;
    let sandbox = state.sandbox.clone();
    let artifacts = state.artifacts.clone();
    // Off the async threads: the load checks the structure, then waits for
    // the compiler child (bounded by the sandbox's compile budget).
    let (bytes, loaded) = tokio::task::spawn_blocking(move || {
        let loaded = match &artifacts {
            Some(a) => sandbox.load_with_artifacts(&bytes, a),
            None => sandbox.load(&bytes),
        };
        (bytes, loaded)
    })
    .await
    .map_err(|e| ApiError::internal("compiling an upload", e))?;
    // The component's fault (structure, world, compile budget) is a 422; a
    // full compile queue a 503 to retry; anything else (the compiler could
    // not start) is ours.
    let loaded = loaded.map_err(|e| match e {
        SandboxError::InvalidComponent(_) => ApiError::validation("component", e.to_string()),
        SandboxError::Busy(why) => ApiError::Unavailable(why),
        other => ApiError::internal("compiling an upload", other),
    })?;
    let report = serde_json::to_value(&loaded.report)
        .map_err(|e| ApiError::internal("encoding the report", e))?;
    let mut tx = effect.begin().await?;
    let existing: Option<Uuid> = sqlx::query_scalar(
        "SELECT v.id FROM adapter_versions v JOIN adapters a ON a.id = v.adapter_id
         WHERE a.tenant_id IS NOT DISTINCT FROM $1 AND a.name = $2 AND v.sha256 = $3",
    )
    .bind(tenant)
    .bind(&name)
    .bind(&loaded.report.sha256)
    .fetch_optional(&mut *tx)
    .await?;
    let new = panel1_store::setup::NewAdapterVersion {
        tenant,
        name: &name,
        version: &version,
        sha256: &loaded.report.sha256,
        world_version: &loaded.report.world_version,
        component: &bytes,
        report: &report,
    };
    let id = match panel1_store::setup::add_adapter_version(&mut *tx, &new).await {
        Ok(id) => id,
        Err(panel1_store::StoreError::Db(e)) if is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!(
                "{name} {version} exists with other bytes; versions are immutable, upload under a new version"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    // Same bytes again return the version as it is: a candidate is only
    // ever made at its first upload.
    if candidate && existing.is_none() {
        sqlx::query("UPDATE adapter_versions SET candidate = true WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let v = visible_version_in(&mut tx, &p, id).await?;
    Ok(match existing {
        Some(_) => Json(v).into_response(),
        None => Created(v).into_response(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdapterFilter {
    /// Only versions of this adapter name.
    pub name: Option<String>,
    /// Items per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// List the adapter versions visible to the caller (built-in and its own).
#[utoipa::path(get, path = "/v1/adapters", tag = "adapters", params(AdapterFilter),
    responses((status = 200, body = Page<AdapterVersion>)), security(("api_key" = [])))]
async fn list_adapters(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(f): ApiQuery<AdapterFilter>,
) -> ApiResult<Json<Page<AdapterVersion>>> {
    let tenant = if p.is_platform() {
        None
    } else {
        Some(p.tenant(Scope::Read)?)
    };
    let page = PageParams {
        limit: f.limit,
        cursor: f.cursor,
    };
    let limit = page.limit()?;
    let rows: Vec<AdapterVersion> = sqlx::query_as(&format!(
        "{SELECT} WHERE (a.tenant_id IS NULL OR a.tenant_id = $1) AND ($2::text IS NULL OR a.name = $2)
           AND v.id < $3 ORDER BY v.id DESC LIMIT $4"
    ))
    .bind(tenant)
    .bind(&f.name)
    .bind(page.before())
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |v| v.id)))
}

/// Get an adapter version.
#[utoipa::path(get, path = "/v1/adapters/{id}", tag = "adapters", params(("id" = Uuid, Path)),
    responses((status = 200, body = AdapterVersion), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_adapter(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<AdapterVersion>> {
    Ok(Json(visible_version(&state, &p, id).await?))
}

/// Deprecate a version: existing servers keep using it, new servers cannot.
#[utoipa::path(post, path = "/v1/adapters/{id}/deprecate", tag = "adapters", params(("id" = Uuid, Path)),
    responses((status = 200, body = AdapterVersion), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn deprecate_adapter(
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<AdapterVersion>> {
    // Tenants deprecate their own versions, the platform the built-in ones.
    let tenant = if p.is_platform() {
        None
    } else {
        Some(p.tenant(Scope::Write)?)
    };
    let mut tx = effect.begin().await?;
    let n = sqlx::query(
        "UPDATE adapter_versions v SET deprecated = true FROM adapters a
         WHERE a.id = v.adapter_id AND v.id = $1 AND a.tenant_id IS NOT DISTINCT FROM $2",
    )
    .bind(id)
    .bind(tenant)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        // A built-in version seen by a tenant is still not theirs to change.
        return match visible_version_in(&mut tx, &p, id).await {
            Ok(_) => Err(ApiError::Forbidden(
                "built-in adapters are deprecated by the platform".into(),
            )),
            Err(e) => Err(e),
        };
    }
    Ok(Json(visible_version_in(&mut tx, &p, id).await?))
}
