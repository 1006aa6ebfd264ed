//! A worker's settings.
use std::time::Duration;
use uuid::Uuid;

/// Worker settings. The defaults suit a worker process on a small machine.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Shown in `tasks.leased_by` and attempts.
    pub id: String,
    /// Operations run at once by this worker.
    pub slots: usize,
    /// A claimed task belongs to this worker for this long past its last
    /// heartbeat; after that the rescuer gives it to another worker.
    pub lease_ttl: Duration,
    /// Slow poll in case a notification was missed.
    pub poll_interval: Duration,
    /// How long shutdown waits for running operations before releasing them.
    pub shutdown_grace: Duration,
    /// Finished tasks older than this move to `tasks_archive`.
    pub prune_after: Duration,
    /// Most tasks taken per claim statement. 1 = per-task mode: one claim
    /// per task, and each slot commits its own completion, which also
    /// claims the slot's next task on the same server (one commit per task).
    pub claim_batch: usize,
    /// Claimed tasks held beyond the slots, waiting for one (a local queue,
    /// like graphile-worker's): more work per claim when operations are
    /// short. 0 = claim only for free slots, the right choice when
    /// operations are slow and other workers could take the work.
    pub queue: usize,
    /// Webhook delivery from this worker.
    pub webhooks: crate::webhooks::WebhookConfig,
    /// Server health checks from this worker.
    pub health: crate::health::HealthConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            // Unique per process: the rescuer treats a name as dead only
            // when every process registered under it is gone.
            id: format!(
                "worker-{}-{}",
                std::process::id(),
                &Uuid::new_v4().simple().to_string()[..8]
            ),
            slots: 16,
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            prune_after: Duration::from_secs(7 * 24 * 3600),
            claim_batch: 64,
            queue: 0,
            webhooks: crate::webhooks::WebhookConfig::default(),
            health: crate::health::HealthConfig::default(),
        }
    }
}
