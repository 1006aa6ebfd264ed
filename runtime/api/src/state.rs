//! What every handler shares.
use crate::events::EventHub;
use crate::metrics::ApiMetrics;
use crate::tenant_slots::TenantSlots;
use panel1_sandbox::{ArtifactStore, Sandbox};
use panel1_store::secret_box::SecretBox;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body (adapter uploads are the big ones).
    pub max_body_bytes: usize,
    /// Requests per second per API key, and the burst above it.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// Failed authentications a client address may make per window before
    /// it gets 429 for the rest of the window.
    pub auth_failure_limit: u32,
    pub auth_failure_window: Duration,
    /// Mark the console's session cookie `Secure` (serve behind TLS). It is
    /// also marked when a proxy sends `X-Forwarded-Proto: https`.
    pub console_secure_cookie: bool,
    /// How long a console session lasts after sign-in.
    pub console_session_ttl: Duration,
    /// Event streams (`GET /v1/events`) one tenant may hold open at once;
    /// one more gets 429.
    pub max_event_streams_per_tenant: usize,
    /// Uploads one tenant may have compiling (or waiting to) at once; one
    /// more gets 429, so one tenant cannot fill the shared compile queue.
    pub max_compiles_per_tenant: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 32 << 20,
            rate_limit_per_second: 20,
            rate_limit_burst: 100,
            auth_failure_limit: 20,
            auth_failure_window: Duration::from_secs(60),
            console_secure_cookie: false,
            console_session_ttl: Duration::from_secs(12 * 3600),
            max_event_streams_per_tenant: 32,
            max_compiles_per_tenant: 2,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub secrets: Arc<SecretBox>,
    /// Validates and compiles uploads; never runs them (workers do).
    pub sandbox: Arc<Sandbox>,
    /// Where compiled uploads are kept (shared with the workers of this
    /// machine), if anywhere.
    pub artifacts: Option<Arc<ArtifactStore>>,
    pub config: Arc<ApiConfig>,
    pub events: EventHub,
    pub streams: Arc<TenantSlots>,
    /// Uploads compiling per tenant (the platform's own count as one).
    pub compiles: Arc<TenantSlots>,
    pub metrics: Arc<ApiMetrics>,
}

impl AppState {
    /// Must be called inside a tokio runtime (starts the event listener).
    pub fn new(
        pool: PgPool,
        secrets: Arc<SecretBox>,
        sandbox: Arc<Sandbox>,
        artifacts: Option<Arc<ArtifactStore>>,
        config: ApiConfig,
        metrics: Arc<ApiMetrics>,
    ) -> AppState {
        AppState {
            events: EventHub::start(pool.clone()),
            streams: TenantSlots::new(config.max_event_streams_per_tenant),
            compiles: TenantSlots::new(config.max_compiles_per_tenant),
            pool,
            secrets,
            sandbox,
            artifacts,
            config: Arc::new(config),
            metrics,
        }
    }
}
