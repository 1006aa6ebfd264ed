use serde::{Deserialize, Serialize};

/// A task's state. Closed and documented; every transition is a
/// compare-and-set in SQL:
///
/// ```text
/// scheduled ──due──▶ available ──claim──▶ running ──▶ succeeded
///                        ▲                   │  ├──▶ failed    (permanent error / attempts exhausted)
///                        │                   │  └──▶ cancelled
///      retryable ──due───┘◀── transient ─────┘
///      failed ──operator retry──▶ available
/// ```
///
/// An unfinished task's state lives in its `task_queue` row; `running` is
/// only ever there (the record keeps the state it was claimed from). Read a
/// task's state through the `tasks` view (migrations/0006).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "task_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for `run_at`.
    Scheduled,
    /// Ready to be claimed.
    Available,
    /// Claimed by a worker under a lease.
    Running,
    /// Failed transiently; waiting for `run_at` to try again.
    Retryable,
    /// Done.
    Succeeded,
    /// Gave up (permanent error or attempts exhausted); an operator may retry.
    Failed,
    /// Cancelled before it could finish.
    Cancelled,
}

impl TaskState {
    /// The Postgres enum label.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Scheduled => "scheduled",
            TaskState::Available => "available",
            TaskState::Running => "running",
            TaskState::Retryable => "retryable",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }
}

/// A service's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "service_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Pending,
    Provisioning,
    Active,
    Suspended,
    /// Being moved to another server (docs/migration.md).
    Migrating,
    Terminating,
    Terminated,
    /// Provisioning failed for good; `failure_reason` says why.
    Failed,
}

impl ServiceState {
    /// The Postgres enum label.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Pending => "pending",
            ServiceState::Provisioning => "provisioning",
            ServiceState::Active => "active",
            ServiceState::Suspended => "suspended",
            ServiceState::Migrating => "migrating",
            ServiceState::Terminating => "terminating",
            ServiceState::Terminated => "terminated",
            ServiceState::Failed => "failed",
        }
    }
}
