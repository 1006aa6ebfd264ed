//! Event streams (SSE) each tenant may hold open at once. A stream holds a
//! connection for as long as the client likes, and the server takes a
//! bounded number of connections: one read-only key opening streams until
//! that bound was reached locked every other client out.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub struct StreamSlots {
    max_per_tenant: usize,
    open: Mutex<HashMap<Uuid, usize>>,
}

/// One open stream; the slot is given back when it is dropped (the client
/// went away or the server is stopping).
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    tenant: Uuid,
}

impl StreamSlots {
    pub fn new(max_per_tenant: usize) -> Arc<StreamSlots> {
        Arc::new(StreamSlots {
            max_per_tenant,
            open: Mutex::new(HashMap::new()),
        })
    }

    pub fn max_per_tenant(&self) -> usize {
        self.max_per_tenant
    }

    /// A slot for one more stream of `tenant`, if it has one left.
    pub fn take(self: &Arc<Self>, tenant: Uuid) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(tenant).or_insert(0);
        if *n >= self.max_per_tenant {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            slots: self.clone(),
            tenant,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_tenant_and_given_back_on_drop() {
        let slots = StreamSlots::new(2);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let one = slots.take(a).unwrap();
        let _two = slots.take(a).unwrap();
        assert!(slots.take(a).is_none());
        assert!(slots.take(b).is_some(), "another tenant is not affected");
        drop(one);
        assert!(slots.take(a).is_some());
    }
}
