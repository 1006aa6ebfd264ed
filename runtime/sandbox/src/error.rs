use panel1_types::SandboxErrorKind;

/// Why the sandbox did not produce an adapter result. Every guest failure
/// lands here; none of them takes the process down.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SandboxError {
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    #[error("out of fuel: the call used its whole budget of {budget} fuel units")]
    OutOfFuel { budget: u64 },
    #[error("deadline: the call did not finish within {timeout_ms} ms")]
    Deadline { timeout_ms: u64 },
    #[error("memory limit: the guest tried to grow its memories to {requested} bytes, over the limit of {limit} bytes")]
    MemoryLimit { limit: u64, requested: u64 },
    /// The guest made the host hold more than the call's host budget.
    #[error(transparent)]
    HostMemoryLimit(#[from] crate::host_budget::HostMemoryExceeded),
    #[error("guest trap: {0}")]
    GuestTrap(String),
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    /// Not the component's fault and not a failure: the sandbox has no
    /// room for the work now (the compile queue is full). Try again later.
    #[error("{0}")]
    Busy(String),
    #[error("internal sandbox error: {0}")]
    Internal(String),
}

impl SandboxError {
    pub fn kind(&self) -> SandboxErrorKind {
        match self {
            SandboxError::InvalidComponent(_) => SandboxErrorKind::InvalidComponent,
            SandboxError::OutOfFuel { .. } => SandboxErrorKind::OutOfFuel,
            SandboxError::Deadline { .. } => SandboxErrorKind::Deadline,
            SandboxError::MemoryLimit { .. } | SandboxError::HostMemoryLimit(_) => {
                SandboxErrorKind::MemoryLimit
            }
            SandboxError::GuestTrap(_) => SandboxErrorKind::GuestTrap,
            SandboxError::InvalidOutput(_) => SandboxErrorKind::InvalidOutput,
            SandboxError::Busy(_) | SandboxError::Internal(_) => SandboxErrorKind::Internal,
        }
    }
}
