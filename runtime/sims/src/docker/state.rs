//! What the Docker Engine simulator holds: containers with their state
//! machine (created → running ⇄ paused, running → exited, removing),
//! named volumes, networks and the images it can run.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use serde::Serialize;

/// A container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    /// 64 hex characters.
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// `created`, `running`, `paused`, `exited` or `removing`.
    pub state: String,
    /// Bytes (0: unlimited).
    pub memory: i64,
    /// CPU in units of 10⁻⁹ CPUs (0: unlimited).
    pub nano_cpus: i64,
    pub network: String,
    /// Named volumes mounted: (volume, path in the container).
    pub volumes: Vec<(String, String)>,
    pub created: String,
    /// What one-shot stats report: memory in use, bytes in and out, read and written.
    pub usage: Usage,
}

/// Figures `GET /containers/{id}/stats?stream=false` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub cpu_total_ns: u64,
    pub memory_bytes: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

/// A named volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

pub(crate) struct EngineState {
    pub containers: BTreeMap<String, Container>,
    pub volumes: BTreeMap<String, Volume>,
    pub networks: BTreeSet<String>,
    pub images: BTreeSet<String>,
}

pub(crate) fn new_id() -> String {
    let b: [u8; 32] = rand::rng().random();
    hex::encode(b)
}

impl EngineState {
    /// The default networks and two images, as a fresh host with pulls done.
    pub fn new() -> EngineState {
        EngineState {
            containers: BTreeMap::new(),
            volumes: BTreeMap::new(),
            networks: ["bridge", "host", "none"].map(String::from).into(),
            images: ["nginx:1.27", "php:8.3-apache"].map(String::from).into(),
        }
    }

    /// A container by id, unique id prefix, or name (with or without `/`).
    pub fn find(&self, key: &str) -> Option<&Container> {
        let name = key.trim_start_matches('/');
        if let Some(c) = self.containers.values().find(|c| c.name == name) {
            return Some(c);
        }
        let mut by_prefix = self.containers.values().filter(|c| c.id.starts_with(key));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(c), None) if key.len() >= 4 => Some(c),
            _ => None,
        }
    }

    pub fn find_id(&self, key: &str) -> Option<String> {
        self.find(key).map(|c| c.id.clone())
    }

    /// Containers using volume `name`.
    pub fn users_of(&self, volume: &str) -> Vec<String> {
        self.containers
            .values()
            .filter(|c| c.volumes.iter().any(|(v, _)| v == volume))
            .map(|c| c.id.clone())
            .collect()
    }
}
