//! The crate's integration tests, one module per concern, in one binary:
//! one test crate to compile and link instead of one per file.
// Helpers shared by the modules (each module uses its own part).

mod backup_schedule;
mod claim_cap;
mod complete_batch;
mod complete_one;
mod dependencies;
mod embedded;
mod handoff;
mod queue_plans;
mod rekey;
mod schema_file;
mod server_load;
mod task_queue_migration;
