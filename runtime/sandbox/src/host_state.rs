//! The data of one `Store`: everything a single call may touch.
use crate::egress::policy::EgressPolicy;
use crate::egress::{EgressHooks, EgressShared};
use crate::host::stdio::CapturedOutput;
use crate::limiter::StoreLimiter;
use crate::log_buffer::LogBuffer;
use panel1_types::Limits;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use crate::egress::secrets::Secret as SecretBinding;

/// What the operator granted beyond the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// Let the adapter read secret plaintext through `secrets-reveal`.
    pub secrets_reveal: bool,
}

/// Everything a call may use, built from the server connection. Shared
/// (`Arc`) across calls; each call gets its own store around it.
#[derive(Debug, Clone, Default)]
pub struct HostContext {
    pub config: BTreeMap<String, String>,
    pub secrets: Vec<SecretBinding>,
    pub egress: EgressPolicy,
    pub grants: Grants,
    pub limits: Limits,
}

pub struct HostState {
    pub context: Arc<HostContext>,
    pub limiter: StoreLimiter,
    pub log: LogBuffer,
    table: ResourceTable,
    http: WasiHttpCtx,
    pub(crate) hooks: EgressHooks,
    /// Built on first use: most calls of a small adapter never touch WASI.
    wasi: Option<WasiCtx>,
}

impl HostState {
    pub fn new(context: Arc<HostContext>, log: LogBuffer, egress: Arc<EgressShared>) -> Self {
        HostState {
            limiter: StoreLimiter::new(&context.limits),
            context,
            log,
            hooks: EgressHooks { shared: egress },
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            wasi: None,
        }
    }
}

/// Deny-by-default WASI: no environment, no arguments, no preopened
/// directories, no sockets or name lookups, stdin closed, stdout/stderr into
/// the call's log. Clocks and random are the host's.
fn deny_by_default_wasi(log: &LogBuffer) -> WasiCtx {
    WasiCtx::builder()
        .stdout(CapturedOutput::new(log.clone(), "stdout"))
        .stderr(CapturedOutput::new(log.clone(), "stderr"))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let log = &self.log;
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| deny_by_default_wasi(log)),
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
