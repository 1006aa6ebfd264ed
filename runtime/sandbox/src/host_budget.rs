//! What the host holds on a guest's behalf, against the call's host memory
//! budget, and the fuel owed for host work.
//!
//! A guest's linear memory is capped by the store limiter, but a guest can
//! make the *host* allocate: resource-table entries (wasi:http fields with
//! large values, requests with long paths, body buffers), request bodies
//! the host holds while it sends them (after secret substitution), and
//! responses the host buffered and the guest never reads. All of it is measured here and
//! summed against `Limits::host_memory_budget`; crossing it ends the call
//! with `memory-limit` (host side). The checks run where the host regains
//! control: on every return from a host call and on every epoch tick (see
//! `checkpoints`), and in the HTTP sender as responses arrive.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The call went over its host memory budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("memory limit (host side): the guest made the host hold {held} bytes ({what}), over the call's host budget of {limit} bytes")]
pub struct HostMemoryExceeded {
    pub limit: u64,
    pub held: u64,
    pub what: String,
}

/// Per-call host memory accounting, shared by the store (table scans,
/// host functions) and the HTTP sender's tasks.
pub struct HostBudget {
    limit: u64,
    /// Resource-table bytes as of the last scan.
    table: AtomicU64,
    /// Request and response bodies the sender holds, not yet released.
    bodies: AtomicU64,
    peak: AtomicU64,
    exceeded: Mutex<Option<HostMemoryExceeded>>,
    notify: tokio::sync::Notify,
    /// Fuel owed for host work, settled at the next checkpoint.
    fuel_debt: AtomicU64,
}

impl HostBudget {
    pub fn new(limit: u64) -> Arc<HostBudget> {
        Arc::new(HostBudget {
            limit,
            table: AtomicU64::new(0),
            bodies: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            exceeded: Mutex::new(None),
            notify: tokio::sync::Notify::new(),
            fuel_debt: AtomicU64::new(0),
        })
    }

    pub fn held(&self) -> u64 {
        self.table.load(Ordering::Relaxed) + self.bodies.load(Ordering::Relaxed)
    }

    /// What the call may still make the host hold.
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.held())
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Why the call is over budget, once it is (sticky).
    pub fn exceeded(&self) -> Option<HostMemoryExceeded> {
        self.exceeded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Resolves once the budget has been exceeded: the call's driver races
    /// it, so a guest blocked in a host wait is stopped too.
    pub async fn wait_exceeded(&self) {
        loop {
            let notified = self.notify.notified();
            if self.exceeded().is_some() {
                return;
            }
            notified.await;
        }
    }

    fn observe(&self, what: &str) -> Result<(), HostMemoryExceeded> {
        let held = self.held();
        self.peak.fetch_max(held, Ordering::Relaxed);
        if held <= self.limit {
            return Ok(());
        }
        let err = HostMemoryExceeded {
            limit: self.limit,
            held,
            what: what.to_string(),
        };
        let mut slot = self.exceeded.lock().unwrap_or_else(|p| p.into_inner());
        let first = slot.get_or_insert(err).clone();
        drop(slot);
        self.notify.notify_waiters();
        Err(first)
    }

    /// Record the resource table's size from a scan.
    pub fn set_table_bytes(&self, bytes: u64) -> Result<(), HostMemoryExceeded> {
        self.table.store(bytes, Ordering::Relaxed);
        self.observe("resource-table entries: fields, requests, bodies, streams")
    }

    /// Charge `bytes` of a buffered response; released when the returned
    /// guard (kept inside the response body) is dropped.
    pub fn charge_response(self: &Arc<Self>, bytes: u64) -> Result<BodyCharge, HostMemoryExceeded> {
        self.charge_body(bytes, "buffered HTTP responses")
    }

    /// Charge `bytes` of a request body the host holds until it is sent.
    pub fn charge_request(self: &Arc<Self>, bytes: u64) -> Result<BodyCharge, HostMemoryExceeded> {
        self.charge_body(bytes, "HTTP request bodies being sent")
    }

    fn charge_body(
        self: &Arc<Self>,
        bytes: u64,
        what: &'static str,
    ) -> Result<BodyCharge, HostMemoryExceeded> {
        self.bodies.fetch_add(bytes, Ordering::Relaxed);
        let charge = BodyCharge {
            budget: self.clone(),
            bytes,
            what,
        };
        self.observe(what)?;
        Ok(charge)
    }

    /// Check the budget without changing it (a checkpoint).
    pub fn check(&self) -> Result<(), HostMemoryExceeded> {
        match self.exceeded() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Owe fuel for host work of `bytes` bytes (see `HOST_BYTE_FUEL`).
    pub fn charge_bytes(&self, bytes: usize) {
        self.charge_fuel((bytes as u64).saturating_mul(panel1_types::HOST_BYTE_FUEL));
    }

    pub fn charge_fuel(&self, fuel: u64) {
        self.fuel_debt.fetch_add(fuel, Ordering::Relaxed);
    }

    /// The fuel owed so far, reset to zero.
    pub fn take_fuel_debt(&self) -> u64 {
        self.fuel_debt.swap(0, Ordering::Relaxed)
    }
}

/// Bytes of one body the host holds, against the budget.
pub struct BodyCharge {
    budget: Arc<HostBudget>,
    bytes: u64,
    what: &'static str,
}

impl BodyCharge {
    /// Grow the charge as more of the body arrives.
    pub fn grow(&mut self, bytes: u64) -> Result<(), HostMemoryExceeded> {
        self.budget.bodies.fetch_add(bytes, Ordering::Relaxed);
        self.bytes += bytes;
        self.budget.observe(self.what)
    }
}

impl Drop for BodyCharge {
    fn drop(&mut self) {
        self.budget.bodies.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_charges_are_released_on_drop_and_the_excess_is_sticky() {
        let b = HostBudget::new(1000);
        let mut c = b.charge_response(400).unwrap();
        c.grow(500).unwrap();
        assert_eq!(b.held(), 900);
        drop(c);
        assert_eq!(b.held(), 0);
        assert_eq!(b.peak(), 900);
        b.set_table_bytes(600).unwrap();
        let err = b.charge_response(500).err().unwrap();
        assert_eq!(err.held, 1100);
        assert!(err.to_string().contains("host side"), "{err}");
        // Released, but a call that went over stays over.
        assert_eq!(b.held(), 600);
        assert!(b.check().is_err());
    }

    #[test]
    fn fuel_debt_accumulates_and_is_taken_once() {
        let b = HostBudget::new(1);
        b.charge_bytes(10);
        b.charge_fuel(5);
        assert_eq!(b.take_fuel_debt(), 10 * panel1_types::HOST_BYTE_FUEL + 5);
        assert_eq!(b.take_fuel_debt(), 0);
    }
}
