use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Every per-call limit in one place. The defaults fit a provisioning call to
/// a remote panel: a few HTTP round trips and some JSON, nothing heavy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// CPU budget in fuel units. 2 billion is ~1 s of busy wasm here: far more
    /// than JSON handling needs, small enough that a loop dies quickly. A
    /// SpiderMonkey (JS) guest needs ~10-50 M for a call.
    pub fuel: u64,
    /// Sum of all linear memories of one instance. 128 MiB fits the JS and
    /// Python runtimes (their heaps start at 20-40 MiB) with room to work.
    pub memory_bytes: u64,
    /// Wall clock for the whole call, host calls included. Remote panels can
    /// be slow (WHM `createacct` takes seconds), so 60 s.
    pub timeout_ms: u64,
    /// Max table elements per table (function references). Toolchains use a
    /// few thousand; 20k leaves room and bounds host memory.
    pub table_elements: u64,
    /// Instances, tables and memories per store. A component made by
    /// wit-component has a handful of each; 64 blocks instance bombs.
    pub max_instances: usize,
    pub max_tables: usize,
    pub max_memories: usize,
    /// Outbound requests per call. A provisioning call needs a handful; a
    /// loop that hammers a panel is stopped.
    pub http_max_requests: u32,
    /// Outbound requests in flight at once per call.
    pub http_max_concurrent: u32,
    /// Request body cap. Panel APIs take small forms/JSON.
    pub http_max_request_bytes: u64,
    /// Response body cap (a `listaccts` of thousands of accounts fits).
    pub http_max_response_bytes: u64,
    /// TCP+TLS connect timeout (clamped to the call's remaining time).
    pub http_connect_timeout_ms: u64,
    /// Per-request total timeout (clamped to the call's remaining time).
    pub http_request_timeout_ms: u64,
    /// Log bytes kept per call (messages + fields + stdout/stderr).
    pub log_max_bytes: u64,
    /// Largest output of any kind that leaves the guest: a result (its
    /// JSON encoding), a typed error's message, `info()`, a list page. Over
    /// it the call ends with `invalid-output` and nothing is kept.
    pub max_output_bytes: u64,
    /// Host memory the call may make the host hold on its behalf: resource
    /// table entries (wasi:http fields, requests, bodies, streams, ...) and
    /// buffered response bodies. `0` (the default) means half of
    /// `memory_bytes`, so a call costs the process at most 1.5x its memory
    /// limit plus the log cap. Over it the call ends with `memory-limit`
    /// (host side). See [`Limits::host_memory_budget`].
    pub host_memory_bytes: u64,
    /// Live resource-table entries (handles the host keeps for the guest).
    /// A provisioning call keeps a few dozen; a JS guest a few hundred.
    pub host_table_entries: u32,
}

/// Fuel charged for every call from the guest into the host: the fixed cost
/// of crossing (about a microsecond of host work at ~2 000 fuel/us), so a
/// loop of cheap host calls is bounded by fuel like a loop of wasm code.
pub const HOST_CALL_FUEL: u64 = 2_000;

/// Fuel charged per byte the host copies or scans for the guest (log
/// lines, config values, secrets, header and body bytes, stdout), about
/// what copying, scanning and redacting a byte costs.
pub const HOST_BYTE_FUEL: u64 = 2;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 2_000_000_000,
            memory_bytes: 128 << 20,
            timeout_ms: 60_000,
            table_elements: 20_000,
            max_instances: 64,
            max_tables: 64,
            max_memories: 16,
            http_max_requests: 64,
            http_max_concurrent: 8,
            http_max_request_bytes: 1 << 20,
            http_max_response_bytes: 16 << 20,
            http_connect_timeout_ms: 10_000,
            http_request_timeout_ms: 30_000,
            log_max_bytes: 256 << 10,
            max_output_bytes: 4 << 20,
            host_memory_bytes: 0,
            host_table_entries: 4_096,
        }
    }
}

impl Limits {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The host-side memory budget of a call (see `host_memory_bytes`):
    /// half the guest's memory limit unless set, never below 4 MiB (room
    /// for a few requests and a response of a small call).
    pub fn host_memory_budget(&self) -> u64 {
        match self.host_memory_bytes {
            0 => (self.memory_bytes / 2).max(4 << 20),
            n => n,
        }
    }
}
