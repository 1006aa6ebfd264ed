//! Stateful fake provider APIs over HTTPS, for tests, demos and adapter
//! authors: one family, sharing TLS with a throwaway certificate (pin it),
//! request validation against the provider's official description, injected
//! faults ([`Fault`]), and a request log with well-formedness verdicts.
//!
//! - [`whm`]: cPanel's WHM API 1 ([`WhmSimulator`]).
//! - [`plesk`]: Plesk's REST API v2 with its CLI gateway
//!   ([`plesk::PleskSimulator`]).
//! - [`docker`]: the Docker Engine API v1.45 over mutual TLS
//!   ([`docker::DockerSimulator`]).
//! - [`kube`]: a Kubernetes API server (v1.31, objects checked against the
//!   1.37 schemas) behind a cluster CA, with a bearer token or client
//!   certificates ([`kube::KubeSimulator`]).
//!
//! Run one by hand with `panel1 sim whm|plesk --port N`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), panel1_sims::SimError> {
//! use panel1_sims::{SimConfig, WhmSimulator};
//! let sim = WhmSimulator::start(SimConfig::with_token("T0KEN")).await?;
//! println!("{} pinned sha256 {}", sim.base_url(), sim.cert_sha256());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod common;
pub mod docker;
pub mod kube;
pub mod plesk;
pub mod whm;

pub use common::{AuthOutcome, Fault, FaultRule, LoggedRequest, SimError, SimHandle, REDACTED};
pub use whm::{spec, Account, Package, Session, SimConfig, TransferSession, WhmSimulator};
