//! The path every write takes, whatever the verb: read the body, settle
//! the object's identity against the URL, validate it (schema, then rules
//! after defaulting), fill in what the server owns (uid, timestamps,
//! generation, resourceVersion, status, managedFields) and store it, unless
//! nothing changed (then nothing is bumped, as kube-apiserver does).

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::{json, Map, Value};

use super::errors::{Cause, KubeError};
use super::kinds::{Kind, RESOURCE_QUOTAS};
use super::managed::Managed;
use super::store::{Store, Stored};
use super::{observed, rules, schema};

/// A successful answer: status, body, and `Warning` header texts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
    pub warnings: Vec<String>,
}

impl Reply {
    pub fn new(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body,
            warnings: Vec::new(),
        }
    }
}

pub(crate) type Answer = Result<Reply, KubeError>;

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub(crate) fn timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn uid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Parse a request body as a JSON object. `yaml` bodies are read as JSON,
/// which is valid YAML: the adapter sends JSON, and the simulator carries
/// no YAML parser, so true YAML is refused with a message that says so.
pub(crate) fn parse_object(body: &[u8], yaml: bool) -> Result<Value, KubeError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(KubeError::bad_request(
            "the body of the request must be a JSON object",
        )),
        Err(e) if yaml => Err(KubeError::bad_request(format!(
            "error decoding YAML: the simulator reads only the JSON form of YAML: {e}"
        ))),
        Err(e) => Err(KubeError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))),
    }
}

/// Where the object is: its kind, namespace (for namespaced kinds) and
/// the name in the URL (none for a POST).
pub(crate) struct Place<'a> {
    pub kind: &'static Kind,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Metadata the server sets; whatever a client sends there is ignored.
