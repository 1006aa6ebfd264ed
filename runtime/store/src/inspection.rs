//! Adapter versions waiting for a worker to read their `info` (the API only
//! validates and compiles uploads; it never runs them).
use crate::StoreError;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// The channel that announces a new version to inspect.
pub const ADAPTERS_CHANNEL: &str = "panel1_adapters";

/// What a worker found.
pub enum Inspection {
    Ready { info: Value, config_schema: Value },
    Rejected { reason: String },
}

/// Take up to `limit` versions still `inspecting` and record what `inspect`
/// says of each, one transaction per version (rows locked with SKIP LOCKED,
/// so workers share the work and none is inspected twice at once).
pub async fn inspect_pending<F, Fut>(
    pool: &PgPool,
    limit: i64,
    inspect: F,
) -> Result<u64, StoreError>
where
    F: Fn(Uuid, Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Inspection>,
{
    let mut done = 0;
    for _ in 0..limit {
        let mut tx = pool.begin().await?;
        let row: Option<(Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT id, component FROM adapter_versions WHERE status = 'inspecting'
             ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, bytes)) = row else {
            break;
        };
        match inspect(id, bytes).await {
            Inspection::Ready {
                info,
                config_schema,
            } => {
                sqlx::query(
                    "UPDATE adapter_versions SET status = 'ready', info = $2, config_schema = $3, inspected_at = now()
                     WHERE id = $1",
                )
                .bind(id)
                .bind(info)
                .bind(config_schema)
                .execute(&mut *tx)
                .await?;
            }
            Inspection::Rejected { reason } => {
                sqlx::query(
                    "UPDATE adapter_versions SET status = 'rejected', rejection = $2, inspected_at = now()
                     WHERE id = $1",
                )
                .bind(id)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        done += 1;
    }
    Ok(done)
}
