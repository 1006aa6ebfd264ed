//! The data of one `Store`: everything a single call may touch.
use crate::egress::policy::EgressPolicy;
use crate::egress::{EgressHooks, EgressShared};
use crate::host::stdio::CapturedOutput;
use crate::host_budget::HostBudget;
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
    /// Host memory held for the guest and fuel owed for host work.
    pub budget: Arc<HostBudget>,
    table: ResourceTable,
    http: WasiHttpCtx,
    pub(crate) hooks: EgressHooks,
    /// Built on first use: most calls of a small adapter never touch WASI.
    wasi: Option<WasiCtx>,
}

impl HostState {
    pub fn new(context: Arc<HostContext>, log: LogBuffer, egress: Arc<EgressShared>) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(context.limits.host_table_entries as usize);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(FIELDS_MAX_BYTES);
        HostState {
            limiter: StoreLimiter::new(&context.limits),
            budget: egress.budget.clone(),
            context,
            log,
            hooks: EgressHooks { shared: egress },
            table,
            http,
            wasi: None,
        }
    }

    /// Bytes the resource table holds and its live entries (see
    /// `table_usage`).
    pub fn table_usage(&mut self) -> (u64, u64) {
        crate::table_usage::measure(&mut self.table)
    }
}

/// Largest in-memory size of one wasi:http `fields` (headers): well over
/// any real request's headers, small enough that one host call adds little
/// between two budget checks.
const FIELDS_MAX_BYTES: usize = 64 << 10;

/// Largest `get-random-bytes` answer: keys and nonces, not bulk data (the
/// host allocates what the guest asks for).
const RANDOM_MAX_BYTES: u64 = 64 << 10;

/// Deny-by-default WASI: no environment, no arguments, no preopened
/// directories, no sockets or name lookups, stdin closed, stdout/stderr into
/// the call's log. Clocks and random are the host's.
fn deny_by_default_wasi(log: &LogBuffer, budget: &Arc<HostBudget>) -> WasiCtx {
    WasiCtx::builder()
        .stdout(CapturedOutput::new(log.clone(), budget.clone(), "stdout"))
        .stderr(CapturedOutput::new(log.clone(), budget.clone(), "stderr"))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .max_random_size(RANDOM_MAX_BYTES)
        .build()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (log, budget) = (&self.log, &self.budget);
        WasiCtxView {
            ctx: self
                .wasi
                .get_or_insert_with(|| deny_by_default_wasi(log, budget)),
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
