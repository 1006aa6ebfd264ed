//! Services: the accounts Panel1 manages on servers. Creating one enqueues
//! `provision`; every action enqueues its operation. The service row, the
//! task and the `task.created` event are written in one transaction.
use crate::auth::{Principal, Scope};
use crate::idempotency::Effect;
use crate::pagination::Page;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::servers::tenant_server;
use crate::routes::tasks::{enqueue_task, Task};
use crate::routes::{Accepted, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_service, list_services))
        .routes(routes!(get_service))
        .merge(crate::routes::service_actions::router())
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Service {
    pub id: Uuid,
    pub server_id: Uuid,
    /// The provider's id once provisioned (username, container id, ...).
    pub remote_id: Option<String>,
    pub plan: Option<String>,
    #[schema(value_type = Object)]
    pub spec: Value,
    /// `pending`, `provisioning`, `active`, `suspended`, `migrating` (being
    /// moved to another server: `POST /v1/services/{id}/migrate`),
    /// `terminating`, `terminated`, `failed`.
    pub state: String,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewService {
    pub server_id: Uuid,
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub username: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 253,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub domain: Option<String>,
    /// Plan / package name on the provider.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub plan: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 254,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub contact_email: Option<String>,
    /// Provider-specific parameters (at most 64; keys up to 255 bytes, values
    /// up to 64 KiB).
    #[serde(default)]
    #[schema(schema_with = params_schema)]
    pub params: BTreeMap<String, String>,
}

fn params_schema() -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    crate::openapi::string_map(64).additional_properties(Some(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX_PARAM_VALUE)),
    ))
}

/// A service and the task that acts on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceTask {
    pub service: Service,
    pub task: Task,
}

pub(crate) const COLUMNS: &str = "id, server_id, remote_id, plan, spec, state::text AS state, failure_reason, created_at, updated_at";

pub(crate) async fn load_service(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> ApiResult<Service> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM services WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("service {id}")))
}

/// The `service` object of an operation's input.
pub(crate) fn service_input(s: &Service) -> Value {
    let mut v = Map::new();
    v.insert("service_id".into(), json!(s.id.to_string()));
    v.insert("remote_id".into(), json!(s.remote_id));
    for field in ["username", "domain", "contact_email", "params"] {
        if let Some(x) = s.spec.get(field) {
            v.insert(field.into(), x.clone());
        }
    }
    v.insert("plan".into(), json!(s.plan));
    Value::Object(v)
}

pub(crate) fn check_opt(field: &str, v: &Option<String>, max: usize) -> ApiResult<()> {
    match v {
        Some(s) if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) => {
            Err(ApiError::validation(
                field,
                format!("1 to {max} characters, no control characters"),
            ))
        }
        _ => Ok(()),
    }
}

