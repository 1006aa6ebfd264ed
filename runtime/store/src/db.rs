use crate::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// The migrations of `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A pool that survives a database restart: sqlx pings every connection
/// when it is released and drops a broken one, and new ones are made on
/// demand. No second ping before each use (`test_before_acquire`): it cost a
/// round trip per statement, and after a restart the one statement that
/// meets a dead connection fails and is retried by its caller (the restart
/// test covers it).
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    // Generic plans: the queue's statements are few, prepared once per
    // connection, and planning the claim CTE costs more than running it.
    // No JIT: the generic claim plan's cost estimate (its LIMIT is a
    // parameter) passes jit_above_cost, and compiling it took ~30 ms on every
    // claim that runs in under 1 ms; none of Panel1's statements gain from it.
    let options = PgConnectOptions::from_str(url)?
        .application_name("panel1")
        .options([("plan_cache_mode", "force_generic_plan"), ("jit", "off")]);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .connect_with(options)
        .await?)
}

pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}
