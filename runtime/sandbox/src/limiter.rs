use wasmtime::ResourceLimiter;

/// Raised (as a trap) when a guest asks for more memory than it may have.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (requested {requested} bytes in total)")]
pub struct MemoryLimitExceeded {
    pub limit: u64,
    pub requested: u64,
}

/// Caps the *sum* of all linear memories of a store (a component has several
/// core instances, each may have its own memory), bounds tables and instance
/// counts, and records the peak for the attempt's metrics.
pub struct StoreLimiter {
    memory_limit: u64,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memories: usize,
    current_total: u64,
    pub peak_total: u64,
}

impl StoreLimiter {
    pub fn new(limits: &panel1_types::Limits) -> Self {
        StoreLimiter {
            memory_limit: limits.memory_bytes,
            table_elements: limits.table_elements as usize,
            instances: limits.max_instances,
            tables: limits.max_tables,
            memories: limits.max_memories,
            current_total: 0,
            peak_total: 0,
        }
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current) as u64;
        let requested = self.current_total.saturating_add(growth);
        if requested > self.memory_limit {
            // An error (not `Ok(false)`) traps at once: a guest that ignores a
            // failed grow must not keep running on the edge of the limit.
            return Err(MemoryLimitExceeded {
                limit: self.memory_limit,
                requested,
            }
            .into());
        }
        self.current_total = requested;
        self.peak_total = self.peak_total.max(requested);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.instances
    }
    fn tables(&self) -> usize {
        self.tables
    }
    fn memories(&self) -> usize {
        self.memories
    }
}