/// Create a service: enqueues `provision`. The account (`username`) must
/// not be held by a live (not terminated) service of the same server.
#[utoipa::path(post, path = "/v1/services", tag = "services", request_body = NewService,
    responses((status = 202, body = ServiceTask),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "A live service of this server holds the account"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn create_service(
    State(state): State<AppState>,
    effect: Effect,
    Extension(p): Extension<Principal>,
    ApiJson(body): ApiJson<NewService>,
) -> ApiResult<Accepted<ServiceTask>> {
    let tenant = p.tenant(Scope::Write)?;
    check_opt("username", &body.username, 64)?;
    check_opt("domain", &body.domain, 253)?;
    check_opt("plan", &body.plan, 128)?;
    check_opt("contact_email", &body.contact_email, 254)?;
    if body.params.len() > 64 {
        return Err(ApiError::validation("params", "at most 64 entries"));
    }
    // Each value travels in the task's input and in every answer about the
    // service: bounded, so an answer always fits what a keyed request keeps.
    if let Some(k) = body
        .params
        .iter()
        .find(|(k, v)| k.len() > MAX_PARAM_KEY || v.len() > MAX_PARAM_VALUE)
        .map(|(k, _)| k)
    {
        let shown: String = k.chars().take(64).collect();
        return Err(ApiError::validation(
            "params",
            format!("{shown:?}: keys are at most 255 bytes and values at most 64 KiB"),
        ));
    }
    tenant_server(&state, tenant, body.server_id)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::validation("server_id", "no such server"),
            other => other,
        })?;
    let spec = json!({
        "username": body.username, "domain": body.domain, "plan": body.plan,
        "contact_email": body.contact_email, "params": body.params,
    });
    let id = Uuid::now_v7();
    let mut tx = effect.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO services (id, tenant_id, server_id, spec, plan) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(tenant)
    .bind(body.server_id)
    .bind(&spec)
    .bind(&body.plan)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        drop(tx);
        return Err(match (&e, &body.username) {
            (sqlx::Error::Database(d), Some(user))
                if d.constraint() == Some(LIVE_ACCOUNT_INDEX) =>
            {
                account_taken(&state, body.server_id, user).await
            }
            _ => e.into(),
        });
    }
    let draft: Service = sqlx::query_as(&format!("SELECT {COLUMNS} FROM services WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let input = json!({ "service": service_input(&draft) });
    let task = enqueue_task(
        &mut tx,
        tenant,
        body.server_id,
        Some(id),
        "provision",
        input,
    )
    .await?;
    let service = load_service(&mut tx, tenant, id).await?;
    Ok(Accepted(ServiceTask { service, task }))
}

pub(crate) const STATES: [&str; 8] = [
    "pending",
    "provisioning",
    "active",
    "suspended",
    "migrating",
    "terminating",
    "terminated",
    "failed",
];

/// The unique index that keeps one live service per remote account
/// (migrations/0010).
const LIVE_ACCOUNT_INDEX: &str = "services_live_remote_account";

/// The 409 for a create whose account a live service of the server holds
/// (committed: the index made this request wait for it).
async fn account_taken(state: &AppState, server: Uuid, user: &str) -> ApiError {
    let holder: Result<Option<(Uuid, String)>, sqlx::Error> = sqlx::query_as(
        "SELECT id, state::text FROM services
         WHERE server_id = $1 AND state <> 'terminated' AND COALESCE(remote_id, spec->>'username') = $2",
    )
    .bind(server)
    .bind(user)
    .fetch_optional(&state.pool)
    .await;
    match holder {
        Ok(Some((id, st))) => ApiError::Conflict(format!(
            "service {id} ({st}) already holds the account {user:?} on this server; \
             terminate it first or use another username"
        )),
        // Terminated in between: the name is free again, the client may retry.
        Ok(None) => ApiError::Conflict(format!(
            "the account {user:?} was held by another service of this server; retry"
        )),
        Err(e) => e.into(),
    }
}

fn state_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::one_of(&STATES)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ServiceFilter {
    pub server_id: Option<Uuid>,
    #[param(schema_with = state_schema)]
    pub state: Option<String>,
    /// Only services on this plan (exact name).
    pub plan: Option<String>,
    /// Items per page (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// List services.
#[utoipa::path(get, path = "/v1/services", tag = "services", params(ServiceFilter),
    responses((status = 200, body = Page<Service>)), security(("api_key" = [])))]
async fn list_services(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiQuery(f): ApiQuery<ServiceFilter>,
) -> ApiResult<Json<Page<Service>>> {
    let tenant = p.tenant(Scope::Read)?;
    ApiError::check_one_of("state", f.state.as_deref(), &STATES)?;
    let page = crate::pagination::PageParams {
        limit: f.limit,
        cursor: f.cursor,
    };
    let limit = page.limit()?;
    // Only the filters given go into the statement, and it is planned for
    // its values every time: a cached generic plan cannot see that the other
    // tenants' newer services sit in the way and walks the primary key past
    // all of them (13–25 ms a page beside 100 000, 93 ms in psql;
    // benches/paging.rs); planned with the values, each filter walks the
    // index made for it (migrations/0022).
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "SELECT {COLUMNS} FROM services WHERE tenant_id = "
    ));
    q.push_bind(tenant);
    if f.server_id.is_none() && f.state.is_none() && f.plan.is_none() {
        // Unfiltered, the bound is a row comparison: only the (tenant_id, id)
        // index can take it as its condition, so the primary key (which
        // would step over other tenants' newer services) is never chosen.
        q.push(" AND (tenant_id, id) < (")
            .push_bind(tenant)
            .push(", ")
            .push_bind(page.before())
            .push(")");
    } else {
        q.push(" AND id < ").push_bind(page.before());
    }
    if let Some(server) = f.server_id {
        q.push(" AND server_id = ").push_bind(server);
    }
    if let Some(s) = &f.state {
        q.push(" AND state = ").push_bind(s).push("::service_state");
    }
    if let Some(plan) = &f.plan {
        q.push(" AND plan = ").push_bind(plan);
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let mut tx = state.pool.begin().await?;
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<Service> = q.build_query_as().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(Json(Page::from_rows(rows, limit, |s| s.id)))
}

/// Get a service.
#[utoipa::path(get, path = "/v1/services/{id}", tag = "services", params(("id" = Uuid, Path)),
    responses((status = 200, body = Service), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn get_service(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Service>> {
    let tenant = p.tenant(Scope::Read)?;
    Ok(Json(
        load_service(&mut *state.pool.acquire().await?, tenant, id).await?,
    ))
}

const MAX_PARAM_KEY: usize = 255;
const MAX_PARAM_VALUE: usize = 64 << 10;
