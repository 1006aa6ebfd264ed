//! What every simulator's handle offers, whatever the provider: its address
//! and certificate, its injected faults and request log, shutdown. Each
//! simulator derefs to a [`SimHandle`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::faults::{Fault, FaultRule, FaultSet};
use super::log::{self, LoggedRequest};
use super::serve::{lock, Running};
use super::SimError;

/// Faults to apply and requests seen, shared with the request handlers.
#[derive(Default)]
pub(crate) struct Recorder {
    faults: Mutex<FaultSet>,
    log: Mutex<Vec<LoggedRequest>>,
}

impl Recorder {
    /// The fault for a call of `operation`, using up one of its turns.
    pub fn take_fault(&self, operation: &str) -> Option<Fault> {
        lock(&self.faults).take(operation)
    }

    pub fn record(&self, entry: LoggedRequest) {
        lock(&self.log).push(entry);
    }
}

/// A running simulator. Dropping it stops it.
pub struct SimHandle {
    running: Running,
    recorder: Arc<Recorder>,
}

impl SimHandle {
    pub(crate) fn new(running: Running, recorder: Arc<Recorder>) -> SimHandle {
        SimHandle { running, recorder }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// `https://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("https://{}", self.running.addr)
    }

    /// Lowercase hex SHA-256 of the leaf certificate's DER, for pinning.
    pub fn cert_sha256(&self) -> &str {
        &self.running.cert_sha256
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.running.cert_der
    }

    /// When a cluster CA signed the serving certificate (Kubernetes): the
    /// lowercase hex SHA-256 of the CA certificate's DER.
    pub fn ca_sha256(&self) -> Option<&str> {
        self.running
            .cluster_ca
            .as_ref()
            .map(|ca| ca.sha256.as_str())
    }

    /// The cluster CA certificate (DER), when there is one.
    pub fn ca_der(&self) -> Option<&[u8]> {
        self.running.cluster_ca.as_ref().map(|ca| ca.der.as_slice())
    }

    /// The cluster CA certificate (PEM, as a kubeconfig's
    /// `certificate-authority-data` holds it base64-encoded), when there is one.
    pub fn ca_pem(&self) -> Option<&str> {
        self.running.cluster_ca.as_ref().map(|ca| ca.pem.as_str())
    }

    /// With mutual TLS: a client identity (certificate chain + key, PEM)
    /// the simulator accepts.
    pub fn client_identity_pem(&self) -> Option<&str> {
        self.running.client_pem.as_deref()
    }

    /// Stop accepting, let open connections finish (up to the configured
    /// grace), cut the rest short, and wait for all of it.
    pub(crate) async fn stop(self) {
        self.running.shutdown().await;
    }

    /// Add a fault; the first injected rule that matches a call wins.
    pub fn inject(&self, rule: FaultRule) {
        lock(&self.recorder.faults).push(rule);
    }

    pub fn clear_faults(&self) {
        lock(&self.recorder.faults).clear();
    }

    /// Rules not yet used up.
    pub fn faults(&self) -> Vec<FaultRule> {
        lock(&self.recorder.faults).pending()
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.recorder.log).clone()
    }

    pub fn clear_log(&self) {
        lock(&self.recorder.log).clear();
    }

    /// The request log as JSON lines.
    pub fn write_log_jsonl(&self, path: impl AsRef<Path>) -> Result<(), SimError> {
        Ok(log::write_jsonl(&self.request_log(), path.as_ref())?)
    }

    /// Requests of one operation (WHM: the function; Plesk: `METHOD /template`),
    /// whatever became of them.
    pub fn count_calls(&self, operation: &str) -> usize {
        lock(&self.recorder.log)
            .iter()
            .filter(|r| r.function == operation)
            .count()
    }
}
