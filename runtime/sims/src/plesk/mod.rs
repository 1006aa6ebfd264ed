//! A stateful fake Plesk REST API v2 (`https://127.0.0.1:PORT/api/v2`) with
//! its CLI gateway, for tests, demos and adapter authors.
//!
//! Every request is checked against Plesk's own OpenAPI description
//! (`spec/plesk/`); customers, subscriptions and service plans live in
//! memory; errors come as Plesk's `{"code":…,"message":…}`; faults and the
//! request log are the family's ([`crate::Fault`], [`crate::LoggedRequest`]).
//! Auth is the `X-API-Key` header.

mod cli;
mod routes;
mod server;
pub mod spec;
mod state;

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::serve::{lock, Bound};
use crate::common::{SimError, SimHandle};

pub use state::{Client, Domain, LoginLink, Plan};

use server::{Shared, API_PREFIX};

/// What a Plesk simulator is started with.
#[derive(Debug, Clone)]
pub struct PleskConfig {
    /// The value `X-API-Key` must carry.
    pub api_key: String,
    /// 0: any free port.
    pub port: u16,
    /// What `GET /server` reports as `panel_version`.
    pub version: String,
    /// How long `shutdown()` lets open connections finish.
    pub shutdown_grace: Duration,
    /// Require a client certificate (mutual TLS), as a server behind a
    /// client-certificate gateway would; the one to use is
    /// [`PleskSimulator::client_identity_pem`].
    pub mutual_tls: bool,
}

impl Default for PleskConfig {
    /// A random key, any port.
    fn default() -> Self {
        PleskConfig {
            api_key: state::guid(),
            port: 0,
            version: "18.0.70".into(),
            shutdown_grace: Duration::from_secs(2),
            mutual_tls: false,
        }
    }
}

impl PleskConfig {
    pub fn with_key(key: impl Into<String>) -> Self {
        PleskConfig {
            api_key: key.into(),
            ..PleskConfig::default()
        }
    }
}

/// A running Plesk simulator. Dropping it stops it.
pub struct PleskSimulator {
    handle: SimHandle,
    shared: Arc<Shared>,
}

impl Deref for PleskSimulator {
    type Target = SimHandle;
    fn deref(&self) -> &SimHandle {
        &self.handle
    }
}

impl PleskSimulator {
    /// Bind 127.0.0.1 and serve HTTPS with a fresh self-signed certificate.
    /// Must be called inside a Tokio runtime.
    pub async fn start(config: PleskConfig) -> Result<PleskSimulator, SimError> {
        let bound = Bound::bind(config.port, config.mutual_tls).await?;
        let shared = Arc::new(Shared {
            api_key: config.api_key,
            version: config.version,
            base_url: format!("https://{}", bound.addr),
            state: Mutex::new(state::PleskState::new()),
            recorder: Arc::default(),
            shutdown: bound.shutdown_signal(),
        });
        let running = bound.serve(server::handler(shared.clone()), config.shutdown_grace);
        let handle = SimHandle::new(running, shared.recorder.clone());
        Ok(PleskSimulator { handle, shared })
    }

    /// `https://127.0.0.1:PORT/api/v2`
    pub fn api_url(&self) -> String {
        format!("{}{API_PREFIX}", self.shared.base_url)
    }

    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// Stop gracefully (see [`SimHandle`]).
    pub async fn shutdown(self) {
        self.handle.stop().await;
    }

    pub fn clients(&self) -> Vec<Client> {
        lock(&self.shared.state).clients.values().cloned().collect()
    }

    pub fn client(&self, login: &str) -> Option<Client> {
        lock(&self.shared.state).client_by_login(login).cloned()
    }

    pub fn domains(&self) -> Vec<Domain> {
        lock(&self.shared.state).domains.values().cloned().collect()
    }

    pub fn domain(&self, name: &str) -> Option<Domain> {
        lock(&self.shared.state).domain_by_name(name).cloned()
    }

    /// Add or replace a service plan.
    pub fn add_plan(&self, plan: Plan) {
        lock(&self.shared.state)
            .plans
            .insert(plan.name.clone(), plan);
    }

    pub fn login_links(&self) -> Vec<LoginLink> {
        lock(&self.shared.state).links.clone()
    }

    /// Seed a customer (returns its id).
    pub fn add_client(&self, mut client: Client) -> Result<i64, SimError> {
        let mut state = lock(&self.shared.state);
        if state.client_by_login(&client.login).is_some() {
            return Err(SimError::Rejected(format!(
                "Account with login name \"{}\" already exists.",
                client.login
            )));
        }
        client.id = state.allocate_id();
        let id = client.id;
        state.clients.insert(id, client);
        Ok(id)
    }

    /// Seed a subscription for an existing customer (returns its id).
    pub fn add_domain(&self, mut domain: Domain) -> Result<i64, SimError> {
        let mut state = lock(&self.shared.state);
        if state.domain_by_name(&domain.name).is_some() {
            return Err(SimError::Rejected(format!(
                "Domain \"{}\" already exists.",
                domain.name
            )));
        }
        if !state.clients.contains_key(&domain.client_id) {
            return Err(SimError::Rejected(format!(
                "Client with ID {} is not found",
                domain.client_id
            )));
        }
        domain.id = state.allocate_id();
        let id = domain.id;
        state.domains.insert(id, domain);
        Ok(id)
    }

    /// Set what a customer has used (bytes on disk, bytes of traffic).
    pub fn set_usage(&self, login: &str, disk_space: u64, traffic: u64) -> Result<(), SimError> {
        let mut state = lock(&self.shared.state);
        let client = state
            .clients
            .values_mut()
            .find(|c| c.login == login)
            .ok_or_else(|| SimError::Rejected(format!("Unable to find user \"{login}\"")))?;
        client.disk_space = disk_space;
        client.traffic = traffic;
        Ok(())
    }
}
