//! The leases a worker holds (claimed tasks, queued or running), kept alive
//! together: one heartbeat statement for all of them, however many.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use uuid::Uuid;

/// One claimed task's lease, and whether it was lost (the task was rescued
/// by another worker, cancelled, or finished elsewhere).
pub(crate) struct Held {
    pub lease: i64,
    gone: AtomicBool,
    lost: Notify,
}

impl Held {
    pub fn is_lost(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }

    /// Resolves once the lease is lost.
    pub async fn lost(&self) {
        if self.is_lost() {
            return;
        }
        // notify_one keeps a permit, so a loss between the check and this
        // await is not missed.
        self.lost.notified().await;
    }

    fn mark_lost(&self) {
        self.gone.store(true, Ordering::SeqCst);
        self.lost.notify_one();
    }
}

#[derive(Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<Uuid, Arc<Held>>>,
}

impl Leases {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Held>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, id: Uuid, lease: i64) -> Arc<Held> {
        let held = Arc::new(Held {
            lease,
            gone: AtomicBool::new(false),
            lost: Notify::new(),
        });
        self.map().insert(id, held.clone());
        held
    }

    pub fn remove(&self, id: &Uuid) {
        self.map().remove(id);
    }

    pub fn snapshot(&self) -> Vec<(Uuid, i64)> {
        self.map().iter().map(|(id, h)| (*id, h.lease)).collect()
    }

    /// Of `asked` (a snapshot), those not in `kept` have lost their lease.
    pub fn keep_only(&self, asked: &[(Uuid, i64)], kept: &[Uuid]) {
        let kept: std::collections::HashSet<&Uuid> = kept.iter().collect();
        let map = self.map();
        for (id, lease) in asked {
            if kept.contains(id) {
                continue;
            }
            // Only the lease that was asked about: a re-claim of the same
            // task by this worker holds a newer one.
            if let Some(h) = map.get(id).filter(|h| h.lease == *lease) {
                h.mark_lost();
            }
        }
    }

    pub fn drain(&self) -> Vec<(Uuid, i64)> {
        self.map().drain().map(|(id, h)| (id, h.lease)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lease_missing_from_the_heartbeat_answer_is_lost() {
        let leases = Leases::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let ha = leases.insert(a, 1);
        let hb = leases.insert(b, 7);
        let asked = leases.snapshot();
        leases.keep_only(&asked, &[a]);
        assert!(!ha.is_lost());
        assert!(hb.is_lost());
        // A loss before anyone waits still wakes the waiter.
        tokio::time::timeout(std::time::Duration::from_secs(1), hb.lost())
            .await
            .expect("lost() resolves");
        leases.remove(&b);
        assert_eq!(leases.drain(), vec![(a, 1)]);
    }

    #[test]
    fn a_newer_claim_of_the_same_task_is_not_marked() {
        let leases = Leases::default();
        let id = Uuid::now_v7();
        let old = vec![(id, 1)];
        let newer = leases.insert(id, 2);
        leases.keep_only(&old, &[]);
        assert!(!newer.is_lost());
    }
}
