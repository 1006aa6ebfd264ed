//! Accepting a migration: the checks, then the record, the four step tasks
//! (each waiting on the one before) and the service's move to `migrating`,
//! all in the caller's transaction.
use super::{event, service_event};
use crate::dependencies::enqueue_after;
use crate::platform::PlatformTask;
use crate::{NewTask, StoreError};
use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

/// What the API asks for.
#[derive(Debug, Clone)]
pub struct NewMigration {
    pub tenant_id: Uuid,
    pub service_id: Uuid,
    pub target_server_id: Uuid,
    /// How long the source keeps the service after the switch (0: at once).
    pub grace_period_seconds: i32,
}

/// Why a migration was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("service {0} not found")]
    ServiceNotFound(Uuid),
    #[error("server {0} is not one of the tenant's servers")]
    TargetNotFound(Uuid),
    /// Not possible between these servers or with these adapters (422).
    #[error("{0}")]
    Unsupported(String),
    /// Not possible now (the service's state or work in flight; 409).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Self {
        Refused::Store(e.into())
    }
}

/// The states a service can be moved from (and returns to).
pub const MOVABLE: &[&str] = &["active", "suspended"];

#[derive(sqlx::FromRow)]
struct ServiceRow {
    server_id: Uuid,
    state: String,
    remote_id: Option<String>,
    plan: Option<String>,
    spec: Value,
}

#[derive(sqlx::FromRow)]
struct ServerRow {
    adapter_id: Uuid,
    adapter: String,
    version: String,
    world_version: String,
    operations: Option<Value>,
    address: String,
}

