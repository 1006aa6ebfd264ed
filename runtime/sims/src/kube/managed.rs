//! Field ownership (`metadata.managedFields`), at the level server-side
//! apply needs: each manager owns a set of leaf field paths (maps are
//! walked, lists and scalars are leaves: lists are atomic here). An Update
//! (POST, PUT, merge patch, scale) takes over the fields it changes; an
//! Apply owns exactly what it sent and conflicts with other managers'
//! fields it would change.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// A field: the keys from the object's root to a leaf.
pub(crate) type FieldPath = Vec<String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Apply,
    Update,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manager {
    pub name: String,
    pub operation: Operation,
    /// `scale` for changes through the scale subresource.
    pub subresource: Option<&'static str>,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<FieldPath>,
}

/// Every manager of one object, in the order they first wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Managed(pub Vec<Manager>);

/// Fields the server owns (identity, bookkeeping, status): never managed.
fn server_owned(path: &[String]) -> bool {
    match path {
        [] => true,
        [top, ..] if top == "apiVersion" || top == "kind" || top == "status" => true,
        [meta, field, ..] if meta == "metadata" => matches!(
            field.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
        ),
        _ => false,
    }
}

fn walk(value: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(k.clone());
                walk(v, path, out);
                path.pop();
            }
        }
        _ => {
            if !server_owned(path) {
                out.insert(path.clone());
            }
        }
    }
}

/// The managed leaf fields of `object`.
pub(crate) fn leaves(object: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    walk(object, &mut Vec::new(), &mut out);
    out
}

/// The value at `path`, if there is one.
pub(crate) fn at<'v>(object: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(object, |v, k| v.get(k))
}

