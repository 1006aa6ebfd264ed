//! The crate's integration tests, one module per concern, in one binary:
//! one test crate to compile and link instead of one per file.
// Helpers shared by the modules (each module uses its own part).
#[path = "../common/mod.rs"]
mod common;
#[path = "../common/sync.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../common/whm.rs"]
#[allow(dead_code)]
mod whm;

mod backups;
mod bulk;
mod claim_modes;
mod cpanel;
mod cpanel_backups;
mod docker;
mod health;
mod kubernetes;
mod plesk;
mod queue;
mod sync;
mod usage;
mod wakeups;
mod world_versions;
