//! Platform tasks: work Panel1 schedules for itself through the task queue
//! (usage collection, service sync pages, backups), so it runs under the same server
//! caps, leases, retries and circuit breaker as a tenant's operations.
//!
//! They are marked by an idempotency key in the reserved `panel1:`
//! namespace (`panel1:<kind>:…`; the API never sets a task's key). Their
//! completion writes no task event and never moves the service
//! (migrations/0014); what they found is written here, in the completion's
//! own transaction and only when it applied, so a stale or repeated
//! completion records nothing twice.
use crate::{ClaimedTask, StoreError, TaskOutcome};
use sqlx::PgConnection;

/// The reserved idempotency-key namespace.
pub const KEY_PREFIX: &str = "panel1:";

/// What a platform task is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformTask {
    /// `panel1:usage:…`: one usage sample of a service.
    Usage,
    /// `panel1:sync:…`: one page of a server's service sync.
    Sync,
    /// `panel1:migration:<id>:<step>`: one step of a service's migration
    /// (docs/migration.md).
    Migration,
    /// `panel1:backup:<backup>:<step>`: a step of a backup (create, status
    /// check, delete; migrations/0021).
    Backup,
}

impl PlatformTask {
    /// The kind of `task`, when it is a platform task.
    pub fn of(task: &ClaimedTask) -> Option<PlatformTask> {
        Self::of_key(task.idempotency_key.as_deref()?)
    }

    /// The kind named by an idempotency key.
    pub fn of_key(key: &str) -> Option<PlatformTask> {
        let rest = key.strip_prefix(KEY_PREFIX)?;
        match rest.split(':').next()? {
            "usage" => Some(PlatformTask::Usage),
            "sync" => Some(PlatformTask::Sync),
            "migration" => Some(PlatformTask::Migration),
            "backup" => Some(PlatformTask::Backup),
            _ => None,
        }
    }

    /// The key of a platform task: `panel1:<kind>:<parts joined by ':'>`.
    pub fn key(self, parts: &[&str]) -> String {
        let kind = match self {
            PlatformTask::Usage => "usage",
            PlatformTask::Sync => "sync",
            PlatformTask::Migration => "migration",
            PlatformTask::Backup => "backup",
        };
        format!("{KEY_PREFIX}{kind}:{}", parts.join(":"))
    }
}

/// Record what a finished (succeeded or finally failed) platform task
/// found. Errors here fail the whole completion (it is retried), so a
/// projection reads adapter output defensively and never errors on it.
pub(crate) async fn project(
    tx: &mut PgConnection,
    task: &ClaimedTask,
    outcome: &TaskOutcome,
) -> Result<(), StoreError> {
    match PlatformTask::of(task) {
        Some(PlatformTask::Usage) => crate::usage::project(tx, task, outcome).await,
        Some(PlatformTask::Sync) => crate::sync::project(tx, task, outcome).await,
        Some(PlatformTask::Migration) => crate::migration::project(tx, task, outcome).await,
        Some(PlatformTask::Backup) => crate::backups::project(tx, task, outcome).await,
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_others_are_not_platform() {
        let k = PlatformTask::Usage.key(&["svc", "1700000000"]);
        assert_eq!(k, "panel1:usage:svc:1700000000");
        assert_eq!(PlatformTask::of_key(&k), Some(PlatformTask::Usage));
        assert_eq!(
            PlatformTask::of_key("panel1:sync:run:3"),
            Some(PlatformTask::Sync)
        );
        assert_eq!(
            PlatformTask::of_key("panel1:backup:b:create"),
            Some(PlatformTask::Backup)
        );
        assert_eq!(PlatformTask::of_key("recurring:abc:1"), None);
        assert_eq!(PlatformTask::of_key("panel1:other:x"), None);
        assert_eq!(PlatformTask::of_key("usage:x"), None);
    }
}
