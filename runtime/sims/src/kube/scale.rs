//! A deployment's `scale` subresource: an `autoscaling/v1` Scale to read,
//! merge-patch or replace; a change of `spec.replicas` goes to the
//! deployment (its generation bumps, ownership is recorded against the
//! `scale` subresource).

use serde_json::{json, Value};

use super::apply::merge_patch;
use super::call::{Call, Media};
use super::errors::{Cause, KubeError};
use super::kinds::DEPLOYMENTS;
use super::store::Store;
use super::write::{commit, parse_object, Answer, Place, Reply, Updater};

/// `app=web,tier in (a,b)`: a LabelSelector as a Scale's status shows it.
fn selector_text(selector: Option<&Value>) -> String {
    let mut parts: Vec<String> = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in selector
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "DoesNotExist" => format!("!{key}"),
            _ => key.to_owned(),
        });
    }
    parts.join(",")
}

fn scale_of(deployment: &Value) -> Value {
    let replicas = deployment
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let meta = &deployment["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": selector_text(deployment.pointer("/spec/selector"))},
    })
}

pub(crate) fn get(store: &Store, namespace: &str, name: &str) -> Answer {
    store
        .get(DEPLOYMENTS, Some(namespace), name)
        .map(|s| Reply::new(200, scale_of(&s.object)))
        .ok_or_else(|| KubeError::not_found(DEPLOYMENTS, name))
}

fn invalid(name: &str, cause: Cause) -> KubeError {
    let mut e = KubeError::invalid(DEPLOYMENTS, name, &[cause]);
    e.message = e
        .message
        .replacen("Deployment.apps", "Scale.autoscaling", 1);
    if let Some(d) = e.details.as_mut() {
        d["kind"] = json!("Scale");
        d["group"] = json!("autoscaling");
    }
    e
}

/// PUT (a whole Scale) or PATCH (a merge patch of one) on `scale`.
pub(crate) fn update(
    store: &mut Store,
    namespace: &str,
    name: &str,
    call: &Call,
    patching: bool,
) -> Answer {
    let media = call.media();
    let acceptable = if patching {
        matches!(media, Media::MergePatch | Media::StrategicMergePatch)
    } else {
        media == Media::Json
    };
    if !acceptable {
        return Err(KubeError::unsupported_media_type(call.content_type_shown()));
    }
    let body = parse_object(call.body, false)?;
    let dry_run = call.dry_run()?;
    let old = store
        .get(DEPLOYMENTS, Some(namespace), name)
        .cloned()
        .ok_or_else(|| KubeError::not_found(DEPLOYMENTS, name))?;
    let mut scale = scale_of(&old.object);
    if patching {
        merge_patch(&mut scale, &body);
    } else {
        scale = body;
    }
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    let Some(n) = replicas.as_i64() else {
        return Err(invalid(
            name,
            Cause::invalid("spec.replicas", &replicas, "must be an integer"),
        ));
    };
    if n < 0 {
        return Err(invalid(
            name,
            Cause::invalid(
                "spec.replicas",
                &replicas,
                "must be greater than or equal to 0",
            ),
        ));
    }
    if let Some(rv) = scale
        .pointer("/metadata/resourceVersion")
        .filter(|v| !v.is_null())
    {
        if Some(rv) != old.object.pointer("/metadata/resourceVersion") {
            return Err(KubeError::modified(DEPLOYMENTS, name));
        }
    }
    let mut object = old.object.clone();
    object["spec"]["replicas"] = json!(n);
    let place = Place {
        kind: DEPLOYMENTS,
        namespace: Some(namespace),
        name: Some(name),
    };
    let manager = call.manager();
    let updater = Updater {
        manager: &manager,
        subresource: Some("scale"),
    };
    let managed = old.managed.clone();
    let reply = commit(
        store,
        &place,
        Some(&old),
        object,
        managed,
        Some(updater),
        dry_run,
        Vec::new(),
    )?;
    Ok(Reply::new(200, scale_of(&reply.body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_as_text() {
        let s = json!({"matchLabels": {"app": "web", "tier": "front"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]});
        assert_eq!(selector_text(Some(&s)), "app=web,tier=front,env in (a,b)");
        assert_eq!(selector_text(None), "");
    }
}
