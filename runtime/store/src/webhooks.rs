//! Webhook endpoints and their deliveries (migrations/0013). Endpoints are
//! the tenant's; every query here is scoped to one tenant except the
//! workers' claim and settle, which work by delivery id under a lease.
//! Signing secrets are sealed like secrets and leave this module only as
//! the plaintext a worker signs with, or once, to the tenant that created
//! or rotated them.
use crate::secret_box::SecretBox;
use crate::StoreError;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgExecutor, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// The channel the webhook loops LISTEN on: deliveries were written
/// (migrations/0026; completions' are announced after their commit).
pub const WEBHOOKS_CHANNEL: &str = "panel1_webhooks";

/// What the API shows of an endpoint (never its secret).
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Until when the previous secret also signs (after a rotation).
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, enabled, disabled_reason, \
     CASE WHEN previous_until > now() THEN previous_until END AS previous_secret_until, \
     created_at, updated_at";

/// A fresh Standard Webhooks secret: `whsec_` and 32 random bytes, base64.
pub fn new_signing_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The associated data a signing secret is sealed with.
fn sealed_name(endpoint: Uuid) -> String {
    format!("webhook:{endpoint}")
}

/// A new endpoint signing with `secret`, or a fresh one.
pub async fn create_endpoint(
    db: impl PgExecutor<'_>,
    sb: &SecretBox,
    tenant: Uuid,
    url: &str,
    description: &str,
    event_types: &[String],
    secret: Option<&str>,
) -> Result<WebhookEndpoint, StoreError> {
    let id = Uuid::now_v7();
    let secret = secret.map_or_else(new_signing_secret, str::to_string);
    let (nonce, sealed) = sb.seal(tenant, &sealed_name(id), &secret)?;
    let endpoint = sqlx::query_as(&format!(
        "INSERT INTO webhook_endpoints (id, tenant_id, url, description, event_types, key_id, secret_nonce, secret_sealed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(id)
    .bind(tenant)
    .bind(url)
    .bind(description)
    .bind(event_types)
    .bind(&sb.key_id)
    .bind(nonce)
    .bind(sealed)
    .fetch_one(db)
    .await?;
    Ok(endpoint)
}

/// Newest first, before `before` (the last id of the previous page).
pub async fn list_endpoints(
    pool: &PgPool,
    tenant: Uuid,
    before: Uuid,
    limit: i64,
) -> Result<Vec<WebhookEndpoint>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
          WHERE tenant_id = $1 AND id < $2
          ORDER BY id DESC LIMIT $3"
    ))
    .bind(tenant)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn get_endpoint(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Fields to change; `None` keeps the current value.
#[derive(Debug, Default, Clone)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// Enabling clears the reason it was disabled; deliveries left pending
    /// go out again from where they stopped.
    pub enabled: Option<bool>,
}

