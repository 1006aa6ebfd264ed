//! The crate's integration tests, one module per concern, in one binary:
//! one test crate to compile and link instead of one per file.
// Helpers shared by the modules (each module uses its own part).
#[path = "../common/mod.rs"]
mod common;
#[path = "../common/cpanel.rs"]
mod cpanel;
#[path = "../common/guest.rs"]
mod guest;
#[path = "../common/kube_http.rs"]
mod kube_http;
#[path = "../common/plesk.rs"]
mod plesk;

mod auth;
mod backups;
mod client_identity;
mod cpanel_adapter;
mod cpanel_adapter_faults;
mod cpanel_backups;
mod cpanel_fixes;
mod docker_adapter;
mod faults;
mod kube_adapter;
mod kube_sim;
mod kube_sim_auth;
mod lifecycle;
mod listaccts;
mod plesk_adapter;
mod plesk_adapter_faults;
mod plesk_sim;
mod sessions;
mod transfers;
mod validation;
