//! The verbs on a resource: list and create on its collection; get,
//! replace (PUT), patch (server-side apply, merge patch) and delete on an
//! item. Namespaces are deleted the Kubernetes way: Terminating first, gone
//! once their content is.

use std::time::Instant;

use serde_json::{json, Value};

use super::apply::{merge_patch, server_side_apply};
use super::call::{Call, Media};
use super::errors::{self, KubeError};
use super::kinds::{Kind, NAMESPACES};
use super::managed::Managed;
use super::paging;
use super::selector::{FieldSelector, Selector};
use super::store::{NamespaceState, Store};
use super::write::{
    commit, normalize, parse_object, timestamp, validate, Answer, Place, Reply, Updater,
};

/// An object as a list item: kube-apiserver leaves out `apiVersion` and `kind`.
fn as_item(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    v
}

/// NamespaceLifecycle admission: new content needs an Active namespace.
fn admit_create(
    store: &Store,
    kind: &Kind,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), KubeError> {
    let Some(ns) = namespace.filter(|_| kind.namespaced) else {
        return Ok(());
    };
    match store.namespace_state(ns) {
        NamespaceState::Active => Ok(()),
        NamespaceState::Missing => Err(KubeError::namespace_not_found(ns)),
        NamespaceState::Terminating => Err(KubeError::namespace_terminating(kind, name, ns)),
    }
}

pub(crate) fn list(
    store: &Store,
    kind: &'static Kind,
    namespace: Option<&str>,
    call: &Call,
) -> Answer {
    if matches!(call.param("watch"), Some("true" | "1")) {
        return Err(KubeError::bad_request(
            "the simulator does not serve watch requests; list instead",
        ));
    }
    let labels = Selector::parse(call.param("labelSelector").unwrap_or(""))
        .map_err(KubeError::bad_request)?;
    let supported: &[&str] = if kind == NAMESPACES {
        &["metadata.name", "status.phase"]
    } else {
        &["metadata.name", "metadata.namespace"]
    };
    let fields = FieldSelector::parse(call.param("fieldSelector").unwrap_or(""), supported)
        .map_err(KubeError::bad_request)?;
    let limit = match call.param("limit").filter(|l| !l.is_empty()) {
        None => None,
        Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
            KubeError::bad_request(format!(
                "invalid limit: strconv.ParseInt: parsing {raw:?}: invalid syntax"
            ))
        })?),
    };
    let items: Vec<(String, Value)> = store
        .list(kind, namespace)
        .map(|s| &s.object)
        .filter(|o| labels.matches(o.pointer("/metadata/labels")) && fields.matches(o))
        .map(|o| (super::write::name_of(o), as_item(o)))
        .collect();
    let filtered = !labels.is_empty() || call.param("fieldSelector").is_some_and(|f| !f.is_empty());
    let page = paging::page(
        items,
        limit.map(|l| l.max(0) as usize),
        call.param("continue"),
        store.revision(),
        !filtered,
    )?;
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(n) = page.remaining {
        metadata["remainingItemCount"] = json!(n);
    }
    Ok(Reply::new(
        200,
        json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version(),
            "metadata": metadata,
            "items": page.items,
        }),
    ))
}

/// The body of a POST or PUT: JSON (or YAML written as JSON).
fn whole_object(call: &Call) -> Result<Value, KubeError> {
    match call.media() {
        Media::Json => parse_object(call.body, false),
        Media::Yaml => parse_object(call.body, true),
        _ => Err(KubeError::unsupported_media_type(call.content_type_shown())),
    }
}

