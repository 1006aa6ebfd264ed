//! Compiled adapters kept for reuse, by content hash, up to a count: the
//! least recently used one goes first. Unbounded, every distinct upload a
//! process ever saw (a tenant can make as many as it likes) stayed compiled
//! in its memory for good. An evicted adapter lives on while a caller holds
//! it, and is compiled again (or mapped from the artifact store) if loaded
//! again.
use crate::LoadedAdapter;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(crate) struct AdapterCache {
    max: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tick: u64,
    entries: HashMap<String, (Arc<LoadedAdapter>, u64)>,
}

impl AdapterCache {
    pub(crate) fn new(max: usize) -> AdapterCache {
        AdapterCache {
            max: max.max(1),
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn get(&self, hash: &str) -> Option<Arc<LoadedAdapter>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.tick += 1;
        let tick = state.tick;
        let (adapter, used) = state.entries.get_mut(hash)?;
        *used = tick;
        Some(adapter.clone())
    }

    pub(crate) fn insert(&self, hash: String, adapter: Arc<LoadedAdapter>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.tick += 1;
        let tick = state.tick;
        state.entries.insert(hash, (adapter, tick));
        while state.entries.len() > self.max {
            let oldest = state
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(h, _)| h.clone());
            match oldest {
                Some(h) => state.entries.remove(&h),
                None => break,
            };
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }
}
