//! The crate's integration tests, one module per concern, in one binary:
//! one test crate to compile and link instead of one per file.
// Helpers shared by the modules (each module uses its own part).
#[path = "../../../sandbox/tests/support/bombs.rs"]
mod bombs_kit;
#[path = "../support/browser.rs"]
#[allow(dead_code)]
mod browser;
#[path = "../../../worker/tests/common/mod.rs"]
mod common;
#[path = "../support/outside.rs"]
mod outside;
#[path = "../support/mod.rs"]
mod support;

mod adapter_test;
mod bombs;
mod cli;
mod conformance;
mod console;
mod console_pages;
mod demo;
mod dist;
mod exactly_once_chaos;
mod host_rss;
mod many_processes;
mod serve;
mod upload_bomb;
mod webhooks;
mod worker_process;
