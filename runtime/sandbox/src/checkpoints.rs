//! Where the host takes control back from a running guest, and what it
//! checks there: on every call into the host (a fixed fuel fee), on every
//! return from one (the resource table's size, fuel owed for host work, the
//! host memory budget, the wall-clock deadline), and on every epoch tick
//! while wasm runs (the budget and the deadline, then a yield to the
//! async runtime).
//!
//! The deadline is checked against a real `Instant`, not counted in epoch
//! ticks: a tick thread oversleeps on a loaded machine, and counting its
//! ticks let calls overrun their deadline by a quarter.
use crate::host_state::HostState;
use panel1_types::HOST_CALL_FUEL;
use std::time::Instant;
use wasmtime::{CallHook, Store, StoreContextMut, Trap, UpdateDeadline};

/// The event interval of an async runtime that runs guests: how many task
/// polls a runtime thread makes before it looks for I/O and timers again.
/// A guest yields once per epoch tick (5 ms), so with tokio's default (61)
/// a runtime whose threads all run guests saw its timers and sockets every
/// ~300 ms; at 8, every ~40 ms.
pub const RUNTIME_EVENT_INTERVAL: u32 = 8;

/// Fuel per live table entry scanned at a checkpoint: the scan is host
/// work the guest causes by keeping handles alive.
const FUEL_PER_TABLE_ENTRY: u64 = 20;

/// Install the call hook and the epoch callback on a fresh store.
pub(crate) fn arm(store: &mut Store<HostState>, deadline: Instant) {
    store.call_hook(move |mut ctx, hook| match hook {
        CallHook::CallingHost => charge(&mut ctx, HOST_CALL_FUEL),
        CallHook::ReturningFromHost => returning_from_host(&mut ctx, deadline),
        CallHook::CallingWasm | CallHook::ReturningFromWasm => Ok(()),
    });
    // One tick at a time: the callback decides on each tick.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut ctx| {
        past_deadline(deadline)?;
        ctx.data().budget.check()?;
        let owed = ctx.data().budget.take_fuel_debt();
        charge(&mut ctx, owed)?;
        // Give the thread back to the async runtime once a tick: calls run
        // as futures on the runtime's threads, and a guest in a loop would
        // otherwise hold one until its fuel or deadline ran out, starving
        // every other task there (other calls, heartbeats, the API).
        Ok(UpdateDeadline::Yield(1))
    });
}

fn returning_from_host(
    ctx: &mut StoreContextMut<'_, HostState>,
    deadline: Instant,
) -> wasmtime::Result<()> {
    let (bytes, entries) = ctx.data_mut().table_usage();
    let budget = ctx.data().budget.clone();
    budget.set_table_bytes(bytes)?;
    budget.check()?;
    let owed = budget.take_fuel_debt() + entries * FUEL_PER_TABLE_ENTRY;
    charge(ctx, owed)?;
    past_deadline(deadline)
}

fn past_deadline(deadline: Instant) -> wasmtime::Result<()> {
    if Instant::now() >= deadline {
        return Err(Trap::Interrupt.into());
    }
    Ok(())
}

/// Take `fuel` from the store; running out is the same trap as running
/// out in wasm code.
fn charge(ctx: &mut StoreContextMut<'_, HostState>, fuel: u64) -> wasmtime::Result<()> {
    if fuel == 0 {
        return Ok(());
    }
    let left = ctx.get_fuel()?;
    if left < fuel {
        ctx.set_fuel(0)?;
        return Err(Trap::OutOfFuel.into());
    }
    ctx.set_fuel(left - fuel)
}