pub async fn update_endpoint(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
    patch: &EndpointPatch,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let mut tx = pool.begin().await?;
    let endpoint: Option<WebhookEndpoint> = sqlx::query_as(&format!(
        "UPDATE webhook_endpoints SET
             url = coalesce($3, url),
             description = coalesce($4, description),
             event_types = coalesce($5, event_types),
             enabled = coalesce($6, enabled),
             disabled_reason = CASE WHEN $6 THEN NULL
                                    WHEN $6 = false THEN 'disabled by the tenant'
                                    ELSE disabled_reason END,
             updated_at = now()
          WHERE tenant_id = $1 AND id = $2
          RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&patch.url)
    .bind(&patch.description)
    .bind(&patch.event_types)
    .bind(patch.enabled)
    .fetch_optional(&mut *tx)
    .await?;
    // Enabled: its parked backlog goes out again (migrations/0027). A
    // statement of its own, after the UPDATE above: that waited for any
    // claim parking this endpoint's deliveries, and this one sees them.
    if endpoint.is_some() && patch.enabled == Some(true) {
        sqlx::query(
            "WITH unparked AS (
                 UPDATE webhook_deliveries SET held = false
                  WHERE endpoint_id = $1 AND held
                 RETURNING 1
             )
             SELECT pg_notify('panel1_webhooks', '') WHERE EXISTS (SELECT 1 FROM unparked)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(endpoint)
}

pub async fn delete_endpoint(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The endpoint's current signing secret, for its tenant.
pub async fn signing_secret(
    pool: &PgPool,
    sb: &SecretBox,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<String>, StoreError> {
    let row: Option<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT secret_nonce, secret_sealed FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(|(nonce, sealed)| sb.open(tenant, &sealed_name(id), &nonce, &sealed))
        .transpose()
}

/// A new signing secret (`secret`, or a fresh one); the current one keeps
/// signing beside it for `overlap`, so receivers switch without missing a
/// message.
pub async fn rotate_secret(
    db: impl PgExecutor<'_>,
    sb: &SecretBox,
    tenant: Uuid,
    id: Uuid,
    overlap: Duration,
    secret: Option<&str>,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let secret = secret.map_or_else(new_signing_secret, str::to_string);
    let (nonce, sealed) = sb.seal(tenant, &sealed_name(id), &secret)?;
    let endpoint = sqlx::query_as(&format!(
        "UPDATE webhook_endpoints SET
             previous_nonce = secret_nonce, previous_sealed = secret_sealed,
             previous_until = now() + make_interval(secs => $3),
             key_id = $4, secret_nonce = $5, secret_sealed = $6, updated_at = now()
          WHERE tenant_id = $1 AND id = $2
          RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(overlap.as_secs_f64())
    .bind(&sb.key_id)
    .bind(nonce)
    .bind(sealed)
    .fetch_optional(db)
    .await?;
    Ok(endpoint)
}

/// One message to one endpoint, as the API shows it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Delivery {
    pub id: i64,
    pub endpoint_id: Uuid,
    pub event_id: i64,
    pub event_kind: String,
    pub service_id: Option<Uuid>,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str =
    "d.id, d.endpoint_id, d.event_id, e.kind AS event_kind, e.service_id, d.state, \
     d.attempts, CASE WHEN d.state = 'pending' THEN d.next_attempt_at END AS next_attempt_at, \
     d.last_status, d.last_error, d.created_at, d.finished_at";

/// One try of a delivery.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct DeliveryAttempt {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status: Option<i32>,
    pub latency_ms: i32,
    /// The start of what the endpoint answered (size-capped).
    pub response: Option<String>,
    pub error: Option<String>,
}

/// Newest first, before `before` (an id from the previous page).
pub async fn list_deliveries(
    pool: &PgPool,
    tenant: Uuid,
    endpoint: Uuid,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
          WHERE d.tenant_id = $1 AND d.endpoint_id = $2
            AND ($3::text IS NULL OR d.state = $3) AND ($4::bigint IS NULL OR d.id < $4)
          ORDER BY d.id DESC LIMIT $5"
    ))
    .bind(tenant)
    .bind(endpoint)
    .bind(state)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn get_delivery(
    pool: &PgPool,
    tenant: Uuid,
    endpoint: Uuid,
    id: i64,
) -> Result<Option<(Delivery, Vec<DeliveryAttempt>)>, StoreError> {
    let delivery: Option<Delivery> = sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
          WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND d.id = $3"
    ))
    .bind(tenant)
    .bind(endpoint)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(delivery) = delivery else {
        return Ok(None);
    };
    let attempts = sqlx::query_as(
        "SELECT attempt, at, status, latency_ms, response, error FROM webhook_attempts
          WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(Some((delivery, attempts)))
}

/// Send a delivery's event again, as a new delivery in the event's place
/// in the order; `None` when there is no such delivery.
pub async fn redeliver(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    endpoint: Uuid,
    id: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "WITH d AS (
             INSERT INTO webhook_deliveries (endpoint_id, tenant_id, event_id, event_tx, order_key)
             SELECT endpoint_id, tenant_id, event_id, event_tx, order_key FROM webhook_deliveries
              WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3
             RETURNING id
         )
         SELECT id FROM d, pg_notify('panel1_webhooks', '')",
    )
    .bind(tenant)
    .bind(endpoint)
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// A delivery a worker holds the lease of, for this attempt.
#[derive(Debug, Clone, FromRow)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub endpoint_id: Uuid,
    pub event_id: i64,
    pub attempt: i32,
}

/// Lease up to `limit` deliveries that may go now (see the SQL function).
pub async fn claim_deliveries(
    pool: &PgPool,
    limit: i32,
    lease: Duration,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    Ok(
        sqlx::query_as("SELECT * FROM panel1_claim_webhook_deliveries($1, $2)")
            .bind(limit)
            .bind(lease.as_secs_f64())
            .fetch_all(pool)
            .await?,
    )
}

/// What a worker needs to send a claimed delivery.
#[derive(Debug, Clone)]
pub struct Message {
    pub url: String,
    pub tenant_id: Uuid,
    /// The current signing secret, then the previous one while it overlaps.
    pub secrets: Vec<String>,
    pub event_kind: String,
    pub task_id: Option<Uuid>,
    pub service_id: Option<Uuid>,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

type MessageRow = (
    String,
    Uuid,
    Vec<u8>,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    String,
    Option<Uuid>,
    Option<Uuid>,
    Value,
    DateTime<Utc>,
);

/// The endpoint's URL and secrets and the event, for a claimed delivery;
/// `None` when the endpoint was deleted meanwhile.
pub async fn load_message(
    pool: &PgPool,
    sb: &SecretBox,
    claimed: &ClaimedDelivery,
) -> Result<Option<Message>, StoreError> {
    let row: Option<MessageRow> = sqlx::query_as(
        "SELECT w.url, w.tenant_id, w.secret_nonce, w.secret_sealed,
                CASE WHEN w.previous_until > now() THEN w.previous_nonce END,
                CASE WHEN w.previous_until > now() THEN w.previous_sealed END,
                e.kind, e.task_id, e.service_id, e.payload, e.created_at
           FROM webhook_endpoints w JOIN events e ON e.id = $2 AND e.tenant_id = w.tenant_id
          WHERE w.id = $1",
    )
    .bind(claimed.endpoint_id)
    .bind(claimed.event_id)
    .fetch_optional(pool)
    .await?;
    let Some((
        url,
        tenant,
        nonce,
        sealed,
        prev_nonce,
        prev_sealed,
        kind,
        task,
        service,
        payload,
        at,
    )) = row
    else {
        return Ok(None);
    };
    let name = sealed_name(claimed.endpoint_id);
    let mut secrets = vec![sb.open(tenant, &name, &nonce, &sealed)?];
    if let (Some(n), Some(s)) = (prev_nonce, prev_sealed) {
        secrets.push(sb.open(tenant, &name, &n, &s)?);
    }
    Ok(Some(Message {
        url,
        tenant_id: tenant,
        secrets,
        event_kind: kind,
        task_id: task,
        service_id: service,
        payload,
        created_at: at,
    }))
}

/// How one attempt ended.
#[derive(Debug, Clone, Default)]
pub struct Settlement {
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: u32,
    pub response: Option<String>,
    pub error: Option<String>,
    /// When to try again (a failure with attempts left).
    pub retry_at: Option<DateTime<Utc>>,
    /// The schedule is spent: fail it and disable the endpoint.
    pub give_up: bool,
}

/// Record the attempt and settle the delivery; `false` when this worker no
/// longer held it (its lease ran out and another took it).
pub async fn settle_delivery(
    pool: &PgPool,
    claimed: &ClaimedDelivery,
    s: &Settlement,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT panel1_settle_webhook_delivery($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(claimed.id)
    .bind(claimed.attempt)
    .bind(s.ok)
    .bind(s.status.map(i32::from))
    .bind(s.latency_ms.min(i32::MAX as u32) as i32)
    .bind(&s.response)
    .bind(&s.error)
    .bind(s.retry_at)
    .bind(s.give_up)
    .fetch_one(pool)
    .await?)
}

/// Move every endpoint's signing secrets under `new` (part of a master key
/// rotation, in the caller's transaction).
pub(crate) async fn reencrypt(
    tx: &mut sqlx::PgConnection,
    old: &SecretBox,
    new: &SecretBox,
) -> Result<u64, StoreError> {
    type Row = (
        Uuid,
        Uuid,
        String,
        Vec<u8>,
        Vec<u8>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, tenant_id, key_id, secret_nonce, secret_sealed, previous_nonce, previous_sealed
           FROM webhook_endpoints WHERE key_id <> $1 ORDER BY id FOR UPDATE",
    )
    .bind(&new.key_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut n = 0;
    for (id, tenant, key_id, nonce, sealed, prev_nonce, prev_sealed) in rows {
        if key_id != old.key_id {
            return Err(StoreError::Crypto(format!(
                "webhook endpoint {id} is sealed under key {key_id}, which is neither the old ({}) nor the new ({}) key; nothing was changed",
                old.key_id, new.key_id
            )));
        }
        let name = sealed_name(id);
        let current = old.open(tenant, &name, &nonce, &sealed)?;
        let (nonce, sealed) = new.seal(tenant, &name, &current)?;
        let previous = match (prev_nonce, prev_sealed) {
            (Some(n), Some(s)) => {
                Some(new.seal(tenant, &name, &old.open(tenant, &name, &n, &s)?)?)
            }
            _ => None,
        };
        sqlx::query(
            "UPDATE webhook_endpoints SET key_id = $2, secret_nonce = $3, secret_sealed = $4,
                    previous_nonce = $5, previous_sealed = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(&new.key_id)
        .bind(nonce)
        .bind(sealed)
        .bind(previous.as_ref().map(|p| p.0.clone()))
        .bind(previous.map(|p| p.1))
        .execute(&mut *tx)
        .await?;
        n += 1;
    }
    Ok(n)
}
