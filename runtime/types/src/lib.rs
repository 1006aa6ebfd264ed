//! Types shared by every part of Panel1: operations, limits, error kinds and
//! per-call metrics. No I/O lives here.

mod error_kind;
mod limits;
mod metrics;
mod operation;

pub use error_kind::{AdapterErrorKind, SandboxErrorKind};
pub use limits::{Limits, HOST_BYTE_FUEL, HOST_CALL_FUEL};
pub use metrics::CallMetrics;
pub use operation::{Operation, UnknownOperation};
