//! The crate's integration tests, one module per concern, in one binary:
//! one test crate to compile and link instead of one per file.
// Helpers shared by the modules (each module uses its own part).
#[path = "../common/mod.rs"]
mod common;

mod auth_rate_limit;
mod backups;
mod bulk;
mod consistency;
mod contract;
mod edge_input;
mod exactly_once;
mod isolation;
mod lifecycle;
mod migration;
mod openapi_doc;
mod postgres_restart;
mod problems;
mod remote_account;
mod server_health;
mod server_update;
mod shadow_runs;
mod slow_clients;
mod sync;
mod terminate_order;
mod usage;
mod webhooks;
mod whm_migration;
