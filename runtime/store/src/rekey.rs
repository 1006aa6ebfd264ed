//! Re-encrypt every secret (and every webhook signing secret) under a new
//! master key, in one transaction: all rows move or none does. Rows already under the new key are skipped, so a
//! second run (after a crash, or by mistake) changes nothing.
use crate::secret_box::SecretBox;
use crate::StoreError;
use sqlx::PgPool;
use uuid::Uuid;

type Row = (Uuid, Uuid, String, String, Vec<u8>, Vec<u8>);

pub async fn reencrypt_secrets(
    pool: &PgPool,
    old: &SecretBox,
    new: &SecretBox,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, tenant_id, name, key_id, nonce, ciphertext FROM secrets
         WHERE key_id <> $1 ORDER BY id FOR UPDATE",
    )
    .bind(&new.key_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut n = 0;
    for (id, tenant, name, key_id, nonce, ct) in rows {
        if key_id != old.key_id {
            return Err(StoreError::Crypto(format!(
                "secret `{name}` of tenant {tenant} is sealed under key {key_id}, which is neither the old ({}) nor the new ({}) key; nothing was changed",
                old.key_id, new.key_id
            )));
        }
        let plain = old.open(tenant, &name, &nonce, &ct).map_err(|e| {
            StoreError::Crypto(format!("tenant {tenant}: {e}; nothing was changed"))
        })?;
        let (nonce, ct) = new.seal(tenant, &name, &plain)?;
        sqlx::query(
            "UPDATE secrets SET key_id = $2, nonce = $3, ciphertext = $4, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(&new.key_id)
        .bind(nonce)
        .bind(ct)
        .execute(&mut *tx)
        .await?;
        n += 1;
    }
    n += crate::webhooks::reencrypt(&mut tx, old, new).await?;
    tx.commit().await?;
    Ok(n)
}
