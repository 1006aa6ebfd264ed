use serde::{Deserialize, Serialize};

/// What one call cost. Recorded on every attempt, whatever its outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallMetrics {
    /// Fuel units consumed (≈ wasm instructions).
    pub fuel_consumed: u64,
    /// Wall time of the whole call, instantiation included (µs).
    pub wall_us: u64,
    /// Highest sum of all linear memories of the instance (bytes).
    pub peak_memory_bytes: u64,
    /// Highest host memory held on the guest's behalf (resource table and
    /// buffered responses; bytes), against `Limits::host_memory_budget`.
    #[serde(default)]
    pub peak_host_memory_bytes: u64,
    /// Outbound HTTP requests the guest attempted (allowed or denied).
    pub http_requests: u32,
    /// Requests refused by the egress policy or a secret binding.
    pub http_denied: u32,
    /// Request body bytes sent.
    pub http_bytes_sent: u64,
    /// Response body bytes received.
    pub http_bytes_received: u64,
    /// Log bytes dropped because the per-call cap was reached.
    pub log_bytes_dropped: u64,
    /// Set when the call ended in a trap or limit (kebab-case kind).
    pub trap_kind: Option<String>,
}