/// Remove the field at `path`, and the maps that only held it.
pub(crate) fn remove(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = &mut *object;
    for k in parents {
        match at.get_mut(k) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(last);
    }
    // Keep top-level sections (`spec: {}`): only prune below them.
    if parents.len() > 1 && at.as_object().is_some_and(Map::is_empty) {
        remove(object, parents);
    }
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// How conflicts and messages write a field: `.spec.replicas`.
pub(crate) fn display(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// Leaves of `new` that differ from `old`, and leaves of `old` gone from `new`.
pub(crate) fn changed(old: Option<&Value>, new: &Value) -> BTreeSet<FieldPath> {
    let empty = json!({});
    let old = old.unwrap_or(&empty);
    let mut out: BTreeSet<FieldPath> = leaves(new)
        .into_iter()
        .filter(|p| at(old, p) != at(new, p))
        .collect();
    out.extend(leaves(old).into_iter().filter(|p| at(new, p).is_none()));
    out
}

impl Managed {
    fn entry(
        &mut self,
        name: &str,
        operation: Operation,
        subresource: Option<&'static str>,
    ) -> &mut Manager {
        let i = match self.0.iter().position(|m| {
            m.name == name && m.operation == operation && m.subresource == subresource
        }) {
            Some(i) => i,
            None => {
                self.0.push(Manager {
                    name: name.to_owned(),
                    operation,
                    subresource,
                    api_version: String::new(),
                    time: String::new(),
                    fields: BTreeSet::new(),
                });
                self.0.len() - 1
            }
        };
        &mut self.0[i]
    }

    /// The fields `name` last applied.
    pub fn applied_by(&self, name: &str) -> BTreeSet<FieldPath> {
        self.0
            .iter()
            .find(|m| m.name == name && m.operation == Operation::Apply)
            .map(|m| m.fields.clone())
            .unwrap_or_default()
    }

    /// Whether a manager other than `name`'s Apply owns (part of) `path`.
    pub fn owned_by_others(&self, name: &str, path: &[String]) -> bool {
        self.others(name)
            .any(|m| m.fields.iter().any(|f| overlaps(f, path)))
    }

    fn others<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Manager> + 's {
        self.0
            .iter()
            .filter(move |m| !(m.name == name && m.operation == Operation::Apply))
    }

    /// Fields `name` applies with values that differ from `live`'s where
    /// another manager owns them: (field, manager) pairs.
    pub fn conflicts(
        &self,
        name: &str,
        applied: &BTreeSet<FieldPath>,
        live: &Value,
        config: &Value,
    ) -> Vec<(FieldPath, String)> {
        let mut found = Vec::new();
        for p in applied {
            for m in self.others(name) {
                for f in m.fields.iter().filter(|f| overlaps(f, p)) {
                    // Compare at the shorter path: the whole subtree at stake.
                    let common = if f.len() < p.len() { f } else { p };
                    if at(live, common) != at(config, common) {
                        found.push((p.clone(), m.name.clone()));
                    }
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }

    /// Take `paths` away from every other manager (a forced apply).
    pub fn take_over(&mut self, name: &str, paths: &[FieldPath]) {
        for m in self
            .0
            .iter_mut()
            .filter(|m| !(m.name == name && m.operation == Operation::Apply))
        {
            m.fields.retain(|f| !paths.iter().any(|p| overlaps(f, p)));
        }
    }

    /// `name` applied exactly `fields`.
    pub fn record_apply(
        &mut self,
        name: &str,
        api_version: &str,
        fields: BTreeSet<FieldPath>,
        now: &str,
    ) {
        let m = self.entry(name, Operation::Apply, None);
        m.fields = fields;
        m.api_version = api_version.to_owned();
        m.time = now.to_owned();
    }

    /// `name` changed `old` into `new` by an update: it takes over what
    /// changed; fields that are gone are nobody's.
    pub fn record_update(
        &mut self,
        name: &str,
        subresource: Option<&'static str>,
        api_version: &str,
        old: Option<&Value>,
        new: &Value,
        now: &str,
    ) {
        let changed = changed(old, new);
        for m in &mut self.0 {
            m.fields.retain(|f| !changed.iter().any(|c| overlaps(f, c)));
        }
        let present: BTreeSet<FieldPath> = changed
            .into_iter()
            .filter(|p| at(new, p).is_some())
            .collect();
        if !present.is_empty() {
            let m = self.entry(name, Operation::Update, subresource);
            m.fields.extend(present);
            m.api_version = api_version.to_owned();
            m.time = now.to_owned();
        }
    }

    /// Forget fields `object` no longer has, and managers left with none.
    pub fn prune(&mut self, object: &Value) {
        for m in &mut self.0 {
            m.fields.retain(|f| at(object, f).is_some());
        }
        self.0.retain(|m| !m.fields.is_empty());
    }

    /// Same managers owning the same fields (times aside).
    pub fn same_ownership(&self, other: &Managed) -> bool {
        let key = |m: &Manager| (m.name.clone(), m.operation, m.subresource, m.fields.clone());
        self.0.iter().map(key).eq(other.0.iter().map(key))
    }

    /// `metadata.managedFields` as kube-apiserver shows it.
    pub fn render(&self) -> Value {
        self.0
            .iter()
            .map(|m| {
                let mut entry = json!({
                    "manager": m.name,
                    "operation": match m.operation {
                        Operation::Apply => "Apply",
                        Operation::Update => "Update",
                    },
                    "apiVersion": m.api_version,
                    "time": m.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields_v1(&m.fields),
                });
                if let Some(sub) = m.subresource {
                    entry["subresource"] = json!(sub);
                }
                entry
            })
            .collect()
    }
}

/// A field set in the FieldsV1 trie form: `{"f:spec": {"f:replicas": {}}}`.
fn fields_v1(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut at = &mut root;
        for k in path {
            let next = at
                .entry(format!("f:{k}"))
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(map) = next else {
                break;
            };
            at = map;
        }
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> FieldPath {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn leaves_skip_server_fields() {
        let obj = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "uid": "u", "labels": {"app": "web"}, "annotations": {}},
            "spec": {"replicas": 2, "list": [1, 2]}, "status": {"x": 1}});
        let got: Vec<String> = leaves(&obj).iter().map(|f| display(f)).collect();
        assert_eq!(
            got,
            vec![
                ".metadata.annotations",
                ".metadata.labels.app",
                ".spec.list",
                ".spec.replicas"
            ]
        );
    }

    #[test]
    fn updates_take_over_and_applies_conflict() {
        let mut m = Managed::default();
        let v1 = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2, "image": "x"}});
        m.record_apply("adapter", "apps/v1", leaves(&v1), "t0");
        let v2 = json!({"metadata": {"name": "a"}, "spec": {"replicas": 5, "image": "x"}});
        m.record_update("kubectl", Some("scale"), "apps/v1", Some(&v1), &v2, "t1");
        assert_eq!(m.0.len(), 2);
        assert!(!m.0[0].fields.contains(&p("spec.replicas")));
        assert!(m.0[1].fields.contains(&p("spec.replicas")));
        // Applying replicas 2 again conflicts with kubectl; the same value would not.
        let conflicts = m.conflicts("adapter", &leaves(&v1), &v2, &v1);
        assert_eq!(conflicts, vec![(p("spec.replicas"), "kubectl".to_string())]);
        assert!(m.conflicts("adapter", &leaves(&v2), &v2, &v2).is_empty());
        m.take_over("adapter", &[p("spec.replicas")]);
        m.prune(&v1);
        assert_eq!(m.0.len(), 1);
        let rendered = m.render();
        assert_eq!(rendered[0]["fieldsV1"], json!({"f:spec": {"f:image": {}}}));
        assert_eq!(rendered[0]["operation"], "Apply");
    }

    #[test]
    fn removal_prunes_empty_maps() {
        let mut obj = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": {"y": 1}}});
        remove(&mut obj, &p("metadata.labels.a"));
        remove(&mut obj, &p("spec.x.y"));
        assert_eq!(obj, json!({"metadata": {}, "spec": {}}));
    }
}
