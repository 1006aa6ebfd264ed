//! Server health checks: a loop in every worker that leases due checks
//! (`panel1_claim_health_checks`), runs the server's adapter
//! `test-connection` in the sandbox exactly as a task would run it, and
//! settles the outcome (`panel1_settle_health_check`: the state, its
//! history, the event, the circuit breaker). Checks run outside the task
//! queue, so a server whose breaker holds its tasks is still checked, and
//! recovers on its own.
use crate::run::Worker;
use panel1_store::health::{self, CheckOutcome, HealthCheck};
use panel1_store::{ClaimedTask, TaskOutcome};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// How a worker checks servers.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Off: this worker runs no checks (others may).
    pub enabled: bool,
    /// Checks in flight at once.
    pub concurrency: usize,
    /// A check belongs to the worker that leased it for this long; longer
    /// than any call's deadline.
    pub lease: Duration,
    /// How often due checks are looked for.
    pub poll_interval: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            concurrency: 4,
            lease: Duration::from_secs(120),
            poll_interval: Duration::from_millis(500),
        }
    }
}

impl Worker {
    /// The check loop, for the worker's life.
    pub(crate) async fn health_checks(self: Arc<Self>) {
        let config = self.config.health.clone();
        if !config.enabled {
            return;
        }
        let room = Arc::new(Semaphore::new(config.concurrency.max(1)));
        loop {
            let free = room.available_permits();
            if free > 0 {
                match health::claim_health_checks(&self.pool, free, config.lease).await {
                    Ok(checks) => {
                        for check in checks {
                            let Ok(permit) = room.clone().acquire_owned().await else {
                                return;
                            };
                            let me = self.clone();
                            tokio::spawn(async move {
                                me.check_server(check).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "claiming health checks failed"),
                }
            }
            tokio::time::sleep(config.poll_interval).await;
        }
    }

    async fn check_server(&self, check: HealthCheck) {
        // The same path as a task's attempt (server settings, secrets,
        // egress policy, limits), under a one-off idempotency key.
        let task = ClaimedTask {
            id: Uuid::now_v7(),
            tenant_id: check.tenant_id,
            server_id: check.server_id,
            service_id: None,
            operation: "test-connection".into(),
            input: json!({}),
            attempt: 1,
            max_attempts: 1,
            lease: 0,
            idempotency_key: None,
        };
        let started = Instant::now();
        let (outcome, _, _) = self.attempt(&task).await;
        let latency = started.elapsed();
        let outcome = match outcome {
            TaskOutcome::Succeeded { .. } => CheckOutcome::Ok,
            TaskOutcome::AdapterError { kind, message, .. }
            | TaskOutcome::SandboxError { kind, message } => CheckOutcome::Failed { kind, message },
            // Panel1's own trouble (the database, the artifact store) says
            // nothing about the server: leave the check to its lease.
            TaskOutcome::Internal { message } => {
                tracing::warn!(server = %check.server_id, %message, "health check could not run");
                return;
            }
        };
        match health::settle_health_check(&self.pool, &check, &outcome, latency).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!(server = %check.server_id, "health check settled stale"),
            Err(e) => {
                tracing::warn!(server = %check.server_id, error = %e, "settling a health check failed")
            }
        }
    }
}
