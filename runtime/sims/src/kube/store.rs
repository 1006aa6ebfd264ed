//! What the simulated cluster holds: objects by resource, namespace and
//! name, one global resourceVersion counter (as etcd's revision), the
//! namespaces being terminated with their deadlines, and the quota usage
//! tests set.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::kinds::{Kind, NAMESPACES};
use super::managed::Managed;

/// An object as stored: its JSON (managedFields rendered) and who owns what.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub object: Value,
    pub managed: Managed,
}

/// (resource, namespace or "" when cluster-scoped, name)
type Key = (&'static str, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NamespaceState {
    Missing,
    Active,
    Terminating,
}

pub(crate) struct Store {
    revision: u64,
    objects: BTreeMap<Key, Stored>,
    /// Terminating namespaces and when they (and all in them) go.
    terminating: BTreeMap<String, Instant>,
    /// `status.used` overrides by (namespace, quota name).
    pub quota_used: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// Cluster IPs handed out so far.
    pub allocated_ips: u32,
    pub terminating_for: Duration,
}

fn key(kind: &Kind, namespace: Option<&str>, name: &str) -> Key {
    (
        kind.resource,
        namespace.unwrap_or("").to_owned(),
        name.to_owned(),
    )
}

impl Store {
    pub fn new(terminating_for: Duration) -> Store {
        Store {
            // A fresh cluster is not at revision 0.
            revision: 1000,
            objects: BTreeMap::new(),
            terminating: BTreeMap::new(),
            quota_used: BTreeMap::new(),
            allocated_ips: 0,
            terminating_for,
        }
    }

    /// The current revision (what a list's `resourceVersion` shows).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The next revision, for a write.
    pub fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    /// Finish terminations whose time has come: the namespace and all in
    /// it are gone.
    pub fn reap(&mut self, now: Instant) {
        let due: Vec<String> = self
            .terminating
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(ns, _)| ns.clone())
            .collect();
        for ns in due {
            self.terminating.remove(&ns);
            self.objects.retain(|(resource, namespace, name), _| {
                *namespace != ns && !(*resource == NAMESPACES.resource && *name == ns)
            });
            self.quota_used.retain(|(namespace, _), _| *namespace != ns);
            self.next_revision();
        }
    }

    pub fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Option<&Stored> {
        self.objects.get(&key(kind, namespace, name))
    }

    pub fn get_mut(
        &mut self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<&mut Stored> {
        self.objects.get_mut(&key(kind, namespace, name))
    }

    /// Objects of `kind` in `namespace` (all, for cluster-scoped kinds),
    /// in name order.
    pub fn list<'s>(
        &'s self,
        kind: &'s Kind,
        namespace: Option<&'s str>,
    ) -> impl Iterator<Item = &'s Stored> + 's {
        let ns = namespace.unwrap_or("");
        self.objects
            .iter()
            .filter(move |((resource, namespace, _), _)| {
                *resource == kind.resource && namespace == ns
            })
            .map(|(_, stored)| stored)
    }

    pub fn put(&mut self, kind: &Kind, namespace: Option<&str>, name: &str, stored: Stored) {
        self.objects.insert(key(kind, namespace, name), stored);
    }

    pub fn remove(&mut self, kind: &Kind, namespace: Option<&str>, name: &str) -> Option<Stored> {
        let gone = self.objects.remove(&key(kind, namespace, name));
        if gone.is_some() {
            self.next_revision();
        }
        gone
    }

    pub fn namespace_state(&self, namespace: &str) -> NamespaceState {
        if self.terminating.contains_key(namespace) {
            NamespaceState::Terminating
        } else if self.get(NAMESPACES, None, namespace).is_some() {
            NamespaceState::Active
        } else {
            NamespaceState::Missing
        }
    }

    /// Start terminating `namespace`; it goes `terminating_for` from `now`.
    pub fn begin_termination(&mut self, namespace: &str, now: Instant) {
        self.terminating
            .entry(namespace.to_owned())
            .or_insert(now + self.terminating_for);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::kinds::DEPLOYMENTS;
    use serde_json::json;

    fn stored(name: &str) -> Stored {
        Stored {
            object: json!({"metadata": {"name": name}}),
            managed: Managed::default(),
        }
    }

    #[test]
    fn termination_takes_the_contents() {
        let mut s = Store::new(Duration::from_millis(50));
        s.put(NAMESPACES, None, "t1", stored("t1"));
        s.put(NAMESPACES, None, "t2", stored("t2"));
        s.put(DEPLOYMENTS, Some("t1"), "web", stored("web"));
        s.put(DEPLOYMENTS, Some("t2"), "web", stored("web"));
        assert_eq!(s.namespace_state("t1"), NamespaceState::Active);
        let now = Instant::now();
        s.begin_termination("t1", now);
        s.reap(now);
        assert_eq!(s.namespace_state("t1"), NamespaceState::Terminating);
        assert_eq!(s.list(DEPLOYMENTS, Some("t1")).count(), 1);
        s.reap(now + Duration::from_millis(60));
        assert_eq!(s.namespace_state("t1"), NamespaceState::Missing);
        assert_eq!(s.list(DEPLOYMENTS, Some("t1")).count(), 0);
        assert_eq!(s.list(DEPLOYMENTS, Some("t2")).count(), 1);
        assert_eq!(s.list(NAMESPACES, None).count(), 1);
    }
}
