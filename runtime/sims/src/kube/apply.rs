//! Merging changes into an object: JSON merge patch (RFC 7386; strategic
//! merge patches are treated the same, so lists are replaced, not merged by
//! key) and server-side apply at the level an adapter needs (maps merged
//! deeply, lists replaced wholesale, fields the manager stopped applying
//! removed unless someone else owns them, conflicts with other managers'
//! fields unless forced).

use serde_json::{json, Map, Value};

use super::errors::KubeError;
use super::kinds::Kind;
use super::managed::{display, leaves, remove, Managed};

/// RFC 7386: maps merge key by key, `null` removes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return;
    };
    for (k, v) in changes {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The outcome of an apply: the merged object (server fields not yet
/// filled in) and the new ownership.
pub(crate) struct Applied {
    pub object: Value,
    pub managed: Managed,
}

/// Apply `config` (already normalized: identity set, status and server
/// fields stripped) as `manager` onto `live` (absent: the object is
/// created).
pub(crate) fn server_side_apply(
    kind: &Kind,
    name: &str,
    live: Option<(&Value, &Managed)>,
    config: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Applied, KubeError> {
    let applied = leaves(config);
    let (mut object, mut managed) = match live {
        Some((object, managed)) => (object.clone(), managed.clone()),
        None => (json!({}), Managed::default()),
    };
    let conflicts = managed.conflicts(manager, &applied, &object, config);
    if !conflicts.is_empty() {
        if !force {
            let named: Vec<(String, String)> = conflicts
                .iter()
                .map(|(path, who)| (display(path), who.clone()))
                .collect();
            return Err(KubeError::apply_conflicts(kind, name, &named));
        }
        let paths: Vec<_> = conflicts.into_iter().map(|(p, _)| p).collect();
        managed.take_over(manager, &paths);
    }
    // What this manager applied before and no longer does goes, unless
    // another manager holds it too.
    for path in managed.applied_by(manager).difference(&applied) {
        if !managed.owned_by_others(manager, path) {
            remove(&mut object, path);
        }
    }
    merge_patch(&mut object, config);
    managed.record_apply(manager, &kind.api_version(), applied, now);
    Ok(Applied { object, managed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::kinds::DEPLOYMENTS;
    use crate::kube::managed::FieldPath;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": null, "y": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"y": 1}})
        );
        let mut t = json!([1]);
        merge_patch(&mut t, &json!({"a": 1}));
        assert_eq!(t, json!({"a": 1}));
    }

    #[test]
    fn apply_owns_merges_removes_and_conflicts() {
        let cfg = json!({"metadata": {"name": "web", "labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 2}});
        let first =
            server_side_apply(DEPLOYMENTS, "web", None, &cfg, "adapter", false, "t0").unwrap();
        assert_eq!(first.object, cfg);
        // Someone else adds a label; the adapter stops applying "b".
        let mut live = first.object.clone();
        let mut managed = first.managed.clone();
        let before = live.clone();
        live["metadata"]["labels"]["c"] = json!("3");
        managed.record_update("kubectl", None, "apps/v1", Some(&before), &live, "t1");
        let cfg2 =
            json!({"metadata": {"name": "web", "labels": {"a": "1"}}, "spec": {"replicas": 2}});
        let second = server_side_apply(
            DEPLOYMENTS,
            "web",
            Some((&live, &managed)),
            &cfg2,
            "adapter",
            false,
            "t2",
        )
        .unwrap();
        assert_eq!(
            second.object["metadata"]["labels"],
            json!({"a": "1", "c": "3"})
        );
        // Another manager applying a different replica count conflicts…
        let other = json!({"metadata": {"name": "web"}, "spec": {"replicas": 5}});
        let err = server_side_apply(
            DEPLOYMENTS,
            "web",
            Some((&second.object, &second.managed)),
            &other,
            "ops",
            false,
            "t3",
        )
        .err()
        .unwrap();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("conflict with \"adapter\""),
            "{}",
            err.message
        );
        assert!(err.message.contains(".spec.replicas"));
        // …unless forced, and then it owns the field alone.
        let forced = server_side_apply(
            DEPLOYMENTS,
            "web",
            Some((&second.object, &second.managed)),
            &other,
            "ops",
            true,
            "t3",
        )
        .unwrap();
        assert_eq!(forced.object["spec"]["replicas"], 5);
        let replicas: FieldPath = vec!["spec".into(), "replicas".into()];
        assert!(!forced.managed.applied_by("adapter").contains(&replicas));
        assert!(forced.managed.applied_by("ops").contains(&replicas));
        // The same value is shared ownership, not a conflict.
        let same = json!({"metadata": {"name": "web"}, "spec": {"replicas": 2}});
        assert!(server_side_apply(
            DEPLOYMENTS,
            "web",
            Some((&second.object, &second.managed)),
            &same,
            "ops",
            false,
            "t3"
        )
        .is_ok());
    }
}
