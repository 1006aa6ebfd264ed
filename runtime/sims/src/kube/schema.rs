//! Object validation against the Kubernetes 1.37 JSON Schemas (strict
//! variants, from `kubernetes-validate`), extracted to
//! `spec/kubernetes/schemas.json` by `spec/kubernetes/extract.py` and
//! embedded. Each violation becomes a field cause of a 422 `Invalid`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::{json, Value};

use super::errors::{shown, Cause};
use super::kinds::{Kind, KINDS};

/// The embedded schemas: `kinds` (root schema by kind) and shared `$defs`.
pub const SCHEMAS_JSON: &str = include_str!("../../spec/kubernetes/schemas.json");

/// One compiled validator per kind. The file is embedded and tested, so a
/// broken one is a build defect, not client input: panicking is right.
static VALIDATORS: LazyLock<BTreeMap<&'static str, Validator>> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(SCHEMAS_JSON).expect("schemas.json parses");
    KINDS
        .iter()
        .map(|k| {
            let mut root = doc["kinds"][k.kind].clone();
            assert!(root.is_object(), "schemas.json has no {}", k.kind);
            root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
            root["$defs"] = doc["$defs"].clone();
            let validator = jsonschema::draft202012::options()
                .build(&root)
                .unwrap_or_else(|e| panic!("schemas.json: bad schema for {}: {e}", k.kind));
            (k.kind, validator)
        })
        .collect()
});

/// A JSON pointer into `object` as kube-apiserver writes field paths:
/// `spec.template.spec.containers[0].image`, map keys with dots or
/// slashes in brackets (`metadata.labels[app.kubernetes.io/name]`).
pub(crate) fn field_path(object: &Value, pointer: &str) -> String {
    let mut out = String::new();
    let mut at = Some(object);
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        match at {
            Some(Value::Array(items)) => {
                out.push_str(&format!("[{segment}]"));
                at = segment.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                if segment.contains(['.', '/']) {
                    out.push_str(&format!("[{segment}]"));
                } else {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&segment);
                }
                at = other.and_then(|v| v.get(&segment));
            }
        }
    }
    out
}

fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

fn type_name(kind: &TypeKind) -> String {
    let names: Vec<String> = match kind {
        TypeKind::Single(t) => vec![t.to_string()],
        TypeKind::Multiple(set) => set
            .iter()
            .filter(|t| *t != JsonType::Null)
            .map(|t| t.to_string())
            .collect(),
    };
    names.join(" or ")
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn causes_of(object: &Value, error: &ValidationError) -> Vec<Cause> {
    let field = field_path(object, &error.instance_path.to_string());
    let value = error.instance.as_ref();
    match &error.kind {
        ValidationErrorKind::Type { kind } => vec![Cause::new(
            "FieldValueTypeInvalid",
            field.clone(),
            format!(
                "Invalid value: {}: {field} in body must be of type {}: \"{}\"",
                shown(value),
                type_name(kind),
                json_type(value)
            ),
        )],
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            vec![Cause::required(child(&field, name))]
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected
            .iter()
            .map(|name| {
                let f = child(&field, name);
                Cause::new(
                    "FieldValueInvalid",
                    f.clone(),
                    format!("unknown field \"{f}\""),
                )
            })
            .collect(),
        ValidationErrorKind::Enum { options } => {
            let supported: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .filter(|o| !o.is_null())
                .map(shown)
                .collect();
            vec![Cause::new(
                "FieldValueNotSupported",
                field,
                format!(
                    "Unsupported value: {}: supported values: {}",
                    shown(value),
                    supported.join(", ")
                ),
            )]
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            vec![Cause::new(
                "FieldValueTypeInvalid",
                field.clone(),
                format!(
                    "Invalid value: {}: {field} in body must be of a type the field allows (a quantity or int-or-string is a string or a number), not {}",
                    shown(value),
                    json_type(value)
                ),
            )]
        }
        _ => vec![Cause::invalid(field, value, error)],
    }
}

/// Everything the schema of `kind` finds wrong with `object`.
pub(crate) fn check(kind: &Kind, object: &Value) -> Vec<Cause> {
    let Some(validator) = VALIDATORS.get(kind.kind) else {
        return Vec::new();
    };
    let mut causes: Vec<Cause> = validator
        .iter_errors(object)
        .flat_map(|e| causes_of(object, &e))
        .collect();
    causes.dedup();
    causes
}

/// Fields the schema of `kind` does not declare: (JSON pointer, field path).
pub(crate) fn unknown_fields(kind: &Kind, object: &Value) -> Vec<(String, String)> {
    let Some(validator) = VALIDATORS.get(kind.kind) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for error in validator.iter_errors(object) {
        if let ValidationErrorKind::AdditionalProperties { unexpected } = &error.kind {
            let parent = error.instance_path.to_string();
            for name in unexpected {
                let pointer = format!("{parent}/{}", name.replace('~', "~0").replace('/', "~1"));
                found.push((pointer.clone(), field_path(object, &pointer)));
            }
        }
    }
    found
}

/// Remove the value at a JSON pointer, if there is one.
pub(crate) fn remove_pointer(object: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match object.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < items.len() {
                    items.remove(i);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::kinds::{DEPLOYMENTS, NAMESPACES, SERVICES};

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "t1", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                        "ports": [{"containerPort": 80}]}]}
                }
            }
        })
    }

    #[test]
    fn every_kind_compiles_and_accepts_a_good_object() {
        assert_eq!(VALIDATORS.len(), KINDS.len());
        assert_eq!(check(DEPLOYMENTS, &deployment()), vec![]);
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t1"}});
        assert_eq!(check(NAMESPACES, &ns), vec![]);
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}});
        assert_eq!(check(SERVICES, &svc), vec![]);
    }

    #[test]
    fn violations_name_the_field() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!("two");
        let causes = check(DEPLOYMENTS, &d);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.replicas");
        assert!(
            causes[0].message.contains("must be of type integer"),
            "{causes:?}"
        );

        let mut d = deployment();
        d["spec"]["replica"] = json!(2);
        let causes = check(DEPLOYMENTS, &d);
        assert_eq!(causes[0].field, "spec.replica", "{causes:?}");
        assert!(causes[0].message.contains("unknown field"));

        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("name");
        let causes = check(DEPLOYMENTS, &d);
        assert_eq!(
            causes[0].field, "spec.template.spec.containers[0].name",
            "{causes:?}"
        );
        assert_eq!(causes[0].message, "Required value");

        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!(true);
        let causes = check(DEPLOYMENTS, &d);
        assert_eq!(
            causes[0].field, "spec.template.spec.containers[0].resources.limits.cpu",
            "{causes:?}"
        );
    }

    #[test]
    fn unknown_fields_can_be_dropped() {
        let mut d = deployment();
        d["spec"]["replica"] = json!(2);
        d["metadata"]["labelz"] = json!({});
        let unknown = unknown_fields(DEPLOYMENTS, &d);
        assert_eq!(unknown.len(), 2, "{unknown:?}");
        for (pointer, _) in &unknown {
            remove_pointer(&mut d, pointer);
        }
        assert_eq!(check(DEPLOYMENTS, &d), vec![]);
    }

    #[test]
    fn field_paths() {
        let v = json!({"metadata": {"labels": {"app.kubernetes.io/name": 1}}, "a": [{"b": 1}]});
        assert_eq!(
            field_path(&v, "/metadata/labels/app.kubernetes.io~1name"),
            "metadata.labels[app.kubernetes.io/name]"
        );
        assert_eq!(field_path(&v, "/a/0/b"), "a[0].b");
        assert_eq!(field_path(&v, ""), "");
    }
}
