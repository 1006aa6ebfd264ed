//! A stateful fake Kubernetes API server (presenting v1.31) over HTTPS, for
//! tests, demos and adapter authors.
//!
//! Like a real cluster, the serving certificate is signed by a fresh
//! cluster CA ([`KubeSimulator::ca_sha256`], [`SimHandle::ca_pem`]) and the
//! handshake sends [leaf, CA]. Clients authenticate with a bearer token or,
//! with [`KubeAuth::ClientCertificate`], a certificate from the simulator's
//! client CA ([`SimHandle::client_identity_pem`]).
//!
//! Served: namespaces; core v1 resourcequotas, limitranges, services and
//! persistentvolumeclaims; apps/v1 deployments (with `scale`);
//! networking.k8s.io/v1 ingresses. Objects are validated against the
//! Kubernetes 1.37 JSON Schemas (`spec/kubernetes/`) and kube-apiserver's
//! own rules; server-side apply, merge patches, optimistic concurrency,
//! label selectors, list chunking and namespace termination behave as a
//! real API server's do. Errors are `Status` objects with kube-apiserver's
//! messages, reasons and codes. Route keys, for faults and the request log,
//! are `METHOD /path/template`, e.g.
//! `PATCH /apis/apps/v1/namespaces/{namespace}/deployments/{name}`.

mod apply;
mod call;
pub mod discovery;
mod errors;
mod kinds;
mod managed;
mod names;
mod objects;
mod observed;
mod paging;
mod quantity;
mod routes;
mod rules;
mod scale;
pub mod schema;
mod selector;
mod server;
mod store;
mod write;

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::serve::{lock, Bound, TlsOptions};
use crate::common::{SimError, SimHandle};

use kinds::{Kind, NAMESPACES, RESOURCE_QUOTAS};
use server::Shared;
use store::Store;

/// The token [`KubeConfig::default`] accepts.
pub const DEFAULT_TOKEN: &str = "SIMKUBETOKEN-7f3a9c2e5b8d1f4a6c0e";

/// How clients authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeAuth {
    /// `Authorization: Bearer <token>`; no client certificate.
    Token(String),
    /// Mutual TLS with a certificate from the simulator's client CA; no token.
    ClientCertificate,
}

/// What a Kubernetes API server simulator is started with.
#[derive(Debug, Clone)]
pub struct KubeConfig {
    /// 0: any free port.
    pub port: u16,
    pub shutdown_grace: Duration,
    pub auth: KubeAuth,
    /// How long a deleted namespace stays `Terminating` before it and
    /// everything in it are gone.
    pub terminating_for: Duration,
    /// Send only the serving certificate, not the cluster CA after it, as
    /// kubeadm's API server does: clients must be given the CA.
    pub leaf_only: bool,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            port: 0,
            shutdown_grace: Duration::from_secs(2),
            auth: KubeAuth::Token(DEFAULT_TOKEN.into()),
            terminating_for: Duration::from_millis(300),
            leaf_only: false,
        }
    }
}

/// A running Kubernetes API server simulator. Dropping it stops it.
pub struct KubeSimulator {
    handle: SimHandle,
    shared: Arc<Shared>,
}

impl Deref for KubeSimulator {
    type Target = SimHandle;
    fn deref(&self) -> &SimHandle {
        &self.handle
    }
}

impl KubeSimulator {
    /// Bind 127.0.0.1 and serve HTTPS with a cluster-CA-signed certificate.
    pub async fn start(config: KubeConfig) -> Result<KubeSimulator, SimError> {
        let client_certificate = config.auth == KubeAuth::ClientCertificate;
        let options = TlsOptions {
            mutual_tls: client_certificate,
            cluster_ca: true,
            leaf_only: config.leaf_only,
        };
        let bound = Bound::bind_with(config.port, options).await?;
        let token = match config.auth {
            KubeAuth::Token(t) => Some(t),
            KubeAuth::ClientCertificate => None,
        };
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(config.terminating_for)),
            token: Mutex::new(token),
            client_certificate,
            recorder: Arc::default(),
            shutdown: bound.shutdown_signal(),
        });
        let running = bound.serve(server::handler(shared.clone()), config.shutdown_grace);
        let handle = SimHandle::new(running, shared.recorder.clone());
        Ok(KubeSimulator { handle, shared })
    }

    /// Stop gracefully (see [`SimHandle`]).
    pub async fn shutdown(self) {
        self.handle.stop().await;
    }

    /// Lowercase hex SHA-256 of the cluster CA certificate's DER (what a
    /// kubeconfig's `certificate-authority-data` would be pinned by).
    pub fn ca_sha256(&self) -> &str {
        self.handle.ca_sha256().unwrap_or_default()
    }

    /// From now on the configured token is refused (401), as an expired
    /// service-account token is.
    pub fn expire_token(&self) {
        *lock(&self.shared.token) = None;
    }

    /// Accept `token` (instead of any earlier one).
    pub fn set_token(&self, token: &str) {
        *lock(&self.shared.token) = Some(token.to_owned());
    }

    /// The token accepted now, if any.
    pub fn token(&self) -> Option<String> {
        lock(&self.shared.token).clone()
    }

    fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut store = lock(&self.shared.store);
        store.reap(Instant::now());
        f(&mut store)
    }

    /// Every namespace as served, Terminating ones included.
    pub fn namespaces(&self) -> Vec<Value> {
        self.objects(NAMESPACES.resource, "")
    }

    /// One object by plural resource (`deployments`), namespace (ignored
    /// for namespaces) and name.
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let kind = Kind::by_resource(resource)?;
        let ns = kind.namespaced.then_some(namespace);
        self.with_store(|s| s.get(kind, ns, name).map(|o| o.object.clone()))
    }

    /// The objects of a resource in a namespace (ignored for namespaces), by name.
    pub fn objects(&self, resource: &str, namespace: &str) -> Vec<Value> {
        let Some(kind) = Kind::by_resource(resource) else {
            return Vec::new();
        };
        let ns = kind.namespaced.then_some(namespace);
        self.with_store(|s| s.list(kind, ns).map(|o| o.object.clone()).collect())
    }

    /// Set what a ResourceQuota's `status.used` reports (keys not given
    /// report "0"); its resourceVersion moves when the status changes.
    pub fn set_quota_used(
        &self,
        namespace: &str,
        quota: &str,
        used: BTreeMap<String, String>,
    ) -> Result<(), SimError> {
        self.with_store(|s| {
            if s.get(RESOURCE_QUOTAS, Some(namespace), quota).is_none() {
                return Err(SimError::Rejected(format!(
                    "resourcequotas \"{quota}\" not found in namespace \"{namespace}\""
                )));
            }
            write::refresh_quota(s, namespace, quota, used);
            Ok(())
        })
    }
}
