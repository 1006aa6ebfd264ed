//! kube-apiserver's error answers: `Status` objects (`kind: Status`,
//! `status: Failure`) with the message, reason, details and code a real
//! API server gives for the same mistake.

use serde_json::{json, Map, Value};

use super::kinds::{Kind, NAMESPACES};

/// One field a validation error names (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, …
    pub reason: &'static str,
    /// `spec.replicas`, `metadata.name`.
    pub field: String,
    /// What is wrong, without the field: `Invalid value: "two": …`.
    pub message: String,
}

impl Cause {
    pub fn new(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }

    /// `Invalid value: <value>: <why>`.
    pub fn invalid(field: impl Into<String>, value: &Value, why: impl std::fmt::Display) -> Self {
        Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {}: {why}", shown(value)),
        )
    }

    pub fn required(field: impl Into<String>) -> Self {
        Cause::new("FieldValueRequired", field, "Required value")
    }

    pub fn immutable(field: impl Into<String>, value: &Value) -> Self {
        Cause::invalid(field, value, "field is immutable")
    }
}

/// A value as Go's field errors quote it: strings quoted, the rest as JSON.
pub(crate) fn shown(value: &Value) -> String {
    value.to_string()
}

/// An error answer: HTTP status and the `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KubeError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// `details` naming an object of `kind` (`kind` is the plural resource, as
/// kube-apiserver puts it for most errors).
fn details(kind: &Kind, name: &str) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), json!(name));
    if !kind.group.is_empty() {
        d.insert("group".into(), json!(kind.group));
    }
    d.insert("kind".into(), json!(kind.resource));
    Value::Object(d)
}

impl KubeError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        KubeError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn unauthorized() -> Self {
        KubeError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn not_found(kind: &Kind, name: &str) -> Self {
        KubeError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified_resource()),
        )
        .with_details(details(kind, name))
    }

    pub fn namespace_not_found(namespace: &str) -> Self {
        KubeError::not_found(NAMESPACES, namespace)
    }

    /// A path the server has no resource for.
    pub fn no_such_path() -> Self {
        KubeError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn already_exists(kind: &Kind, name: &str) -> Self {
        KubeError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.qualified_resource()),
        )
        .with_details(details(kind, name))
    }

    /// `Operation cannot be fulfilled on …: <why>` (409 Conflict).
    pub fn conflict(kind: &Kind, name: &str, why: &str) -> Self {
        KubeError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                kind.qualified_resource()
            ),
        )
        .with_details(details(kind, name))
    }

    /// A stale `metadata.resourceVersion`.
    pub fn modified(kind: &Kind, name: &str) -> Self {
        KubeError::conflict(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// Server-side apply: fields another manager owns with other values.
    /// `conflicts` is (field, manager) pairs.
    pub fn apply_conflicts(kind: &Kind, name: &str, conflicts: &[(String, String)]) -> Self {
        let api_version = kind.api_version();
        let lines: Vec<String> = conflicts
            .iter()
            .map(|(field, manager)| {
                format!("conflict with \"{manager}\" using {api_version}: {field}")
            })
            .collect();
        let message = if lines.len() == 1 {
            format!("Apply failed with 1 conflict: {}", lines[0])
        } else {
            format!(
                "Apply failed with {} conflicts: {}",
                lines.len(),
                lines.join("\n")
            )
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(field, manager)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{manager}\" using {api_version}"), "field": field})
            })
            .collect();
        let mut d = details(kind, name);
        d["causes"] = Value::Array(causes);
        KubeError::new(409, "Conflict", message).with_details(d)
    }

    /// 422: the object fails validation (schema or rules).
    pub fn invalid(kind: &Kind, name: &str, causes: &[Cause]) -> Self {
        let errors: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let listed = if errors.len() == 1 {
            errors[0].clone()
        } else {
            format!("[{}]", errors.join(", "))
        };
        let mut d = Map::new();
        d.insert("name".into(), json!(name));
        if !kind.group.is_empty() {
            d.insert("group".into(), json!(kind.group));
        }
        // For Invalid, kube-apiserver names the kind, not the resource.
        d.insert("kind".into(), json!(kind.kind));
        d.insert(
            "causes".into(),
            causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect(),
        );
        KubeError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {listed}", kind.qualified_kind()),
        )
        .with_details(Value::Object(d))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        KubeError::new(400, "BadRequest", message)
    }

    /// 403: creating content in a namespace being deleted.
    pub fn namespace_terminating(kind: &Kind, name: &str, namespace: &str) -> Self {
        let mut d = details(kind, name);
        d["causes"] = json!([{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {namespace} is being terminated"),
            "field": "metadata.namespace",
        }]);
        KubeError::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                kind.qualified_resource()
            ),
        )
        .with_details(d)
    }

    pub fn method_not_allowed() -> Self {
        KubeError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        KubeError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"),
        )
    }

    /// 410: a `continue` token that is unknown or too old.
    pub fn expired() -> Self {
        KubeError::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        )
    }

    /// The `Status` body.
    pub fn to_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status["code"] = json!(self.code);
        status
    }
}

/// The `Status` a successful DELETE of an ordinary object answers.
pub(crate) fn deleted(kind: &Kind, name: &str, uid: &str) -> Value {
    let mut d = details(kind, name);
    d["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::kinds::DEPLOYMENTS;

    #[test]
    fn statuses_read_like_kube_apiserver() {
        let e = KubeError::not_found(DEPLOYMENTS, "web").to_json();
        assert_eq!(e["message"], "deployments.apps \"web\" not found");
        assert_eq!(
            e["details"],
            json!({"name": "web", "group": "apps", "kind": "deployments"})
        );
        assert_eq!(e["code"], 404);
        let e = KubeError::namespace_not_found("x").to_json();
        assert_eq!(e["message"], "namespaces \"x\" not found");
        assert!(e["details"].get("group").is_none());
        assert_eq!(
            KubeError::unauthorized().to_json(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})
        );
        let e = KubeError::modified(DEPLOYMENTS, "web");
        assert_eq!(e.message, "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again");
        let e = KubeError::invalid(
            DEPLOYMENTS,
            "web",
            &[Cause::invalid(
                "spec.replicas",
                &json!(-1),
                "must be greater than or equal to 0",
            )],
        );
        assert_eq!(e.message, "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0");
        assert_eq!(e.to_json()["details"]["kind"], "Deployment");
        let e = KubeError::apply_conflicts(
            DEPLOYMENTS,
            "web",
            &[(".spec.replicas".into(), "kubectl".into())],
        );
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas"
        );
    }
}
