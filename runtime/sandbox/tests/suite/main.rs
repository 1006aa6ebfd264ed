//! The crate's integration tests, one module per concern, in one binary:
//! one test crate to compile and link instead of one per file.
// Helpers shared by the modules (each module uses its own part).
#[path = "../support/bombs.rs"]
mod bombs_kit;
#[path = "../support/mod.rs"]
mod support;

mod artifacts;
mod bombs;
mod egress;
mod host_memory;
mod hostile;
mod javascript;
mod launder;
mod reference;
mod secrets;
mod winch;
mod world_versions;