const SERVER_METADATA: [&str; 7] = [
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Settle an incoming object's identity: `apiVersion` and `kind` defaulted
/// from the route (a different one is a 400), `metadata.namespace` from the
/// URL (a different one is a 400), `metadata.name` checked against the URL
/// (400) or generated from `generateName`. Server-owned metadata and
/// `status` are dropped. `metadata.resourceVersion` stays (a precondition).
pub(crate) fn normalize(place: &Place, mut object: Value) -> Result<Value, KubeError> {
    let kind = place.kind;
    let expected = kind.api_version();
    let map = object
        .as_object_mut()
        .ok_or_else(|| KubeError::bad_request("the body of the request must be a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        None => {
            map.insert("apiVersion".into(), json!(expected));
        }
        Some(v) if v != expected => {
            return Err(KubeError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )))
        }
        Some(_) => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        None => {
            map.insert("kind".into(), json!(kind.kind));
        }
        Some(k) if k != kind.kind => {
            return Err(KubeError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                kind.kind
            )))
        }
        Some(_) => {}
    }
    map.remove("status");
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    let Some(meta) = meta.as_object_mut() else {
        return Err(KubeError::bad_request("metadata must be an object"));
    };
    for field in SERVER_METADATA {
        meta.remove(field);
    }
    if kind.namespaced {
        let url_ns = place.namespace.unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != url_ns => {
                return Err(KubeError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {
                meta.insert("namespace".into(), json!(url_ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let body_name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    match (place.name, body_name) {
        (Some(url), Some(body)) if url != body => {
            return Err(KubeError::bad_request(format!(
                "the name of the object ({body}) does not match the name on the URL ({url})"
            )))
        }
        (Some(url), _) => {
            meta.insert("name".into(), json!(url));
        }
        (None, Some(_)) => {}
        (None, None) => {
            let Some(prefix) = meta.get("generateName").and_then(Value::as_str) else {
                return Err(KubeError::invalid(
                    kind,
                    "",
                    &[Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                ));
            };
            let suffix: String = (0..5)
                .map(|_| {
                    let chars = b"bcdfghjklmnpqrstvwxz2456789";
                    chars[rand::rng().random_range(0..chars.len())] as char
                })
                .collect();
            let name = format!("{prefix}{suffix}");
            meta.insert("name".into(), json!(name));
        }
    }
    Ok(object)
}

/// The object's name (after [`normalize`]).
pub(crate) fn name_of(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// How unknown fields are handled (`fieldValidation`): `Strict` (and, in
/// the simulator, no parameter) refuses them; `Warn` and `Ignore` drop them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

/// Schema-validate `object`, dropping unknown fields first unless strict.
pub(crate) fn validate(
    kind: &Kind,
    object: &mut Value,
    mode: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<(), KubeError> {
    if mode != FieldValidation::Strict {
        for (pointer, field) in schema::unknown_fields(kind, object) {
            if mode == FieldValidation::Warn {
                warnings.push(format!("unknown field \"{field}\""));
            }
            schema::remove_pointer(object, &pointer);
        }
    }
    let causes = schema::check(kind, object);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(KubeError::invalid(kind, &name_of(object), &causes))
    }
}

/// Who an update is recorded for.
pub(crate) struct Updater<'a> {
    pub manager: &'a str,
    pub subresource: Option<&'static str>,
}

/// Everything but identity, bookkeeping and status: a change here bumps
/// `metadata.generation`.
fn desired(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    v
}

fn without_bookkeeping(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("managedFields");
    }
    v
}

fn meta(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// Finish and store a write. `object` is normalized and schema-valid;
/// `managed` is the ownership so far (after an apply: already recorded);
/// `updater` records an update's ownership. Answers 201 on create, 200
/// otherwise; a write that changes nothing answers the stored object as is.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit(
    store: &mut Store,
    place: &Place,
    old: Option<&Stored>,
    mut object: Value,
    mut managed: Managed,
    updater: Option<Updater>,
    dry_run: bool,
    warnings: Vec<String>,
) -> Answer {
    let kind = place.kind;
    let name = name_of(&object);
    if let (Some(old), Some(rv)) = (old, object.pointer("/metadata/resourceVersion").cloned()) {
        if Some(&rv) != old.object.pointer("/metadata/resourceVersion") {
            return Err(KubeError::modified(kind, &name));
        }
    }
    let old_object = old.map(|s| &s.object);
    observed::apply_defaults(kind, &mut object, old_object, store);
    let causes = rules::check(kind, &object, old_object);
    if !causes.is_empty() {
        return Err(KubeError::invalid(kind, &name, &causes));
    }
    let now = timestamp();
    {
        let m = meta(&mut object);
        m.remove("resourceVersion");
        let kept = |f: &str| old_object.and_then(|o| o.pointer(&format!("/metadata/{f}")).cloned());
        m.insert("uid".into(), kept("uid").unwrap_or_else(|| json!(uid())));
        m.insert(
            "creationTimestamp".into(),
            kept("creationTimestamp").unwrap_or_else(|| json!(now)),
        );
        if let Some(t) = kept("deletionTimestamp") {
            m.insert("deletionTimestamp".into(), t);
        }
    }
    let generation = match old_object {
        None => 1,
        Some(o) => {
            let g = o
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if desired(o) == desired(&object) {
                g
            } else {
                g + 1
            }
        }
    };
    meta(&mut object).insert("generation".into(), json!(generation));
    if let Some(u) = updater {
        managed.record_update(
            u.manager,
            u.subresource,
            &kind.api_version(),
            old_object,
            &object,
            &now,
        );
    }
    managed.prune(&object);
    let quota_key = (place.namespace.unwrap_or("").to_owned(), name.clone());
    let used = (kind == RESOURCE_QUOTAS)
        .then(|| store.quota_used.get(&quota_key))
        .flatten();
    if let Some(status) = observed::status(kind, &object, used) {
        object["status"] = status;
    }
    if let Some(old) = old {
        let unchanged = without_bookkeeping(&old.object) == without_bookkeeping(&object)
            && old.managed.same_ownership(&managed);
        if unchanged {
            return Ok(Reply {
                status: 200,
                body: old.object.clone(),
                warnings,
            });
        }
    }
    let revision = if dry_run {
        store.revision()
    } else {
        store.next_revision()
    };
    meta(&mut object).insert("resourceVersion".into(), json!(revision.to_string()));
    meta(&mut object).insert("managedFields".into(), managed.render());
    if !dry_run {
        store.put(
            kind,
            place.namespace,
            &name,
            Stored {
                object: object.clone(),
                managed,
            },
        );
    }
    Ok(Reply {
        status: if old.is_some() { 200 } else { 201 },
        body: object,
        warnings,
    })
}

/// Recompute a stored quota's status after `set_quota_used`.
pub(crate) fn refresh_quota(
    store: &mut Store,
    namespace: &str,
    name: &str,
    used: BTreeMap<String, String>,
) -> bool {
    store
        .quota_used
        .insert((namespace.to_owned(), name.to_owned()), used.clone());
    let revision = store.revision() + 1;
    let Some(stored) = store.get_mut(RESOURCE_QUOTAS, Some(namespace), name) else {
        return false;
    };
    let Some(status) = observed::status(RESOURCE_QUOTAS, &stored.object, Some(&used)) else {
        return true;
    };
    if stored.object.get("status") != Some(&status) {
        stored.object["status"] = status;
        stored.object["metadata"]["resourceVersion"] = json!(revision.to_string());
        store.next_revision();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::kinds::{DEPLOYMENTS, NAMESPACES};

    #[test]
    fn identity_is_settled_against_the_url() {
        let place = Place {
            kind: DEPLOYMENTS,
            namespace: Some("t1"),
            name: Some("web"),
        };
        let v = normalize(
            &place,
            json!({"metadata": {"uid": "x"}, "spec": {}, "status": {"a": 1}}),
        )
        .unwrap();
        assert_eq!(v["apiVersion"], "apps/v1");
        assert_eq!(v["kind"], "Deployment");
        assert_eq!(v["metadata"], json!({"name": "web", "namespace": "t1"}));
        assert!(v.get("status").is_none());
        let e = normalize(&place, json!({"metadata": {"name": "db"}})).unwrap_err();
        assert_eq!(e.code, 400);
        let e = normalize(&place, json!({"metadata": {"namespace": "t2"}})).unwrap_err();
        assert_eq!(e.code, 400);
        let e = normalize(&place, json!({"apiVersion": "apps/v1beta1"})).unwrap_err();
        assert_eq!(e.code, 400);
        let post = Place {
            kind: NAMESPACES,
            namespace: None,
            name: None,
        };
        let v = normalize(&post, json!({"metadata": {"generateName": "t-"}})).unwrap();
        assert!(name_of(&v).starts_with("t-") && name_of(&v).len() == 7);
        assert_eq!(normalize(&post, json!({})).unwrap_err().code, 422);
        assert_eq!(uid().len(), 36);
    }
}
