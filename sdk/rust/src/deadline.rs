//! Time left in a call. `ctx.deadline_ms` is the budget when the call
//! started; [`Deadline`] measures against the host's monotonic clock so later
//! requests in the same call see what is really left (e.g. to clamp a
//! per-request timeout below the call's own deadline).
use crate::bindings::wasi::clocks::monotonic_clock;
use crate::CallContext;

/// The call's deadline, started when it is created.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start_ns: u64,
    budget_ms: u64,
}

impl Deadline {
    /// Starts now with `ctx.deadline_ms` left; create it first thing in an
    /// operation.
    pub fn new(ctx: &CallContext) -> Deadline {
        Deadline {
            start_ns: monotonic_clock::now(),
            budget_ms: ctx.deadline_ms,
        }
    }

    /// Milliseconds left before the host stops the call (0 once past it).
    pub fn remaining_ms(&self) -> u64 {
        let elapsed_ms = monotonic_clock::now().saturating_sub(self.start_ns) / 1_000_000;
        self.budget_ms.saturating_sub(elapsed_ms)
    }
}