async fn server(
    conn: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<ServerRow>, Refused> {
    Ok(sqlx::query_as(
        "SELECT v.adapter_id, a.name AS adapter, v.version, v.world_version,
                v.info->'operations' AS operations,
                COALESCE(s.config->>'base_url', s.config->>'url', s.config->>'host', s.name) AS address
         FROM servers s JOIN adapter_versions v ON v.id = s.adapter_version_id
         JOIN adapters a ON a.id = v.adapter_id
         WHERE s.id = $1 AND s.tenant_id = $2",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await?)
}

/// The adapter of `s` can run `op` (a `backups` function of world 0.2.0).
fn supports(s: &ServerRow, side: &str, op: &str) -> Result<(), Refused> {
    let name = format!("adapter {}@{}", s.adapter, s.version);
    if s.world_version == "0.1.0" {
        return Err(Refused::Unsupported(format!(
            "unsupported: {name} on the {side} server is built against panel1:provisioning@0.1.0, \
             which has no export-service/import-service"
        )));
    }
    match &s.operations {
        None => Err(Refused::Conflict(format!(
            "{name} on the {side} server is still being inspected; try again shortly"
        ))),
        Some(ops) if !ops.as_array().is_some_and(|a| a.iter().any(|o| o == op)) => {
            Err(Refused::Unsupported(format!(
                "unsupported: {name} on the {side} server does not support {op}"
            )))
        }
        Some(_) => Ok(()),
    }
}

/// The `service` object of a step's input (as routes/services.rs builds it),
/// with the remote id the step must use.
fn service_input(id: Uuid, s: &ServiceRow, remote_id: Option<&str>) -> Value {
    let mut v = Map::new();
    v.insert("service_id".into(), json!(id.to_string()));
    v.insert("remote_id".into(), json!(remote_id));
    for field in ["username", "domain", "contact_email", "params"] {
        if let Some(x) = s.spec.get(field) {
            v.insert(field.into(), x.clone());
        }
    }
    v.insert("plan".into(), json!(s.plan));
    Value::Object(v)
}

/// Check and accept a migration in the caller's transaction. Returns its id.
pub async fn create(conn: &mut PgConnection, new: &NewMigration) -> Result<Uuid, Refused> {
    let tenant = new.tenant_id;
    let svc: ServiceRow = sqlx::query_as(
        "SELECT server_id, state::text AS state, remote_id, plan, spec FROM services
         WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(new.service_id)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Refused::ServiceNotFound(new.service_id))?;
    let target = server(conn, tenant, new.target_server_id)
        .await?
        .ok_or(Refused::TargetNotFound(new.target_server_id))?;
    let source = server(conn, tenant, svc.server_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("server {}", svc.server_id)))?;
    if new.target_server_id == svc.server_id {
        return Err(Refused::Unsupported(
            "the service is already on this server".into(),
        ));
    }
    if source.adapter_id != target.adapter_id {
        return Err(Refused::Unsupported(format!(
            "unsupported: a service moves only between servers of one adapter \
             (source: {}, target: {})",
            source.adapter, target.adapter
        )));
    }
    supports(&source, "source", "export-service")?;
    supports(&target, "target", "import-service")?;
    if !MOVABLE.contains(&svc.state.as_str()) {
        return Err(Refused::Conflict(format!(
            "cannot migrate a service that is {} (only {})",
            svc.state,
            MOVABLE.join(" or ")
        )));
    }
    // One migration at a time (a switched one still terminates its source).
    let open: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM service_migrations WHERE service_id = $1 AND state IN ('running', 'switched')",
    )
    .bind(new.service_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(m) = open {
        return Err(Refused::Conflict(format!(
            "migration {m} of this service has not finished"
        )));
    }
    // One operation per service: nothing of it may be queued or running.
    let busy: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT t.id, t.operation FROM task_queue q JOIN task_records t ON t.id = q.task_id
         WHERE q.service_id = $1 LIMIT 1",
    )
    .bind(new.service_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((task, op)) = busy {
        return Err(Refused::Conflict(format!(
            "{op} (task {task}) on this service has not finished; migrate after it"
        )));
    }
    let account = svc
        .remote_id
        .clone()
        .or_else(|| svc.spec["username"].as_str().map(String::from));
    let holder: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM services WHERE server_id = $1 AND state <> 'terminated'
           AND COALESCE(remote_id, spec->>'username') = $2",
    )
    .bind(new.target_server_id)
    .bind(&account)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(h) = holder {
        return Err(Refused::Conflict(format!(
            "service {h} already holds the account {account:?} on the target server"
        )));
    }

    let id = Uuid::now_v7();
    let on_source =
        json!({ "service": service_input(new.service_id, &svc, svc.remote_id.as_deref()) });
    let on_target = service_input(new.service_id, &svc, None);
    let step = |server: Uuid, op: &str, name: &str, input: Value| {
        let mut t = NewTask::new(tenant, server, None, op, input);
        t.idempotency_key = Some(PlatformTask::Migration.key(&[&id.to_string(), name]));
        t
    };
    let export = step(svc.server_id, "export-service", "export", on_source.clone());
    let (export, _) = enqueue_after(conn, &export, &[]).await?;
    let import = step(
        new.target_server_id,
        "import-service",
        "import",
        // The transfer package is the export's result, written in when
        // the export succeeds (steps.rs).
        json!({"service": on_target, "transfer": null,
               "source_address": source.address, "source_secret": null}),
    );
    let (import, _) = enqueue_after(conn, &import, &[export]).await?;
    let verify = step(
        new.target_server_id,
        "status",
        "verify",
        json!({"service": on_target}),
    );
    let (verify, _) = enqueue_after(conn, &verify, &[import]).await?;
    // Its not-before time is set at the switch (now + grace).
    let terminate = step(svc.server_id, "terminate", "terminate", on_source);
    let (terminate, _) = enqueue_after(conn, &terminate, &[verify]).await?;

    sqlx::query(
        "INSERT INTO service_migrations (id, tenant_id, service_id, source_server_id, target_server_id,
                                         previous_state, previous_remote_id, grace_period_seconds,
                                         export_task_id, import_task_id, verify_task_id, terminate_task_id)
         VALUES ($1, $2, $3, $4, $5, $6::service_state, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(tenant)
    .bind(new.service_id)
    .bind(svc.server_id)
    .bind(new.target_server_id)
    .bind(&svc.state)
    .bind(&svc.remote_id)
    .bind(new.grace_period_seconds)
    .bind(export)
    .bind(import)
    .bind(verify)
    .bind(terminate)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE services SET state = 'migrating', failure_reason = NULL, updated_at = now() WHERE id = $1",
    )
    .bind(new.service_id)
    .execute(&mut *conn)
    .await?;
    event(conn, id, "created", json!({})).await?;
    service_event(conn, new.service_id, id).await?;
    Ok(id)
}
