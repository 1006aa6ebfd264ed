//! Server settings (config, policy, decrypted secrets, as a host context)
//! kept for a short while: a burst of tasks on one server reads and parses
//! them once. Each server's entry is read by one task at a time; the others
//! wait for that read instead of each making its own (24 slots on a cold
//! cache opened 24 connections at once).
use crate::context::ServerSettings;
use panel1_store::secret_box::SecretBox;
use panel1_store::{setup, StoreError};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a server's settings are reused before being read again.
const TTL: Duration = Duration::from_secs(2);

type Entry = Arc<tokio::sync::Mutex<Option<(Instant, Arc<ServerSettings>)>>>;

#[derive(Default)]
pub(crate) struct SettingsCache {
    servers: Mutex<HashMap<Uuid, Entry>>,
}

impl SettingsCache {
    pub(crate) async fn get(
        &self,
        pool: &PgPool,
        secrets: &SecretBox,
        server: Uuid,
    ) -> Result<Arc<ServerSettings>, StoreError> {
        let entry = self
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(server)
            .or_default()
            .clone();
        let mut kept = entry.lock().await;
        if let Some((at, settings)) = kept.as_ref() {
            if at.elapsed() < TTL {
                return Ok(settings.clone());
            }
        }
        let settings = Arc::new(ServerSettings::new(
            &setup::server_runtime(pool, secrets, server).await?,
        ));
        *kept = Some((Instant::now(), settings.clone()));
        Ok(settings)
    }
}
