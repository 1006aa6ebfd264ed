//! A stateful fake Docker Engine API (v1.45, `/v1.24/` to `/v1.45/` prefixes
//! or none) over mutual TLS, for tests, demos and adapter authors.
//!
//! Every request is checked against the official Engine API description
//! (`spec/docker/`); containers follow Docker's state machine, named volumes
//! and networks exist; errors are `{"message": …}` with Docker's statuses
//! (404, 409 for a name in use or a running container, 304 for a start or
//! stop that changes nothing). Clients must present a certificate from the
//! simulator's own CA ([`SimHandle::client_identity_pem`]).

mod routes;
mod server;
pub mod spec;
mod state;

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::serve::{lock, Bound};
use crate::common::{SimError, SimHandle};

pub use state::{Container, Usage, Volume};

use server::Shared;

/// What a Docker Engine simulator is started with.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// 0: any free port.
    pub port: u16,
    pub shutdown_grace: Duration,
    /// The newest API version served: an older Engine answers a newer
    /// client "client version … is too new" (clients negotiate down).
    pub max_api_version: spec::ApiVersion,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            port: 0,
            shutdown_grace: Duration::from_secs(2),
            max_api_version: spec::API_VERSION,
        }
    }
}

/// A running Docker Engine simulator. Dropping it stops it.
pub struct DockerSimulator {
    handle: SimHandle,
    shared: Arc<Shared>,
}

impl Deref for DockerSimulator {
    type Target = SimHandle;
    fn deref(&self) -> &SimHandle {
        &self.handle
    }
}

impl DockerSimulator {
    /// Bind 127.0.0.1 and serve HTTPS requiring client certificates.
    pub async fn start(config: DockerConfig) -> Result<DockerSimulator, SimError> {
        let bound = Bound::bind(config.port, true).await?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state::EngineState::new()),
            max_version: config.max_api_version,
            recorder: Arc::default(),
            shutdown: bound.shutdown_signal(),
        });
        let running = bound.serve(server::handler(shared.clone()), config.shutdown_grace);
        let handle = SimHandle::new(running, shared.recorder.clone());
        Ok(DockerSimulator { handle, shared })
    }

    /// Stop gracefully (see [`SimHandle`]).
    pub async fn shutdown(self) {
        self.handle.stop().await;
    }

    pub fn containers(&self) -> Vec<Container> {
        lock(&self.shared.state)
            .containers
            .values()
            .cloned()
            .collect()
    }

    /// A container by name (without the `/`).
    pub fn container(&self, name: &str) -> Option<Container> {
        lock(&self.shared.state)
            .containers
            .values()
            .find(|c| c.name == name)
            .cloned()
    }

    pub fn volumes(&self) -> Vec<Volume> {
        lock(&self.shared.state).volumes.values().cloned().collect()
    }

    /// Make an image available (as if pulled).
    pub fn add_image(&self, image: &str) {
        lock(&self.shared.state).images.insert(image.into());
    }

    /// Create a network the adapter can attach containers to.
    pub fn add_network(&self, name: &str) {
        lock(&self.shared.state).networks.insert(name.into());
    }

    /// Set what a container's one-shot stats report.
    pub fn set_usage(&self, name: &str, usage: state::Usage) -> Result<(), SimError> {
        let mut state = lock(&self.shared.state);
        let c = state
            .containers
            .values_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| SimError::Rejected(format!("No such container: {name}")))?;
        c.usage = usage;
        Ok(())
    }
}
