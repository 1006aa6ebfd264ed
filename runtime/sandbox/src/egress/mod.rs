//! Outbound HTTP for guests: the `wasi:http` hook that enforces the egress
//! policy, injects secrets and connects to checked addresses only.
pub mod address;
pub mod anchor;
mod bodies;
mod deliver;
mod encodings;
pub mod guard;
mod hooks;
pub mod identity;
mod pinning;
pub mod policy;
pub mod replay;
pub mod resolver;
pub mod scanner;
pub mod secrets;
mod sender;
pub mod tape;

pub use hooks::EgressHooks;

use crate::host_budget::HostBudget;
use crate::host_state::HostContext;
use crate::log_buffer::LogBuffer;
use guard::SecretGuard;
use resolver::Resolver;
use scanner::SecretScanner;
use serde::Serialize;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One outbound request as recorded on the attempt (secrets redacted: URLs
/// and headers keep placeholders, never values).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpExchange {
    pub method: String,
    pub url: String,
    /// The address actually connected to.
    pub address: Option<String>,
    pub status: Option<u16>,
    /// Why the host refused the request, if it did.
    pub denied: Option<String>,
    /// Transport failure, if any.
    pub error: Option<String>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub duration_us: u64,
}

/// Longest URL kept in an exchange record or a host log entry: enough to
/// recognise the request, and a 60 KB URL cannot make every record 60 KB.
pub const RECORDED_URL_MAX: usize = 1024;

impl HttpExchange {
    /// Bytes this record holds (for the log cap).
    pub fn size(&self) -> u64 {
        let text = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len());
        (self.method.len()
            + self.url.len()
            + text(&self.address)
            + text(&self.denied)
            + text(&self.error)
            + 96) as u64
    }
}

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU32,
    pub denied: AtomicU32,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
}

/// Egress state of one call, shared with the request futures the hook spawns.
pub struct EgressShared {
    /// Policy, secrets and limits of the call.
    pub context: Arc<HostContext>,
    pub resolver: Arc<dyn Resolver>,
    pub tls: Arc<rustls::ClientConfig>,
    pub deadline: Instant,
    pub log: LogBuffer,
    /// The call's host memory budget (buffered responses are charged here).
    pub budget: Arc<HostBudget>,
    pub counters: Counters,
    pub inflight: tokio::sync::Semaphore,
    pub exchanges: Mutex<Vec<HttpExchange>>,
    /// Outbound scan, sticky binding and response scrubbing for secrets.
    pub guard: SecretGuard,
    /// Record the call's exchanges, or serve them from a replay set.
    pub tape: Option<tape::HttpTape>,
}

impl EgressShared {
    pub fn new(
        context: Arc<HostContext>,
        resolver: Arc<dyn Resolver>,
        tls: Arc<rustls::ClientConfig>,
        deadline: Instant,
        log: LogBuffer,
        budget: Arc<HostBudget>,
        scanner: Arc<SecretScanner>,
    ) -> Self {
        let permits = context.limits.http_max_concurrent.max(1) as usize;
        EgressShared {
            context,
            resolver,
            tls,
            deadline,
            log,
            budget,
            counters: Counters::default(),
            inflight: tokio::sync::Semaphore::new(permits),
            exchanges: Mutex::new(Vec::new()),
            guard: SecretGuard::new(scanner),
            tape: None,
        }
    }

    /// Count an exchange, and keep its record if it fits under the call's
    /// log cap (records are host memory the guest causes, like log lines).
    pub fn record(&self, exchange: HttpExchange) {
        self.counters
            .bytes_sent
            .fetch_add(exchange.bytes_sent, Ordering::Relaxed);
        self.counters
            .bytes_received
            .fetch_add(exchange.bytes_received, Ordering::Relaxed);
        if exchange.denied.is_some() {
            self.counters.denied.fetch_add(1, Ordering::Relaxed);
        }
        if !self.log.reserve(exchange.size()) {
            return;
        }
        self.exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(exchange);
    }

    /// What recorded text goes through: secrets become placeholders.
    pub fn sanitizer(&self) -> tape::Sanitizer<'_> {
        tape::Sanitizer {
            scanner: &self.guard.scanner,
            secrets: &self.context.secrets,
        }
    }

    pub fn exchanges(&self) -> Vec<HttpExchange> {
        self.exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The TLS client configuration: Mozilla's roots (webpki-roots), ring.
pub fn default_tls_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}
