//! The objects a service is made of, as Panel1 applies them: a namespace
//! labelled with the service's id, a ResourceQuota and LimitRange from the
//! plan, a PersistentVolumeClaim, a Deployment, a Service and (with a
//! domain) an Ingress. Each builder gives the object's URL and body.
use crate::quantity;
use crate::settings::{Plan, Settings};
use serde_json::{json, Value};

/// The label tying a namespace (and its objects) to a Panel1 service.
pub const SERVICE_LABEL: &str = "panel1.io/service-id";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "panel1");
/// Annotations on the namespace: the plan, its replica count, suspension.
pub const PLAN_ANNOTATION: &str = "panel1.io/plan";
pub const REPLICAS_ANNOTATION: &str = "panel1.io/replicas";
pub const SUSPENDED_ANNOTATION: &str = "panel1.io/suspended";

/// The name every workload object of a service has.
pub const WORKLOAD: &str = "web";
pub const CLAIM: &str = "data";
pub const POLICY: &str = "panel1";

pub fn namespace_path(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}")
}

pub fn core_path(ns: &str, resource: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/{resource}/{name}")
}

pub fn deployment_path(ns: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/deployments/{WORKLOAD}")
}

pub fn ingress_path(ns: &str) -> String {
    format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{WORKLOAD}")
}

fn labels(service_id: &str) -> Value {
    json!({ SERVICE_LABEL: service_id, MANAGED_BY.0: MANAGED_BY.1 })
}

pub fn namespace(ns: &str, service_id: &str, plan: &Plan) -> (String, Value) {
    let body = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": ns, "labels": labels(service_id),
            "annotations": {
                PLAN_ANNOTATION: plan.name,
                REPLICAS_ANNOTATION: plan.replicas.to_string(),
            },
        },
    });
    (namespace_path(ns), body)
}

/// The quota covers every replica plus the volume claim: each replica's
/// share rounded as its container's is, then multiplied, so the last
/// replica always fits.
pub fn quota(ns: &str, service_id: &str, plan: &Plan) -> (String, Value) {
    let n = f64::from(plan.replicas);
    let cpu = quantity::cpu((plan.cpu * 1000.0).round() / 1000.0 * n);
    let memory = quantity::bytes(plan.memory.round() * n);
    let body = json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": POLICY, "namespace": ns, "labels": labels(service_id)},
        "spec": {"hard": {
            "pods": plan.replicas.to_string(),
            "requests.cpu": cpu,
            "limits.cpu": cpu,
            "requests.memory": memory,
            "limits.memory": memory,
            "requests.storage": quantity::bytes(plan.storage),
            "persistentvolumeclaims": "1",
        }},
    });
    (core_path(ns, "resourcequotas", POLICY), body)
}

/// Containers get the plan's resources unless they say otherwise.
pub fn limit_range(ns: &str, service_id: &str, plan: &Plan) -> (String, Value) {
    let each = json!({"cpu": quantity::cpu(plan.cpu), "memory": quantity::bytes(plan.memory)});
    let body = json!({
        "apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": POLICY, "namespace": ns, "labels": labels(service_id)},
        "spec": {"limits": [{"type": "Container", "default": each, "defaultRequest": each, "max": each}]},
    });
    (core_path(ns, "limitranges", POLICY), body)
}

pub fn claim(ns: &str, service_id: &str, plan: &Plan, settings: &Settings) -> (String, Value) {
    let mut spec = json!({
        "accessModes": [plan.volume_access],
        "resources": {"requests": {"storage": quantity::bytes(plan.storage)}},
    });
    if let Some(class) = &settings.storage_class {
        spec["storageClassName"] = json!(class);
    }
    let body = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": ns, "labels": labels(service_id)},
        "spec": spec,
    });
    (core_path(ns, "persistentvolumeclaims", CLAIM), body)
}

/// `replicas` is the plan's, or 0 for a suspended service. One volume
/// claim for every replica: pods are replaced, not surged (`Recreate`).
pub fn deployment(ns: &str, service_id: &str, plan: &Plan, replicas: u32) -> (String, Value) {
    let selector = json!({"app.kubernetes.io/name": WORKLOAD, SERVICE_LABEL: service_id});
    let each = json!({"cpu": quantity::cpu(plan.cpu), "memory": quantity::bytes(plan.memory)});
    let body = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": WORKLOAD, "namespace": ns, "labels": labels(service_id)},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "containers": [{
                        "name": WORKLOAD, "image": plan.image,
                        "ports": [{"name": "http", "containerPort": plan.port, "protocol": "TCP"}],
                        "resources": {"limits": each, "requests": each},
                        "volumeMounts": [{"name": CLAIM, "mountPath": "/data"}],
                    }],
                    "volumes": [{"name": CLAIM, "persistentVolumeClaim": {"claimName": CLAIM}}],
                },
            },
        },
    });
    (deployment_path(ns), body)
}

pub fn service(ns: &str, service_id: &str, plan: &Plan) -> (String, Value) {
    let body = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": WORKLOAD, "namespace": ns, "labels": labels(service_id)},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": WORKLOAD, SERVICE_LABEL: service_id},
            "ports": [{"name": "http", "port": 80, "targetPort": plan.port, "protocol": "TCP"}],
        },
    });
    (core_path(ns, "services", WORKLOAD), body)
}

pub fn ingress(ns: &str, service_id: &str, domain: &str, settings: &Settings) -> (String, Value) {
    let mut spec = json!({
        "rules": [{"host": domain, "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": WORKLOAD, "port": {"number": 80}}},
        }]}}],
    });
    if let Some(class) = &settings.ingress_class {
        spec["ingressClassName"] = json!(class);
    }
    let body = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": WORKLOAD, "namespace": ns, "labels": labels(service_id)},
        "spec": spec,
    });
    (ingress_path(ns), body)
}
