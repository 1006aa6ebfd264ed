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

    /// Milliseconds since this deadline was created.
    pub fn elapsed_ms(&self) -> u64 {
        monotonic_clock::now().saturating_sub(self.start_ns) / 1_000_000
    }

    /// Milliseconds left before the host stops the call (0 once past it).
    pub fn remaining_ms(&self) -> u64 {
        let elapsed_ms = monotonic_clock::now().saturating_sub(self.start_ns) / 1_000_000;
        self.budget_ms.saturating_sub(elapsed_ms)
    }
}

/// Wait `ms` milliseconds on the host's clock (between polls of something
/// the provider finishes in the background). The call's wall-time limit
/// still applies: check [`Deadline::remaining_ms`] first.
pub fn pause_ms(ms: u64) {
    monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
}

/// Time kept back from the call's deadline so a timed-out request can still
/// be reported as `transient` (a tenth of what is left, within these bounds).
const MIN_MARGIN_MS: u64 = 250;
const MAX_MARGIN_MS: u64 = 2_000;
/// Below this there is no point starting a request.
const MIN_REQUEST_MS: u64 = 100;

impl Deadline {
    /// The timeout for the next request: `configured_ms`, but ending a margin
    /// before the call's deadline; `None` when too little time is left to
    /// try. A call without a budget (`deadline_ms` 0) gets `configured_ms`.
    pub fn request_timeout(&self, configured_ms: u64) -> Option<u64> {
        if self.budget_ms == 0 {
            return Some(configured_ms);
        }
        request_timeout(configured_ms, self.remaining_ms())
    }
}

/// [`Deadline::request_timeout`] for a given time left.
pub fn request_timeout(configured_ms: u64, remaining_ms: u64) -> Option<u64> {
    let margin = (remaining_ms / 10).clamp(MIN_MARGIN_MS, MAX_MARGIN_MS);
    let usable = remaining_ms.saturating_sub(margin);
    (usable >= MIN_REQUEST_MS).then(|| configured_ms.min(usable))
}

#[cfg(test)]
mod tests {
    use super::request_timeout;

    #[test]
    fn timeouts_end_before_the_deadline() {
        // Plenty of time: the configured timeout.
        assert_eq!(request_timeout(30_000, 120_000), Some(30_000));
        assert_eq!(request_timeout(30_000, 60_000), Some(30_000));
        // Deadline nearer than the timeout: a tenth is kept back, at most 2 s.
        assert_eq!(request_timeout(30_000, 20_000), Some(18_000));
        assert_eq!(request_timeout(60_000, 50_000), Some(48_000));
        assert_eq!(request_timeout(30_000, 10_000), Some(9_000));
        // At least 250 ms kept back.
        assert_eq!(request_timeout(30_000, 1_000), Some(750));
        // Too late to start.
        assert_eq!(request_timeout(30_000, 300), None);
        assert_eq!(request_timeout(30_000, 0), None);
    }
}
