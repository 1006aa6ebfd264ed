//! Prometheus metrics of the worker: what ran, how it ended, what it cost in
//! the sandbox. Registered by the process that serves `/metrics`.
use panel1_store::{Applied, TaskOutcome};
use panel1_types::CallMetrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;

type Labels = Vec<(&'static str, String)>;

pub struct WorkerMetrics {
    completed: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
    fuel: Histogram,
    peak_memory: Histogram,
    claimed: Counter,
    webhooks: Family<Labels, Counter>,
}

impl WorkerMetrics {
    pub fn register(registry: &mut Registry) -> Arc<WorkerMetrics> {
        let m = WorkerMetrics {
            completed: Family::default(),
            errors: Family::default(),
            // 1 ms .. ~65 s
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 17))
            }),
            // 10k .. ~10 G fuel units
            fuel: Histogram::new(exponential_buckets(10_000.0, 4.0, 11)),
            // 64 KiB .. 256 MiB
            peak_memory: Histogram::new(exponential_buckets(65_536.0, 2.0, 13)),
            claimed: Counter::default(),
            webhooks: Family::default(),
        };
        registry.register(
            "panel1_tasks_completed",
            "Task attempts completed, by operation and outcome (succeeded, retrying, failed, stale)",
            m.completed.clone(),
        );
        registry.register(
            "panel1_task_errors",
            "Failed attempts by typed error kind (adapter or sandbox)",
            m.errors.clone(),
        );
        registry.register(
            "panel1_task_duration_seconds",
            "Wall time of an attempt in the sandbox, by operation",
            m.duration.clone(),
        );
        registry.register(
            "panel1_sandbox_fuel_consumed",
            "Fuel consumed per attempt",
            m.fuel.clone(),
        );
        registry.register(
            "panel1_sandbox_peak_memory_bytes",
            "Peak linear memory per attempt",
            m.peak_memory.clone(),
        );
        registry.register(
            "panel1_tasks_claimed",
            "Tasks claimed by this process",
            m.claimed.clone(),
        );
        registry.register(
            "panel1_webhook_attempts",
            "Webhook delivery attempts by this process, by outcome (delivered, failed)",
            m.webhooks.clone(),
        );
        Arc::new(m)
    }

    /// One webhook delivery attempt ended.
    pub fn webhook_attempt(&self, ok: bool) {
        let outcome = if ok { "delivered" } else { "failed" };
        self.webhooks
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    pub fn claimed(&self, n: usize) {
        self.claimed.inc_by(n as u64);
    }

    /// The error kind of an outcome, as labelled here.
    pub fn error_kind(outcome: &TaskOutcome) -> Option<String> {
        match outcome {
            TaskOutcome::Succeeded { .. } => None,
            TaskOutcome::AdapterError { kind, .. } | TaskOutcome::SandboxError { kind, .. } => {
                Some(kind.clone())
            }
            TaskOutcome::Internal { .. } => Some("internal".into()),
        }
    }

    pub fn completed(
        &self,
        operation: &str,
        error_kind: Option<String>,
        m: &CallMetrics,
        applied: &Applied,
    ) {
        let result = match applied {
            Applied::Succeeded => "succeeded",
            Applied::Retrying { .. } => "retrying",
            Applied::Failed => "failed",
            Applied::Stale => "stale",
        };
        self.completed
            .get_or_create(&vec![
                ("operation", operation.to_string()),
                ("outcome", result.to_string()),
            ])
            .inc();
        if let Some(kind) = error_kind {
            self.errors.get_or_create(&vec![("kind", kind)]).inc();
        }
        self.duration
            .get_or_create(&vec![("operation", operation.to_string())])
            .observe(m.wall_us as f64 / 1e6);
        self.fuel.observe(m.fuel_consumed as f64);
        self.peak_memory.observe(m.peak_memory_bytes as f64);
    }
}
