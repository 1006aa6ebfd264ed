//! Writes that set the stage: tenants, adapter versions, servers, secrets,
//! services; and the read of everything a worker needs to run a task.
use crate::secret_box::SecretBox;
use crate::StoreError;
use serde_json::Value;
use sqlx::{Acquire, PgExecutor, PgPool, Postgres, Row};
use uuid::Uuid;

pub async fn create_tenant(db: impl PgExecutor<'_>, name: &str) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(db)
        .await?;
    Ok(id)
}

/// An immutable adapter version to store.
#[derive(Debug, Clone)]
pub struct NewAdapterVersion<'a> {
    /// `None` = built-in (visible to every tenant).
    pub tenant: Option<Uuid>,
    pub name: &'a str,
    pub version: &'a str,
    pub sha256: &'a str,
    pub world_version: &'a str,
    pub component: &'a [u8],
    pub report: &'a Value,
}

/// Store a new adapter version. Returns its id; the same bytes under the same
/// adapter return the existing id. In its own transaction, or in a
/// savepoint of the caller's.
pub async fn add_adapter_version(
    db: impl Acquire<'_, Database = Postgres>,
    v: &NewAdapterVersion<'_>,
) -> Result<Uuid, StoreError> {
    let NewAdapterVersion {
        tenant,
        name,
        version,
        sha256,
        world_version,
        component,
        report,
    } = *v;
    let mut tx = db.begin().await?;
    let adapter_id: Uuid = sqlx::query_scalar(
        "INSERT INTO adapters (id, tenant_id, name) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, name) DO UPDATE SET name = EXCLUDED.name
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO adapter_versions (id, adapter_id, version, sha256, world_version, component, report)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (adapter_id, sha256) DO UPDATE SET sha256 = EXCLUDED.sha256
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(adapter_id)
    .bind(version)
    .bind(sha256)
    .bind(world_version)
    .bind(component)
    .bind(report)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// A server connection.
#[derive(Debug, Clone)]
pub struct NewServer {
    pub tenant_id: Uuid,
    pub name: String,
    pub adapter_version_id: Uuid,
    pub config: Value,
    /// `{"rules": [...]}` (an `EgressPolicy`).
    pub egress: Value,
    pub max_concurrency: i32,
}

pub async fn add_server(pool: &PgPool, s: &NewServer) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO servers (id, tenant_id, name, adapter_version_id, config, egress, max_concurrency)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(s.tenant_id)
    .bind(&s.name)
    .bind(s.adapter_version_id)
    .bind(&s.config)
    .bind(&s.egress)
    .bind(s.max_concurrency)
    .execute(pool)
    .await?;
    Ok(id)
}

/// Store (or replace) a secret value, encrypted.
pub async fn put_secret(
    db: impl PgExecutor<'_>,
    sb: &SecretBox,
    tenant: Uuid,
    name: &str,
    value: &str,
) -> Result<Uuid, StoreError> {
    let (nonce, ct) = sb.seal(tenant, name, value)?;
    Ok(sqlx::query_scalar(
        "INSERT INTO secrets (id, tenant_id, name, key_id, nonce, ciphertext) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, name) DO UPDATE
           SET key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext, updated_at = now()
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(name)
    .bind(&sb.key_id)
    .bind(nonce)
    .bind(ct)
    .fetch_one(db)
    .await?)
}

/// Let a server use a secret of the same tenant, for these destinations.
pub async fn bind_secret(
    pool: &PgPool,
    server: Uuid,
    secret: Uuid,
    destinations: &[String],
) -> Result<(), StoreError> {
    let n = sqlx::query(
        "INSERT INTO server_secrets (server_id, secret_id, destinations)
         SELECT s.id, x.id, $3 FROM servers s JOIN secrets x ON x.tenant_id = s.tenant_id
         WHERE s.id = $1 AND x.id = $2
         ON CONFLICT (server_id, secret_id) DO UPDATE SET destinations = EXCLUDED.destinations",
    )
    .bind(server)
    .bind(secret)
    .bind(destinations)
    .execute(pool)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound(
            "server or secret of that tenant".into(),
        ));
    }
    Ok(())
}

pub async fn add_service(
    pool: &PgPool,
    tenant: Uuid,
    server: Uuid,
    spec: &Value,
) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO services (id, tenant_id, server_id, spec, plan) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(tenant)
    .bind(server)
    .bind(spec)
    .bind(spec["plan"].as_str())
    .execute(pool)
    .await?;
    Ok(id)
}

/// Everything a worker needs to run a task on a server.
#[derive(Debug, Clone)]
pub struct ServerRuntime {
    pub adapter_version_id: Uuid,
    pub sha256: String,
    pub config: Value,
    pub egress: Value,
    pub grants: Value,
    pub limits: Value,
    /// (name, plaintext, destinations)
    pub secrets: Vec<(String, String, Vec<String>)>,
    pub tenant_id: Uuid,
    /// Keep each attempt's HTTP exchanges (migrations/0024).
    pub record_exchanges: bool,
}

pub async fn server_runtime(
    pool: &PgPool,
    sb: &SecretBox,
    server: Uuid,
) -> Result<ServerRuntime, StoreError> {
    let row = sqlx::query(
        "SELECT s.tenant_id, s.adapter_version_id, v.sha256, s.config, s.egress, s.grants, s.limits,
                s.record_exchanges
         FROM servers s JOIN adapter_versions v ON v.id = s.adapter_version_id WHERE s.id = $1",
    )
    .bind(server)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("server {server}")))?;
    let tenant: Uuid = row.try_get("tenant_id")?;
    let rows = sqlx::query(
        "SELECT x.name, x.nonce, x.ciphertext, b.destinations
         FROM server_secrets b JOIN secrets x ON x.id = b.secret_id WHERE b.server_id = $1",
    )
    .bind(server)
    .fetch_all(pool)
    .await?;
    let mut secrets = Vec::new();
    for r in rows {
        let name: String = r.try_get("name")?;
        let nonce: Vec<u8> = r.try_get("nonce")?;
        let ct: Vec<u8> = r.try_get("ciphertext")?;
        secrets.push((
            name.clone(),
            sb.open(tenant, &name, &nonce, &ct)?,
            r.try_get("destinations")?,
        ));
    }
    Ok(ServerRuntime {
        adapter_version_id: row.try_get("adapter_version_id")?,
        sha256: row.try_get("sha256")?,
        config: row.try_get("config")?,
        egress: row.try_get("egress")?,
        grants: row.try_get("grants")?,
        limits: row.try_get("limits")?,
        secrets,
        tenant_id: tenant,
        record_exchanges: row.try_get("record_exchanges")?,
    })
}

/// The component bytes of an adapter version.
pub async fn adapter_component(pool: &PgPool, version: Uuid) -> Result<Vec<u8>, StoreError> {
    sqlx::query_scalar("SELECT component FROM adapter_versions WHERE id = $1")
        .bind(version)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("adapter version {version}")))
}