pub(crate) fn create(
    store: &mut Store,
    kind: &'static Kind,
    namespace: Option<&str>,
    call: &Call,
) -> Answer {
    let place = Place {
        kind,
        namespace,
        name: None,
    };
    let mut object = normalize(&place, whole_object(call)?)?;
    let name = super::write::name_of(&object);
    admit_create(store, kind, namespace, &name)?;
    if object.pointer("/metadata/resourceVersion").is_some() {
        return Err(KubeError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let dry_run = call.dry_run()?;
    let mut warnings = Vec::new();
    validate(kind, &mut object, call.field_validation()?, &mut warnings)?;
    if store.get(kind, namespace, &name).is_some() {
        let mut e = KubeError::already_exists(kind, &name);
        if kind == NAMESPACES && store.namespace_state(&name) == NamespaceState::Terminating {
            e.message = format!("object is being deleted: {}", e.message);
        }
        return Err(e);
    }
    let manager = call.manager();
    let updater = Updater {
        manager: &manager,
        subresource: None,
    };
    commit(
        store,
        &place,
        None,
        object,
        Managed::default(),
        Some(updater),
        dry_run,
        warnings,
    )
}

pub(crate) fn get(
    store: &Store,
    kind: &'static Kind,
    namespace: Option<&str>,
    name: &str,
) -> Answer {
    store
        .get(kind, namespace, name)
        .map(|s| Reply::new(200, s.object.clone()))
        .ok_or_else(|| KubeError::not_found(kind, name))
}

pub(crate) fn replace(
    store: &mut Store,
    kind: &'static Kind,
    namespace: Option<&str>,
    name: &str,
    call: &Call,
) -> Answer {
    let place = Place {
        kind,
        namespace,
        name: Some(name),
    };
    let mut object = normalize(&place, whole_object(call)?)?;
    let old = store
        .get(kind, namespace, name)
        .cloned()
        .ok_or_else(|| KubeError::not_found(kind, name))?;
    let dry_run = call.dry_run()?;
    let mut warnings = Vec::new();
    validate(kind, &mut object, call.field_validation()?, &mut warnings)?;
    let manager = call.manager();
    let updater = Updater {
        manager: &manager,
        subresource: None,
    };
    let managed = old.managed.clone();
    commit(
        store,
        &place,
        Some(&old),
        object,
        managed,
        Some(updater),
        dry_run,
        warnings,
    )
}

pub(crate) fn patch(
    store: &mut Store,
    kind: &'static Kind,
    namespace: Option<&str>,
    name: &str,
    call: &Call,
) -> Answer {
    let place = Place {
        kind,
        namespace,
        name: Some(name),
    };
    let media = call.media();
    match media {
        Media::Apply => {}
        Media::MergePatch | Media::StrategicMergePatch => {}
        // JSON patch (RFC 6902) is not modelled: answered as an unknown format.
        _ => return Err(KubeError::unsupported_media_type(call.content_type_shown())),
    }
    let body = parse_object(call.body, media == Media::Apply)?;
    let dry_run = call.dry_run()?;
    let mode = call.field_validation()?;
    let old = store.get(kind, namespace, name).cloned();
    let mut warnings = Vec::new();
    if media == Media::Apply {
        let Some(manager) = call.param("fieldManager").filter(|m| !m.is_empty()) else {
            return Err(KubeError::bad_request(
                "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests",
            ));
        };
        let config = normalize(&place, body)?;
        if old.is_none() {
            admit_create(store, kind, namespace, name)?;
        }
        let live = old.as_ref().map(|s| (&s.object, &s.managed));
        let applied = server_side_apply(
            kind,
            name,
            live,
            &config,
            manager,
            call.force(),
            &timestamp(),
        )?;
        let mut object = applied.object;
        validate(kind, &mut object, mode, &mut warnings)?;
        return commit(
            store,
            &place,
            old.as_ref(),
            object,
            applied.managed,
            None,
            dry_run,
            warnings,
        );
    }
    let Some(old) = old else {
        return Err(KubeError::not_found(kind, name));
    };
    let mut object = old.object.clone();
    merge_patch(&mut object, &body);
    let mut object = normalize(&place, object)?;
    validate(kind, &mut object, mode, &mut warnings)?;
    let manager = call.manager();
    let updater = Updater {
        manager: &manager,
        subresource: None,
    };
    let managed = old.managed.clone();
    commit(
        store,
        &place,
        Some(&old),
        object,
        managed,
        Some(updater),
        dry_run,
        warnings,
    )
}

/// `preconditions` of a DeleteOptions body against the stored object.
fn check_preconditions(
    kind: &Kind,
    name: &str,
    object: &Value,
    call: &Call,
) -> Result<(), KubeError> {
    if call.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let options: Value = serde_json::from_slice(call.body).map_err(|e| {
        KubeError::bad_request(format!("the DeleteOptions body could not be decoded: {e}"))
    })?;
    for (field, pointer) in [
        ("UID", "/metadata/uid"),
        ("ResourceVersion", "/metadata/resourceVersion"),
    ] {
        let key = if field == "UID" {
            "uid"
        } else {
            "resourceVersion"
        };
        let Some(wanted) = options
            .pointer(&format!("/preconditions/{key}"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let actual = object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default();
        if wanted != actual {
            return Err(KubeError::conflict(
                kind,
                name,
                &format!("Precondition failed: {field} in precondition: {wanted}, {field} in object meta: {actual}"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn delete(
    store: &mut Store,
    kind: &'static Kind,
    namespace: Option<&str>,
    name: &str,
    call: &Call,
) -> Answer {
    let dry_run = call.dry_run()?;
    let Some(stored) = store.get(kind, namespace, name).cloned() else {
        return Err(KubeError::not_found(kind, name));
    };
    check_preconditions(kind, name, &stored.object, call)?;
    if kind != NAMESPACES {
        if !dry_run {
            store.remove(kind, namespace, name);
        }
        let uid = stored
            .object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Ok(Reply::new(200, errors::deleted(kind, name, uid)));
    }
    if store.namespace_state(name) == NamespaceState::Terminating {
        // What kube-apiserver answers while the namespace controller works.
        return Err(KubeError::conflict(
            kind,
            name,
            "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
        ));
    }
    let mut object = stored.object.clone();
    object["metadata"]["deletionTimestamp"] = json!(timestamp());
    object["status"] = json!({"phase": "Terminating"});
    if dry_run {
        return Ok(Reply::new(200, object));
    }
    object["metadata"]["resourceVersion"] = json!(store.next_revision().to_string());
    store.put(
        kind,
        None,
        name,
        super::store::Stored {
            object: object.clone(),
            managed: stored.managed,
        },
    );
    store.begin_termination(name, Instant::now());
    Ok(Reply::new(200, object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::kinds::DEPLOYMENTS;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn call<'a>(q: &'a BTreeMap<String, String>, ct: Option<&'a str>, body: &'a [u8]) -> Call<'a> {
        Call {
            query: q,
            content_type: ct,
            body,
            user_agent: Some("test/1.0"),
        }
    }

    fn deployment(name: &str, replicas: i64) -> Vec<u8> {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn create_apply_patch_delete() {
        let mut store = Store::new(Duration::from_millis(1));
        let q = BTreeMap::new();
        let ns = br#"{"metadata":{"name":"t1"}}"#;
        assert_eq!(
            create(&mut store, NAMESPACES, None, &call(&q, None, ns))
                .unwrap()
                .status,
            201
        );
        let e = create(&mut store, NAMESPACES, None, &call(&q, None, ns)).unwrap_err();
        assert_eq!((e.code, e.reason), (409, "AlreadyExists"));

        let body = deployment("web", 2);
        let r = create(
            &mut store,
            DEPLOYMENTS,
            Some("t1"),
            &call(&q, Some("application/json"), &body),
        )
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body["status"]["readyReplicas"], 2);
        assert_eq!(r.body["metadata"]["managedFields"][0]["manager"], "test");
        let e = create(
            &mut store,
            DEPLOYMENTS,
            Some("nope"),
            &call(&q, None, &body),
        )
        .unwrap_err();
        assert_eq!(e.message, "namespaces \"nope\" not found");

        // Applying by another manager a value the creator set conflicts.
        let apply: BTreeMap<String, String> =
            [("fieldManager".to_string(), "panel1".to_string())].into();
        let e = patch(
            &mut store,
            DEPLOYMENTS,
            Some("t1"),
            "web",
            &call(
                &apply,
                Some("application/apply-patch+yaml"),
                &deployment("web", 3),
            ),
        )
        .unwrap_err();
        assert_eq!(e.code, 409, "{e:?}");
        let r = patch(
            &mut store,
            DEPLOYMENTS,
            Some("t1"),
            "web",
            &call(
                &q,
                Some("application/merge-patch+json"),
                br#"{"spec":{"replicas":4}}"#,
            ),
        )
        .unwrap();
        assert_eq!(
            (
                r.body["spec"]["replicas"].clone(),
                r.body["metadata"]["generation"].clone()
            ),
            (json!(4), json!(2))
        );
        let e = patch(
            &mut store,
            DEPLOYMENTS,
            Some("t1"),
            "web",
            &call(&q, Some("application/json-patch+json"), b"[]"),
        )
        .unwrap_err();
        assert_eq!(e.code, 415);

        let r = delete(&mut store, NAMESPACES, None, "t1", &call(&q, None, b"")).unwrap();
        assert_eq!(r.body["status"]["phase"], "Terminating");
        let e = delete(&mut store, NAMESPACES, None, "t1", &call(&q, None, b"")).unwrap_err();
        assert_eq!(e.code, 409);
        let e = patch(
            &mut store,
            DEPLOYMENTS,
            Some("t1"),
            "db",
            &call(
                &apply,
                Some("application/apply-patch+yaml"),
                &deployment("db", 1),
            ),
        )
        .unwrap_err();
        assert_eq!((e.code, e.reason), (403, "Forbidden"));
        store.reap(Instant::now() + Duration::from_millis(5));
        assert_eq!(
            get(&store, DEPLOYMENTS, Some("t1"), "web")
                .unwrap_err()
                .code,
            404
        );
    }
}
