use serde::{Deserialize, Serialize};
use std::fmt;

/// Why the sandbox stopped a call. A closed set: the orchestrator and the CLI
/// act on it, so adding a case is an API change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxErrorKind {
    /// The bytes are not a loadable adapter component.
    InvalidComponent,
    /// The call used its whole fuel (CPU) budget.
    OutOfFuel,
    /// The call ran past its wall-clock deadline.
    Deadline,
    /// The guest tried to grow its memories past the limit.
    MemoryLimit,
    /// The guest trapped (panic, unreachable, stack overflow, bad access).
    GuestTrap,
    /// The guest returned something the host refuses (malformed or too large).
    InvalidOutput,
    /// A failure on the host side, not caused by the guest.
    Internal,
}

impl SandboxErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxErrorKind::InvalidComponent => "invalid-component",
            SandboxErrorKind::OutOfFuel => "out-of-fuel",
            SandboxErrorKind::Deadline => "deadline",
            SandboxErrorKind::MemoryLimit => "memory-limit",
            SandboxErrorKind::GuestTrap => "guest-trap",
            SandboxErrorKind::InvalidOutput => "invalid-output",
            SandboxErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for SandboxErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cases of the WIT `adapter-error` variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdapterErrorKind {
    InvalidInput,
    AuthFailed,
    NotFound,
    Conflict,
    Transient,
    Permanent,
    Unsupported,
}

impl AdapterErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterErrorKind::InvalidInput => "invalid-input",
            AdapterErrorKind::AuthFailed => "auth-failed",
            AdapterErrorKind::NotFound => "not-found",
            AdapterErrorKind::Conflict => "conflict",
            AdapterErrorKind::Transient => "transient",
            AdapterErrorKind::Permanent => "permanent",
            AdapterErrorKind::Unsupported => "unsupported",
        }
    }

    /// Only transient errors are worth another attempt.
    pub fn is_retryable(self) -> bool {
        matches!(self, AdapterErrorKind::Transient)
    }
}

impl fmt::Display for AdapterErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
