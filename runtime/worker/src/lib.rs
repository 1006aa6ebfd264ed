//! The worker: claims tasks from Postgres, runs each operation in the
//! sandbox with the server's configuration, secrets and egress policy,
//! records the attempt and completes the task under its lease. Stateless:
//! more throughput is more workers against the same database.

mod adapter_cells;
mod background;
mod completion;
mod config;
mod context;
mod health;
mod inspect;
mod leases;
mod metrics;
mod notices;
mod recording;
mod refused;
mod run;
mod settings_cache;
mod shadow;
mod source_secret;
pub mod webhooks;

pub use completion::COMMIT_CONNECTIONS;
pub use health::HealthConfig;
pub use metrics::WorkerMetrics;
pub use run::{Worker, WorkerConfig, WorkerError};
pub use webhooks::WebhookConfig;
