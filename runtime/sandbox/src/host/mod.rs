//! The Panel1 host interfaces: `config`, `log`, `secrets`, `secrets-reveal`.
//! (`wasi:http` lives in `egress`, standard WASI in `host_state`.)
mod config;
mod log;
mod secrets;
pub mod stdio;
