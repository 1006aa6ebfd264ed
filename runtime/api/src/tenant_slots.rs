//! Things each tenant may hold at once, so one tenant cannot take what the
//! whole server has of them:
//! - event streams (SSE): a stream holds a connection for as long as the
//!   client likes, and the server takes a bounded number of connections;
//!   one read-only key opening streams locked every other client out;
//! - compiles of uploads: the sandbox's compile queue is shared, and one
//!   tenant uploading many components at once filled it, so every other
//!   tenant's upload was refused as busy.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub struct TenantSlots {
    max_per_tenant: usize,
    open: Mutex<HashMap<Uuid, usize>>,
}

/// One thing held (an open stream, a compile); the slot is given back when
/// it is dropped (the client went away, the compile ended).
pub struct TenantSlot {
    slots: Arc<TenantSlots>,
    tenant: Uuid,
}

impl TenantSlots {
    pub fn new(max_per_tenant: usize) -> Arc<TenantSlots> {
        Arc::new(TenantSlots {
            max_per_tenant,
            open: Mutex::new(HashMap::new()),
        })
    }

    pub fn max_per_tenant(&self) -> usize {
        self.max_per_tenant
    }

    /// How many `tenant` holds now.
    pub fn held(&self, tenant: Uuid) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&tenant).copied().unwrap_or(0)
    }

    /// A slot for one more of `tenant`, if it has one left.
    pub fn take(self: &Arc<Self>, tenant: Uuid) -> Option<TenantSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(tenant).or_insert(0);
        if *n >= self.max_per_tenant {
            return None;
        }
        *n += 1;
        Some(TenantSlot {
            slots: self.clone(),
            tenant,
        })
    }
}

impl Drop for TenantSlot {
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
        let slots = TenantSlots::new(2);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let one = slots.take(a).unwrap();
        let _two = slots.take(a).unwrap();
        assert!(slots.take(a).is_none());
        assert!(slots.take(b).is_some(), "another tenant is not affected");
        drop(one);
        assert!(slots.take(a).is_some());
    }
}
