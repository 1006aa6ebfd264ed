//! The worker's loaded adapters by version. A version is compiled once:
//! tasks that need it while it compiles wait for that load (a burst of
//! tasks on a new worker compiled it once per slot, on every core at once).
//! Kept up to a count, the least recently used dropped first: every version
//! a tenant uploads and runs would otherwise stay compiled in the worker.
use panel1_sandbox::LoadedAdapter;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;
use uuid::Uuid;

pub(crate) type AdapterCell = Arc<OnceCell<Arc<LoadedAdapter>>>;

/// Versions kept loaded by one worker.
pub(crate) const MAX_LOADED_ADAPTERS: usize = 64;

#[derive(Default)]
pub(crate) struct AdapterCells {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tick: u64,
    cells: HashMap<Uuid, (AdapterCell, u64)>,
}

impl AdapterCells {
    /// The cell of `version`, new and empty if it was not kept.
    pub(crate) fn cell(&self, version: Uuid) -> AdapterCell {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.tick += 1;
        let tick = state.tick;
        let (cell, used) = state.cells.entry(version).or_default();
        *used = tick;
        let cell = cell.clone();
        while state.cells.len() > MAX_LOADED_ADAPTERS {
            let oldest = state
                .cells
                .iter()
                .filter(|(v, _)| **v != version)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(v, _)| *v);
            match oldest {
                Some(v) => state.cells.remove(&v),
                None => break,
            };
        }
        cell
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cells
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_past_the_bound_are_dropped_least_recently_used_first() {
        let cells = AdapterCells::default();
        let first = Uuid::from_u128(1);
        let kept = cells.cell(first);
        let second = Uuid::from_u128(2);
        let dropped = cells.cell(second);
        for i in 3..=MAX_LOADED_ADAPTERS as u128 {
            cells.cell(Uuid::from_u128(i));
        }
        // Used again: the most recent, so not the one dropped next.
        assert!(Arc::ptr_eq(&kept, &cells.cell(first)));
        cells.cell(Uuid::from_u128(1000));
        assert_eq!(cells.len(), MAX_LOADED_ADAPTERS);
        assert!(Arc::ptr_eq(&kept, &cells.cell(first)));
        // The second was the least recently used: its cell is a new one.
        assert!(!Arc::ptr_eq(&dropped, &cells.cell(second)));
        assert_eq!(cells.len(), MAX_LOADED_ADAPTERS);
    }
}
