//! Panel1's Postgres store: the schema (`migrations/`), the task queue
//! (claim, heartbeat, complete, rescue — every write under the task's lease),
//! the service lifecycle and the events outbox, all in the transactions that
//! make them consistent. Postgres is the only coordination engine.

mod backoff;
pub mod backups;
pub mod bulk;
mod claim;
mod complete;
mod completion_row;
mod db;
pub mod dependencies;
pub mod embedded;
mod enqueue;
mod error;
pub mod health;
pub mod inspection;
mod maintenance;
pub mod migration;
pub mod platform;
mod queue_vacuum;
mod recurring;
mod rekey;
pub mod secret_box;
mod sessions;
pub mod setup;
pub mod shadow;
mod states;
pub mod sync;
pub mod testing;
pub mod usage;
pub mod webhooks;

pub use backoff::retry_delay;
pub use claim::{claim, ClaimedTask};
pub use complete::{
    complete, complete_and_claim, complete_batch, wake_event_streams, Applied, AttemptRecord,
    Handoff, TaskOutcome, MAX_SERVICE_FIELD_BYTES,
};
pub use db::{connect, migrate, MIGRATOR};
pub use enqueue::{enqueue, queue_rows_for, service_state_on_enqueue, NewTask, TASKS_CHANNEL};
pub use error::StoreError;
pub use maintenance::{
    cancel, heartbeat, heartbeat_many, promote_due, prune, release, rescue_expired, retry_failed,
    stale_completions, unclaim,
};
pub use queue_vacuum::{QueueVacuum, QUEUE_VACUUM_SCALE, QUEUE_VACUUM_THRESHOLD};
pub use recurring::{add_recurring, enqueue_due_recurring, next_run};
pub use rekey::reencrypt_secrets;
pub use sessions::{end_sessions, register_session, SessionKey};
pub use states::{ServiceState, TaskState};
