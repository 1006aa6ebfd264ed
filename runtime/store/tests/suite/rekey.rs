//! Re-encryption under a new master key against a real database.
use panel1_store::secret_box::SecretBox;
use panel1_store::setup::{create_tenant, put_secret};
use panel1_store::{reencrypt_secrets, testing};
use uuid::Uuid;

type Row = (Uuid, String, String, Vec<u8>, Vec<u8>);

async fn rows(pool: &sqlx::PgPool) -> Vec<Row> {
    sqlx::query_as("SELECT tenant_id, name, key_id, nonce, ciphertext FROM secrets ORDER BY name")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn secrets_move_to_the_new_key_all_at_once() {
    let (pool, _) = testing::fresh_database().await;
    let old = SecretBox::from_key([1; 32]);
    let new = SecretBox::from_key([2; 32]);
    assert_ne!(old.key_id, new.key_id);
    let a = create_tenant(&pool, "a").await.unwrap();
    let b = create_tenant(&pool, "b").await.unwrap();
    put_secret(&pool, &old, a, "token", "alpha-secret")
        .await
        .unwrap();
    put_secret(&pool, &old, b, "token", "beta-secret")
        .await
        .unwrap();

    assert_eq!(reencrypt_secrets(&pool, &old, &new).await.unwrap(), 2);
    for (tenant, name, key_id, nonce, ct) in rows(&pool).await {
        assert_eq!(key_id, new.key_id);
        let plain = new.open(tenant, &name, &nonce, &ct).unwrap();
        assert!(plain == "alpha-secret" || plain == "beta-secret");
        assert!(old.open(tenant, &name, &nonce, &ct).is_err());
    }
    // A rerun has nothing left to do.
    assert_eq!(reencrypt_secrets(&pool, &old, &new).await.unwrap(), 0);

    // A row under an unknown key stops the run and nothing changes.
    let stray = SecretBox::from_key([9; 32]);
    put_secret(&pool, &stray, a, "stray", "x").await.unwrap();
    let before = rows(&pool).await;
    let newer = SecretBox::from_key([3; 32]);
    let err = reencrypt_secrets(&pool, &new, &newer).await.unwrap_err();
    assert!(err.to_string().contains("stray"), "{err}");
    assert_eq!(rows(&pool).await, before, "all or nothing");
}
