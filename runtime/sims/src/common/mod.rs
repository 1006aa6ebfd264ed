//! What every simulator shares: HTTPS with a throwaway certificate, the
//! accept loop, injected faults, and the request log with its verdicts.

pub(crate) mod faults;
mod handle;
pub(crate) mod log;
pub(crate) mod openapi;
pub(crate) mod serve;
mod tls;

pub use faults::{Fault, FaultRule};
pub(crate) use handle::Recorder;
pub use handle::SimHandle;
pub use log::{AuthOutcome, LoggedRequest, REDACTED};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("cannot generate the certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A seeding call refused, in the same words the API would use.
    #[error("{0}")]
    Rejected(String),
}
